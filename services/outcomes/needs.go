package outcomes

import (
	"slices"
	"strings"
)

// NeedCategories is the community directory's taxonomy of needs, by id.
// Services do not import one another, so the outcomes service keeps its own
// copy of the ids and of the words link workers use for them. It is what
// keeps the feed free of free text: a recorded need is published only as a
// category id, and anything else as "other".
var NeedCategories = []string{
	"physical_activity", "arts_and_creativity", "befriending_and_social_groups", "financial_and_debt_advice",
	"housing", "employment_and_skills", "carers", "mental_wellbeing", "nature_and_green_space", "food",
}

var needWords = map[string]string{
	"exercise": "physical_activity", "walking": "physical_activity", "activity": "physical_activity",
	"sport": "physical_activity", "physical": "physical_activity",
	"arts": "arts_and_creativity", "art": "arts_and_creativity", "creativity": "arts_and_creativity",
	"music": "arts_and_creativity", "crafts": "arts_and_creativity",
	"befriending": "befriending_and_social_groups", "company": "befriending_and_social_groups",
	"loneliness": "befriending_and_social_groups", "isolation": "befriending_and_social_groups",
	"social": "befriending_and_social_groups", "social_groups": "befriending_and_social_groups",
	"social_isolation": "befriending_and_social_groups",
	"financial":        "financial_and_debt_advice", "debt": "financial_and_debt_advice", "money": "financial_and_debt_advice",
	"benefits": "financial_and_debt_advice",
	"home":     "housing", "homelessness": "housing",
	"employment": "employment_and_skills", "work": "employment_and_skills", "jobs": "employment_and_skills",
	"skills": "employment_and_skills", "learning": "employment_and_skills",
	"carer": "carers", "caring": "carers",
	"wellbeing": "mental_wellbeing", "mental_health": "mental_wellbeing", "low_mood": "mental_wellbeing",
	"anxiety": "mental_wellbeing",
	"nature":  "nature_and_green_space", "gardening": "nature_and_green_space", "green_space": "nature_and_green_space",
	"food_poverty": "food", "cooking": "food",
}

// reasonNeeds places the SNOMED CT referral reasons that name a need, for
// journeys whose needs have not been assessed.
var reasonNeeds = map[string]string{
	"422650009": "befriending_and_social_groups", // social isolation (finding)
	"32911000":  "housing",                       // homeless (finding)
	"73438004":  "employment_and_skills",         // unemployed (finding)
}

// needCategory places one recorded need in the taxonomy, or "other".
func needCategory(need string) string {
	k := strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(need)))
	if slices.Contains(NeedCategories, k) {
		return k
	}
	if c, ok := needWords[k]; ok {
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
