package referrals

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	"linkway/services/platform/api"
)

// fuzzService is a Service with what validation needs and nothing more: no
// store, so a fuzz target can only reach decoding and checking.
func fuzzService(tb testing.TB) *Service {
	tb.Helper()
	terms, err := events.LoadTerminology()
	if err != nil {
		tb.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
	return &Service{terms: terms, now: now, isTeam: func(id string) bool { return id == "U12345" }}
}

// acceptedIsValid fails t unless req, as accepted, meets the rules of
// API.md: a valid NHS number, at least one reason and each in the value
// set, a known team, a past birth date if any, and an event that encodes.
func acceptedIsValid(t *testing.T, s *Service, req *ReferralRequest) {
	t.Helper()
	if err := events.CheckNHSNumber(req.Patient.NHSNumber); err != nil {
		t.Fatalf("accepted NHS number %q: %v", req.Patient.NHSNumber, err)
	}
	if len(req.Reasons) == 0 {
		t.Fatalf("accepted a referral with no reason")
	}
	for _, r := range req.Reasons {
		if !s.terms.Reasons.Has(r) {
			t.Fatalf("accepted reason %q outside the value set", r)
		}
	}
	if !s.isTeam(req.LinkWorkTeam) {
		t.Fatalf("accepted unknown team %q", req.LinkWorkTeam)
	}
	if req.Patient.BirthDate != "" {
		d, err := time.Parse(time.DateOnly, req.Patient.BirthDate)
		if err != nil || d.After(s.now()) {
			t.Fatalf("accepted birth date %q", req.Patient.BirthDate)
		}
	}
	if _, err := proto.Marshal(req.event("fuzz", "A81001")); err != nil {
		t.Fatalf("accepted a referral whose event does not encode: %v", err)
	}
}

// namesField reports whether a refusal says which field is wrong.
func namesField(err error) bool {
	var oe *outcomeError
	if errors.As(err, &oe) {
		if len(oe.Issues) == 0 {
			return false
		}
		for _, is := range oe.Issues {
			if len(is.Expression) == 0 || is.Expression[0] == "" {
				return false
			}
		}
		return true
	}
	var e *events.Error
	return errors.As(err, &e) && e.Field != ""
}

// FuzzReferralJSON feeds arbitrary bodies to the JSON referral decoder and
// its checks (POST /v1/referrals): never a panic; every refusal of the
// checks is invalid_argument naming a field; anything accepted is valid and
// stays valid when checked again (the normalised form is a fixed point).
func FuzzReferralJSON(f *testing.F) {
	f.Add([]byte(`{"source_id":"EMIS-000123","patient":{"nhs_number":"9434765919","given_name":"Jane","family_name":"Doe",` +
		`"birth_date":"1956-03-14","sex":"female","postcode":"M33 7XX","phone":"07700 900123","email":"jane@example.org"},` +
		`"reasons":["422650009"],"notes":"Recently bereaved.","consent":{"share_with_vcs":true},"link_work_team":"U12345","urgency":"routine"}`))
	f.Add([]byte(`{"source_id":" x ","patient":{"nhs_number":"943 476 5919","given_name":"J","family_name":"D","birth_date":"1956-03-14",` +
		`"postcode":"m337xx"},"reasons":[" 422650009","422650009"],"consent":{"share_with_vcs":false},"link_work_team":" U12345 "}`))
	f.Add([]byte(`{"patient":{"nhs_number":1}}`))
	f.Add([]byte(`{"reasons":"x","unknown":1}`))
	f.Add([]byte(`[]`))
	s := fuzzService(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req ReferralRequest
		if err := api.Unmarshal(body, &req); err != nil {
			if events.ErrorCode(err) != events.CodeInvalid {
				t.Fatalf("decode refusal %v is not invalid_argument", err)
			}
			return
		}
		errs := s.checker(true, nil).check(&req)
		for _, e := range errs {
			if e.Code != events.CodeInvalid || e.Field == "" {
				t.Fatalf("refusal %+v does not name a field", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		acceptedIsValid(t, s, &req)
		again := req
		p := *req.Patient
		again.Patient = &p
		if errs := s.checker(true, nil).check(&again); len(errs) > 0 {
			t.Fatalf("the normalised referral is refused when checked again: %v", errs[0])
		}
	})
}

// FuzzProcessMessage feeds arbitrary message Bundles to the decoding and
// checks of POST /fhir/R4/$process-message: never a panic; a referral or a
// refusal, never both or neither; a refusal names where (a field or a FHIR
// expression); anything accepted is a valid referral.
func FuzzProcessMessage(f *testing.F) {
	for _, name := range []string{"testdata/bars-social-prescribing-request.json", "testdata/bars-validation-request.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader",` +
		`"eventCoding":{"code":"servicerequest-request"},"focus":[{"reference":"ServiceRequest/1"}]}},` +
		`{"resource":{"resourceType":"ServiceRequest","id":"1","subject":{"reference":"Patient/1"}}},{"resource":{"resourceType":"Patient","id":"1"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[{"resource":{"resourceType":"MessageHeader",` +
		`"eventCoding":{"code":"servicerequest-request"},"sender":{"reference":"#o"},"focus":[{"reference":"urn:a"}]}},` +
		`{"fullUrl":"urn:a","resource":{"resourceType":"ServiceRequest","contained":[{"resourceType":"Organization","id":"o"}]}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"message","entry":[]}`))
	s := fuzzService(f)
	p := api.Principal{OrgID: "A81001", Kind: events.KindGP}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b messageBundle
		if err := json.Unmarshal(body, &b); err != nil {
			return // readFHIR refuses it before messageIntake sees it
		}
		req, _, err := s.messageIntake(&b, p, nil)
		if (req == nil) == (err == nil) {
			t.Fatalf("messageIntake gave %v and %v", req, err)
		}
		if err != nil {
			if !namesField(err) {
				t.Fatalf("refusal does not say where: %v", err)
			}
			if c := events.ErrorCode(err); c != events.CodeInvalid && c != events.CodePermissionDenied {
				var oe *outcomeError
				if !errors.As(err, &oe) || (oe.Code != events.CodeInvalid && oe.Code != events.CodePermissionDenied) {
					t.Fatalf("refusal %v has code %s", err, c)
				}
			}
			return
		}
		acceptedIsValid(t, s, req)
	})
}
