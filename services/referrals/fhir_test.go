package referrals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

const fhirJSON = "application/fhir+json"

// fhir sends FHIR JSON and decodes the answer as a generic resource.
func (e *env) fhir(method, path, key string, body []byte) (int, http.Header, map[string]any) {
	e.t.Helper()
	var b any
	if body != nil {
		b = body
	}
	st, h, out := e.do(method, path, key, b, "Content-Type", fhirJSON, "Accept", fhirJSON)
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		e.t.Fatalf("%s %s: %d, not JSON: %s", method, path, st, out)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, fhirJSON) {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	checkFHIR(e.t, doc)
	return st, h, doc
}

// FHIR R4 value sets of the required bindings checked below.
var (
	issueTypes = []string{"invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
		"forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found", "deleted",
		"too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
		"no-store", "exception", "timeout", "incomplete", "throttled", "informational"}
	taskStatuses = []string{"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
		"on-hold", "failed", "completed", "entered-in-error"}
	requestStatuses = []string{"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
	requestIntents  = []string{"proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}
	bundleTypes     = []string{"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"}
)

// checkFHIR checks what a FHIR validator would of the resources Linkway
// writes: no empty elements, required elements present, codes from their
// required value sets; and recurses into Bundle entries.
func checkFHIR(t *testing.T, doc map[string]any) {
	t.Helper()
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case string:
			if x == "" {
				t.Errorf("%s is an empty string (FHIR forbids empty elements)", path)
			}
		case []any:
			if len(x) == 0 {
				t.Errorf("%s is an empty array", path)
			}
			for i, y := range x {
				walk(path+"["+string(rune('0'+i%10))+"]", y)
			}
		case map[string]any:
			if len(x) == 0 {
				t.Errorf("%s is an empty object", path)
			}
			for k, y := range x {
				walk(path+"."+k, y)
			}
		case nil:
			t.Errorf("%s is null", path)
		}
	}
	walk(str(doc["resourceType"]), doc)
	in := func(what string, v any, set []string) {
		if !slices.Contains(set, str(v)) {
			t.Errorf("%s %q is not in its value set", what, v)
		}
	}
	switch doc["resourceType"] {
	case "OperationOutcome":
		issues, _ := doc["issue"].([]any)
		if len(issues) == 0 {
			t.Error("OperationOutcome without an issue")
		}
		for _, is := range issues {
			m := is.(map[string]any)
			in("issue.severity", m["severity"], []string{"fatal", "error", "warning", "information"})
			in("issue.code", m["code"], issueTypes)
		}
	case "ServiceRequest":
		in("ServiceRequest.status", doc["status"], requestStatuses)
		in("ServiceRequest.intent", doc["intent"], requestIntents)
		if doc["subject"] == nil {
			t.Error("ServiceRequest without subject")
		}
	case "Task":
		in("Task.status", doc["status"], taskStatuses)
		in("Task.intent", doc["intent"], []string{"unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"})
	case "Bundle":
		in("Bundle.type", doc["type"], bundleTypes)
		entries, _ := doc["entry"].([]any)
		for _, en := range entries {
			res, ok := en.(map[string]any)["resource"].(map[string]any)
			if !ok {
				t.Error("Bundle entry without a resource")
				continue
			}
			checkFHIR(t, res)
		}
	case "MessageHeader":
		if doc["eventCoding"] == nil || doc["source"] == nil || dig(doc, "source", "endpoint") == "" {
			t.Error("MessageHeader lacks eventCoding or source.endpoint")
		}
	case "CapabilityStatement":
		in("CapabilityStatement.status", doc["status"], []string{"draft", "active", "retired", "unknown"})
		in("CapabilityStatement.kind", doc["kind"], []string{"instance", "capability", "requirements"})
		if doc["date"] == nil || doc["fhirVersion"] == nil || doc["format"] == nil {
			t.Error("CapabilityStatement lacks date, fhirVersion or format")
		}
	default:
		t.Errorf("unexpected resource %v", doc["resourceType"])
	}
}

func str(v any) string { s, _ := v.(string); return s }

// dig follows keys (and array index 0) through a decoded resource.
func dig(v any, path ...string) string {
	for _, k := range path {
		if a, ok := v.([]any); ok {
			if len(a) == 0 {
				return ""
			}
			v = a[0]
		}
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	if a, ok := v.([]any); ok && len(a) > 0 {
		v = a[0]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strings.TrimSuffix(strings.TrimSuffix(json.Number(strings.TrimSpace(jsonNum(x))).String(), ".0"), ".00")
	}
	return ""
}

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestFHIRServiceRequest(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	body := readFile(t, "testdata/servicerequest-contained-patient.json")
	st, h, sr := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, body)
	id := events.ReferralJourneyID("A81001", "S1-77410")
	if st != http.StatusCreated || h.Get("Location") != "/fhir/R4/ServiceRequest/"+id || sr["id"] != id {
		t.Fatalf("%d Location %q: %v", st, h.Get("Location"), sr)
	}
	if dig(sr, "subject", "identifier", "value") != "9912003888" || dig(sr, "requester", "identifier", "value") != "A81001" ||
		dig(sr, "performer", "identifier", "value") != "U12345" || sr["priority"] != "urgent" || sr["status"] != "active" ||
		dig(sr, "code", "coding", "code") != "871731000000106" || len(sr["reasonCode"].([]any)) != 2 ||
		dig(sr, "reasonCode", "coding", "display") != "Limited social contact (finding)" {
		t.Errorf("ServiceRequest as recorded: %v", sr)
	}
	// What was recorded: the official name, the normalised postcode, the
	// consent a contained active Consent gives, the SNOMED reasons only.
	state, hist, err := e.h.Journal().Load(context.Background(), id)
	if err != nil || len(hist) != 1 {
		t.Fatalf("%d events, %v", len(hist), err)
	}
	rr := state.Referral
	if p := rr.GetPerson(); p.GetGivenName() != "Alun" || p.GetFamilyName() != "Marsh" || p.GetPostcode() != "M33 6AA" ||
		p.GetBirthDate() != "1948-07-02" || p.GetPhone() != "0161 496 0999" || rr.GetSex() != "male" ||
		!rr.GetConsent().GetShareWithVcs() || rr.GetUrgency() != "urgent" || !slices.Equal(rr.GetReasons(), []string{"423315002", "73595000"}) ||
		rr.GetNotes().GetText() == "" || rr.GetSourceId() != "S1-77410" {
		t.Errorf("recorded %v", rr)
	}

	// A resend is 200 with the same Location, and nothing more is recorded.
	st, h, _ = e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, body)
	if st != http.StatusOK || h.Get("Location") != "/fhir/R4/ServiceRequest/"+id {
		t.Errorf("resend: %d %q", st, h.Get("Location"))
	}
	if _, hist, _ := e.h.Journal().Load(context.Background(), id); len(hist) != 1 {
		t.Errorf("resend recorded again: %d events", len(hist))
	}

	st, _, got := e.fhir("GET", "/fhir/R4/ServiceRequest/"+id, keyGP, nil)
	if st != http.StatusOK || got["id"] != id || dig(got, "subject", "identifier", "value") != "9912003888" {
		t.Errorf("GET: %d %v", st, got)
	}
	// The JSON view shows the same referral.
	st, _, _ = e.do("GET", "/v1/referrals/"+id, keyGP, nil)
	if st != http.StatusOK {
		t.Errorf("JSON view of a FHIR referral: %d", st)
	}

	// The Task follows the journey.
	task := func() map[string]any {
		t.Helper()
		st, _, b := e.fhir("GET", "/fhir/R4/Task?focus=ServiceRequest/"+id, keyGP, nil)
		entries, _ := b["entry"].([]any)
		if st != http.StatusOK || b["type"] != "searchset" || len(entries) != 1 || dig(b, "total") != "1" {
			t.Fatalf("Task search: %d %v", st, b)
		}
		tk := entries[0].(map[string]any)["resource"].(map[string]any)
		if tk["resourceType"] != "Task" || dig(tk, "focus", "reference") != "ServiceRequest/"+id || dig(tk, "owner", "identifier", "value") != "U12345" {
			t.Fatalf("Task %v", tk)
		}
		return tk
	}
	team := eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK
	steps := []struct {
		cmd    events.Command
		status string
	}{
		{nil, "requested"},
		{events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"}, "accepted"},
		{events.RecordContact{Outcome: "reached", Method: "phone"}, "in-progress"},
		{events.Close{Reason: "goals_met"}, "completed"},
		{events.Reopen{Reason: "setback"}, "in-progress"},
		{events.Close{Reason: "declined"}, "cancelled"},
	}
	for _, s := range steps {
		if s.cmd != nil {
			e.execute(id, "U12345", team, s.cmd)
		}
		if got := task()["status"]; got != s.status {
			t.Errorf("after %v: Task status %v, want %s", s.cmd, got, s.status)
		}
	}
	st, _, tk := e.fhir("GET", "/fhir/R4/Task/"+id, keyGP, nil)
	if st != http.StatusOK || tk["status"] != "cancelled" || dig(tk, "statusReason", "text") != "declined" {
		t.Errorf("GET Task: %d %v", st, tk)
	}
	// The write-back codes ride on the Task for FHIR-only GP systems.
	var outputs []string
	for _, o := range tk["output"].([]any) {
		outputs = append(outputs, dig(o, "valueCodeableConcept", "coding", "code"))
	}
	// A practice codes its own referral when it makes it: only the decline
	// comes back (events.WriteBackFor).
	if !slices.Equal(outputs, []string{"871711000000103"}) {
		t.Errorf("Task outputs %v, want the declined code alone", outputs)
	}
	_, _, got = e.fhir("GET", "/fhir/R4/ServiceRequest/"+id, keyGP, nil)
	if got["status"] != "revoked" {
		t.Errorf("declined referral's ServiceRequest status %v, want revoked", got["status"])
	}

	// Another practice: not found, and its search finds nothing.
	if st, _, oo := e.fhir("GET", "/fhir/R4/ServiceRequest/"+id, keyGP2, nil); st != http.StatusNotFound || oo["resourceType"] != "OperationOutcome" {
		t.Errorf("other practice GET: %d %v", st, oo)
	}
	if st, _, b := e.fhir("GET", "/fhir/R4/Task?focus=ServiceRequest/"+id, keyGP2, nil); st != http.StatusOK || dig(b, "total") != "0" || b["entry"] != nil {
		t.Errorf("other practice Task search: %d %v", st, b)
	}
	if st, _, _ := e.fhir("GET", "/fhir/R4/Task/"+id, keyGP2, nil); st != http.StatusNotFound {
		t.Errorf("other practice Task read: %d", st)
	}
	if st, _, oo := e.fhir("GET", "/fhir/R4/Task", keyGP, nil); st != http.StatusBadRequest || dig(oo, "issue", "expression") != "focus" {
		t.Errorf("Task search without focus: %d %v", st, oo)
	}
}

// TestFHIRIdentifiedPatient: a ServiceRequest naming the patient by NHS
// number only (subject.identifier) is a referral too; consent is no until
// the person says yes.
func TestFHIRIdentifiedPatient(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	st, h, sr := e.fhir("POST", "/fhir/R4/ServiceRequest", keyGP, readFile(t, "testdata/servicerequest-identified.json"))
	if st != http.StatusCreated || !strings.HasPrefix(h.Get("Location"), "/fhir/R4/ServiceRequest/") {
		t.Fatalf("%d %v", st, sr)
	}
	state, _, err := e.h.Journal().Load(context.Background(), sr["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	rr := state.Referral
	if rr.GetPerson().GetNhsNumber() != "9476719931" || rr.GetPerson().GetGivenName() != "Priya" || rr.GetPerson().GetFamilyName() != "Shah" ||
		rr.GetConsent().GetShareWithVcs() || rr.GetUrgency() != "routine" || rr.GetSex() != "unknown" {
		t.Errorf("recorded %v", rr)
	}
}

// TestFHIRRefusals: valid FHIR that is not a social-prescribing referral,
// and invalid input, are refused with an OperationOutcome naming the
// element, never a 500, and nothing is recorded.
func TestFHIRRefusals(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	base := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(readFile(t, "testdata/servicerequest-identified.json"), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	contained := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(readFile(t, "testdata/servicerequest-contained-patient.json"), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	set := func(m map[string]any, v any, path ...string) {
		for _, k := range path[:len(path)-1] {
			m = m[k].(map[string]any)
		}
		if v == nil {
			delete(m, path[len(path)-1])
		} else {
			m[path[len(path)-1]] = v
		}
	}
	ods := func(code string) map[string]any {
		return map[string]any{"identifier": map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": code}}
	}
	tests := []struct {
		name   string
		doc    func() map[string]any
		raw    []byte
		key    string
		ctype  string
		status int
		expr   string // an issue's expression
		says   string // in an issue's diagnostics (lower case)
	}{
		{name: "NHS number failing mod-11", doc: func() map[string]any {
			m := base()
			set(m, "9476719932", "subject", "identifier", "value")
			return m
		}, status: 400, expr: "ServiceRequest.subject.identifier", says: "nhs number"},
		{name: "contained Patient's NHS number failing mod-11", doc: func() map[string]any {
			m := contained()
			m["contained"].([]any)[0].(map[string]any)["identifier"].([]any)[0].(map[string]any)["value"] = "9912003889"
			return m
		}, status: 400, expr: "Patient.identifier", says: "modulus-11"},
		{name: "no patient", doc: func() map[string]any { m := base(); set(m, nil, "subject"); return m },
			status: 400, expr: "ServiceRequest.subject", says: "patient"},
		{name: "subject identified by something else", doc: func() map[string]any {
			m := base()
			set(m, "https://example.org/mrn", "subject", "identifier", "system")
			return m
		}, status: 400, expr: "ServiceRequest.subject.identifier.system", says: "nhs-number"},
		{name: "subject reference that resolves to nothing", doc: func() map[string]any {
			m := base()
			m["subject"] = map[string]any{"reference": "#nobody"}
			return m
		}, status: 400, expr: "ServiceRequest.subject.reference", says: "patient"},
		{name: "another use case (SNOMED code)", doc: func() map[string]any {
			m := base()
			m["code"] = map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "71388002"}}}
			return m
		}, status: 400, expr: "ServiceRequest.code", says: "social-prescribing referrals only"},
		{name: "a BaRS validation request", doc: func() map[string]any {
			m := base()
			m["category"] = []any{map[string]any{"coding": []any{map[string]any{"system": "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest", "code": "validation"}}}}
			return m
		}, status: 400, expr: "ServiceRequest.category[0]", says: "not a referral"},
		{name: "another practice as requester", doc: func() map[string]any { m := base(); m["requester"] = ods("A81002"); return m },
			status: 403, expr: "ServiceRequest.requester", says: "practice"},
		{name: "an unknown practice as requester", doc: func() map[string]any { m := base(); m["requester"] = ods("Z99999"); return m },
			status: 403, expr: "ServiceRequest.requester", says: "practice"},
		{name: "no requester", doc: func() map[string]any { m := base(); set(m, nil, "requester"); return m },
			status: 400, expr: "ServiceRequest.requester", says: "ods"},
		{name: "unknown link-worker team", doc: func() map[string]any { m := base(); m["performer"] = []any{ods("U99999")}; return m },
			status: 400, expr: "ServiceRequest.performer", says: "not a known link-worker team"},
		{name: "no performer", doc: func() map[string]any { m := base(); set(m, nil, "performer"); return m },
			status: 400, expr: "ServiceRequest.performer", says: "required"},
		{name: "reason outside the value set", doc: func() map[string]any {
			m := base()
			m["reasonCode"] = []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "404684003"}}}}
			return m
		}, status: 400, expr: "ServiceRequest.reasonCode", says: "value set"},
		{name: "reason without a SNOMED coding", doc: func() map[string]any {
			m := base()
			m["reasonCode"] = []any{map[string]any{"text": "lonely"}}
			return m
		}, status: 400, expr: "ServiceRequest.reasonCode[0]", says: "snomed"},
		{name: "no reason", doc: func() map[string]any { m := base(); set(m, nil, "reasonCode"); return m },
			status: 400, expr: "ServiceRequest.reasonCode", says: "at least one"},
		{name: "draft", doc: func() map[string]any { m := base(); m["status"] = "draft"; return m },
			status: 400, expr: "ServiceRequest.status", says: "active"},
		{name: "no intent", doc: func() map[string]any { m := base(); set(m, nil, "intent"); return m },
			status: 400, expr: "ServiceRequest.intent", says: "required"},
		{name: "no identifier", doc: func() map[string]any { m := base(); set(m, nil, "identifier"); return m },
			status: 400, expr: "ServiceRequest.identifier", says: "identifier"},
		{name: "unknown priority", doc: func() map[string]any { m := base(); m["priority"] = "whenever"; return m },
			status: 400, expr: "ServiceRequest.priority", says: "routine"},
		{name: "future birth date in the Patient", doc: func() map[string]any {
			m := contained()
			m["contained"].([]any)[0].(map[string]any)["birthDate"] = "2999-01-01"
			return m
		}, status: 400, expr: "Patient.birthDate", says: "future"},
		{name: "not a ServiceRequest", raw: []byte(`{"resourceType": "Patient"}`), status: 400, expr: "resourceType", says: "servicerequest"},
		{name: "element of the wrong type", raw: []byte(`{"resourceType": "ServiceRequest", "subject": "Jane"}`),
			status: 400, expr: "ServiceRequest.subject", says: "object"},
		{name: "malformed JSON", raw: []byte(`{"resourceType": "ServiceRequest", `), status: 400, says: "not valid json"},
		{name: "XML", raw: []byte(`<ServiceRequest/>`), ctype: "application/fhir+xml", status: 400, expr: "Content-Type", says: "json"},
		{name: "over the size limit", doc: func() map[string]any {
			m := base()
			m["note"] = []any{map[string]any{"text": strings.Repeat("x", 300<<10)}}
			return m
		}, status: 413, says: "bytes"},
		{name: "no key", key: "-", doc: base, status: 401, says: "key"},
		{name: "a VCS key", key: keyVCS, doc: base, status: 403, says: "vcs"},
		{name: "a link-worker key", key: keyTeam, doc: base, status: 403, says: "linkwork"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.raw
			if tt.doc != nil {
				var err error
				if body, err = json.Marshal(tt.doc()); err != nil {
					t.Fatal(err)
				}
			}
			key := keyGP
			switch tt.key {
			case "-":
				key = ""
			case "":
			default:
				key = tt.key
			}
			ctype := fhirJSON
			if tt.ctype != "" {
				ctype = tt.ctype
			}
			st, _, out := e.do("POST", "/fhir/R4/ServiceRequest", key, body, "Content-Type", ctype)
			var oo map[string]any
			if err := json.Unmarshal(out, &oo); err != nil || oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("%d, not an OperationOutcome: %s", st, out)
			}
			checkFHIR(t, oo)
			if st != tt.status {
				t.Errorf("status %d, want %d: %s", st, tt.status, out)
			}
			var exprs, says []string
			for _, is := range oo["issue"].([]any) {
				m := is.(map[string]any)
				says = append(says, strings.ToLower(str(m["diagnostics"])))
				xs, _ := m["expression"].([]any)
				for _, x := range xs {
					exprs = append(exprs, x.(string))
				}
			}
			if tt.expr != "" && !slices.Contains(exprs, tt.expr) {
				t.Errorf("expressions %v, want %s: %s", exprs, tt.expr, out)
			}
			if !slices.ContainsFunc(says, func(s string) bool { return strings.Contains(s, tt.says) }) {
				t.Errorf("diagnostics %q do not say %q", says, tt.says)
			}
			for _, src := range []string{"EMIS-55102", "S1-77410"} {
				if st, _, _ := e.h.Journal().Load(context.Background(), events.ReferralJourneyID("A81001", src)); st.Exists() {
					t.Fatalf("a refused referral was recorded")
				}
			}
		})
	}
}

func TestProcessMessage(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	body := readFile(t, "testdata/bars-social-prescribing-request.json")
	st, h, b := e.fhir("POST", "/fhir/R4/$process-message", keyGP, body)
	id := events.ReferralJourneyID("A81001", "GP-REF-2026-0042")
	entries, _ := b["entry"].([]any)
	if st != http.StatusOK || b["type"] != "message" || len(entries) != 2 || h.Get("Location") != "/fhir/R4/ServiceRequest/"+id {
		t.Fatalf("%d %v", st, b)
	}
	hdr := entries[0].(map[string]any)["resource"].(map[string]any)
	sr := entries[1].(map[string]any)["resource"].(map[string]any)
	if hdr["resourceType"] != "MessageHeader" || dig(hdr, "response", "code") != "ok" || dig(hdr, "eventCoding", "code") != "servicerequest-request" ||
		dig(hdr, "response", "identifier") != "0c6f3a52-8b8e-4f61-a1f7-2d5b9e4c7a10" || sr["id"] != id {
		t.Errorf("response: header %v, ServiceRequest %v", hdr, sr)
	}
	state, _, err := e.h.Journal().Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	// The requester came through PractitionerRole to the Organization; the
	// team by a lower-case ODS system; the phone and email from the contact.
	rr := state.Referral
	if rr.GetReferrerOrganisationId() != "A81001" || rr.GetLinkWorkTeam() != "U12345" || rr.GetPerson().GetFamilyName() != "Okafor" ||
		rr.GetPerson().GetPhone() != "07700 900456" || rr.GetPerson().GetEmail() != "grace@example.org" || len(rr.GetReasons()) != 2 {
		t.Errorf("recorded %v", rr)
	}
	// Resent: the same referral, recorded once.
	if st, _, b := e.fhir("POST", "/fhir/R4/$process-message", keyGP, body); st != http.StatusOK || dig(b, "entry", "resource", "focus", "reference") == "" {
		t.Errorf("resend: %d %v", st, b)
	}
	if _, hist, _ := e.h.Journal().Load(context.Background(), id); len(hist) != 1 {
		t.Errorf("%d events after a resend, want 1", len(hist))
	}
	if c, r := e.received("message", "created"), e.received("message", "resent"); c != 1 || r != 1 {
		t.Errorf("linkway_referrals_received_total: created %v, resent %v; want 1 and 1", c, r)
	}
	// Another practice's key cannot send a message from this practice.
	if st, _, _ := e.fhir("POST", "/fhir/R4/$process-message", keyGP2, body); st != http.StatusForbidden {
		t.Errorf("another practice's key: %d, want 403", st)
	}

	// A validation request (another BaRS use case) with a bad NHS number:
	// refused, saying every reason, and nothing recorded.
	st, _, oo := e.fhir("POST", "/fhir/R4/$process-message", keyGP, readFile(t, "testdata/bars-validation-request.json"))
	text, _ := json.Marshal(oo)
	if st != http.StatusBadRequest || oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("validation request: %d %s", st, text)
	}
	for _, want := range []string{"ServiceRequest.category[0]", "Patient.identifier", "NHS number", "ServiceRequest.performer", "ServiceRequest.reasonCode"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the OperationOutcome does not mention %s: %s", want, text)
		}
	}
	if st, _, _ := e.h.Journal().Load(context.Background(), events.ReferralJourneyID("A81001", "GP-VAL-2026-0007")); st.Exists() {
		t.Error("the refused message was recorded")
	}

	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
		expr   string
	}{
		{"not a message", func(m map[string]any) { m["type"] = "collection" }, "Bundle.type"},
		{"no MessageHeader first", func(m map[string]any) {
			en := m["entry"].([]any)
			en[0], en[1] = en[1], en[0]
		}, "Bundle.entry[0]"},
		{"another event", func(m map[string]any) {
			hdr := m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
			hdr["eventCoding"] = map[string]any{"system": "https://fhir.nhs.uk/CodeSystem/message-events-bars", "code": "booking-request"}
		}, "MessageHeader.eventCoding"},
		{"focus on nothing", func(m map[string]any) {
			hdr := m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
			hdr["focus"] = []any{map[string]any{"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}}
		}, "MessageHeader.focus"},
	} {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		tc.mutate(m)
		raw, _ := json.Marshal(m)
		st, _, oo := e.fhir("POST", "/fhir/R4/$process-message", keyGP, raw)
		if st != http.StatusBadRequest || dig(oo, "issue", "expression") != tc.expr {
			t.Errorf("%s: %d %v, want 400 naming %s", tc.name, st, oo, tc.expr)
		}
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, journal.DefaultConfig())
	st, _, cs := e.fhir("GET", "/fhir/R4/metadata", "", nil)
	text, _ := json.Marshal(cs)
	if st != http.StatusOK || cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("%d %s", st, text)
	}
	for _, want := range []string{`"type":"ServiceRequest"`, `"code":"create"`, `"type":"Task"`, `"search-type"`, `"name":"focus"`, `"name":"process-message"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("CapabilityStatement lacks %s", want)
		}
	}
}
