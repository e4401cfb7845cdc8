package referrals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/referrals"
)

// keyRef is the demo referrer: HSG01 Trafford Housing Trust, sector
// housing, refers to U12345 (API.md "Who refers").
const keyRef = "demo-ref-hsg01"

// TestReferrer: an agency of kind referrer refers exactly as a practice
// does (JSON and FHIR), its journeys carry its sector as source, and it
// reads back its own referrals and nothing else.
func TestReferrer(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	var mine created
	e.json("POST", "/v1/referrals", keyRef, referral(t), http.StatusCreated, &mine)
	if mine.Source != "housing" || mine.JourneyID != events.ReferralJourneyID("HSG01", mine.SourceID) || mine.Status != "referred" {
		t.Fatalf("the referrer's answer %+v: want source housing, its own journey id", mine)
	}
	st, _, err := e.h.Journal().Load(context.Background(), mine.JourneyID)
	if err != nil || st.Referral.GetSource() != "housing" || st.Referral.GetReferrerOrganisationId() != "HSG01" {
		t.Fatalf("recorded %v (%v)", st.Referral, err)
	}
	var v referrals.View
	e.json("GET", "/v1/referrals/"+mine.JourneyID, keyRef, nil, http.StatusOK, &v)
	if v.JourneyID != mine.JourneyID || v.Source != "housing" {
		t.Errorf("read back %+v", v)
	}
	var gp created
	e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &gp)
	for _, c := range []struct{ key, id string }{{keyRef, gp.JourneyID}, {keyGP, mine.JourneyID}} {
		if st, _, _ := e.do("GET", "/v1/referrals/"+c.id, c.key, nil); st != http.StatusNotFound {
			t.Errorf("%s reads another's referral: %d", c.key, st)
		}
	}
	var list page
	e.json("GET", "/v1/referrals", keyRef, nil, http.StatusOK, &list)
	if len(list.Referrals) != 1 || list.Referrals[0].JourneyID != mine.JourneyID {
		t.Errorf("the referrer's list %+v, want its one referral", list.Referrals)
	}
	if st, _, _ := e.do("GET", "/v1/caseload", keyRef, nil); st != http.StatusForbidden && st != http.StatusNotFound {
		t.Errorf("a referrer reads the caseload: %d", st)
	}

	// It refers to the teams it is registered with, and no other.
	e.h.AddOrg("lw_other-team-key-for-referrals-test-000", orgs.Organisation{ID: "U99999", Name: "Other team", Kind: events.KindLinkwork})
	b := referral(t)
	b["link_work_team"] = "U99999"
	st2, _, out := e.do("POST", "/v1/referrals", keyRef, b)
	var eb errorBody
	_ = json.Unmarshal(out, &eb)
	if st2 != http.StatusBadRequest || eb.Error.Field != "link_work_team" {
		t.Errorf("a referral to a team the referrer does not refer to: %d %s", st2, out)
	}
	if st, _, _ := e.do("POST", "/v1/referrals", keyGP, b); st != http.StatusCreated {
		t.Errorf("a practice registered with no teams refers to any team: %d", st)
	}

	// FHIR, as itself.
	sr := strings.ReplaceAll(string(readFile(t, "testdata/servicerequest-identified.json")), "A81001", "HSG01")
	code, _, doc := e.fhir("POST", "/fhir/R4/ServiceRequest", keyRef, []byte(sr))
	if code != http.StatusCreated || dig(doc, "requester", "identifier", "value") != "HSG01" {
		t.Fatalf("FHIR by a referrer: %d %v", code, doc)
	}
	code, _, task := e.fhir("GET", "/fhir/R4/Task/"+str(doc["id"]), keyRef, nil)
	if code != http.StatusOK || task["status"] != "requested" {
		t.Errorf("its Task: %d %v", code, task)
	}
	if code, _, _ := e.fhir("GET", "/fhir/R4/Task/"+str(doc["id"]), keyGP, nil); code != http.StatusNotFound {
		t.Errorf("a practice reads the referrer's Task: %d", code)
	}

	// An agency's referral is coded back when the person is first reached
	// (the practice did not code it); a practice's is not.
	team := eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK
	for _, j := range []string{mine.JourneyID, gp.JourneyID} {
		e.execute(j, "U12345", team, events.Assign{WorkerID: "w1", WorkerName: "Sam Link"})
		e.execute(j, "U12345", team, events.RecordContact{Outcome: "reached", Method: "phone"})
	}
	e.json("GET", "/v1/referrals/"+mine.JourneyID, keyRef, nil, http.StatusOK, &v)
	if len(v.Codes) != 1 || v.Codes[0].Code != events.CodeReferredToSocialPrescribing {
		t.Errorf("the agency's referral reached: codes %+v, want the referral code", v.Codes)
	}
	e.json("GET", "/v1/referrals/"+gp.JourneyID, keyGP, nil, http.StatusOK, &v)
	if len(v.Codes) != 0 {
		t.Errorf("the practice's referral reached: codes %+v, want none", v.Codes)
	}
}

// TestUrgent: an urgent referral is taken, flagged, and answered with a
// warning: in JSON a warnings entry; in FHIR an OperationOutcome beside
// the answer (contained and pointed to, or alone when the client prefers
// it, or in the response message).
func TestUrgent(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	b := referral(t)
	b["urgency"] = "urgent"
	var c created
	e.json("POST", "/v1/referrals", keyGP, b, http.StatusCreated, &c)
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "not a crisis") {
		t.Errorf("urgent referral's warnings %q", c.Warnings)
	}
	st, _, _ := e.h.Journal().Load(context.Background(), c.JourneyID)
	if !st.Urgent {
		t.Error("the journey is not flagged urgent for the team")
	}
	var routine created
	e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &routine)
	if routine.Warnings == nil || len(routine.Warnings) != 0 {
		t.Errorf("a routine referral's warnings %#v, want an empty list", routine.Warnings)
	}

	// FHIR: the test ServiceRequest is urgent.
	body := readFile(t, "testdata/servicerequest-contained-patient.json")
	code, _, sr := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, body)
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, sr)
	}
	var oo map[string]any
	for _, c := range sr["contained"].([]any) {
		if m := c.(map[string]any); m["resourceType"] == "OperationOutcome" {
			oo = m
		}
	}
	if oo == nil || dig(oo, "issue", "severity") != "warning" || !strings.Contains(dig(oo, "issue", "diagnostics"), "crisis") ||
		dig(sr, "extension", "valueReference", "reference") != "#"+str(oo["id"]) {
		t.Errorf("the urgent ServiceRequest's warning: %v", sr)
	}
	// Sent again with Prefer: return=OperationOutcome: the outcome alone.
	st2, _, out := e.do("POST", "/fhir/R4/ServiceRequest", keyGP, body, "Content-Type", fhirJSON, "Prefer", "return=OperationOutcome")
	if err := json.Unmarshal(out, &oo); err != nil || st2 != http.StatusOK || oo["resourceType"] != "OperationOutcome" ||
		!strings.Contains(string(out), `"warning"`) {
		t.Errorf("Prefer return=OperationOutcome: %d %s", st2, out)
	}
	// A message: the response's details point to the outcome in the bundle.
	msg := strings.ReplaceAll(string(readFile(t, "testdata/bars-social-prescribing-request.json")), `"priority": "routine",`, `"priority": "asap",`)
	code, _, bundle := e.fhir("POST", "/fhir/R4/$process-message", keyGP, []byte(msg))
	details := dig(bundle, "entry", "resource", "response", "details", "reference")
	var found bool
	for _, en := range bundle["entry"].([]any) {
		m := en.(map[string]any)
		if m["fullUrl"] == details && dig(m, "resource", "resourceType") == "OperationOutcome" {
			found = true
		}
	}
	if code != http.StatusOK || details == "" || !found {
		t.Errorf("urgent message: %d details %q, outcome in the bundle %v", code, details, found)
	}
}

// TestEthnicity: patient.ethnicity is an NHS Data Dictionary ethnic
// category, on JSON and on FHIR (UK Core's extension), optional.
func TestEthnicity(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	for code, want := range map[string]int{"A": 201, "99": 201, "Z": 201, "ZZ": 400, "I": 400, "a": 400} {
		b := referral(t)
		b["patient"].(map[string]any)["ethnicity"] = code
		st, _, out := e.do("POST", "/v1/referrals", keyGP, b)
		var eb errorBody
		_ = json.Unmarshal(out, &eb)
		if st != want || st == 400 && eb.Error.Field != "patient.ethnicity" {
			t.Errorf("ethnicity %q: %d %s, want %d", code, st, out, want)
		}
		if st == 201 {
			var c created
			_ = json.Unmarshal(out, &c)
			s, _, _ := e.h.Journal().Load(context.Background(), c.JourneyID)
			if s.Referral.GetPerson().GetEthnicity() != code {
				t.Errorf("ethnicity %q recorded as %q", code, s.Referral.GetPerson().GetEthnicity())
			}
		}
	}
	ext := func(code string) []byte {
		sr := string(readFile(t, "testdata/servicerequest-contained-patient.json"))
		return []byte(strings.Replace(sr, `"gender": "male",`, `"gender": "male", "extension": [{"url": "`+referrals.EthnicCategoryExtension+
			`", "valueCodeableConcept": {"coding": [{"system": "`+referrals.EthnicCategorySystem+`", "code": "`+code+`"}]}}],`, 1))
	}
	st, _, sr := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, ext("H"))
	if st != http.StatusCreated {
		t.Fatalf("FHIR with an ethnic category: %d %v", st, sr)
	}
	if s, _, _ := e.h.Journal().Load(context.Background(), str(sr["id"])); s.Referral.GetPerson().GetEthnicity() != "H" {
		t.Errorf("FHIR ethnicity recorded as %q", s.Referral.GetPerson().GetEthnicity())
	}
	st, _, oo := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, ext("Q"))
	if st != http.StatusBadRequest || !strings.Contains(dig(oo, "issue", "expression"), "Patient.extension") {
		t.Errorf("FHIR with ethnic category Q: %d %v", st, oo)
	}
}

// selfBody is a valid self-referral.
func selfBody(family string) map[string]any {
	return map[string]any{"link_work_team": "U12345",
		"person": map[string]any{"given_name": "Robin", "family_name": family, "birth_date": "1971-05-02",
			"postcode": "M33 7XX", "phone": "07700 900456"},
		"what_matters": "Getting out of the house again.", "contact_preference": "phone",
		"consent": map[string]any{"share_with_vcs": true}}
}

// TestSelfReferral: no key, 202 with a reference; the journey's source is
// self and the person's details are kept (sealed under a key of their own
// when no NHS number is given); refusals name their field; a resend with
// the same Idempotency-Key gives the same reference; past the per-address
// allowance, 429.
func TestSelfReferral(t *testing.T) {
	settings := referrals.DefaultSettings()
	settings.SelfReferrals = api.RateLimit{Rate: 0.001, Burst: 4}
	h := hubtest.Start(t, hubtest.Services("referrals"), func(c *hub.Config) { c.Referrals = settings })
	var ans struct{ Reference string }
	h.JSON("POST", "/v1/self-referrals", "", selfBody("Selfish"), http.StatusAccepted, &ans)
	if !strings.HasPrefix(ans.Reference, "SR-") || len(ans.Reference) != len("SR-XXXXX-XXXXX") {
		t.Fatalf("reference %q", ans.Reference)
	}
	st, _, err := h.Journal().Load(context.Background(), events.ReferralJourneyID(events.SourceSelf, ans.Reference))
	if err != nil || !st.Exists() {
		t.Fatalf("no journey for reference %s (%v)", ans.Reference, err)
	}
	rr := st.Referral
	if rr.GetSource() != "self" || rr.GetPerson().GetFamilyName() != "Selfish" || rr.GetPerson().GetPhone() != "07700 900456" ||
		rr.GetContactPreference() != "phone" || rr.GetWhatMatters().GetText() == "" || !st.Consent.ByPerson || rr.GetReferrerOrganisationId() != "" {
		t.Errorf("recorded %v (consent %+v)", rr, st.Consent)
	}
	// Sealed on the log: the stored bytes do not hold the name.
	raw, err := h.Journal().Stream().GetLastMsgForSubject(context.Background(), events.JourneyFilter(st.JourneyID))
	if err != nil || strings.Contains(string(raw.Data), "Selfish") {
		t.Errorf("the self-referral's personal data is not sealed on the log (%v)", err)
	}

	for _, tc := range []struct {
		mutate func(b map[string]any)
		field  string
	}{
		{func(b map[string]any) { b["contact_preference"] = "pigeon" }, "contact_preference"},
		{func(b map[string]any) { delete(b, "contact_preference") }, "contact_preference"},
		{func(b map[string]any) { b["person"].(map[string]any)["nhs_number"] = "9434765918" }, "person.nhs_number"},
		{func(b map[string]any) { b["link_work_team"] = "U99999" }, "link_work_team"},
		{func(b map[string]any) { delete(b["person"].(map[string]any), "phone") }, "person.phone"},
		{func(b map[string]any) { b["contact_preference"] = "email" }, "person.email"},
		{func(b map[string]any) { delete(b["person"].(map[string]any), "birth_date") }, "person.birth_date"},
		{func(b map[string]any) { delete(b, "consent") }, "consent"},
		{func(b map[string]any) { b["reasons"] = []string{"422650009"} }, "reasons"},
	} {
		b := selfBody("Refused")
		tc.mutate(b)
		code, out := h.Do("POST", "/v1/self-referrals", "", b)
		var eb errorBody
		_ = json.Unmarshal(out, &eb)
		if code != http.StatusBadRequest || eb.Error.Field != tc.field {
			t.Errorf("want 400 naming %s: %d %s", tc.field, code, out)
		}
	}

	// With an NHS number, and sent twice with one Idempotency-Key.
	b := selfBody("Twice")
	b["person"].(map[string]any)["nhs_number"] = "943 476 5919"
	var first, again struct{ Reference string }
	for _, into := range []*struct{ Reference string }{&first, &again} {
		code, _, out := h.Request("POST", "/v1/self-referrals", "", b, "Idempotency-Key", "form-abc-123")
		if code != http.StatusAccepted || json.Unmarshal(out, into) != nil {
			t.Fatalf("%d %s", code, out)
		}
	}
	if first.Reference != again.Reference {
		t.Errorf("a resend gave %s, then %s", first.Reference, again.Reference)
	}
	// The same key for someone else is a clash, not their referral.
	if code, _, out := h.Request("POST", "/v1/self-referrals", "", selfBody("Other"), "Idempotency-Key", "form-abc-123"); code != http.StatusConflict {
		t.Errorf("a key reused for another person: %d %s", code, out)
	}

	// Four admitted so far from this address (refusals do not count); the
	// allowance is 4.
	code, hdr, out := h.Request("POST", "/v1/self-referrals", "", selfBody("Burst"))
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("past the allowance: %d %s (Retry-After %q)", code, out, hdr.Get("Retry-After"))
	}
}

// TestErasureDropsThePerson: once the person is erased, the referrer's
// view holds none of their data (the entry is erased from the store's
// files) and FHIR answers say so; the referral itself stays.
func TestErasureDropsThePerson(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	body := readFile(t, "testdata/servicerequest-contained-patient.json")
	_, _, sr := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, body)
	id := str(sr["id"])
	if dig(sr, "subject", "display") != "Alun Marsh" {
		t.Fatalf("before erasure: %v", sr)
	}
	e.execute(id, "OPERATOR", eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN, events.ErasePersonalData{})
	_, _, got := e.fhir("GET", "/fhir/R4/ServiceRequest/"+id, keyGP, nil)
	raw, _ := json.Marshal(got)
	if dig(got, "subject", "display") != "personal data erased" || strings.Contains(string(raw), "9912003888") ||
		strings.Contains(string(raw), "Marsh") || strings.Contains(string(raw), "Carer for his wife") {
		t.Errorf("after erasure the ServiceRequest holds the person: %s", raw)
	}
	_, _, task := e.fhir("GET", "/fhir/R4/Task/"+id, keyGP, nil)
	if task["for"] != nil {
		t.Errorf("after erasure the Task names the patient: %v", task["for"])
	}
	view := e.h.Views().View(referrals.ProjectionName)
	if _, ok, err := view.Get("p.A81001." + id); err != nil || ok {
		t.Errorf("the person's entry is still in the view (%v)", err)
	}
	if _, ok, _ := view.Get("r.A81001." + id); !ok {
		t.Error("the referral's record went with the person")
	}
}

// TestViewsAgreeWithTheAnswer: what a POST answers (folded from the
// command's own result) is what the view then holds.
func TestViewsAgreeWithTheAnswer(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	var c created
	e.json("POST", "/v1/referrals", keyGP, referral(t), http.StatusCreated, &c)
	var v referrals.View
	e.json("GET", "/v1/referrals/"+c.JourneyID, keyGP, nil, http.StatusOK, &v)
	a, _ := json.Marshal(c.View)
	b, _ := json.Marshal(v)
	if string(a) != string(b) {
		t.Errorf("the POST answered %s, the view holds %s", a, b)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		var p page
		e.json("GET", "/v1/referrals", keyGP, nil, http.StatusOK, &p)
		return len(p.Referrals) == 1 && p.Referrals[0].JourneyID == c.JourneyID
	}, "the list holds it")
}
