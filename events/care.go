package events

import (
	"slices"
	"time"
	_ "time/tzdata" // Europe/London wherever the process runs

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Value sets of version 2 (API.md "Version 2 additions"). The JSON and FHIR
// edges check input against them too, so that a refusal names the field
// as the caller sent it before anything reaches Decide.
var (
	// ConsentMethods: how the person gave their choice.
	ConsentMethods = []string{"verbal", "written", "digital"}
	// ContactPreferences: how a self-referring person would like to be contacted.
	ContactPreferences = []string{"phone", "email", "text", "letter"}
	// Urgencies of a referral.
	Urgencies = []string{UrgencyRoutine, UrgencyUrgent}
	// RiskKinds: risks and safeguarding concerns a link worker records.
	RiskKinds = []string{"safeguarding_adult", "safeguarding_child", "self_harm", "domestic_abuse", "other"}
	// FeedbackFrom: who gave feedback on a service.
	FeedbackFrom = []string{"person", "carer"}
	// SupervisionKinds: kinds of supervision session.
	SupervisionKinds = []string{"clinical", "managerial", "peer"}
	// FollowUpTimepoints: the usual check-in points; a follow-up may
	// instead have a date chosen freely (no timepoint).
	FollowUpTimepoints = []string{"3_months", "6_months", "12_months"}
)

// Feedback ratings run from 1 to 5.
const (
	MinRating = 1
	MaxRating = 5
)

// CheckInWindow is how long after closure a check-in may be due: people
// come back to the same worker through setbacks one to two years on.
const CheckInWindow = 24 // months

// FollowUpDue is the due date of a timepoint counted from a date (the
// closure, or the first contact): base plus 3, 6 or 12 months; ok is false
// for an unknown timepoint.
func FollowUpDue(base time.Time, timepoint string) (string, bool) {
	months := map[string]int{"3_months": 3, "6_months": 6, "12_months": 12}[timepoint]
	if months == 0 {
		return "", false
	}
	return UKDate(base).AddDate(0, months, 0).Format(time.DateOnly), true
}

// Urgency values.
const (
	UrgencyRoutine = "routine"
	UrgencyUrgent  = "urgent"
)

// UrgentWarning is what an urgent referral is answered with, beside the
// journey it opens. Link workers are a non-clinical role (NHS England's
// social prescribing link worker role in the Network Contract DES and its
// workforce development framework): they give people time over weeks, hold
// caseloads of 200-250 a year and are not a crisis or emergency service. So
// an urgent request is taken (refusing it would leave the person with
// nothing) and flagged for the team (State.Urgent), and the referrer is told
// plainly where urgent need belongs.
const UrgentWarning = "Social prescribing link workers are not a crisis or emergency service. " +
	"This referral has been accepted and flagged as urgent for the team, who will contact the person as soon as they can, " +
	"but they cannot respond urgently. If the person is at risk now, use urgent care: call 999 in an emergency, NHS 111, " +
	"or the local mental health crisis line."

// ReferralWarning is the warning a referral is to be answered with, if any:
// today only an urgent referral has one.
func ReferralWarning(r *eventsv1.ReferralReceived) (string, bool) {
	if r.GetUrgency() == UrgencyUrgent {
		return UrgentWarning, true
	}
	return "", false
}

// EthnicCategory is one code of the NHS Data Dictionary's ETHNIC CATEGORY
// (the 2001 census categories): the national codes and the default code.
type EthnicCategory struct {
	Code  string `json:"code"`
	Group string `json:"group"`
	Name  string `json:"name"`
}

// EthnicCategories lists the codes of the NHS Data Dictionary data element
// ETHNIC CATEGORY (https://www.datadictionary.nhs.uk/data_elements/ethnic_category.html):
// national codes A-H, J-N, P, R, S and Z (not stated: the person was asked
// and chose not to say), and the default code 99 (not known: not asked).
// The letters I, O, Q and T-Y are not codes. The data element's optional
// second character, for local use, is not taken: feeds and summaries
// report the 16+1 national categories.
var EthnicCategories = []EthnicCategory{
	{"A", "White", "British"},
	{"B", "White", "Irish"},
	{"C", "White", "Any other White background"},
	{"D", "Mixed", "White and Black Caribbean"},
	{"E", "Mixed", "White and Black African"},
	{"F", "Mixed", "White and Asian"},
	{"G", "Mixed", "Any other mixed background"},
	{"H", "Asian or Asian British", "Indian"},
	{"J", "Asian or Asian British", "Pakistani"},
	{"K", "Asian or Asian British", "Bangladeshi"},
	{"L", "Asian or Asian British", "Any other Asian background"},
	{"M", "Black or Black British", "Caribbean"},
	{"N", "Black or Black British", "African"},
	{"P", "Black or Black British", "Any other Black background"},
	{"R", "Other ethnic groups", "Chinese"},
	{"S", "Other ethnic groups", "Any other ethnic group"},
	{"Z", "Not stated", "Not stated"},
	{"99", "Not known", "Not known"},
}

// EthnicCategoryByCode returns the category with a code (exactly as
// listed: upper case, no local second character).
func EthnicCategoryByCode(code string) (EthnicCategory, bool) {
	i := slices.IndexFunc(EthnicCategories, func(c EthnicCategory) bool { return c.Code == code })
	if i < 0 {
		return EthnicCategory{}, false
	}
	return EthnicCategories[i], true
}

// CheckEthnicity checks an optional ethnic category code, naming field
// (patient.ethnicity, person.ethnicity) when it is not one.
func CheckEthnicity(field, code string) error {
	if code == "" {
		return nil
	}
	if _, ok := EthnicCategoryByCode(code); !ok {
		return Invalid(field, "must be an NHS Data Dictionary ethnic category code: A-H, J-N, P, R, S, Z (not stated) or 99 (not known)")
	}
	return nil
}

// london is the time zone the dates people and services give are in.
var london = func() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil { // cannot happen: time/tzdata is built in
		return time.UTC
	}
	return loc
}()

// UKDate is the calendar day (in England) of a moment, as midnight UTC of
// that day, so that it compares with dates parsed by ParseDate.
func UKDate(t time.Time) time.Time {
	y, m, d := t.In(london).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// SessionBeforeReferral reports whether a session on date (YYYY-MM-DD)
// predates the onward referral it is recorded against, and the day that
// referral was made. Such a session is recorded (a person is often taken
// along to a group before the referral is written up), but it is not one
// the referral led to: "referral to first session" leaves it out rather
// than counting it as no wait at all.
func SessionBeforeReferral(o Onward, date string) (time.Time, bool) {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil || o.MadeAt.IsZero() {
		return time.Time{}, false
	}
	made := earliestDay(o.MadeAt)
	return made, d.Before(made)
}

// AttendanceWarning is what recording a session dated before its onward
// referral is answered with, beside the record.
func AttendanceWarning(made time.Time) string {
	return "date is before the onward referral was made (" + made.Format(time.DateOnly) +
		"): recorded as given, and left out of the referral-to-first-session figure"
}

// earliestDay is the earliest calendar day a caller may take a moment to be
// on: its day in UTC, which is never after its day in England. A rule that
// refuses dates before a moment uses it, so that a caller counting days in
// UTC is not refused in the hour after midnight in summer.
func earliestDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
