package referrals

import (
	"strings"
	"testing"
	"time"

	"linkway/events"
)

func TestNormalisePostcode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"M33 7XX", "M33 7XX", true},
		{"m337xx", "M33 7XX", true},
		{" sw1a  1aa ", "SW1A 1AA", true},
		{"LS10 4YU", "LS10 4YU", true},
		{"W1A 0AX", "W1A 0AX", true},
		{"EC1A 1BB", "EC1A 1BB", true},
		{"GIR 0AA", "GIR 0AA", true},
		{"B1 1AA", "B1 1AA", true},
		{"12345", "", false},
		{"M33 7CX", "", false}, // C is never in an inward code
		{"QA1 1AA", "", false}, // Q never starts a postcode
		{"M33", "", false},
		{"M33 7XXX", "", false},
	}
	for _, tt := range tests {
		got, ok := NormalisePostcode(tt.in)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("NormalisePostcode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func validRequest() *ReferralRequest {
	yes := true
	return &ReferralRequest{
		SourceID: "EMIS-000123",
		Patient: &PatientRequest{NHSNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe",
			BirthDate: "1956-03-14", Sex: "female", Postcode: "M33 7XX", Phone: "07700 900123", Email: "jane@example.org"},
		Reasons:      []string{"422650009"},
		Notes:        "Recently bereaved, isolated since moving.",
		Consent:      &ConsentRequest{ShareWithVCS: &yes},
		LinkWorkTeam: "U12345",
		Urgency:      "routine",
	}
}

func testChecker(t *testing.T) checker {
	t.Helper()
	terms, err := events.LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	today := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	return checker{terms: terms, isTeam: func(s string) bool { return s == "U12345" },
		now: func() time.Time { return today }, requireDemographics: true}
}

// TestCheck covers every refusal of API.md and the other edge rules: each
// names its field, and a valid request passes untouched but normalised.
func TestCheck(t *testing.T) {
	c := testChecker(t)
	tests := []struct {
		name   string
		mutate func(r *ReferralRequest)
		field  string // "" means valid
	}{
		{"valid", func(r *ReferralRequest) {}, ""},
		{"NHS number with spaces is normalised", func(r *ReferralRequest) { r.Patient.NHSNumber = "943 476 5919" }, ""},
		{"no sex means unknown", func(r *ReferralRequest) { r.Patient.Sex = "" }, ""},
		{"no urgency means routine", func(r *ReferralRequest) { r.Urgency = "" }, ""},
		{"no postcode, phone or email", func(r *ReferralRequest) { r.Patient.Postcode, r.Patient.Phone, r.Patient.Email = "", "", "" }, ""},
		{"born today", func(r *ReferralRequest) { r.Patient.BirthDate = "2026-11-21" }, ""},
		{"missing source id", func(r *ReferralRequest) { r.SourceID = " " }, "source_id"},
		{"source id too long", func(r *ReferralRequest) { r.SourceID = strings.Repeat("x", 129) }, "source_id"},
		{"source id with a control character", func(r *ReferralRequest) { r.SourceID = "A\x00B" }, "source_id"},
		{"no patient", func(r *ReferralRequest) { r.Patient = nil }, "patient"},
		{"NHS number failing mod-11", func(r *ReferralRequest) { r.Patient.NHSNumber = "9434765918" }, "patient.nhs_number"},
		{"9-digit NHS number", func(r *ReferralRequest) { r.Patient.NHSNumber = "943476591" }, "patient.nhs_number"},
		{"missing NHS number", func(r *ReferralRequest) { r.Patient.NHSNumber = "" }, "patient.nhs_number"},
		{"missing given name", func(r *ReferralRequest) { r.Patient.GivenName = "" }, "patient.given_name"},
		{"missing family name", func(r *ReferralRequest) { r.Patient.FamilyName = "  " }, "patient.family_name"},
		{"name too long", func(r *ReferralRequest) { r.Patient.FamilyName = strings.Repeat("a", 101) }, "patient.family_name"},
		{"missing birth date", func(r *ReferralRequest) { r.Patient.BirthDate = "" }, "patient.birth_date"},
		{"birth date in the future", func(r *ReferralRequest) { r.Patient.BirthDate = "2999-01-01" }, "patient.birth_date"},
		{"birth date tomorrow", func(r *ReferralRequest) { r.Patient.BirthDate = "2026-11-22" }, "patient.birth_date"},
		{"birth date not a date", func(r *ReferralRequest) { r.Patient.BirthDate = "14/03/1956" }, "patient.birth_date"},
		{"unknown sex", func(r *ReferralRequest) { r.Patient.Sex = "F" }, "patient.sex"},
		{"postcode not UK shaped", func(r *ReferralRequest) { r.Patient.Postcode = "90210" }, "patient.postcode"},
		{"phone not a number", func(r *ReferralRequest) { r.Patient.Phone = "call me" }, "patient.phone"},
		{"email not an address", func(r *ReferralRequest) { r.Patient.Email = "jane at example" }, "patient.email"},
		{"no reason", func(r *ReferralRequest) { r.Reasons = nil }, "reasons"},
		{"reason outside the value set", func(r *ReferralRequest) { r.Reasons = []string{"422650009", "12345"} }, "reasons"},
		{"write-back code is not a reason", func(r *ReferralRequest) { r.Reasons = []string{events.CodeReferredToSocialPrescribing} }, "reasons"},
		{"too many reasons", func(r *ReferralRequest) { r.Reasons = make([]string, 21) }, "reasons"},
		{"notes too long", func(r *ReferralRequest) { r.Notes = strings.Repeat("n", maxNotes+1) }, "notes"},
		{"no consent", func(r *ReferralRequest) { r.Consent = nil }, "consent"},
		{"consent without share_with_vcs", func(r *ReferralRequest) { r.Consent = &ConsentRequest{} }, "consent.share_with_vcs"},
		{"no link-worker team", func(r *ReferralRequest) { r.LinkWorkTeam = "" }, "link_work_team"},
		{"unknown link-worker team", func(r *ReferralRequest) { r.LinkWorkTeam = "U99999" }, "link_work_team"},
		{"unknown urgency", func(r *ReferralRequest) { r.Urgency = "soon" }, "urgency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(r)
			errs := c.check(r)
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("refused a valid request: %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("accepted; want a refusal naming %s", tt.field)
			}
			if errs[0].Field != tt.field || errs[0].Code != "invalid_argument" {
				t.Errorf("first error %v, want invalid_argument naming %s", errs[0], tt.field)
			}
		})
	}
}

func TestCheckNormalises(t *testing.T) {
	c := testChecker(t)
	r := validRequest()
	r.Patient.NHSNumber, r.Patient.Postcode, r.Patient.Sex, r.Urgency = "943 476 5919", "m337xx", "", ""
	r.Reasons = []string{"422650009", "73595000", "422650009"}
	if errs := c.check(r); len(errs) > 0 {
		t.Fatal(errs)
	}
	if r.Patient.NHSNumber != "9434765919" || r.Patient.Postcode != "M33 7XX" || r.Patient.Sex != "unknown" || r.Urgency != "routine" {
		t.Errorf("not normalised: %+v %+v", r, r.Patient)
	}
	if len(r.Reasons) != 2 {
		t.Errorf("reasons %v: want the duplicate dropped", r.Reasons)
	}
}

// TestCheckFHIRIdentifiedPatient: a FHIR referral may name the patient by
// NHS number alone; the NHS number is still checked.
func TestCheckFHIRIdentifiedPatient(t *testing.T) {
	c := testChecker(t)
	c.requireDemographics = false
	r := validRequest()
	r.Patient = &PatientRequest{NHSNumber: "9000000009"}
	if errs := c.check(r); len(errs) > 0 {
		t.Fatalf("refused: %v", errs)
	}
	r.Patient = &PatientRequest{NHSNumber: "3478526985"}
	if errs := c.check(r); len(errs) != 1 || errs[0].Field != "patient.nhs_number" {
		t.Fatalf("errors %v, want one naming patient.nhs_number", errs)
	}
}
