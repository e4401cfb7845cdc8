package referrals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/referrals"
)

type errorBody struct {
	Error struct {
		Code, Message, Field string
	}
}

type created struct {
	referrals.View
	Created  bool     `json:"created"`
	Warnings []string `json:"warnings"`
}

func TestPostReferral(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	body := referral(t)
	var first created
	e.json("POST", "/v1/referrals", keyGP, body, http.StatusCreated, &first)
	want := events.ReferralJourneyID("A81001", body["source_id"].(string))
	if first.JourneyID != want || first.Status != "referred" || !first.Created || first.SourceID != body["source_id"] {
		t.Fatalf("answer %+v: want journey %s, referred, created", first, want)
	}
	if len(first.Reasons) != 1 || first.Reasons[0].ID != "422650009" || first.Reasons[0].Term == "" {
		t.Errorf("reasons %+v: want the coded reason with its term", first.Reasons)
	}

	// Read-your-writes: the very next GET finds it, with no polling.
	var v referrals.View
	e.json("GET", "/v1/referrals/"+first.JourneyID, keyGP, nil, http.StatusOK, &v)
	if v.JourneyID != first.JourneyID || v.Status != "referred" || len(v.Timeline) != 1 || v.Timeline[0].Type != "referral_received" {
		t.Errorf("view %+v", v)
	}

	// A resend is 200 with the same journey, and nothing more is recorded.
	var again created
	e.json("POST", "/v1/referrals", keyGP, body, http.StatusOK, &again)
	if again.JourneyID != first.JourneyID || again.Created {
		t.Errorf("resend answered %+v, want the same journey, not created", again)
	}
	_, hist, err := e.h.Journal().Load(context.Background(), first.JourneyID)
	if err != nil || len(hist) != 1 {
		t.Fatalf("journey has %d events (%v), want 1", len(hist), err)
	}

	// The same source id from another practice is that practice's own referral.
	var other created
	e.json("POST", "/v1/referrals", keyGP2, body, http.StatusCreated, &other)
	if other.JourneyID == first.JourneyID {
		t.Error("two practices' referrals share a journey")
	}

	if c, r := e.received("json", "created"), e.received("json", "resent"); c != 2 || r != 1 {
		t.Errorf("linkway_referrals_received_total: created %v, resent %v; want 2 and 1", c, r)
	}

	// Another practice's journey is not found, and never described.
	st, _, out := e.do("GET", "/v1/referrals/"+first.JourneyID, keyGP2, nil)
	if st != http.StatusNotFound || strings.Contains(string(out), first.SourceID) {
		t.Errorf("other practice: %d %s", st, out)
	}
	for _, tc := range []struct {
		method, path, key string
		status            int
	}{
		{"GET", "/v1/referrals/not-a-uuid", keyGP, http.StatusNotFound},
		{"GET", "/v1/referrals/" + events.NewID(), keyGP, http.StatusNotFound},
		{"GET", "/v1/referrals/" + first.JourneyID, "", http.StatusUnauthorized},
		{"GET", "/v1/referrals/" + first.JourneyID, "no-such-key", http.StatusUnauthorized},
		{"GET", "/v1/referrals/" + first.JourneyID, keyTeam, http.StatusForbidden},
		{"GET", "/v1/referrals", keyVCS, http.StatusForbidden},
		{"POST", "/v1/referrals", keyVCS, http.StatusForbidden},
		{"POST", "/v1/referrals", keyAdmin, http.StatusForbidden},
	} {
		var b any
		if tc.method == "POST" {
			b = referral(t)
		}
		if st, _, out := e.do(tc.method, tc.path, tc.key, b); st != tc.status {
			t.Errorf("%s %s with %q: %d %s, want %d", tc.method, tc.path, tc.key, st, out, tc.status)
		}
	}
}

// TestRefusals: every refusal of API.md (and the other edge rules) is the
// right status naming the field, and nothing is appended.
func TestRefusals(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	patient := func(b map[string]any) map[string]any { return b["patient"].(map[string]any) }
	tests := []struct {
		name   string
		mutate func(b map[string]any)
		raw    []byte // sent instead of the body when set
		status int
		field  string
	}{
		{"NHS number failing mod-11", func(b map[string]any) { patient(b)["nhs_number"] = "9434765918" }, nil, 400, "patient.nhs_number"},
		{"9-digit NHS number", func(b map[string]any) { patient(b)["nhs_number"] = "943476591" }, nil, 400, "patient.nhs_number"},
		{"NHS number as a number", func(b map[string]any) { patient(b)["nhs_number"] = 9434765919 }, nil, 400, "patient.nhs_number"},
		{"missing given name", func(b map[string]any) { delete(patient(b), "given_name") }, nil, 400, "patient.given_name"},
		{"missing family name", func(b map[string]any) { delete(patient(b), "family_name") }, nil, 400, "patient.family_name"},
		{"missing birth date", func(b map[string]any) { delete(patient(b), "birth_date") }, nil, 400, "patient.birth_date"},
		{"birth date in the future", func(b map[string]any) { patient(b)["birth_date"] = "2999-01-01" }, nil, 400, "patient.birth_date"},
		{"unknown sex", func(b map[string]any) { patient(b)["sex"] = "f" }, nil, 400, "patient.sex"},
		{"postcode not UK shaped", func(b map[string]any) { patient(b)["postcode"] = "90210" }, nil, 400, "patient.postcode"},
		{"no patient", func(b map[string]any) { delete(b, "patient") }, nil, 400, "patient"},
		{"no reason", func(b map[string]any) { b["reasons"] = []string{} }, nil, 400, "reasons"},
		{"reasons absent", func(b map[string]any) { delete(b, "reasons") }, nil, 400, "reasons"},
		{"reason outside the value set", func(b map[string]any) { b["reasons"] = []string{"12345"} }, nil, 400, "reasons"},
		{"unknown link-worker team", func(b map[string]any) { b["link_work_team"] = "U99999" }, nil, 400, "link_work_team"},
		{"a practice is not a link-worker team", func(b map[string]any) { b["link_work_team"] = "A81002" }, nil, 400, "link_work_team"},
		{"no consent", func(b map[string]any) { delete(b, "consent") }, nil, 400, "consent"},
		{"consent without its answer", func(b map[string]any) { b["consent"] = map[string]any{} }, nil, 400, "consent.share_with_vcs"},
		{"unknown urgency", func(b map[string]any) { b["urgency"] = "asap" }, nil, 400, "urgency"},
		{"no source id", func(b map[string]any) { delete(b, "source_id") }, nil, 400, "source_id"},
		{"unknown field", func(b map[string]any) { b["colour"] = "blue" }, nil, 400, "colour"},
		{"unknown patient field", func(b map[string]any) { patient(b)["nhs_no"] = "1" }, nil, 400, "nhs_no"},
		{"body over 64 KiB", func(b map[string]any) { b["notes"] = strings.Repeat("x", 70000) }, nil, 413, ""},
		{"not JSON", nil, []byte("source_id=1"), 400, ""},
		{"empty body", nil, []byte(""), 400, ""},
		{"two JSON values", nil, []byte(`{} {}`), 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := referral(t)
			var send any = tt.raw
			if tt.raw == nil {
				tt.mutate(b)
				send = b
			}
			st, _, out := e.do("POST", "/v1/referrals", keyGP, send)
			var eb errorBody
			_ = json.Unmarshal(out, &eb)
			if st != tt.status || eb.Error.Field != tt.field || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%d %s; want %d naming %q", st, out, tt.status, tt.field)
			}
			if src, ok := b["source_id"].(string); ok {
				st, _, err := e.h.Journal().Load(context.Background(), events.ReferralJourneyID("A81001", src))
				if err != nil || st.Exists() {
					t.Errorf("a refused referral was recorded (%v)", err)
				}
			}
			// The answer never echoes personal data back.
			if strings.Contains(string(out), "Jane") || strings.Contains(string(out), "1956-03-14") {
				t.Errorf("the error echoes personal data: %s", out)
			}
		})
	}
}

// TestConcurrentDuplicates: identical posts racing each other create one
// journey: exactly one is 201, the others 200 with the same journey id.
func TestConcurrentDuplicates(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	body, err := json.Marshal(referral(t))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	type answer struct {
		status int
		id     string
		err    error
	}
	answers := make([]answer, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			req, _ := http.NewRequest("POST", e.h.Base+"/v1/referrals", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+keyGP)
			resp, err := client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			var v created
			answers[i].err = json.NewDecoder(resp.Body).Decode(&v)
			answers[i].status, answers[i].id = resp.StatusCode, v.JourneyID
		}()
	}
	start.Done()
	done.Wait()
	createdN := 0
	for _, a := range answers {
		if a.err != nil {
			t.Fatal(a.err)
		}
		switch a.status {
		case http.StatusCreated:
			createdN++
		case http.StatusOK:
		default:
			t.Errorf("status %d", a.status)
		}
		if a.id != answers[0].id || a.id == "" {
			t.Errorf("journey %q, want all %q", a.id, answers[0].id)
		}
	}
	if createdN != 1 {
		t.Errorf("%d posts created the referral, want exactly 1", createdN)
	}
	_, hist, err := e.h.Journal().Load(context.Background(), answers[0].id)
	if err != nil || len(hist) != 1 {
		t.Errorf("journey has %d events (%v), want 1", len(hist), err)
	}
}

// TestResendAfterDuplicateWindow: idempotency does not rest on JetStream's
// duplicate window: once the window has passed (here 250 ms; in production
// two minutes, standing in for a week), a resend is still 200 with the
// original journey and nothing is appended.
func TestResendAfterDuplicateWindow(t *testing.T) {
	cfg := journal.DefaultConfig()
	cfg.DuplicateWindow = 250 * time.Millisecond
	e := newEnv(t, cfg)
	body := referral(t)
	var first created
	e.json("POST", "/v1/referrals", keyGP, body, http.StatusCreated, &first)
	sent := time.Now()
	hubtest.Eventually(t, 5*time.Second, func() bool { return time.Since(sent) > 2*cfg.DuplicateWindow },
		"the duplicate window passes")
	var again created
	e.json("POST", "/v1/referrals", keyGP, body, http.StatusOK, &again)
	if again.JourneyID != first.JourneyID {
		t.Errorf("resend gave journey %s, want %s", again.JourneyID, first.JourneyID)
	}
	_, hist, err := e.h.Journal().Load(context.Background(), first.JourneyID)
	if err != nil || len(hist) != 1 {
		t.Errorf("journey has %d events (%v), want 1", len(hist), err)
	}
}

// TestPracticeView drives a journey through the other parties' commands
// and checks what the practice sees, and what it must not.
func TestPracticeView(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	var c created
	e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &c)
	id := c.JourneyID
	team, vcs := eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK, eventsv1.OrganisationKind_ORGANISATION_KIND_VCS
	e.execute(id, "U12345", team, events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"})
	e.execute(id, "U12345", team, events.RecordContact{Outcome: "reached", Method: "phone"})
	e.execute(id, "U12345", team, events.RecordMeasure{MeasureID: "m1", Instrument: "SWEMWBS", Timepoint: "baseline", Answers: []int32{3, 3, 3, 3, 3, 3, 3}})
	walk := events.ServiceFacts{ID: "VCS001-walk", Name: "Sale Walking Group", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}
	debt := events.ServiceFacts{ID: "VCS002-debt", Name: "Trafford Money Advice", OrganisationID: "VCS002", AcceptsReferrals: true, Capacity: "open"}
	e.execute(id, "U12345", team, events.ReferOnward{OnwardReferralID: "o1", Service: walk, Share: []string{"name", "phone"}})
	e.execute(id, "U12345", team, events.ReferOnward{OnwardReferralID: "o2", Service: debt, Share: []string{"name"}})
	e.execute(id, "VCS001", vcs, events.AcceptOnward{OnwardReferralID: "o1"})
	e.execute(id, "VCS002", vcs, events.DeclineOnward{OnwardReferralID: "o2", Reason: "no_capacity", Detail: "adviser off sick until March"})
	// No wait here: a read waits for the view to reach the journey's last event.
	var v referrals.View
	st, _, raw := e.do("GET", "/v1/referrals/"+id, keyGP, nil)
	if st != http.StatusOK || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("%d %s", st, raw)
	}
	if v.Status != "connected" || v.LinkWorker == nil || v.LinkWorker.Name != "Sam Link" {
		t.Errorf("status %s, link worker %+v", v.Status, v.LinkWorker)
	}
	if len(v.Connections) != 2 || v.Connections[0].ServiceName != "Sale Walking Group" || v.Connections[0].Status != "accepted" ||
		v.Connections[1].Status != "declined" {
		t.Errorf("connections %+v", v.Connections)
	}
	if len(v.Measures) != 1 || v.Measures[0].Score != 19.25 || v.Measures[0].RawScore != 21 {
		t.Errorf("measures %+v", v.Measures)
	}
	if len(v.Codes) != 0 {
		t.Errorf("codes %+v, want none: the practice coded its own referral when it made it", v.Codes)
	}
	if len(v.Timeline) != 8 {
		t.Errorf("timeline has %d steps, want 8", len(v.Timeline))
	}
	for _, leak := range []string{"off sick", "9434765919", "Jane", "1956-03-14", "M33 7XX", "bereaved"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the practice view holds %q: %s", leak, raw)
		}
	}

	e.execute(id, "U12345", team, events.DeclineReferral{Detail: "prefers not"})
	e.json("GET", "/v1/referrals/"+id, keyGP, nil, http.StatusOK, &v)
	if v.Status != "declined" || v.ClosureReason != "declined" || len(v.Codes) != 1 || v.Codes[0].Code != events.CodeSocialPrescribingDeclined {
		t.Errorf("after decline: status %s, closure %s, codes %+v", v.Status, v.ClosureReason, v.Codes)
	}
}

type page struct {
	Referrals     []referrals.View `json:"referrals"`
	NextPageToken string           `json:"next_page_token"`
}

func TestList(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	var mine []string
	for range 5 {
		var c created
		e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &c)
		mine = append(mine, c.JourneyID)
	}
	var theirs created
	e.json("POST", "/v1/referrals", keyGP2, referral(t), http.StatusCreated, &theirs)

	list := func(key, query string) page {
		t.Helper()
		var p page
		e.json("GET", "/v1/referrals"+query, key, nil, http.StatusOK, &p)
		return p
	}
	// Lists come from the view, which a POST does not wait for.
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(list(keyGP, "").Referrals) == 5 }, "the list holds the 5 referrals")
	hubtest.Eventually(t, 10*time.Second, func() bool { return len(list(keyGP2, "").Referrals) > 0 }, "the other practice's list holds its referral")

	// Paging visits every referral once, oldest first.
	var seen []string
	var firstToken string
	token := ""
	for pages := 0; ; pages++ {
		q := "?page_size=2"
		if token != "" {
			q += "&page_token=" + url.QueryEscape(token)
		}
		p := list(keyGP, q)
		if pages == 0 {
			firstToken = p.NextPageToken
		}
		if len(p.Referrals) > 2 || pages > 5 {
			t.Fatalf("page of %d, or too many pages", len(p.Referrals))
		}
		for _, v := range p.Referrals {
			seen = append(seen, v.JourneyID)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	if !reflect.DeepEqual(seen, mine) {
		t.Errorf("paged %v, want %v", seen, mine)
	}
	if p := list(keyGP2, ""); len(p.Referrals) != 1 || p.Referrals[0].JourneyID != theirs.JourneyID {
		t.Errorf("the other practice's list: %+v", p.Referrals)
	}

	// Filters: status, and updated since a moment.
	before := time.Now().UTC()
	res := e.execute(mine[2], "U12345", eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK, events.Assign{WorkerID: "lw-1", WorkerName: "Ana"})
	e.wait(res.LastSeq)
	if p := list(keyGP, "?status=assigned"); len(p.Referrals) != 1 || p.Referrals[0].JourneyID != mine[2] {
		t.Errorf("status=assigned gave %+v, want the assigned referral alone", p.Referrals)
	}
	if p := list(keyGP, "?status=referred&page_size=2"); len(p.Referrals) != 2 || p.NextPageToken == "" {
		t.Errorf("status=referred, 2 a page: %d referrals, token %q", len(p.Referrals), p.NextPageToken)
	}
	if p := list(keyGP, "?status=assigned&updated_since="+url.QueryEscape(before.Format(time.RFC3339Nano))); len(p.Referrals) != 1 {
		t.Errorf("status and updated_since gave %d referrals, want 1", len(p.Referrals))
	}
	if p := list(keyGP, "?updated_since="+url.QueryEscape(before.Format(time.RFC3339Nano))); len(p.Referrals) != 1 || p.Referrals[0].JourneyID != mine[2] {
		t.Errorf("updated_since gave %d referrals", len(p.Referrals))
	}
	if p := list(keyGP, "?status=closed"); len(p.Referrals) != 0 {
		t.Errorf("status=closed gave %d", len(p.Referrals))
	}

	for q, field := range map[string]string{
		"?status=open":             "status",
		"?updated_since=yesterday": "updated_since",
		"?page_token=abc":          "page_token",
		"?status=referred&page_token=" + url.QueryEscape(firstToken): "page_token", // another list's token
		"?page_size=0":    "page_size",
		"?page_size=1000": "page_size",
		"?colour=blue":    "colour",
	} {
		st, _, out := e.do("GET", "/v1/referrals"+q, keyGP, nil)
		var eb errorBody
		_ = json.Unmarshal(out, &eb)
		if st != http.StatusBadRequest || eb.Error.Field != field {
			t.Errorf("%s: %d %s, want 400 naming %s", q, st, out, field)
		}
	}
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	st, h, doc := e.do("GET", "/openapi.yaml", "", nil)
	if st != http.StatusOK || !strings.Contains(h.Get("Content-Type"), "yaml") || !strings.HasPrefix(string(doc), "openapi: 3.") {
		t.Fatalf("%d %s %.40s", st, h.Get("Content-Type"), doc)
	}
	// Every field of the request and the view is documented: the document
	// cannot silently fall behind the code.
	for _, typ := range []reflect.Type{reflect.TypeFor[referrals.ReferralRequest](), reflect.TypeFor[referrals.PatientRequest](),
		reflect.TypeFor[referrals.View](), reflect.TypeFor[referrals.Connection](), reflect.TypeFor[referrals.Measure](),
		reflect.TypeFor[referrals.ReferralResponse](), reflect.TypeFor[referrals.SelfReferralRequest](),
		reflect.TypeFor[referrals.SelfReferralResponse]()} {
		for f := range typ.Fields() {
			if f.Anonymous {
				continue // its fields are checked with its own type
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(string(doc), " "+name+":") {
				t.Errorf("openapi.yaml does not document %s.%s", typ.Name(), name)
			}
		}
	}
	for _, path := range []string{"/v1/referrals:", "/v1/referrals/{journey_id}:", "/v1/self-referrals:"} {
		if !strings.Contains(string(doc), path) {
			t.Errorf("openapi.yaml lacks %s", path)
		}
	}
}

// TestViewBehind: when the view has not caught up (here it never runs),
// a POST and a GET still answer with the referral, folded from the log as
// the view would have it, and another practice still gets 404.
func TestViewBehind(t *testing.T) {
	cfg := referrals.DefaultSettings()
	cfg.ReadYourWrites = 50 * time.Millisecond
	e := newEnvWith(t, journal.DefaultConfig(), cfg, false)
	var c created
	e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &c)
	if c.Status != "referred" || len(c.Timeline) != 1 || len(c.Reasons) != 1 {
		t.Errorf("POST answered %+v", c)
	}
	e.execute(c.JourneyID, "U12345", eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK, events.Assign{WorkerID: "w", WorkerName: "Ana"})
	var v referrals.View
	e.json("GET", "/v1/referrals/"+c.JourneyID, keyGP, nil, http.StatusOK, &v)
	if v.Status != "assigned" || v.LinkWorker == nil || v.LinkWorker.Name != "Ana" || len(v.Timeline) != 2 {
		t.Errorf("GET answered %+v", v)
	}
	if st, _, _ := e.do("GET", "/v1/referrals/"+c.JourneyID, keyGP2, nil); st != http.StatusNotFound {
		t.Errorf("another practice: %d", st)
	}
	if cp, err := e.store.View(referrals.ProjectionName).Checkpoint(); err != nil || cp != 0 {
		t.Fatalf("the view ran (checkpoint %d, %v): this test no longer tests a view behind the log", cp, err)
	}
}
