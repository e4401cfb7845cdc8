package events

import (
	"slices"
	"strings"
)

// NeedCategory is one term of the small taxonomy of needs that the
// community directory files its services under, and that needs, declines
// and unmet need are counted by. Ids are stable: they are stored in events
// and used as Open Referral UK taxonomy term ids.
type NeedCategory struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

// NeedCategories is the taxonomy.
var NeedCategories = []NeedCategory{
	{"physical_activity", "Physical activity", "Walking groups, exercise classes, sport and movement."},
	{"arts_and_creativity", "Arts and creativity", "Art, music, crafts, writing and performance."},
	{"befriending_and_social_groups", "Befriending and social groups", "Befriending, lunch clubs, sheds and groups to meet people."},
	{"financial_and_debt_advice", "Financial and debt advice", "Debt, benefits and money advice."},
	{"housing", "Housing", "Housing advice, tenancy support and homelessness services."},
	{"employment_and_skills", "Employment and skills", "Job clubs, volunteering into work, training and learning."},
	{"carers", "Carers", "Support for unpaid carers."},
	{"mental_wellbeing", "Mental wellbeing", "Peer support, talking groups and wellbeing courses."},
	{"nature_and_green_space", "Nature and green space", "Gardening, conservation and time outdoors."},
	{"food", "Food", "Food banks, community pantries, cooking and shared meals."},
	{"long_term_conditions", "Long-term conditions", "Self-management courses, condition support groups and peer support for living with a long-term condition."},
}

// NeedIDs are the ids of NeedCategories, in order: what a link worker is
// offered as needs, what the VCS is given, what the feed and summaries
// count by (beside "other" for anything the log holds that fits none).
func NeedIDs() []string {
	out := make([]string, len(NeedCategories))
	for i, c := range NeedCategories {
		out[i] = c.ID
	}
	return out
}

// BarrierCategories are the barriers a link worker records, one list for
// the caseload, the feed and the summaries. "other" is itself a category.
var BarrierCategories = []string{"transport", "confidence", "cost", "caring_duties", "health", "language",
	"digital_access", "mobility", "anxiety", "time", "other"}

// PlaceBarrier places a recorded barrier ("Digital access", "caring-duties")
// among BarrierCategories; ok is false when it is none of them (a reader
// then leaves it out rather than guess).
func PlaceBarrier(barrier string) (string, bool) {
	k := normalise(barrier)
	return k, slices.Contains(BarrierCategories, k)
}

// PlaceNeeds places recorded needs in the taxonomy, each category once, in
// order; needs that fit no category are left out (they may be words a
// link worker typed and are never passed on).
func PlaceNeeds(needs []string) []string {
	var out []string
	for _, n := range needs {
		if c, ok := PlaceNeed(n); ok && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// NeedCategoryByID returns the category with an id.
func NeedCategoryByID(id string) (NeedCategory, bool) {
	i := slices.IndexFunc(NeedCategories, func(c NeedCategory) bool { return c.ID == id })
	if i < 0 {
		return NeedCategory{}, false
	}
	return NeedCategories[i], true
}

// needWords maps the words link workers record as needs onto the
// taxonomy (category ids map to themselves).
var needWords = map[string]string{
	"exercise": "physical_activity", "walking": "physical_activity", "activity": "physical_activity",
	"sport": "physical_activity", "physical": "physical_activity",
	"arts": "arts_and_creativity", "art": "arts_and_creativity", "creativity": "arts_and_creativity",
	"music": "arts_and_creativity", "crafts": "arts_and_creativity",
	"befriending": "befriending_and_social_groups", "company": "befriending_and_social_groups",
	"loneliness": "befriending_and_social_groups", "isolation": "befriending_and_social_groups",
	"social": "befriending_and_social_groups", "social_groups": "befriending_and_social_groups",
	"social_isolation": "befriending_and_social_groups", "bereavement": "befriending_and_social_groups",
	"financial": "financial_and_debt_advice", "debt": "financial_and_debt_advice", "money": "financial_and_debt_advice",
	"benefits": "financial_and_debt_advice",
	"home":     "housing", "homelessness": "housing",
	"employment": "employment_and_skills", "work": "employment_and_skills", "jobs": "employment_and_skills",
	"skills": "employment_and_skills", "learning": "employment_and_skills",
	"carer": "carers", "caring": "carers", "carer_support": "carers",
	"wellbeing": "mental_wellbeing", "mental_health": "mental_wellbeing", "low_mood": "mental_wellbeing",
	"anxiety": "mental_wellbeing",
	"nature":  "nature_and_green_space", "gardening": "nature_and_green_space", "green_space": "nature_and_green_space",
	"food_poverty": "food", "cooking": "food",
	"long_term_condition": "long_term_conditions", "ltc": "long_term_conditions", "self_management": "long_term_conditions",
	"long_term_condition_self_management": "long_term_conditions", "chronic_condition": "long_term_conditions",
	"carer_strain": "carers", "housing_advice": "housing",
}

// reasonNeeds places the SNOMED CT referral reasons that name a need, for
// journeys whose needs are not yet assessed.
var reasonNeeds = map[string]string{
	"422650009": "befriending_and_social_groups", // social isolation (finding)
	"423315002": "befriending_and_social_groups", // limited social contact (finding)
	"267076002": "befriending_and_social_groups", // feeling lonely (finding)
	"423656007": "financial_and_debt_advice",     // income insufficient to buy necessities (finding)
	"105531004": "housing",                       // housing unsatisfactory (finding)
	"415510005": "physical_activity",             // sedentary lifestyle (finding)
	"366979004": "mental_wellbeing",              // depressed mood (finding)
	"48694002":  "mental_wellbeing",              // anxiety (finding)
	"73595000":  "mental_wellbeing",              // stress (finding)
}

// reasonCategoryNeeds places a reason by the category column of the
// reasons value set, for codes not listed in reasonNeeds: a code added to
// the value set with its category is placed without a change here.
var reasonCategoryNeeds = map[string]string{
	"social connection":    "befriending_and_social_groups",
	"emotional wellbeing":  "mental_wellbeing",
	"financial":            "financial_and_debt_advice",
	"housing":              "housing",
	"physical activity":    "physical_activity",
	"employment":           "employment_and_skills",
	"carers":               "carers",
	"long-term conditions": "long_term_conditions",
	"long-term condition":  "long_term_conditions",
	"bereavement":          "befriending_and_social_groups",
	"food":                 "food",
}

func normalise(word string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(word)))
}

// PlaceNeed places a recorded need (a category id or a word link workers
// use: "company", "Debt", "mental-health") in the taxonomy; ok is false
// when it fits no category.
func PlaceNeed(need string) (string, bool) {
	k := normalise(need)
	if _, ok := NeedCategoryByID(k); ok {
		return k, true
	}
	c, ok := needWords[k]
	return c, ok
}

// ReasonNeed places a SNOMED CT referral reason in the taxonomy: by the
// list above, else by its category in the reasons value set.
func ReasonNeed(code string) (string, bool) {
	if c, ok := reasonNeeds[code]; ok {
		return c, true
	}
	terms, err := Terms()
	if err != nil {
		return "", false
	}
	concept, ok := terms.Reasons.Get(code)
	if !ok {
		return "", false
	}
	c, ok := reasonCategoryNeeds[strings.ToLower(strings.TrimSpace(concept.Category))]
	return c, ok
}
