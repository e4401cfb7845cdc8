package vcs

import "strings"

// reasonTerms are the SNOMED CT terms of the referral reasons a person may
// share as their needs, shown to volunteers instead of bare concept ids.
// The value set belongs to the referrals service
// (services/referrals/valuesets/reasons.csv); services do not import each
// other, so the terms are copied here and a test keeps the copy in step.
var reasonTerms = map[string]string{
	"422650009": "Social isolation (finding)",
	"423315002": "Limited social contact (finding)",
	"267076002": "Feeling lonely (finding)",
	"73595000":  "Stress (finding)",
	"366979004": "Depressed mood (finding)",
	"48694002":  "Anxiety (finding)",
	"423656007": "Income insufficient to buy necessities (finding)",
	"105531004": "Housing unsatisfactory (finding)",
	"415510005": "Sedentary lifestyle (finding)",
}

// needLabel is a need as a volunteer reads it: "Social isolation", or the
// concept id for a code this version does not know.
func needLabel(code string) string {
	term, ok := reasonTerms[code]
	if !ok {
		return "SNOMED CT " + code
	}
	return strings.TrimSuffix(term, " (finding)")
}
