package outcomes

import (
	"slices"

	"linkway/events"
)

// needCategory places one recorded need in the taxonomy, or "other": the
// feed publishes a need only as a category id, never as the words a link
// worker typed.
func needCategory(need string) string {
	if c, ok := events.PlaceNeed(need); ok {
		return c
	}
	return "other"
}

// needCategories places recorded needs, each category once, in order.
func needCategories(needs []string) []string {
	var out []string
	for _, n := range needs {
		if c := needCategory(n); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// needColumns are the categories a summary counts by, then "other" and
// "unassessed".
var needColumns = func() []string {
	var out []string
	for _, c := range events.NeedCategories {
		out = append(out, c.ID)
	}
	return append(out, "other", "unassessed")
}()
