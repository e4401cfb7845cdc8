package vcs

import "linkway/events"

// needLabel is a need as a volunteer reads it: the name of its needs
// taxonomy category ("Befriending and social groups"). The inbox holds
// only needs of the taxonomy (never a referral's reason codes), so
// anything else is shown as it is.
func needLabel(id string) string {
	if c, ok := events.NeedCategoryByID(id); ok {
		return c.Name
	}
	return id
}
