package vcs

import (
	"strings"

	"linkway/events"
)

// needLabel is a need as a volunteer reads it: the SNOMED CT term of the
// referral reason ("Social isolation"), or the concept id for a code the
// value set does not hold.
func needLabel(code string) string {
	if terms, err := events.Terms(); err == nil {
		if c, ok := terms.Reasons.Get(code); ok {
			return strings.TrimSuffix(c.Term, " (finding)")
		}
	}
	return "SNOMED CT " + code
}
