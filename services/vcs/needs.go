package vcs

import (
	"strings"

	"linkway/events"
)

// needLabel is a need as a volunteer reads it: the name of its needs
// taxonomy category ("Befriending and social groups", what onward
// referrals carry since version 2), the SNOMED CT term of a referral reason
// that an older onward referral carried ("Social isolation"), or the
// concept id for a code the value set does not hold.
func needLabel(code string) string {
	if c, ok := events.NeedCategoryByID(code); ok {
		return c.Name
	}
	if terms, err := events.Terms(); err == nil {
		if c, ok := terms.Reasons.Get(code); ok {
			return strings.TrimSuffix(c.Term, " (finding)")
		}
	}
	return "SNOMED CT " + code
}
