package events

import "testing"

func TestTerminology(t *testing.T) {
	terms, err := LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	// The concepts the issue names must be there, with their terms.
	for id, term := range map[string]string{
		"422650009": "Social isolation (finding)",
		"423315002": "Limited social contact (finding)",
		"73595000":  "Stress (finding)",
		"423656007": "Income insufficient to buy necessities (finding)",
	} {
		c, ok := terms.Reasons.Get(id)
		if !ok || c.Term != term || c.Category == "" {
			t.Errorf("reason %s = %+v, %v; want %q with a category", id, c, ok, term)
		}
	}
	for id, term := range map[string]string{
		CodeReferredToSocialPrescribing: "Referral to social prescribing service",
		CodeSocialPrescribingDeclined:   "Social prescribing declined",
	} {
		if c, ok := terms.WriteBack.Get(id); !ok || c.Term != term {
			t.Errorf("write-back %s = %+v, %v; want %q", id, c, ok, term)
		}
	}
	// Every code in the files is a well-formed SNOMED CT id (Verhoeff check
	// digit): a typo in the data is caught here, not in a GP record.
	for _, vs := range []*ValueSet{terms.Reasons, terms.WriteBack} {
		for _, c := range vs.All() {
			if !isSCTID(c.ID) {
				t.Errorf("%s is not a valid SNOMED CT id", c.ID)
			}
		}
	}
}

func TestIsSCTID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"404684003", true}, // Clinical finding
		{"71388002", true},  // Procedure
		{"138875005", true}, // SNOMED CT Concept
		{"900000000000207008", true},
		{"871731000000106", true},
		{"404684004", false}, // check digit off by one
		{"422650008", false},
		{"12345", false},     // too short
		{"042265009", false}, // leading zero
		{"42265000x", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isSCTID(tt.id); got != tt.ok {
			t.Errorf("isSCTID(%q) = %v, want %v", tt.id, got, tt.ok)
		}
	}
}
