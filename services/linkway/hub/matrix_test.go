// The authorization matrix of a whole Linkway hub: every route by every
// kind of caller, on their own and on another organisation's resources
// (the HTTP hardening checks are in hardening_test.go).

package hub_test

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
	"linkway/services/platform/orgs"
)

//go:embed matrix.csv
var matrixCSV string

// callers are the matrix's caller columns, in order, and their keys: the
// demo key of each kind (the own world's organisation).
var callers = []string{"none", "unknown", "gp", "linkwork", "vcs", "commissioner", "panel", "admin"}

var callerKeys = map[string]string{
	"none":         "",
	"unknown":      "lw_unknownunknownunknownunknownunknown00",
	"gp":           "demo-gp-a81001",
	"linkwork":     "demo-lw-u12345",
	"vcs":          "demo-vcs-001",
	"commissioner": "demo-icb-qyg",
	"panel":        "demo-panel",
	"admin":        "demo-admin",
}

// The other world's team and its key, registered by the test; the other
// world's practice and VCS organisation are demo ones.
const (
	otherTeam    = "U99999"
	otherTeamKey = "lw_authz-test-other-team-key-0000000000"
)

type row struct {
	line                                   int
	route, path, body, target, state, mark string
	want                                   map[string]string
	note                                   string
}

func readMatrix(tb testing.TB) []row {
	tb.Helper()
	var lines []string
	for _, l := range strings.Split(matrixCSV, "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	r := csv.NewReader(strings.NewReader(strings.Join(lines, "\n")))
	recs, err := r.ReadAll()
	if err != nil {
		tb.Fatalf("matrix.csv: %v", err)
	}
	head := recs[0]
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range append([]string{"route", "path", "body", "target", "state", "mark", "note"}, callers...) {
		if _, ok := col[c]; !ok {
			tb.Fatalf("matrix.csv: no column %q", c)
		}
	}
	var rows []row
	for i, rec := range recs[1:] {
		rw := row{line: i + 2, route: rec[col["route"]], path: rec[col["path"]], body: rec[col["body"]],
			target: rec[col["target"]], state: rec[col["state"]], mark: rec[col["mark"]], note: rec[col["note"]],
			want: map[string]string{}}
		for _, c := range callers {
			rw.want[c] = rec[col[c]]
		}
		if !slices.Contains([]string{"own", "other", "-", "web"}, rw.target) {
			tb.Fatalf("matrix.csv row %q: target %q", rw.route, rw.target)
		}
		rows = append(rows, rw)
	}
	return rows
}

// TestMatrixFollowsTheRules checks the table itself against the rules of
// API.md, so a row cannot quietly write down a leak: no key or an unknown
// key is 401 on every authenticated route; a kind refused on its own
// resource is 403; a kind allowed on its own resource gets 404 (not 403, not
// 200) on another's, unless a note says why the resource is not secret.
func TestMatrixFollowsTheRules(t *testing.T) {
	rows := readMatrix(t)
	own := map[string]row{}
	for _, r := range rows {
		if r.target == "own" {
			own[r.route+" "+r.body] = r
		}
	}
	for _, r := range rows {
		public := strings.HasPrefix(r.note, "public")
		if r.target == "web" || public {
			continue
		}
		for _, c := range []string{"none", "unknown"} {
			if r.want[c] != "401" {
				t.Errorf("line %d %s: %s caller expects %s, the rule is 401", r.line, r.route, c, r.want[c])
			}
		}
		if r.target != "other" || strings.Contains(r.path, "${other.") {
			continue
		}
		o, ok := own[r.route+" "+r.body]
		if !ok {
			t.Errorf("line %d %s: an other row with no own row", r.line, r.route)
			continue
		}
		for _, c := range callers[2:] {
			ownOK := strings.HasPrefix(o.want[c], "2")
			switch {
			case !ownOK && r.want[c] != o.want[c]:
				t.Errorf("line %d %s: %s is refused its own (%s) but gets %s on another's", r.line, r.route, c, o.want[c], r.want[c])
			case ownOK && hasID(r.route) && r.want[c] != "404" && r.note == "":
				t.Errorf("line %d %s: %s on another organisation's id expects %s, the rule is 404 (or a note saying why not)", r.line, r.route, c, r.want[c])
			}
		}
	}
}

func hasID(route string) bool { return strings.Contains(route, "{") && !strings.Contains(route, "{$}") }

// TestAuthorizationMatrix walks every cell of matrix.csv against a demo hub
// and checks that the table lists every route the hub serves.
func TestAuthorizationMatrix(t *testing.T) {
	rows := readMatrix(t)
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	validateOpenAPI(t, h, true) // every request and answer against proto/openapi.yaml (openapi_test.go)

	t.Run("every route is in the table", func(t *testing.T) {
		inTable := map[string]bool{}
		for _, r := range rows {
			inTable[r.route] = true
		}
		served := map[string]bool{}
		for _, p := range h.HTTP().Routes() {
			served[p] = true
			if !inTable[p] {
				t.Errorf("route %q is served but not in matrix.csv", p)
			}
		}
		for p := range inTable {
			if !served[p] {
				t.Errorf("matrix.csv lists %q, which the hub does not serve", p)
			}
		}
	})

	w := newWorlds(t, h)
	var cells, walked int
	for _, r := range rows {
		for _, c := range callers {
			cells++
			want := r.want[c]
			if want == "-" || r.target == "web" {
				continue
			}
			walked++
			vals := w.shared(r.target)
			if r.state != "" && strings.HasPrefix(want, "2") {
				vals = w.fresh(r.target, r.state)
			}
			path := w.expand(t, r.path, vals)
			var body []byte
			if r.body != "" {
				body = []byte(w.expand(t, bodyTemplate(t, r.body), vals))
			}
			method, _, _ := strings.Cut(r.route, " ")
			st, out := h.Do(method, path, callerKeys[c], body)
			if fmt.Sprint(st) != want {
				t.Errorf("line %d: %s %s as %s: %d, want %s: %.300s", r.line, method, path, c, st, want, out)
				continue
			}
			if st >= 400 {
				checkErrorShape(t, fmt.Sprintf("line %d: %s %s as %s", r.line, method, path, c), strings.HasPrefix(r.path, "/fhir/"), out)
			}
			if r.target == "other" && st == 404 {
				// Another's id and an id no one has must be told apart by
				// nothing: same status, same body.
				ghost := map[string]string{}
				for k, v := range vals {
					ghost[k] = v
				}
				for _, k := range []string{"journey", "onward", "goal", "followup"} {
					ghost[k] = events.NewID()
				}
				gst, gout := h.Do(method, w.expand(t, r.path, ghost), callerKeys[c], body)
				if gst != st || !bytes.Equal(gout, out) {
					t.Errorf("line %d: %s as %s: another's id answers %d %s, an unknown id %d %s", r.line, r.route, c, st, out, gst, gout)
				}
			}
			if st/100 == 2 {
				for _, x := range w.never(c) {
					if bytes.Contains(out, []byte(x)) {
						t.Errorf("line %d: %s %s as %s: the answer holds %q, which a %s may never see", r.line, method, path, c, x, c)
					}
				}
			}
			if r.mark != "" && st/100 == 2 {
				mark := w.expand(t, r.mark, vals)
				has := bytes.Contains(out, []byte(mark))
				if r.target == "own" && !has {
					t.Errorf("line %d: %s %s as %s: the answer does not show its own %q: %.300s", r.line, method, path, c, mark, out)
				}
				if r.target == "other" && has {
					t.Errorf("line %d: %s %s as %s: the answer shows another organisation's %q", r.line, method, path, c, mark)
				}
			}
		}
	}
	t.Logf("matrix: %d rows (%d routes) x %d callers = %d cells, %d walked against the hub (web rows by their own tests)",
		len(rows), len(h.HTTP().Routes()), len(callers), cells, walked)
}

// ---- worlds -------------------------------------------------------------------

// side is one world's organisations and the keys that build it.
type side struct {
	gpKey, lwKey, vcsKey string
	practice, team       string
	service, org         string
}

var sides = map[string]side{
	"own":   {gpKey: "demo-gp-a81001", lwKey: "demo-lw-u12345", vcsKey: "demo-vcs-001", practice: "A81001", team: "U12345", service: "VCS001-walk", org: "VCS001"},
	"other": {gpKey: "demo-gp-a81002", lwKey: otherTeamKey, vcsKey: "demo-vcs-002", practice: "A81002", team: otherTeam, service: "VCS002-debt", org: "VCS002"},
}

type worlds struct {
	nhs  []string // every test person's NHS number
	t    *testing.T
	h    *hubtest.Hub
	seq  atomic.Int64
	base map[string]map[string]string // shared worlds: own, other
	oruk map[string]string
}

func newWorlds(t *testing.T, h *hubtest.Hub) *worlds {
	t.Helper()
	ctx := context.Background()
	if err := h.Orgs().Put(ctx, orgs.Organisation{ID: otherTeam, Name: "Test link-worker team", Kind: events.KindLinkwork,
		Contact: "team@u99999.example.nhs.uk"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Keys().Create(ctx, otherTeamKey, api.Principal{OrgID: otherTeam, Kind: events.KindLinkwork}); err != nil {
		t.Fatal(err)
	}
	w := &worlds{t: t, h: h, base: map[string]map[string]string{}}
	w.base["own"] = w.build(sides["own"], "open")
	w.base["other"] = w.build(sides["other"], "open")
	dir := w.build(side{}, "dir")
	for _, k := range []string{"own", "other"} {
		maps := w.base[k]
		maps["dir_org"], maps["dir_service"], maps["dir_gap"] = dir["dir_org"], dir["dir_service"], dir["dir_gap"]
	}
	w.oruk = map[string]string{
		"oruk_service":  firstID(t, h, "/openreferral/services"),
		"oruk_taxonomy": firstID(t, h, "/openreferral/taxonomies"),
		"oruk_term":     firstID(t, h, "/openreferral/taxonomy_terms"),
	}
	// Lists are views: wait until each shows the shared worlds.
	own := w.base["own"]
	h.Eventually(func() bool {
		_, b := h.Do("GET", "/v1/referrals", callerKeys["gp"], nil)
		return bytes.Contains(b, []byte(own["journey"]))
	}, "the practice's list shows its referral")
	h.Eventually(func() bool {
		_, b := h.Do("GET", "/v1/inbox", callerKeys["vcs"], nil)
		return bytes.Contains(b, []byte(own["onward"]))
	}, "the inbox shows the onward referral")
	return w
}

func firstID(t *testing.T, h *hubtest.Hub, path string) string {
	t.Helper()
	st, b := h.Do("GET", path, callerKeys["admin"], nil)
	m := regexp.MustCompile(`"id":"([^"]+)"`).FindSubmatch(b)
	if st != 200 || m == nil {
		t.Fatalf("GET %s: %d %.200s", path, st, b)
	}
	return string(m[1])
}

func (w *worlds) shared(target string) map[string]string {
	if target == "other" {
		return w.base["other"]
	}
	return w.base["own"]
}

func (w *worlds) fresh(target, state string) map[string]string {
	t := "own"
	if target == "other" {
		t = "other"
	}
	if state == "dir" {
		v := w.build(side{}, "dir")
		out := map[string]string{}
		for k, x := range w.shared(t) {
			out[k] = x
		}
		out["dir_org"], out["dir_service"], out["dir_gap"] = v["dir_org"], v["dir_service"], v["dir_gap"]
		return out
	}
	return w.build(sides[t], state)
}

// build makes a world through the API: a journey referred by the side's
// practice to its team, assigned, reached, assessed with a goal, a
// follow-up due and an onward referral to its VCS service; then state
// (closed, accepted, attending) on top. "dir" makes a directory
// organisation, service and gap instead.
func (w *worlds) build(s side, state string) map[string]string {
	t, h := w.t, w.h
	t.Helper()
	n := w.seq.Add(1)
	if state == "dir" {
		admin := callerKeys["admin"]
		org := fmt.Sprintf("TDIR%d", n)
		h.JSON("POST", "/v1/directory/organisations", admin, map[string]any{"id": org, "name": "Directory test " + org}, 201, nil)
		var svc struct {
			ID string `json:"id"`
		}
		h.JSON("POST", "/v1/directory/services", admin, map[string]any{"organisation_id": org, "name": "Walks",
			"category": "physical_activity", "accepts_referrals": true}, 201, &svc)
		var gap struct {
			GapID string `json:"gap_id"`
		}
		h.JSON("POST", "/v1/directory/gaps", admin, map[string]any{"need": "physical_activity", "area": "Sale " + org}, 201, &gap)
		return map[string]string{"dir_org": org, "dir_service": svc.ID, "dir_gap": gap.GapID}
	}
	v := map[string]string{"practice": s.practice, "team": s.team, "service": s.service, "org": s.org}
	var ref struct {
		JourneyID string `json:"journey_id"`
	}
	nhs := newNHSNumber()
	w.nhs = append(w.nhs, nhs)
	h.JSON("POST", "/v1/referrals", s.gpKey, referral(fmt.Sprintf("AUTHZ-%s-%d", s.practice, n), nhs, s.team), 201, &ref)
	j := ref.JourneyID
	v["journey"] = j
	jp := "/v1/journeys/" + j
	h.JSON("POST", jp+"/assign", s.lwKey, map[string]any{"worker_id": "lw-1", "worker_name": "Sam Link"}, 200, nil)
	h.JSON("POST", jp+"/contacts", s.lwKey, map[string]any{"outcome": "reached", "method": "phone"}, 200, nil)
	var view struct {
		Goals []struct {
			GoalID string `json:"goal_id"`
		} `json:"goals"`
		FollowUpID       string `json:"follow_up_id"`
		OnwardReferralID string `json:"onward_referral_id"`
	}
	h.JSON("POST", jp+"/assessment", s.lwKey, map[string]any{"needs": []string{"company"}, "goals": []any{map[string]string{"text": "Get out more"}}}, 200, &view)
	if len(view.Goals) == 0 {
		t.Fatalf("assessment answered no goals")
	}
	v["goal"] = view.Goals[0].GoalID
	h.JSON("POST", jp+"/follow-ups", s.lwKey, map[string]any{"due": day(1)}, 200, &view)
	v["followup"] = view.FollowUpID
	h.JSON("POST", jp+"/onward-referrals", s.lwKey, map[string]any{"service_id": s.service, "share": []string{"name", "needs"}}, 200, &view)
	v["onward"] = view.OnwardReferralID
	op := "/v1/onward-referrals/" + view.OnwardReferralID
	h.Eventually(func() bool { st, _ := h.Do("GET", op, s.vcsKey, nil); return st == 200 }, "the VCS organisation sees its onward referral")
	switch state {
	case "open":
	case "closed":
		h.JSON("POST", jp+"/close", s.lwKey, map[string]any{"reason": "other"}, 200, nil)
	case "accepted", "attending":
		h.JSON("POST", op+"/accept", s.vcsKey, nil, 200, nil)
		if state == "attending" {
			h.JSON("POST", op+"/attendance", s.vcsKey, map[string]any{"date": day(0), "attended": true}, 200, nil)
		}
	default:
		t.Fatalf("unknown state %q", state)
	}
	return v
}

// never is what a caller of kind c may never be shown of a test person
// (minimum necessary, API.md): a VCS organisation sees only what was shared
// (name and needs here), a commissioner nothing that identifies anyone.
func (w *worlds) never(c string) []string {
	identifying := append([]string{"1950-01-02", "07700 900987", "M41 9RP"}, w.nhs...)
	switch c {
	case "vcs":
		return identifying
	case "commissioner":
		return append(identifying, "Authz")
	}
	return nil
}

var placeholder = regexp.MustCompile(`\$\{([a-z_.]+)\}`)

// expand fills ${x} from vals, the other world, the ORUK ids and values new
// for every request.
func (w *worlds) expand(t *testing.T, s string, vals map[string]string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if k, ok := strings.CutPrefix(name, "other."); ok {
			return w.base["other"][k]
		}
		if v, ok := vals[name]; ok {
			return v
		}
		if v, ok := w.oruk[name]; ok {
			return v
		}
		switch name {
		case "source_id":
			return fmt.Sprintf("AUTHZ-SRC-%d", w.seq.Add(1))
		case "nhs":
			return newNHSNumber()
		case "uniq":
			return fmt.Sprint(w.seq.Add(1))
		case "today":
			return day(0)
		case "tomorrow":
			return day(1)
		}
		t.Fatalf("no value for %s", m)
		return ""
	})
}

func day(n int) string { return time.Now().UTC().AddDate(0, 0, n).Format(time.DateOnly) }

// newNHSNumber is a random NHS number that passes the modulus-11 check.
func newNHSNumber() string {
	for {
		// A first digit of 0 is never issued.
		if s, ok := events.CompleteNHSNumber(fmt.Sprint(100_000_000 + rand.IntN(900_000_000))); ok {
			return s
		}
	}
}

func referral(sourceID, nhs, team string) map[string]any {
	return map[string]any{
		"source_id": sourceID,
		"patient": map[string]any{"nhs_number": nhs, "given_name": "Ada", "family_name": "Authz", "birth_date": "1950-01-02",
			"sex": "female", "postcode": "M41 9RP", "phone": "07700 900987"},
		"reasons": []string{"422650009"}, "consent": map[string]any{"share_with_vcs": true}, "link_work_team": team,
	}
}

// bodyTemplate returns a row's body: inline JSON, or @name of a template.
func bodyTemplate(t *testing.T, body string) string {
	name, ok := strings.CutPrefix(body, "@")
	if !ok {
		return body
	}
	switch name {
	case "referral":
		b, _ := json.Marshal(referral("${source_id}", "${nhs}", "U12345"))
		return string(b)
	case "fhir-servicerequest":
		return fhirServiceRequest
	case "bars-message":
		return barsMessage
	}
	t.Fatalf("no body template %q", name)
	return ""
}

const fhirServiceRequest = `{
  "resourceType": "ServiceRequest",
  "identifier": [{"system": "https://fhir.emis.example/Id/referral", "value": "${source_id}"}],
  "status": "active", "intent": "order",
  "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "${nhs}"}},
  "requester": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}},
  "performer": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "U12345"}}],
  "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "422650009"}]}],
  "extension": [{"url": "https://linkway.example.org/fhir/StructureDefinition/consent-share-with-vcs", "valueBoolean": true}]
}`

const barsMessage = `{
  "resourceType": "Bundle", "type": "message",
  "entry": [
    {"fullUrl": "urn:uuid:0c6f3a52-8b8e-4f61-a1f7-2d5b9e4c7a10", "resource": {"resourceType": "MessageHeader",
      "eventCoding": {"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "servicerequest-request"},
      "sender": {"reference": "urn:uuid:6b1f8d24-3c7e-4a95-b2d0-8e5c1a7f4b62"},
      "source": {"endpoint": "https://gp.example.nhs.uk/fhir"},
      "focus": [{"reference": "urn:uuid:3f8b2a6c-1d4e-4b7a-9c05-6e2d8f1a4b97"}]}},
    {"fullUrl": "urn:uuid:3f8b2a6c-1d4e-4b7a-9c05-6e2d8f1a4b97", "resource": {"resourceType": "ServiceRequest",
      "identifier": [{"system": "https://gp.example.nhs.uk/Id/referral", "value": "${source_id}"}],
      "status": "active", "intent": "order",
      "subject": {"reference": "urn:uuid:c2e5a8f1-7b3d-4e96-a0c4-5d8b1f2e6a73"},
      "performer": [{"reference": "urn:uuid:9a3e7c11-5b2d-4c8f-8e61-0f4a2b6d9c33"}],
      "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "422650009"}]}]}},
    {"fullUrl": "urn:uuid:c2e5a8f1-7b3d-4e96-a0c4-5d8b1f2e6a73", "resource": {"resourceType": "Patient",
      "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "${nhs}"}],
      "name": [{"family": "Okafor", "given": ["Grace"]}], "birthDate": "1951-01-30"}},
    {"fullUrl": "urn:uuid:6b1f8d24-3c7e-4a95-b2d0-8e5c1a7f4b62", "resource": {"resourceType": "Organization",
      "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}]}},
    {"fullUrl": "urn:uuid:9a3e7c11-5b2d-4c8f-8e61-0f4a2b6d9c33", "resource": {"resourceType": "Organization",
      "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "U12345"}]}}
  ]
}`
