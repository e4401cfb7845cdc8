package events

import (
	"encoding/csv"
	"strings"
	"testing"
)

// TestValueSetSources: every code of the value sets says whether it was
// checked against a public UK source and names the source it was checked
// against (valuesets/README.md): a code with no source was guessed.
func TestValueSetSources(t *testing.T) {
	for _, name := range []string{"reasons.csv", "writeback.csv"} {
		f, err := valueSetFiles.Open("valuesets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		_ = f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if h := rows[0]; len(h) != 5 || h[3] != "uk_verified" || h[4] != "source" {
			t.Fatalf("%s header %v: want concept_id, term, category/use, uk_verified, source", name, h)
		}
		for i, r := range rows[1:] {
			if r[3] != "yes" && r[3] != "no" {
				t.Errorf("%s line %d (%s): uk_verified %q, want yes or no", name, i+2, r[0], r[3])
			}
			if len(strings.TrimSpace(r[4])) < 20 {
				t.Errorf("%s line %d (%s): no source named", name, i+2, r[0])
			}
			if r[3] == "no" && !strings.HasPrefix(r[4], "No UK source checked") {
				t.Errorf("%s line %d (%s): an unverified code's source must say so first", name, i+2, r[0])
			}
		}
	}
	// The reason areas of API.md each have a code (placed in the needs
	// taxonomy through their category).
	terms, err := LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	for area, code := range map[string]string{"social isolation": "422650009", "lives alone": "105529008",
		"bereavement": "74506000", "carer": "276040005", "long-term condition": "27624003", "low mood": "366979004",
		"anxiety": "48694002", "debt and money": "160932005", "housing": "105531004", "unemployment": "73438004"} {
		if !terms.Reasons.Has(code) {
			t.Errorf("%s: %s is not in the reasons value set", area, code)
		}
		if _, ok := ReasonNeed(code); !ok {
			t.Errorf("%s: %s is placed in no need category", area, code)
		}
	}
}
