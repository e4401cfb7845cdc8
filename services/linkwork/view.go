package linkwork

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// JourneyView is the team's full record of one journey: everything the link
// worker needs to carry the case, folded from the journey's history. It is
// built from the log itself (not the caseload view), so a write can answer
// with the journey as it is right after the change.
type JourneyView struct {
	JourneyID     string        `json:"journey_id"`
	Status        events.Status `json:"status"`
	Team          string        `json:"link_work_team"`
	ReferredAt    time.Time     `json:"referred_at"`
	Source        string        `json:"source,omitempty"`
	Referrer      string        `json:"referrer_organisation_id,omitempty"`
	SourceID      string        `json:"source_id,omitempty"`
	Urgency       string        `json:"urgency,omitempty"`
	Person        *Person       `json:"person,omitempty"`
	Reasons       []string      `json:"reasons"`
	Notes         string        `json:"notes,omitempty"`
	ConsentVCS    bool          `json:"consent_share_with_vcs"`
	Worker        *Worker       `json:"link_worker,omitempty"`
	Contacts      []Contact     `json:"contacts"`
	LastContactAt *time.Time    `json:"last_contact_at,omitempty"`
	// FailedAttempts counts attempts since the person was last reached.
	FailedAttempts int `json:"failed_attempts"`
	// FlaggedUncontactable: the team's policy says this journey should be
	// considered for closure as uncontactable. It is never closed for them.
	FlaggedUncontactable bool              `json:"flagged_uncontactable"`
	Assessment           *Assessment       `json:"assessment,omitempty"`
	Goals                []GoalView        `json:"goals"`
	Measures             []MeasureResult   `json:"measures"`
	Change               []MeasureChange   `json:"measure_change"`
	Onward               []OnwardView      `json:"onward_referrals"`
	FollowUps            []FollowUpView    `json:"follow_ups"`
	Closure              *Closure          `json:"closure,omitempty"`
	Reopenings           int               `json:"reopenings"`
	Erased               bool              `json:"personal_data_erased,omitempty"`
	Timeline             []TimelineEntry   `json:"timeline"`
	Version              int               `json:"version"`
	goalIndex            map[string]int    // goal id -> index in Goals
	onwardIndex          map[string]int    // onward id -> index in Onward
	followIndex          map[string]int    // follow-up id -> index in FollowUps
	measureIndex         map[string]string // follow-up id -> measure id
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

// Assessment is the latest "what matters to you" conversation.
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

// FollowUpView is one scheduled follow-up.
type FollowUpView struct {
	FollowUpID  string     `json:"follow_up_id"`
	Due         string     `json:"due"`
	Done        bool       `json:"done"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	MeasureID   string     `json:"measure_id,omitempty"`
	// State is due, overdue or scheduled for open ones, done otherwise.
	State string `json:"state"`
}

// Closure says how the journey ended (most recently).
type Closure struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// TimelineEntry is one event, summarised.
type TimelineEntry struct {
	Type    string    `json:"type"`
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	Summary string    `json:"summary"`
}

// buildView folds a journey's history into the team's view. now decides
// which follow-ups are due; policy decides the uncontactable flag.
func buildView(state events.State, history []journal.Recorded, now time.Time, policy events.UncontactablePolicy) *JourneyView {
	v := &JourneyView{
		JourneyID: state.JourneyID, Status: state.Status(), Version: state.Version,
		Reasons: []string{}, Contacts: []Contact{}, Goals: []GoalView{}, Measures: []MeasureResult{},
		Change: []MeasureChange{}, Onward: []OnwardView{}, FollowUps: []FollowUpView{}, Timeline: []TimelineEntry{},
		goalIndex: map[string]int{}, onwardIndex: map[string]int{}, followIndex: map[string]int{}, measureIndex: map[string]string{},
	}
	for _, rec := range history {
		v.apply(rec.Event)
	}
	v.FailedAttempts = len(state.FailedAttempts)
	v.FlaggedUncontactable = state.FlaggedUncontactable(policy)
	v.Change = pairMeasures(v.Measures)
	today := dateOf(now)
	for i := range v.FollowUps {
		v.FollowUps[i].State = followUpState(v.FollowUps[i].Due, v.FollowUps[i].Done, today)
	}
	if state.Erased {
		v.eraseView()
	}
	return v
}

// dueSoon is how far ahead a follow-up counts as due.
const dueSoon = 7 * 24 * time.Hour

// followUpState: done; overdue (due date passed); due (within a week);
// scheduled (later).
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
	case !d.After(today.Add(dueSoon)):
		return "due"
	}
	return "scheduled"
}

func dateOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (v *JourneyView) apply(env *eventsv1.Envelope) {
	at := env.GetOccurredAt().AsTime().UTC()
	entry := TimelineEntry{Type: events.ShortName(env), At: at, By: env.GetActor().GetOrganisationId()}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		r := e.ReferralReceived
		if v.Person != nil {
			return // only the first referral counts (Evolve does the same)
		}
		v.Team, v.ReferredAt = r.GetLinkWorkTeam(), at
		v.Source, v.Referrer, v.SourceID, v.Urgency = r.GetSource(), r.GetReferrerOrganisationId(), r.GetSourceId(), r.GetUrgency()
		p := r.GetPerson()
		v.Person = &Person{NHSNumber: p.GetNhsNumber(), GivenName: p.GetGivenName(), FamilyName: p.GetFamilyName(),
			BirthDate: p.GetBirthDate(), Sex: r.GetSex(), Postcode: p.GetPostcode(), Phone: p.GetPhone(), Email: p.GetEmail()}
		v.Reasons = append([]string{}, r.GetReasons()...)
		v.Notes = r.GetNotes().GetText()
		v.ConsentVCS = r.GetConsent().GetShareWithVcs()
		entry.Summary = fmt.Sprintf("referred by %s (%s urgency) for %d reason(s)", cmp.Or(r.GetReferrerOrganisationId(), r.GetSource()), cmp.Or(r.GetUrgency(), "routine"), len(r.GetReasons()))
	case *eventsv1.Envelope_LinkWorkerAssigned:
		a := e.LinkWorkerAssigned
		v.Worker = &Worker{ID: a.GetWorkerId(), Name: a.GetWorkerName(), AssignedAt: at}
		entry.Summary = "assigned to " + a.GetWorkerName()
	case *eventsv1.Envelope_ContactAttempted:
		c := e.ContactAttempted
		v.Contacts = append(v.Contacts, Contact{At: at, Outcome: c.GetOutcome(), Method: c.GetMethod()})
		entry.Summary = "contact attempt by " + cmp.Or(c.GetMethod(), "unknown method") + ": " + strings.ReplaceAll(c.GetOutcome(), "_", " ")
	case *eventsv1.Envelope_ContactMade:
		c := e.ContactMade
		v.Contacts = append(v.Contacts, Contact{At: at, Outcome: "reached", Method: c.GetMethod()})
		v.LastContactAt = &at
		entry.Summary = "reached by " + cmp.Or(c.GetMethod(), "unknown method")
	case *eventsv1.Envelope_NeedsAssessed:
		n := e.NeedsAssessed
		v.Assessment = &Assessment{At: at, WhatMatters: n.GetWhatMatters().GetText(),
			Needs: append([]string{}, n.GetNeeds()...), Barriers: append([]string{}, n.GetBarriers()...)}
		for _, g := range n.GetGoals() {
			v.goalIndex[g.GetGoalId()] = len(v.Goals)
			v.Goals = append(v.Goals, GoalView{GoalID: g.GetGoalId(), Text: g.GetText().GetText(),
				Status: cmp.Or(g.GetStatus(), "not_started"), SetAt: at, UpdatedAt: at})
		}
		entry.Summary = fmt.Sprintf("assessed: %d need(s), %d goal(s), %d barrier(s)", len(n.GetNeeds()), len(n.GetGoals()), len(n.GetBarriers()))
	case *eventsv1.Envelope_GoalUpdated:
		g := e.GoalUpdated
		if i, ok := v.goalIndex[g.GetGoalId()]; ok {
			v.Goals[i].Status, v.Goals[i].UpdatedAt = g.GetStatus(), at
			entry.Summary = fmt.Sprintf("goal %q now %s", v.Goals[i].Text, strings.ReplaceAll(g.GetStatus(), "_", " "))
		}
	case *eventsv1.Envelope_WellbeingMeasured:
		m := scoredResult(e.WellbeingMeasured, at)
		v.Measures = append(v.Measures, m)
		if id := m.FollowUpID; id != "" {
			v.completeFollowUp(id, at, m.MeasureID)
		}
		entry.Summary = fmt.Sprintf("%s %s: %s", m.Instrument, strings.ReplaceAll(m.Timepoint, "_", "-"), scoreText(m))
	case *eventsv1.Envelope_OnwardReferralMade:
		o := e.OnwardReferralMade
		v.onwardIndex[o.GetOnwardReferralId()] = len(v.Onward)
		v.Onward = append(v.Onward, OnwardView{OnwardReferralID: o.GetOnwardReferralId(), ServiceID: o.GetServiceId(),
			ServiceName: o.GetServiceName(), OrganisationID: o.GetOrganisationId(), Status: events.OnwardSent,
			Shared: append([]string{}, o.GetShared().GetFields()...), WaitingList: o.GetWaitingList(), SentAt: at, UpdatedAt: at})
		entry.Summary = "referred on to " + cmp.Or(o.GetServiceName(), o.GetServiceId())
		if o.GetWaitingList() {
			entry.Summary += " (waiting list)"
		}
	case *eventsv1.Envelope_OnwardReferralAccepted:
		entry.Summary = v.onwardStep(e.OnwardReferralAccepted.GetOnwardReferralId(), events.OnwardAccepted, at, "", "") + " accepted the referral"
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		entry.Summary = v.onwardStep(d.GetOnwardReferralId(), events.OnwardDeclined, at, d.GetReason(), d.GetDetail().GetText()) +
			" declined the referral: " + strings.ReplaceAll(d.GetReason(), "_", " ")
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		w := e.OnwardReferralWithdrawn
		entry.Summary = "referral to " + v.onwardStep(w.GetOnwardReferralId(), events.OnwardWithdrawn, at, "", w.GetReason().GetText()) + " withdrawn"
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		name := v.onwardName(a.GetOnwardReferralId())
		if i, ok := v.onwardIndex[a.GetOnwardReferralId()]; ok {
			o := &v.Onward[i]
			o.Attendance = append(o.Attendance, Attendance{Date: a.GetDate(), Attended: a.GetAttended()})
			if a.GetAttended() {
				o.Status = events.OnwardAttending
			}
			o.UpdatedAt = at
		}
		if a.GetAttended() {
			entry.Summary = "attended " + name + " on " + a.GetDate()
		} else {
			entry.Summary = "did not attend " + name + " on " + a.GetDate()
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		entry.Summary = "completed " + v.onwardStep(e.OnwardReferralCompleted.GetOnwardReferralId(), events.OnwardCompleted, at, "", "")
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		d := e.OnwardReferralDroppedOut
		entry.Summary = "dropped out of " + v.onwardStep(d.GetOnwardReferralId(), events.OnwardDroppedOut, at, "", d.GetDetail().GetText())
	case *eventsv1.Envelope_FollowUpScheduled:
		f := e.FollowUpScheduled
		v.followIndex[f.GetFollowUpId()] = len(v.FollowUps)
		v.FollowUps = append(v.FollowUps, FollowUpView{FollowUpID: f.GetFollowUpId(), Due: f.GetDue()})
		entry.Summary = "follow-up scheduled for " + f.GetDue()
	case *eventsv1.Envelope_FollowUpCompleted:
		f := e.FollowUpCompleted
		v.completeFollowUp(f.GetFollowUpId(), at, "")
		entry.Summary = "follow-up completed"
	case *eventsv1.Envelope_PatientDeclined:
		v.Closure = &Closure{Reason: "declined", At: at, Detail: e.PatientDeclined.GetDetail().GetText()}
		entry.Summary = "the person declined social prescribing"
	case *eventsv1.Envelope_JourneyClosed:
		v.Closure = &Closure{Reason: e.JourneyClosed.GetReason(), At: at}
		entry.Summary = "closed: " + strings.ReplaceAll(e.JourneyClosed.GetReason(), "_", " ")
	case *eventsv1.Envelope_JourneyReopened:
		v.Closure = nil
		v.Reopenings++
		entry.Summary = "reopened"
		if r := e.JourneyReopened.GetReason().GetText(); r != "" {
			entry.Summary += ": " + r
		}
	case *eventsv1.Envelope_PersonalDataErased:
		entry.Summary = "personal data erased"
	}
	if entry.Summary == "" {
		entry.Summary = strings.ToLower(entry.Type)
	}
	v.Timeline = append(v.Timeline, entry)
}

// onwardStep moves an onward referral on and returns its service's name.
func (v *JourneyView) onwardStep(id string, st events.OnwardStatus, at time.Time, reason, detail string) string {
	i, ok := v.onwardIndex[id]
	if !ok {
		return "an unknown service"
	}
	o := &v.Onward[i]
	o.Status, o.UpdatedAt = st, at
	if reason != "" {
		o.DeclineReason = reason
	}
	if detail != "" {
		o.Detail = detail
	}
	return cmp.Or(o.ServiceName, o.ServiceID)
}

func (v *JourneyView) onwardName(id string) string {
	if i, ok := v.onwardIndex[id]; ok {
		return cmp.Or(v.Onward[i].ServiceName, v.Onward[i].ServiceID)
	}
	return "an unknown service"
}

func (v *JourneyView) completeFollowUp(id string, at time.Time, measureID string) {
	i, ok := v.followIndex[id]
	if !ok {
		return
	}
	f := &v.FollowUps[i]
	if !f.Done {
		f.Done, f.CompletedAt = true, &at
	}
	if measureID != "" {
		f.MeasureID = measureID
	}
}

// eraseView blanks what erasure removed: the person and free text.
func (v *JourneyView) eraseView() {
	v.Erased = true
	v.Person = nil
	v.Notes = ""
	if v.Assessment != nil {
		v.Assessment.WhatMatters = ""
	}
	for i := range v.Goals {
		v.Goals[i].Text = "(erased)"
	}
	for i := range v.Onward {
		v.Onward[i].Detail = ""
	}
	if v.Closure != nil {
		v.Closure.Detail = ""
	}
	for i := range v.Timeline {
		if v.Timeline[i].Type == "GoalUpdated" {
			v.Timeline[i].Summary = "goal updated"
		}
	}
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
