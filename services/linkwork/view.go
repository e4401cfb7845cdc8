package linkwork

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/viewstore"
)

// JourneyView is the team's full record of one journey: everything the link
// worker needs to carry the case. It is read from the caseload view, where
// the projection rendered it from the journey as events folded it.
type JourneyView struct {
	JourneyID  string        `json:"journey_id"`
	Status     events.Status `json:"status"`
	Team       string        `json:"link_work_team"`
	ReferredAt time.Time     `json:"referred_at"`
	Source     string        `json:"source,omitempty"`
	Referrer   string        `json:"referrer_organisation_id,omitempty"`
	SourceID   string        `json:"source_id,omitempty"`
	Urgency    string        `json:"urgency,omitempty"`
	// ContactPreference is how a self-referring person would like to be contacted.
	ContactPreference string   `json:"contact_preference,omitempty"`
	Person            *Person  `json:"person,omitempty"`
	Reasons           []string `json:"reasons"`
	Notes             string   `json:"notes,omitempty"`
	// WhatMatters is a self-referral's own words.
	WhatMatters string `json:"what_matters,omitempty"`
	// ConsentVCS is the consent in force to share with VCS organisations:
	// the referrer's until the person records their own choice.
	ConsentVCS bool         `json:"consent_share_with_vcs"`
	Consent    *ConsentView `json:"consent,omitempty"`
	Worker     *Worker      `json:"link_worker,omitempty"`
	// SuggestedWorker is the worker who last held the person's case with
	// this team (a journey closed within 12 months, or one still open).
	SuggestedWorker     string     `json:"suggested_worker,omitempty"`
	SuggestedWorkerName string     `json:"suggested_worker_name,omitempty"`
	Contacts            []Contact  `json:"contacts"`
	LastContactAt       *time.Time `json:"last_contact_at,omitempty"`
	// FailedAttempts counts attempts since the person was last reached.
	FailedAttempts int `json:"failed_attempts"`
	// FlaggedUncontactable: the team's policy says this journey should be
	// considered for closure as uncontactable. It is never closed for them.
	FlaggedUncontactable bool            `json:"flagged_uncontactable"`
	Assessment           *Assessment     `json:"assessment,omitempty"`
	Goals                []GoalView      `json:"goals"`
	Measures             []MeasureResult `json:"measures"`
	Change               []MeasureChange `json:"measure_change"`
	Onward               []OnwardView    `json:"onward_referrals"`
	Signposts            []SignpostView  `json:"signposts"`
	// Connection is how far the journey got: connected, signposted or none.
	Connection events.Connection `json:"connection"`
	FollowUps  []FollowUpView    `json:"follow_ups"`
	CaseNotes  []CaseNote        `json:"case_notes"`
	Risks      []RiskView        `json:"risks"`
	Closure    *Closure          `json:"closure,omitempty"`
	Reopenings int               `json:"reopenings"`
	Erased     bool              `json:"personal_data_erased,omitempty"`
	// History is the person's earlier journeys with this team.
	History  []HistoryItem   `json:"history"`
	Timeline []TimelineEntry `json:"timeline"`
	Version  int             `json:"version"`
}

// Person is who was referred.
type Person struct {
	NHSNumber  string `json:"nhs_number,omitempty"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	BirthDate  string `json:"birth_date,omitempty"`
	Sex        string `json:"sex,omitempty"`
	Postcode   string `json:"postcode,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Email      string `json:"email,omitempty"`
	Ethnicity  string `json:"ethnicity,omitempty"`
}

// ConsentView is the consent in force and whose choice it is.
type ConsentView struct {
	ShareWithVCS bool `json:"share_with_vcs"`
	// ByPerson: the person's own recorded choice (else the referrer's).
	ByPerson bool      `json:"by_person"`
	Method   string    `json:"method,omitempty"`
	At       time.Time `json:"at"`
}

// Worker is the named link worker.
type Worker struct {
	ID         string    `json:"worker_id"`
	Name       string    `json:"worker_name"`
	AssignedAt time.Time `json:"assigned_at"`
}

// Contact is one attempt to reach the person, successful or not.
type Contact struct {
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	Method  string    `json:"method,omitempty"`
}

// Assessment is the latest "what matters to you" conversation. Needs are
// the ids of the needs taxonomy (events.NeedCategories), barriers those of
// events.BarrierCategories.
type Assessment struct {
	At          time.Time `json:"at"`
	WhatMatters string    `json:"what_matters,omitempty"`
	Needs       []string  `json:"needs"`
	Barriers    []string  `json:"barriers"`
}

// GoalView is one agreed goal and where it stands.
type GoalView struct {
	GoalID    string    `json:"goal_id"`
	Text      string    `json:"text"`
	Status    string    `json:"status"`
	SetAt     time.Time `json:"set_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MeasureResult is one scored questionnaire.
type MeasureResult struct {
	MeasureID  string    `json:"measure_id"`
	Instrument string    `json:"instrument"`
	Version    string    `json:"version"`
	Timepoint  string    `json:"timepoint"`
	At         time.Time `json:"at"`
	Answers    []int32   `json:"answers"`
	// RawScore is the sum of the answers; ONS4 has none (its items stand alone).
	RawScore int32   `json:"raw_score"`
	Score    float64 `json:"score"`
	// Items are ONS4's four answers, each with its ONS threshold band.
	Items      []ONS4Item `json:"items,omitempty"`
	FollowUpID string     `json:"follow_up_id,omitempty"`
}

// ONS4Item is one ONS personal well-being answer with its band.
type ONS4Item struct {
	Item   string `json:"item"`
	Answer int32  `json:"answer"`
	Band   string `json:"band"`
}

// MeasureChange pairs an instrument's baseline with its latest follow-up.
type MeasureChange struct {
	Instrument string       `json:"instrument"`
	BaselineID string       `json:"baseline_measure_id"`
	FollowUpID string       `json:"follow_up_measure_id,omitempty"`
	Baseline   *float64     `json:"baseline,omitempty"` // none for ONS4: see Items
	FollowUp   *float64     `json:"follow_up,omitempty"`
	Change     *float64     `json:"change,omitempty"`
	Direction  string       `json:"direction,omitempty"` // better, worse, same
	Items      []ItemChange `json:"items,omitempty"`
}

// ItemChange is the change of one ONS4 item.
type ItemChange struct {
	Item      string `json:"item"`
	Baseline  int32  `json:"baseline"`
	FollowUp  int32  `json:"follow_up"`
	Change    int32  `json:"change"`
	Direction string `json:"direction"`
}

// OnwardView is one onward referral to a VCS service.
type OnwardView struct {
	OnwardReferralID string              `json:"onward_referral_id"`
	ServiceID        string              `json:"service_id"`
	ServiceName      string              `json:"service_name,omitempty"`
	OrganisationID   string              `json:"organisation_id"`
	Status           events.OnwardStatus `json:"status"`
	Shared           []string            `json:"shared"`
	WaitingList      bool                `json:"waiting_list,omitempty"`
	SentAt           time.Time           `json:"sent_at"`
	UpdatedAt        time.Time           `json:"updated_at"`
	DeclineReason    string              `json:"decline_reason,omitempty"`
	Detail           string              `json:"detail,omitempty"`
	Attendance       []Attendance        `json:"attendance,omitempty"`
}

// Attendance is one session the VCS organisation recorded.
type Attendance struct {
	Date     string `json:"date"`
	Attended bool   `json:"attended"`
}

// SignpostView is one signposting: to a directory service, or to
// something described in words.
type SignpostView struct {
	SignpostID     string    `json:"signpost_id"`
	ServiceID      string    `json:"service_id,omitempty"`
	ServiceName    string    `json:"service_name,omitempty"`
	OrganisationID string    `json:"organisation_id,omitempty"`
	Description    string    `json:"description,omitempty"`
	At             time.Time `json:"at"`
}

// FollowUpView is one scheduled follow-up.
type FollowUpView struct {
	FollowUpID string `json:"follow_up_id"`
	Due        string `json:"due"`
	// Timepoint is 3_months, 6_months or 12_months, or absent for a date
	// chosen freely.
	Timepoint string `json:"timepoint,omitempty"`
	// AfterClosure: a check-in scheduled on the closed journey.
	AfterClosure bool       `json:"after_closure,omitempty"`
	Done         bool       `json:"done"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	MeasureID    string     `json:"measure_id,omitempty"`
	// State is due, overdue or scheduled for open ones, done otherwise.
	State string `json:"state"`
}

// CaseNote is a note of the team's, seen by nobody else.
type CaseNote struct {
	NoteID string    `json:"note_id"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Text   string    `json:"text,omitempty"`
}

// RiskView is a recorded risk or safeguarding concern.
type RiskView struct {
	RiskID        string    `json:"risk_id"`
	Kind          string    `json:"kind"`
	Detail        string    `json:"detail,omitempty"`
	EscalatedToGP bool      `json:"escalated_to_gp"`
	At            time.Time `json:"at"`
	By            string    `json:"by,omitempty"`
}

// Closure says how the journey ended (most recently).
type Closure struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// HistoryItem is one of the person's other journeys with the team.
type HistoryItem struct {
	JourneyID  string        `json:"journey_id"`
	ReferredAt time.Time     `json:"referred_at"`
	ClosedAt   *time.Time    `json:"closed_at,omitempty"`
	Status     events.Status `json:"status"`
	WorkerID   string        `json:"worker_id,omitempty"`
	WorkerName string        `json:"worker_name,omitempty"`
	// ClosedReason says how it ended.
	ClosedReason string `json:"closed_reason,omitempty"`
}

// TimelineEntry is one event, summarised. Summary never holds the person's
// words; Detail does (a handover note, a reopening's reason) and goes with
// the person's data on erasure.
type TimelineEntry struct {
	Type    string    `json:"type"`
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	Summary string    `json:"summary"`
	Detail  string    `json:"detail,omitempty"`
}

// The detail's stored parts: what a journey's item keys hold. Free text
// and the person's data are kept under the personal prefix instead.

// referralItem is the referral as the team sees it, without the person.
type referralItem struct {
	Source            string    `json:"source,omitempty"`
	Referrer          string    `json:"referrer,omitempty"`
	SourceID          string    `json:"source_id,omitempty"`
	Urgency           string    `json:"urgency,omitempty"`
	ContactPreference string    `json:"contact_preference,omitempty"`
	Reasons           []string  `json:"reasons,omitempty"`
	At                time.Time `json:"at"`
}

// personalReferral is the person and the referrer's words.
type personalReferral struct {
	Person      *Person `json:"person,omitempty"`
	Notes       string  `json:"notes,omitempty"`
	WhatMatters string  `json:"what_matters,omitempty"`
}

// Item kinds of a journey's detail (the <kind> of j/<journey>/<kind>/<id>).
const (
	kindReferral   = "referral"
	kindTimeline   = "t"
	kindContact    = "c"
	kindAssessment = "assessment"
	kindGoal       = "g"
	kindMeasure    = "m"
	kindOnward     = "o"
	kindSignpost   = "s"
	kindFollowUp   = "f"
	kindNote       = "n"
	kindRisk       = "k"
	kindClosure    = "closure"
	kindPerson     = "person"
)

// seqID names an item by its event's stream sequence, so items sort in log order.
func seqID(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// readJourney assembles a journey's view from its row and its detail, as
// of today (which decides the follow-ups' state).
func readJourney(v *viewstore.View, row caseRow, today time.Time) (*JourneyView, error) {
	out := &JourneyView{JourneyID: row.JourneyID, Status: row.Status, Team: row.Team, ReferredAt: row.ReferredAt,
		Reasons: []string{}, Contacts: []Contact{}, Goals: []GoalView{}, Measures: []MeasureResult{}, Change: []MeasureChange{},
		Onward: []OnwardView{}, Signposts: []SignpostView{}, FollowUps: []FollowUpView{}, CaseNotes: []CaseNote{},
		Risks: []RiskView{}, History: []HistoryItem{}, Timeline: []TimelineEntry{},
		ConsentVCS: row.Consent.ShareWithVCS, FailedAttempts: row.FailedAttempts, FlaggedUncontactable: row.Flagged,
		LastContactAt: row.LastContactAt, Connection: row.Connection, Reopenings: row.Reopenings, Erased: row.Erased,
		Version: row.Version, SuggestedWorker: row.Suggested.WorkerID, SuggestedWorkerName: row.Suggested.WorkerName}
	c := row.Consent
	out.Consent = &ConsentView{ShareWithVCS: c.ShareWithVCS, ByPerson: c.ByPerson, Method: c.Method, At: c.At}
	if row.WorkerID != "" {
		out.Worker = &Worker{ID: row.WorkerID, Name: row.WorkerName, AssignedAt: deref(row.AssignedAt)}
	}
	if row.ClosedAt != nil {
		out.Closure = &Closure{Reason: row.ClosedReason, At: *row.ClosedAt}
	}
	personal := map[string]string{} // kind/id -> the person's words
	var person personalReferral
	var assessment *Assessment
	var timelineIDs []string
	err := v.ForEach(detailPrefix(row.JourneyID), func(key string, value []byte) error {
		rest := strings.TrimPrefix(key, detailPrefix(row.JourneyID))
		kind, id, _ := strings.Cut(rest, "/")
		if kind == "p" {
			if rest == "p/"+kindPerson+"/" {
				return json.Unmarshal(value, &person)
			}
			personal[strings.TrimPrefix(rest, "p/")] = string(value)
			return nil
		}
		var err error
		switch kind {
		case kindReferral:
			var r referralItem
			if err = json.Unmarshal(value, &r); err == nil {
				out.Source, out.Referrer, out.SourceID, out.Urgency = r.Source, r.Referrer, r.SourceID, r.Urgency
				out.ContactPreference = r.ContactPreference
				out.Reasons = append(out.Reasons, r.Reasons...)
			}
		case kindTimeline:
			err = appendJSON(&out.Timeline, value)
			timelineIDs = append(timelineIDs, id)
		case kindContact:
			err = appendJSON(&out.Contacts, value)
		case kindAssessment:
			assessment = &Assessment{}
			err = json.Unmarshal(value, assessment)
		case kindGoal:
			err = appendJSON(&out.Goals, value)
		case kindMeasure:
			err = appendJSON(&out.Measures, value)
		case kindOnward:
			err = appendJSON(&out.Onward, value)
		case kindSignpost:
			err = appendJSON(&out.Signposts, value)
		case kindFollowUp:
			err = appendJSON(&out.FollowUps, value)
		case kindNote:
			err = appendJSON(&out.CaseNotes, value)
		case kindRisk:
			err = appendJSON(&out.Risks, value)
		}
		if err != nil {
			return fmt.Errorf("journey %s item %s: %w", row.JourneyID, rest, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Person, out.Notes, out.WhatMatters = person.Person, person.Notes, person.WhatMatters
	if assessment != nil {
		assessment.WhatMatters = personal[kindAssessment+"/"]
		out.Assessment = assessment
	}
	for i := range out.Timeline {
		out.Timeline[i].Detail = personal[kindTimeline+"/"+timelineIDs[i]]
	}
	for i := range out.Goals {
		out.Goals[i].Text = cmp.Or(personal[kindGoal+"/"+part(out.Goals[i].GoalID)], erasedText(row.Erased))
	}
	for i := range out.Onward {
		out.Onward[i].Detail = personal[kindOnward+"/"+part(out.Onward[i].OnwardReferralID)]
	}
	for i := range out.Signposts {
		out.Signposts[i].Description = personal[kindSignpost+"/"+part(out.Signposts[i].SignpostID)]
	}
	for i := range out.CaseNotes {
		out.CaseNotes[i].Text = personal[kindNote+"/"+part(out.CaseNotes[i].NoteID)]
	}
	for i := range out.Risks {
		out.Risks[i].Detail = personal[kindRisk+"/"+part(out.Risks[i].RiskID)]
	}
	if out.Closure != nil {
		out.Closure.Detail = personal[kindClosure+"/"]
	}
	// Items keyed by their own ids are put in the order they happened.
	byTime := func(a, b time.Time) int { return a.Compare(b) }
	slices.SortStableFunc(out.Goals, func(a, b GoalView) int { return byTime(a.SetAt, b.SetAt) })
	slices.SortStableFunc(out.Onward, func(a, b OnwardView) int { return byTime(a.SentAt, b.SentAt) })
	slices.SortStableFunc(out.Signposts, func(a, b SignpostView) int { return byTime(a.At, b.At) })
	slices.SortStableFunc(out.CaseNotes, func(a, b CaseNote) int { return byTime(a.At, b.At) })
	slices.SortStableFunc(out.Risks, func(a, b RiskView) int { return byTime(a.At, b.At) })
	slices.SortStableFunc(out.FollowUps, func(a, b FollowUpView) int {
		return cmp.Or(strings.Compare(a.Due, b.Due), strings.Compare(a.FollowUpID, b.FollowUpID))
	})
	for i := range out.FollowUps {
		out.FollowUps[i].State = followUpState(out.FollowUps[i].Due, out.FollowUps[i].Done, today)
	}
	out.Change = pairMeasures(out.Measures)
	return out, nil
}

func erasedText(erased bool) string {
	if erased {
		return "(erased)"
	}
	return ""
}

func appendJSON[T any](list *[]T, value []byte) error {
	var v T
	if err := json.Unmarshal(value, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// dueSoon is how far ahead a follow-up counts as due.
const dueSoon = 7

// followUpState: done; overdue (due date passed); due (within a week);
// scheduled (later). today is a day in England (events.UKDate).
func followUpState(due string, done bool, today time.Time) string {
	if done {
		return "done"
	}
	d, err := time.Parse(time.DateOnly, due)
	switch {
	case err != nil:
		return "scheduled"
	case d.Before(today):
		return "overdue"
	case !d.After(today.AddDate(0, 0, dueSoon)):
		return "due"
	}
	return "scheduled"
}

// scoredResult is a recorded measure as the API reports it.
func scoredResult(m *eventsv1.WellbeingMeasured, at time.Time) MeasureResult {
	r := MeasureResult{MeasureID: m.GetMeasureId(), Instrument: m.GetInstrument(), Version: m.GetInstrumentVersion(),
		Timepoint: m.GetTimepoint(), At: at, Answers: append([]int32{}, m.GetAnswers()...),
		RawScore: m.GetRawScore(), Score: m.GetScore(), FollowUpID: m.GetFollowUpId()}
	if r.Instrument == "ONS4" {
		for i, a := range r.Answers {
			if i < len(events.ONS4Items) {
				r.Items = append(r.Items, ONS4Item{Item: events.ONS4Items[i], Answer: a, Band: events.ONS4Band(i, a)})
			}
		}
	}
	return r
}

func scoreText(m MeasureResult) string {
	if m.Instrument == "ONS4" {
		parts := make([]string, 0, len(m.Items))
		for _, it := range m.Items {
			parts = append(parts, fmt.Sprintf("%s %d (%s)", strings.ReplaceAll(it.Item, "_", " "), it.Answer, strings.ReplaceAll(it.Band, "_", " ")))
		}
		return strings.Join(parts, ", ")
	}
	if m.Instrument == "SWEMWBS" {
		return fmt.Sprintf("raw %d, metric %.2f", m.RawScore, m.Score)
	}
	return fmt.Sprintf("score %d", m.RawScore)
}

// lowerIsBetter: loneliness, and ONS4's anxiety item.
func lowerIsBetter(instrument string) bool { return instrument == "UCLA3" }

func direction(change float64, lowerBetter bool) string {
	switch {
	case change == 0:
		return "same"
	case (change > 0) != lowerBetter:
		return "better"
	}
	return "worse"
}

// pairMeasures pairs, per instrument, the first baseline with the latest
// follow-up after it, so change can be reported. An instrument measured
// only at follow-up has no baseline to compare with and is left out.
func pairMeasures(ms []MeasureResult) []MeasureChange {
	out := []MeasureChange{}
	for _, name := range events.Instruments {
		var base, follow *MeasureResult
		for i := range ms {
			m := &ms[i]
			if m.Instrument != name {
				continue
			}
			switch {
			case m.Timepoint == "baseline" && base == nil:
				base = m
			case m.Timepoint == "follow_up" && base != nil:
				follow = m
			}
		}
		if base == nil {
			continue
		}
		c := MeasureChange{Instrument: name, BaselineID: base.MeasureID}
		if name != "ONS4" {
			b := base.Score
			c.Baseline = &b
		}
		if follow != nil {
			c.FollowUpID = follow.MeasureID
			if name == "ONS4" {
				for i := range min(len(base.Answers), len(follow.Answers), len(events.ONS4Items)) {
					d := follow.Answers[i] - base.Answers[i]
					c.Items = append(c.Items, ItemChange{Item: events.ONS4Items[i], Baseline: base.Answers[i],
						FollowUp: follow.Answers[i], Change: d, Direction: direction(float64(d), i == 3)})
				}
			} else {
				f := follow.Score
				d := math.Round((f-base.Score)*100) / 100
				c.FollowUp, c.Change, c.Direction = &f, &d, direction(d, lowerIsBetter(name))
			}
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b MeasureChange) int { return strings.Compare(a.Instrument, b.Instrument) })
	return out
}
