package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
)

// webPages are the cookie-authenticated web apps: where to sign in, the
// name of the sign-in form's token, and the kinds that may sign in.
var webPages = []struct {
	page, signIn, token string
	kinds               []string
}{
	{"/vcs/", "/vcs/sign-in", "csrf", []string{"vcs"}},
	{"/linkwork/", "/linkwork/signin", "pre", []string{"linkwork"}},
	{"/commissioner/", "/commissioner/sign-in", "csrf", []string{"commissioner"}},
	// The directory is public to every kind; its forms check the kind.
	{"/directory/", "/directory/sign-in", "csrf", []string{"gp", "linkwork", "vcs", "commissioner", "panel", "admin"}},
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var hiddenToken = regexp.MustCompile(`name="(csrf|pre)" value="([^"]+)"`)

// signIn opens the page, posts key with the form's token and returns the status.
func (b *browser) signIn(page, signIn, key string) int {
	b.t.Helper()
	_, html := b.do("GET", page, nil)
	m := hiddenToken.FindStringSubmatch(html)
	if m == nil {
		b.t.Fatalf("GET %s: no sign-in token in the page: %.300s", page, html)
	}
	resp, _ := b.do("POST", signIn, url.Values{m[1]: {m[2]}, "key": {key}})
	return resp.StatusCode
}

// TestWebSignInRefusesWrongKinds: each web page lets in only its kinds;
// an unknown key is 401, another kind 403.
func TestWebSignInRefusesWrongKinds(t *testing.T) {
	h := hubtest.Start(t)
	for _, p := range webPages {
		for _, c := range callers[1:] {
			want := http.StatusForbidden
			switch {
			case c == "unknown":
				want = http.StatusUnauthorized
			case contains(p.kinds, c):
				want = http.StatusSeeOther
			}
			if got := newBrowser(t, h.Base).signIn(p.page, p.signIn, callerKeys[c]); got != want {
				t.Errorf("%s sign-in as %s: %d, want %d", p.page, c, got, want)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// TestWebPagesHideDataWithoutSession: the web pages that show a person
// show nothing of them without a session, or with a session of another
// organisation (signed in as VCS002 or as another team).
func TestWebPagesHideDataWithoutSession(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	w := newWorlds(t, h)
	own := w.base["own"]
	const name = "Authz" // the family name of every test person
	for _, tc := range []struct {
		path, page, signIn, key string
		// action is a form another organisation's session posts on the id.
		action string
		form   url.Values
	}{
		{"/vcs/referrals/" + own["onward"], "/vcs/", "/vcs/sign-in", "demo-vcs-002", "/accept", url.Values{}},
		{"/linkwork/journeys/" + own["journey"], "/linkwork/", "/linkwork/signin", otherTeamKey, "/close", url.Values{"reason": {"goals_met"}}},
	} {
		b := newBrowser(t, h.Base)
		if resp, body := b.do("GET", tc.path, nil); resp.StatusCode == 200 && strings.Contains(body, name) || strings.Contains(body, own["journey"]) && resp.StatusCode == 200 {
			t.Errorf("GET %s without a session shows the person: %d", tc.path, resp.StatusCode)
		}
		if st := b.signIn(tc.page, tc.signIn, tc.key); st != http.StatusSeeOther {
			t.Fatalf("sign-in to %s: %d", tc.page, st)
		}
		resp, body := b.do("GET", tc.path, nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, name) {
			t.Errorf("GET %s with another organisation's session: %d (want 404), shows the person: %v", tc.path, resp.StatusCode, strings.Contains(body, name))
		}
		_, home := b.do("GET", tc.page, nil)
		m := hiddenToken.FindStringSubmatch(home)
		if m == nil {
			t.Fatalf("GET %s signed in: no form token", tc.page)
		}
		tc.form.Set("csrf", m[2])
		resp, body = b.do("POST", tc.path+tc.action, tc.form)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, name) {
			t.Errorf("POST %s with another organisation's session: %d (want 404)", tc.path+tc.action, resp.StatusCode)
		}
	}
	// Nothing those forms asked for happened.
	var onward struct{ Status string }
	h.JSON("GET", "/v1/onward-referrals/"+own["onward"], callerKeys["vcs"], nil, 200, &onward)
	var journey struct{ Status string }
	h.JSON("GET", "/v1/journeys/"+own["journey"], callerKeys["linkwork"], nil, 200, &journey)
	if onward.Status != "sent" || journey.Status == "closed" {
		t.Errorf("another organisation's forms changed the records: onward referral %q, journey %q", onward.Status, journey.Status)
	}
}

// TestSecurityHeaders: every web page, signed in or not, says CSP with no
// inline or eval'd script and frame-ancestors 'none', a referrer policy and
// nosniff.
func TestSecurityHeaders(t *testing.T) {
	h := hubtest.Start(t)
	for _, p := range webPages {
		b := newBrowser(t, h.Base)
		resp, _ := b.do("GET", p.page, nil)
		checkHeaders(t, p.page+" (signed out)", resp.Header)
		if st := b.signIn(p.page, p.signIn, callerKeys[p.kinds[0]]); st != http.StatusSeeOther {
			t.Fatalf("sign-in to %s: %d", p.page, st)
		}
		resp, _ = b.do("GET", p.page, nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s signed in: %d", p.page, resp.StatusCode)
		}
		checkHeaders(t, p.page+" (signed in)", resp.Header)
		resp, _ = b.do("GET", p.page+"no-such-page", nil)
		checkHeaders(t, p.page+"no-such-page", resp.Header)
	}
}

func checkHeaders(t *testing.T, what string, hd http.Header) {
	t.Helper()
	csp := map[string][]string{}
	for _, d := range strings.Split(hd.Get("Content-Security-Policy"), ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			csp[strings.ToLower(f[0])] = f[1:]
		}
	}
	if len(csp) == 0 {
		t.Errorf("%s: no Content-Security-Policy", what)
		return
	}
	scripts, ok := csp["script-src"]
	if !ok {
		scripts, ok = csp["default-src"]
	}
	if !ok {
		t.Errorf("%s: CSP has neither script-src nor default-src: scripts are unrestricted", what)
	}
	for _, s := range scripts {
		if s == "'unsafe-inline'" || s == "'unsafe-eval'" || s == "*" || s == "data:" || s == "http:" || s == "https:" {
			t.Errorf("%s: CSP allows scripts from %s", what, s)
		}
	}
	if fa := csp["frame-ancestors"]; len(fa) != 1 || fa[0] != "'none'" {
		t.Errorf("%s: CSP frame-ancestors %v, want 'none'", what, fa)
	}
	if rp := hd.Get("Referrer-Policy"); rp == "" || rp == "unsafe-url" {
		t.Errorf("%s: Referrer-Policy %q", what, rp)
	}
	if hd.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, hd.Get("X-Content-Type-Options"))
	}
}

// writeRoutes are the matrix's API write routes, each with a caller allowed
// on its own (or shared) world.
type writeRoute struct {
	method, path, caller string
	fhir                 bool
}

func writeRoutes(t *testing.T, w *worlds) []writeRoute {
	var out []writeRoute
	seen := map[string]bool{}
	for _, r := range readMatrix(t) {
		method, _, _ := strings.Cut(r.route, " ")
		if method == "GET" || r.target == "web" || r.target == "other" || seen[r.route] {
			continue
		}
		for _, c := range callers {
			if strings.HasPrefix(r.want[c], "2") {
				seen[r.route] = true
				out = append(out, writeRoute{method, w.expand(t, r.path, w.shared(r.target)), c, strings.HasPrefix(r.path, "/fhir/")})
				break
			}
		}
	}
	return out
}

// apiCodes are the error codes of API.md, and 429's.
var apiCodes = []string{"invalid_argument", "unauthenticated", "permission_denied", "not_found", "failed_precondition",
	"too_large", "too_many_requests", "unavailable"}

// leaks are what an answer would hold if it passed on an internal error.
var leaks = regexp.MustCompile(`goroutine |panic|\.go:\d|runtime error|json: |invalid character|cannot unmarshal|unexpected EOF|nats: |jetstream|\*[a-z]+\.[A-Z]|0x[0-9a-f]{6}`)

// checkErrorShape fails unless out is the JSON error shape (or, on FHIR
// routes, an OperationOutcome) with a code of API.md and no internal detail.
func checkErrorShape(t *testing.T, what string, fhir bool, out []byte) {
	t.Helper()
	if m := leaks.Find(out); m != nil {
		t.Errorf("%s: the answer leaks %q: %.300s", what, m, out)
	}
	if fhir {
		var oo struct {
			ResourceType string `json:"resourceType"`
			Issue        []struct {
				Severity, Code string
			} `json:"issue"`
		}
		if err := json.Unmarshal(out, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
			t.Errorf("%s: not an OperationOutcome: %.300s", what, out)
		}
		return
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&e); err != nil || !contains(apiCodes, e.Error.Code) || e.Error.Message == "" {
		t.Errorf("%s: not the JSON error shape with a code of API.md: %.300s", what, out)
	}
}

// TestErrorsAndBodyLimits: on every write route, malformed and mistyped
// bodies are 400 in the error shape with nothing internal in it, and a
// body over the limit is 413.
func TestErrorsAndBodyLimits(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	w := newWorlds(t, h)
	routes := writeRoutes(t, w)
	if len(routes) < 25 {
		t.Fatalf("only %d write routes found in the matrix", len(routes))
	}
	huge := append(append([]byte(`{"notes": "`), bytes.Repeat([]byte("x"), api.MaxBody+1024)...), `"}`...)
	for _, r := range routes {
		key := callerKeys[r.caller]
		for _, body := range [][]byte{[]byte(`{"`), []byte(`{"a": tru}`), []byte(`[1, 2`), []byte("\xff\xfe"), []byte(`{"reason": 7, "status": [], "due": {}}`), []byte(`null x`)} {
			st, out := h.Do(r.method, r.path, key, body)
			what := fmt.Sprintf("%s %s %q", r.method, r.path, body)
			if st != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400: %.300s", what, st, out)
			}
			checkErrorShape(t, what, r.fhir, out)
		}
		st, out, err := post(h.Base+r.path, r.method, key, huge)
		what := fmt.Sprintf("%s %s (%d bytes)", r.method, r.path, len(huge))
		switch {
		case err != nil:
			t.Errorf("%s: %v", what, err)
		case st != http.StatusRequestEntityTooLarge:
			t.Errorf("%s: %d, want 413: %.300s", what, st, out)
		default:
			checkErrorShape(t, what, r.fhir, out)
		}
	}
	// Not found, refused and unauthenticated answers have the shape too.
	for _, c := range []struct{ path, key string }{
		{"/v1/journeys/not-an-id", callerKeys["linkwork"]},
		{"/v1/journeys/" + w.base["other"]["journey"], callerKeys["linkwork"]},
		{"/v1/inbox", callerKeys["gp"]},
		{"/v1/inbox", ""},
		{"/v1/caseload?status=%00%ff", callerKeys["linkwork"]},
	} {
		_, out := h.Do("GET", c.path, c.key, nil)
		checkErrorShape(t, "GET "+c.path, false, out)
	}
}

func post(u, method, key string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// TestRateLimit: a key over its rate gets 429 with Retry-After, on JSON and
// FHIR routes alike, and another key is not held back by it.
func TestRateLimit(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{Rate: 0.5, Burst: 3} })
	for _, c := range []struct {
		path, key, other string
		fhir             bool
	}{
		{"/v1/directory/categories", callerKeys["panel"], callerKeys["admin"], false},
		{"/v1/referrals", callerKeys["gp"], "demo-gp-a81002", false},
		{"/fhir/R4/Task?focus=ServiceRequest/0193a0b6-0000-7000-8000-000000000000", "demo-gp-a81001", "demo-gp-a81002", true},
	} {
		limited := false
		for i := 0; i < 6 && !limited; i++ {
			req, _ := http.NewRequest("GET", h.Base+c.path, nil)
			req.Header.Set("Authorization", "Bearer "+c.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				continue
			}
			limited = true
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("GET %s: 429 with Retry-After %q", c.path, resp.Header.Get("Retry-After"))
			}
			checkErrorShape(t, "429 on "+c.path, c.fhir, out)
		}
		if !limited {
			t.Errorf("GET %s: 6 requests at once with one key (burst 3) were never refused with 429", c.path)
		}
		if st, _ := h.Do("GET", c.path, c.other, nil); st == http.StatusTooManyRequests {
			t.Errorf("GET %s: another key is held back by the first key's limit", c.path)
		}
	}
}
