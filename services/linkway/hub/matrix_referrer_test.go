package hub_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
)

// referrerKey is the demo key of an agency of kind referrer (HSG01, a
// housing trust referring to U12345).
const referrerKey = "demo-ref-hsg01"

// TestReferrerKindInTheMatrix walks every route of matrix.csv with the key
// of a referring agency, by the rule API.md gives that kind: it refers and
// follows its own referrals exactly as a practice does, and nothing else.
// So where a GP key is refused (403), so is the referrer's; where a GP key
// is let in, the referrer is let in too but holds nothing of either world
// (their resources are practices'): an id of theirs answers as another
// organisation's does to a practice (404, unless not secret), a list shows
// neither world's mark, and no answer holds what a practice may not see.
// Creates are left to referrals' own tests (the agency refers there).
func TestReferrerKindInTheMatrix(t *testing.T) {
	rows := readMatrix(t)
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	w := newWorlds(t, h)
	// What a practice gets on another organisation's resource: the
	// referrer's answer on any world's (404, or 200 where the resource is
	// not secret, such as the directory).
	onAnothers := map[string]string{}
	for _, r := range rows {
		if r.target == "other" {
			onAnothers[r.route+" "+r.body] = r.want["gp"]
		}
	}
	walked := 0
	for _, r := range rows {
		gp := r.want["gp"]
		if r.target == "web" || strings.HasPrefix(r.note, "public") || gp == "-" {
			continue
		}
		method, _, _ := strings.Cut(r.route, " ")
		var want string
		switch {
		case gp == "403":
			want = "403"
		case hasID(r.route):
			want = "404"
			if o, ok := onAnothers[r.route+" "+r.body]; ok {
				want = o
			}
		case method == "GET":
			want = "200"
		default:
			continue // a create: referrals' tests refer as an agency
		}
		walked++
		vals := w.shared(r.target)
		path := w.expand(t, r.path, vals)
		var body []byte
		if r.body != "" {
			body = []byte(w.expand(t, bodyTemplate(t, r.body), vals))
		}
		st, out := h.Do(method, path, referrerKey, body)
		what := fmt.Sprintf("line %d: %s %s as referrer", r.line, method, path)
		if fmt.Sprint(st) != want {
			t.Errorf("%s: %d, want %s: %.300s", what, st, want, out)
			continue
		}
		if st >= 400 {
			checkErrorShape(t, what, strings.HasPrefix(r.path, "/fhir/"), out)
			continue
		}
		for _, x := range w.never("gp") {
			if bytes.Contains(out, []byte(x)) {
				t.Errorf("%s: the answer holds %q", what, x)
			}
		}
		if r.mark != "" {
			for _, side := range []string{"own", "other"} {
				if mark := w.expand(t, r.mark, w.shared(side)); bytes.Contains(out, []byte(mark)) {
					t.Errorf("%s: the answer shows the %s world's %q, a practice's", what, side, mark)
				}
			}
		}
	}
	if walked < 20 {
		t.Fatalf("walked %d rows as referrer: the table was not read", walked)
	}
	t.Logf("referrer: %d rows walked", walked)
}
