package referrals

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
)

// FuzzIntake feeds arbitrary JSON to the FHIR intake (ServiceRequest and,
// through its contained resources, Patient, Organization, Consent): it must
// answer a referral or a refusal, never panic.
func FuzzIntake(f *testing.F) {
	for _, name := range []string{"testdata/servicerequest-contained-patient.json", "testdata/servicerequest-identified.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"ServiceRequest","subject":{"reference":"#x"},"contained":[{"resourceType":"Patient","id":"x","name":[{}]}]}`))
	f.Add([]byte(`{"resourceType":"ServiceRequest","performer":[{"reference":"#r"}],"contained":[{"resourceType":"PractitionerRole","id":"r","organization":{"reference":"#r"}}]}`))
	terms, err := events.LoadTerminology()
	if err != nil {
		f.Fatal(err)
	}
	s := &Service{terms: terms, now: time.Now, isTeam: func(id string) bool { return id == "U12345" }}
	p := api.Principal{OrgID: "A81001", Kind: events.KindGP}
	f.Fuzz(func(t *testing.T, body []byte) {
		var sr ServiceRequest
		if json.Unmarshal(body, &sr) != nil {
			return
		}
		req, err := s.intake(&sr, containedResolver(sr.Contained), "", p, nil)
		if (req == nil) == (err == nil) {
			t.Fatalf("intake gave %v and %v", req, err)
		}
		if req != nil {
			if events.CheckNHSNumber(req.Patient.NHSNumber) != nil || len(req.Reasons) == 0 || !s.isTeam(req.LinkWorkTeam) {
				t.Fatalf("accepted an invalid referral: %+v", req)
			}
		}
	})
}
