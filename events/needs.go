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

// PlaceNeed places a recorded need (a category id or a word link workers
// use: "company", "Debt", "mental-health") in the taxonomy; ok is false
// when it fits no category.
func PlaceNeed(need string) (string, bool) {
	k := strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(need)))
	if _, ok := NeedCategoryByID(k); ok {
		return k, true
	}
	c, ok := needWords[k]
	return c, ok
}

// ReasonNeed places a SNOMED CT referral reason in the taxonomy.
func ReasonNeed(code string) (string, bool) {
	c, ok := reasonNeeds[code]
	return c, ok
}
