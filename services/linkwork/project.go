package linkwork

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/views"
)

// ProjectionName is the caseload view: each team's journeys, their detail
// and the team's figures (keys.go).
const ProjectionName = "caseload"

// caseRow is what the caseload keeps of a journey at r/<journey>: what
// its lists and figures show, rendered from the folded journey (status,
// flags and counts come from events.State), and the moments only events
// carry (assigned, first reached, opened). A list page reads rows only.
type caseRow struct {
	JourneyID string `json:"journey_id"`
	Team      string `json:"team"`
	// Ref is the person's reference (a keyed hash of the NHS number) that
	// finds their other journeys; dropped on erasure.
	Ref            string            `json:"ref,omitempty"`
	Status         events.Status     `json:"status"`
	Open           bool              `json:"open,omitempty"`
	Waiting        bool              `json:"waiting,omitempty"`
	Name           string            `json:"name,omitempty"`
	Source         string            `json:"source,omitempty"`
	Referrer       string            `json:"referrer,omitempty"`
	Urgency        string            `json:"urgency,omitempty"`
	Urgent         bool              `json:"urgent,omitempty"`
	Reasons        []string          `json:"reasons,omitempty"`
	ReferredAt     time.Time         `json:"referred_at"`
	OpenedAt       time.Time         `json:"opened_at"` // referral or latest reopening
	WorkerID       string            `json:"worker_id,omitempty"`
	WorkerName     string            `json:"worker_name,omitempty"`
	AssignedAt     *time.Time        `json:"assigned_at,omitempty"`
	FirstContactAt *time.Time        `json:"first_contact_at,omitempty"`
	LastContactAt  *time.Time        `json:"last_contact_at,omitempty"`
	FailedAttempts int               `json:"failed_attempts,omitempty"`
	Flagged        bool              `json:"flagged,omitempty"`
	OnwardOpen     int               `json:"onward_open,omitempty"`
	OnwardTaken    int               `json:"onward_taken,omitempty"`
	Connection     events.Connection `json:"connection,omitempty"`
	// FollowUps are the follow-ups still to hold (events.State.FollowUpsToHold).
	FollowUps      []rowFollowUp  `json:"follow_ups,omitempty"`
	ClosedReason   string         `json:"closed_reason,omitempty"`
	ClosedAt       *time.Time     `json:"closed_at,omitempty"`
	Reopenings     int            `json:"reopenings,omitempty"`
	Consent        events.Consent `json:"consent"`
	Notes          int            `json:"notes,omitempty"`
	Risks          int            `json:"risks,omitempty"`
	Escalations    int            `json:"escalations,omitempty"`
	Handovers      int            `json:"handovers,omitempty"`
	Suggested      suggestion     `json:"suggested,omitempty"`
	Erased         bool           `json:"erased,omitempty"`
	Version        int            `json:"version"`
	LastActivityAt time.Time      `json:"last_activity_at"`
}

type rowFollowUp struct {
	ID           string `json:"id"`
	Due          string `json:"due"`
	Timepoint    string `json:"timepoint,omitempty"`
	AfterClosure bool   `json:"after_closure,omitempty"`
}

// suggestion is the worker who last held the person's case with the team.
type suggestion struct {
	WorkerID   string `json:"worker_id,omitempty"`
	WorkerName string `json:"worker_name,omitempty"`
	JourneyID  string `json:"journey_id,omitempty"`
}

// personJourneys is a person's journeys with one team (ppl/<team>/<person>).
type personJourneys struct {
	Journeys []string `json:"journeys"`
}

// suggestWithin: a person the team closed within this long is offered
// their last worker again (continuity through setbacks).
const suggestWithin = 12 // months

// projection renders the caseload view from the folded journeys.
type projection struct {
	policy events.UncontactablePolicy
	// personRef names a person by NHS number (sealing's keyed hash); nil
	// keeps no person index (no history, no suggested worker).
	personRef func(nhsNumber string) string
	// The rows and the teams' and workers' figures as the reader applies
	// the log (views.Records): read and written once a commit, not once an
	// event.
	rows    *views.Records[caseRow]
	teams   *views.Records[figures]
	workers *views.Records[workerFigures]
	// onwards are the journeys' onward referral items (itemKey, kind
	// kindOnward): each answer of the organisation changes one.
	onwards *views.Records[OnwardView]
}

func newProjection(policy events.UncontactablePolicy, personRef func(string) string) projection {
	return projection{policy: policy, personRef: personRef, rows: views.NewRecords[caseRow](views.CachedRecords),
		teams: views.NewRecords[figures](1_000), workers: views.NewRecords[workerFigures](10_000),
		onwards: views.NewRecords[OnwardView](views.CachedRecords)}
}

func (projection) Name() string { return ProjectionName }

// Apply renders one change of a journey (or of a team's supervision log).
func (p projection) Apply(b *views.Batch, c views.Change) error {
	if r := c.Envelope.GetSupervisionRecorded(); r != nil {
		return applySupervision(b, c, r)
	}
	after := c.After
	team := after.Referral.GetLinkWorkTeam()
	if c.JourneyID == "" || !after.Exists() || !events.ValidOrgCode(team) {
		return nil // nothing a team holds
	}
	row, found, err := p.rows.LoadJourney(b, c, rowKey(c.JourneyID))
	if err != nil {
		return err
	}
	old := *row // as it was: its slices are not changed below (FollowUps is cloned)
	row.FollowUps = slices.Clone(old.FollowUps)
	j := &journeyChange{b: b, c: c, onwards: p.onwards, id: c.JourneyID, seq: seqID(c.Seq), at: c.Envelope.GetOccurredAt().AsTime().UTC(),
		by: c.Envelope.GetActor().GetOrganisationId()}
	if j.at.Before(time.Unix(0, 1)) {
		j.at = c.Stored.UTC()
	}
	if !found {
		if err := p.refer(j, row, team); err != nil {
			return err
		}
	}
	if err := j.render(row); err != nil {
		return err
	}
	p.sync(row, after, j.at)
	if row.Erased && !(found && old.Erased) {
		// The row is written again after its erasure (views.Records).
		if err := j.erase(row); err != nil {
			return err
		}
	}
	var before *caseRow
	if found {
		before = &old
	}
	return p.reindex(b, before, row)
}

// journeyChange is one event being rendered into a journey's detail.
type journeyChange struct {
	b       *views.Batch
	c       views.Change
	onwards *views.Records[OnwardView]
	id      string
	seq     string
	at      time.Time
	by      string
}

func (j *journeyChange) setItem(kind, id string, v any) error {
	return j.b.SetJSON(itemKey(j.id, kind, id), v)
}

func (j *journeyChange) getItem(kind, id string, v any) (bool, error) {
	return j.b.GetJSON(itemKey(j.id, kind, id), v)
}

// setText keeps the person's words for an item apart (none: deleted).
func (j *journeyChange) setText(kind, id, text string) {
	if strings.TrimSpace(text) == "" {
		j.b.Delete(personalKey(j.id, kind, id))
		return
	}
	j.b.Set(personalKey(j.id, kind, id), []byte(text))
}

// timeline adds the event's entry; detail is the person's words, if any.
func (j *journeyChange) timeline(summary, detail string) error {
	e := TimelineEntry{Type: events.ShortName(j.c.Envelope), At: j.at, By: j.by, Summary: summary}
	if e.Summary == "" {
		e.Summary = strings.ToLower(e.Type)
	}
	if detail != "" {
		j.setText(kindTimeline, j.seq, detail)
	}
	return j.setItem(kindTimeline, j.seq, e)
}

// refer starts a journey's row and detail from its referral.
func (p projection) refer(j *journeyChange, row *caseRow, team string) error {
	s := j.c.After
	r := s.Referral
	*row = caseRow{JourneyID: j.id, Team: team, ReferredAt: cmp.Or(s.ReferredAt.UTC(), j.at), Source: r.GetSource(),
		Referrer: r.GetReferrerOrganisationId(), Urgency: r.GetUrgency(), Reasons: slices.Clone(r.GetReasons())}
	row.OpenedAt = row.ReferredAt
	pd := r.GetPerson()
	row.Name = strings.TrimSpace(pd.GetGivenName() + " " + pd.GetFamilyName())
	if err := j.setItem(kindReferral, "", referralItem{Source: r.GetSource(), Referrer: r.GetReferrerOrganisationId(),
		SourceID: r.GetSourceId(), Urgency: r.GetUrgency(), ContactPreference: r.GetContactPreference(),
		Reasons: r.GetReasons(), At: row.ReferredAt}); err != nil {
		return err
	}
	person := personalReferral{Notes: r.GetNotes().GetText(), WhatMatters: r.GetWhatMatters().GetText()}
	// A referral replayed after erasure opens to nothing: no person (its
	// sex, kept plain on the log, is shown only beside them).
	if pd.GetNhsNumber() != "" || pd.GetGivenName() != "" || pd.GetFamilyName() != "" || pd.GetBirthDate() != "" {
		person.Person = &Person{NHSNumber: pd.GetNhsNumber(), GivenName: pd.GetGivenName(), FamilyName: pd.GetFamilyName(),
			BirthDate: pd.GetBirthDate(), Sex: r.GetSex(), Postcode: pd.GetPostcode(), Phone: pd.GetPhone(),
			Email: pd.GetEmail(), Ethnicity: pd.GetEthnicity()}
	}
	if person != (personalReferral{}) {
		if err := j.b.SetJSON(personalKey(j.id, kindPerson, ""), person); err != nil {
			return err
		}
	}
	if p.personRef == nil || pd.GetNhsNumber() == "" {
		return nil
	}
	row.Ref = p.personRef(pd.GetNhsNumber())
	var pj personJourneys
	if _, err := j.b.LookupJSON(personKey(team, row.Ref), &pj); err != nil { // most people are new
		return err
	}
	sug, err := p.suggest(j.b, pj.Journeys, row.ReferredAt)
	if err != nil {
		return err
	}
	row.Suggested = sug
	pj.Journeys = append(pj.Journeys, j.id)
	return j.b.SetJSON(personKey(team, row.Ref), pj)
}

// suggest finds the worker who last held the person's case: on a journey
// still open, or closed within suggestWithin months of the new referral;
// the latest of them.
func (p projection) suggest(b *views.Batch, journeys []string, referred time.Time) (suggestion, error) {
	var best suggestion
	var bestAt time.Time
	since := referred.AddDate(0, -suggestWithin, 0)
	for _, id := range journeys {
		r, ok, err := p.rows.Get(b, rowKey(id))
		if err != nil {
			return suggestion{}, err
		}
		if !ok || r.WorkerID == "" {
			continue
		}
		at := r.LastActivityAt
		if r.ClosedAt != nil {
			if r.ClosedAt.Before(since) {
				continue
			}
			at = *r.ClosedAt
		}
		if best.WorkerID == "" || at.After(bestAt) {
			best, bestAt = suggestion{WorkerID: r.WorkerID, WorkerName: r.WorkerName, JourneyID: id}, at
		}
	}
	return best, nil
}

// sync sets what the row shows of the folded journey: statuses, flags and
// counts are the events package's.
func (p projection) sync(row *caseRow, s events.State, at time.Time) {
	row.Status, row.Open, row.Waiting, row.Urgent = s.Status(), s.Open(), s.Waiting(), s.Urgent
	if s.WorkerID == "" {
		row.AssignedAt = nil // set by the assignment's event (render)
	}
	row.WorkerID, row.WorkerName = s.WorkerID, s.WorkerName
	row.FailedAttempts, row.Flagged = len(s.FailedAttempts), s.FlaggedUncontactable(p.policy)
	row.LastContactAt = nil
	if s.Contacted && !s.LastContact.IsZero() {
		t := s.LastContact.UTC()
		row.LastContactAt = &t
	}
	row.OnwardOpen, row.OnwardTaken = s.OnwardCounts()
	row.Connection = s.Connection()
	row.FollowUps = row.FollowUps[:0]
	for _, f := range s.FollowUpsToHold() {
		row.FollowUps = append(row.FollowUps, rowFollowUp{ID: f.ID, Due: f.Due, Timepoint: f.Timepoint, AfterClosure: f.AfterClosure})
	}
	if len(row.FollowUps) == 0 {
		row.FollowUps = nil
	}
	row.ClosedReason, row.ClosedAt = "", nil
	if s.Closed {
		t := cmp.Or(s.ClosedAt.UTC(), at)
		row.ClosedReason, row.ClosedAt = s.ClosedReason, &t
	}
	row.Consent = s.Consent
	row.Consent.At = row.Consent.At.UTC()
	row.Notes, row.Risks, row.Escalations, row.Handovers = s.Notes, len(s.Risks), s.Escalations(), s.Handovers
	row.Erased = s.Erased
	row.Version, row.LastActivityAt = s.Version, at
}

// render writes what one event adds to the journey's detail.
func (j *journeyChange) render(row *caseRow) error {
	after := j.c.After
	switch e := j.c.Envelope.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		if j.c.Before.Exists() {
			return nil // only the first referral counts (as Evolve)
		}
		r := e.ReferralReceived
		return j.timeline(fmt.Sprintf("referred by %s (%s urgency) for %d reason(s)", cmp.Or(r.GetReferrerOrganisationId(), r.GetSource()),
			cmp.Or(r.GetUrgency(), events.UrgencyRoutine), len(r.GetReasons())), "")
	case *eventsv1.Envelope_LinkWorkerAssigned:
		a := e.LinkWorkerAssigned
		if a.GetWorkerId() != j.c.Before.WorkerID || row.AssignedAt == nil {
			t := j.at
			row.AssignedAt = &t
		}
		if prev := a.GetPreviousWorkerId(); prev != "" {
			return j.timeline(fmt.Sprintf("handover from %s to %s", cmp.Or(a.GetPreviousWorkerName(), prev), a.GetWorkerName()),
				a.GetHandoverNote().GetText())
		}
		return j.timeline("assigned to "+a.GetWorkerName(), "")
	case *eventsv1.Envelope_ContactAttempted:
		c := e.ContactAttempted
		if err := j.setItem(kindContact, j.seq, Contact{At: j.at, Outcome: c.GetOutcome(), Method: c.GetMethod()}); err != nil {
			return err
		}
		return j.timeline("contact attempt by "+cmp.Or(c.GetMethod(), "unknown method")+": "+human(c.GetOutcome()), "")
	case *eventsv1.Envelope_ContactMade:
		c := e.ContactMade
		if row.FirstContactAt == nil {
			t := j.at
			row.FirstContactAt = &t
		}
		if err := j.setItem(kindContact, j.seq, Contact{At: j.at, Outcome: "reached", Method: c.GetMethod()}); err != nil {
			return err
		}
		return j.timeline("reached by "+cmp.Or(c.GetMethod(), "unknown method"), "")
	case *eventsv1.Envelope_NeedsAssessed:
		return j.assessed(e.NeedsAssessed)
	case *eventsv1.Envelope_GoalUpdated:
		g := e.GoalUpdated
		var goal GoalView
		ok, err := j.getItem(kindGoal, g.GetGoalId(), &goal)
		if err != nil || !ok {
			return err
		}
		goal.Status, goal.UpdatedAt = g.GetStatus(), j.at
		if err := j.setItem(kindGoal, g.GetGoalId(), goal); err != nil {
			return err
		}
		return j.timeline("goal updated: "+human(g.GetStatus()), "")
	case *eventsv1.Envelope_WellbeingMeasured:
		m := scoredResult(e.WellbeingMeasured, j.at)
		if err := j.setItem(kindMeasure, j.seq, m); err != nil {
			return err
		}
		if m.FollowUpID != "" {
			if err := j.followUpDone(m.FollowUpID, m.MeasureID); err != nil {
				return err
			}
		}
		return j.timeline(fmt.Sprintf("%s %s: %s", m.Instrument, strings.ReplaceAll(m.Timepoint, "_", "-"), scoreText(m)), "")
	case *eventsv1.Envelope_OnwardReferralMade:
		o := e.OnwardReferralMade
		v := OnwardView{OnwardReferralID: o.GetOnwardReferralId(), ServiceID: o.GetServiceId(), ServiceName: o.GetServiceName(),
			OrganisationID: o.GetOrganisationId(), Status: events.OnwardSent, Shared: slices.Clone(o.GetShared().GetFields()),
			WaitingList: o.GetWaitingList(), SentAt: j.at, UpdatedAt: j.at}
		if v.Shared == nil {
			v.Shared = []string{}
		}
		if st, ok := after.OnwardByID(v.OnwardReferralID); ok {
			v.Status = st.Status
		}
		j.onwards.Put(j.b, itemKey(j.id, kindOnward, v.OnwardReferralID), &v)
		summary := "referred on to " + cmp.Or(o.GetServiceName(), o.GetServiceId())
		if o.GetWaitingList() {
			summary += " (waiting list)"
		}
		return j.timeline(summary, "")
	case *eventsv1.Envelope_OnwardReferralAccepted:
		name, err := j.onwardStep(e.OnwardReferralAccepted.GetOnwardReferralId(), "", "", nil)
		if err != nil {
			return err
		}
		return j.timeline(name+" accepted the referral", "")
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		name, err := j.onwardStep(d.GetOnwardReferralId(), d.GetReason(), d.GetDetail().GetText(), nil)
		if err != nil {
			return err
		}
		return j.timeline(name+" declined the referral: "+human(d.GetReason()), "")
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		w := e.OnwardReferralWithdrawn
		name, err := j.onwardStep(w.GetOnwardReferralId(), "", w.GetReason().GetText(), nil)
		if err != nil {
			return err
		}
		return j.timeline("referral to "+name+" withdrawn", "")
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		name, err := j.onwardStep(a.GetOnwardReferralId(), "", "", &Attendance{Date: a.GetDate(), Attended: a.GetAttended()})
		if err != nil {
			return err
		}
		if a.GetAttended() {
			return j.timeline("attended "+name+" on "+a.GetDate(), "")
		}
		return j.timeline("did not attend "+name+" on "+a.GetDate(), "")
	case *eventsv1.Envelope_OnwardReferralCompleted:
		name, err := j.onwardStep(e.OnwardReferralCompleted.GetOnwardReferralId(), "", "", nil)
		if err != nil {
			return err
		}
		return j.timeline("completed "+name, "")
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		d := e.OnwardReferralDroppedOut
		name, err := j.onwardStep(d.GetOnwardReferralId(), "", d.GetDetail().GetText(), nil)
		if err != nil {
			return err
		}
		return j.timeline("dropped out of "+name, "")
	case *eventsv1.Envelope_FollowUpScheduled:
		f := e.FollowUpScheduled
		v := FollowUpView{FollowUpID: f.GetFollowUpId(), Due: f.GetDue(), Timepoint: f.GetTimepoint(), AfterClosure: f.GetAfterClosure()}
		if err := j.setItem(kindFollowUp, v.FollowUpID, v); err != nil {
			return err
		}
		what := "follow-up"
		if v.AfterClosure {
			what = "check-in after closure"
		}
		summary := what + " scheduled for " + v.Due
		if v.Timepoint != "" {
			summary += " (" + human(v.Timepoint) + ")"
		}
		return j.timeline(summary, "")
	case *eventsv1.Envelope_FollowUpCompleted:
		f := e.FollowUpCompleted
		if err := j.followUpDone(f.GetFollowUpId(), f.GetMeasureId()); err != nil {
			return err
		}
		return j.timeline("follow-up completed", "")
	case *eventsv1.Envelope_PatientDeclined:
		j.setText(kindClosure, "", e.PatientDeclined.GetDetail().GetText())
		return j.timeline("the person declined social prescribing", "")
	case *eventsv1.Envelope_JourneyClosed:
		j.setText(kindClosure, "", "")
		return j.timeline("closed: "+human(e.JourneyClosed.GetReason()), "")
	case *eventsv1.Envelope_JourneyReopened:
		row.Reopenings++
		row.OpenedAt = j.at
		j.setText(kindClosure, "", "")
		return j.timeline("reopened", e.JourneyReopened.GetReason().GetText())
	case *eventsv1.Envelope_ConsentRecorded:
		c := e.ConsentRecorded
		choice := "not to share their details with VCS organisations"
		if c.GetShareWithVcs() {
			choice = "to share their details with VCS organisations"
		}
		return j.timeline("the person chose "+choice+" ("+c.GetMethod()+")", "")
	case *eventsv1.Envelope_Signposted:
		s := e.Signposted
		v := SignpostView{SignpostID: s.GetSignpostId(), ServiceID: s.GetServiceId(), ServiceName: s.GetServiceName(),
			OrganisationID: s.GetOrganisationId(), At: j.at}
		if err := j.setItem(kindSignpost, v.SignpostID, v); err != nil {
			return err
		}
		j.setText(kindSignpost, v.SignpostID, s.GetDescription().GetText())
		if v.ServiceID == "" {
			return j.timeline("signposted elsewhere", "")
		}
		return j.timeline("signposted to "+cmp.Or(v.ServiceName, v.ServiceID), "")
	case *eventsv1.Envelope_CaseNoteAdded:
		n := e.CaseNoteAdded
		if err := j.setItem(kindNote, n.GetNoteId(), CaseNote{NoteID: n.GetNoteId(), At: j.at, By: j.by}); err != nil {
			return err
		}
		j.setText(kindNote, n.GetNoteId(), n.GetText().GetText())
		return j.timeline("case note added", "")
	case *eventsv1.Envelope_RiskRecorded:
		r := e.RiskRecorded
		if err := j.setItem(kindRisk, r.GetRiskId(), RiskView{RiskID: r.GetRiskId(), Kind: r.GetKind(),
			EscalatedToGP: r.GetEscalateToGp(), At: j.at, By: j.by}); err != nil {
			return err
		}
		j.setText(kindRisk, r.GetRiskId(), r.GetDetail().GetText())
		summary := "risk recorded: " + human(r.GetKind())
		if r.GetEscalateToGp() {
			summary += "; escalated to the GP"
		}
		return j.timeline(summary, "")
	case *eventsv1.Envelope_FeedbackGiven:
		f := e.FeedbackGiven
		return j.timeline(fmt.Sprintf("feedback on %s from the %s: %d of 5", f.GetServiceId(), f.GetFrom(), f.GetRating()), "")
	case *eventsv1.Envelope_PersonalDataErased:
		return j.timeline("personal data erased", "")
	}
	return j.timeline("", "")
}

// assessed records an assessment: needs and barriers in the one taxonomy
// (as events places them), goals, and the person's words apart.
func (j *journeyChange) assessed(n *eventsv1.NeedsAssessed) error {
	a := Assessment{At: j.at, Needs: slices.Clone(j.c.After.Needs), Barriers: []string{}}
	if a.Needs == nil {
		a.Needs = []string{}
	}
	for _, b := range n.GetBarriers() {
		if k, ok := events.PlaceBarrier(b); ok && !slices.Contains(a.Barriers, k) {
			a.Barriers = append(a.Barriers, k)
		}
	}
	if err := j.setItem(kindAssessment, "", a); err != nil {
		return err
	}
	j.setText(kindAssessment, "", n.GetWhatMatters().GetText())
	for _, g := range n.GetGoals() {
		v := GoalView{GoalID: g.GetGoalId(), Status: cmp.Or(g.GetStatus(), "not_started"), SetAt: j.at, UpdatedAt: j.at}
		if err := j.setItem(kindGoal, v.GoalID, v); err != nil {
			return err
		}
		j.setText(kindGoal, v.GoalID, g.GetText().GetText())
	}
	return j.timeline(fmt.Sprintf("assessed: %d need(s), %d goal(s), %d barrier(s)", len(a.Needs), len(n.GetGoals()), len(a.Barriers)), "")
}

// onwardStep brings an onward referral's entry up to the folded state and
// returns its service's name.
func (j *journeyChange) onwardStep(id, reason, detail string, attended *Attendance) (string, error) {
	o, ok, err := j.onwards.Edit(j.b, itemKey(j.id, kindOnward, id))
	if err != nil {
		return "", err
	}
	if !ok {
		return "an unknown service", nil
	}
	if st, found := j.c.After.OnwardByID(id); found {
		o.Status = st.Status
	}
	o.UpdatedAt = j.at
	if reason != "" {
		o.DeclineReason = reason
	}
	if attended != nil {
		o.Attendance = append(o.Attendance, *attended)
	}
	if detail != "" {
		j.setText(kindOnward, id, detail)
	}
	return cmp.Or(o.ServiceName, o.ServiceID), nil
}

// followUpDone marks a follow-up held, as the folded journey has it.
func (j *journeyChange) followUpDone(id, measureID string) error {
	var f FollowUpView
	ok, err := j.getItem(kindFollowUp, id, &f)
	if err != nil || !ok {
		return err
	}
	i := slices.IndexFunc(j.c.After.FollowUps, func(x events.FollowUp) bool { return x.ID == id })
	if i >= 0 && j.c.After.FollowUps[i].Done && !f.Done {
		t := j.at
		f.Done, f.CompletedAt = true, &t
	}
	if measureID != "" {
		f.MeasureID = measureID
	}
	return j.setItem(kindFollowUp, id, f)
}

// erase drops the person's data from the journey's detail and row, and the
// journey from the person's index, with erasure's compaction: once the
// batch commits, their bytes have left the store's files.
func (j *journeyChange) erase(row *caseRow) error {
	j.b.Erase(personalPrefix(j.id))
	j.b.Erase(rowKey(j.id))
	row.Name = ""
	if row.Ref == "" {
		return nil
	}
	key := personKey(row.Team, row.Ref)
	var pj personJourneys
	if _, err := j.b.GetJSON(key, &pj); err != nil {
		return err
	}
	pj.Journeys = slices.DeleteFunc(pj.Journeys, func(id string) bool { return id == j.id })
	j.b.Erase(key)
	row.Ref = ""
	if len(pj.Journeys) == 0 {
		return nil
	}
	return j.b.SetJSON(key, pj)
}

// applySupervision folds a supervision session into its worker's log.
func applySupervision(b *views.Batch, c views.Change, r *eventsv1.SupervisionRecorded) error {
	team, ok := events.TeamFromSupervisionSubject(c.Subject)
	if !ok || r.GetTeam() != team || r.GetWorkerId() == "" {
		return nil
	}
	key := supervisionKey(team, r.GetWorkerId())
	var t events.TeamSupervision
	if _, err := b.GetJSON(key, &t); err != nil {
		return err
	}
	return b.SetJSON(key, t.Evolve(c.Envelope))
}

func human(s string) string { return strings.ReplaceAll(s, "_", " ") }

// ---- indexes and figures ------------------------------------------------------

// rowKeys are the list and figure keys a row stands in, with their values.
func rowKeys(r *caseRow) map[string]string {
	out := map[string]string{}
	if r == nil {
		return out
	}
	ord := order(r.Urgent, r.ReferredAt, r.JourneyID)
	filters := []string{"all", string(r.Status)}
	if r.Open {
		filters = append(filters, "open")
	}
	for _, f := range filters {
		out[listPrefix(r.Team, f)+ord] = ""
		if r.WorkerID != "" {
			out[workerListPrefix(r.Team, r.WorkerID, f)+ord] = ""
		}
	}
	for _, f := range r.FollowUps {
		out[duePrefix(r.Team)+f.Due+"/"+r.JourneyID+"/"+part(f.ID)] = ""
	}
	if r.ClosedAt != nil {
		out[closedPrefix(r.Team)+newestFirst(day(*r.ClosedAt))+"/"+r.JourneyID] = r.WorkerID
	}
	out[openedPrefix(r.Team)+newestFirst(day(r.OpenedAt))+"/"+r.JourneyID] = ""
	if r.AssignedAt != nil && r.WorkerID != "" {
		out[assignedPrefix(r.Team)+newestFirst(day(*r.AssignedAt))+"/"+r.JourneyID] = r.WorkerID
	}
	return out
}

// sameKeys reports whether two rows stand in the same keys (rowKeys),
// without building them: most events (a contact, a measure) move none.
func sameKeys(a, b *caseRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Team == b.Team && a.Status == b.Status && a.Open == b.Open && a.WorkerID == b.WorkerID && a.Urgent == b.Urgent &&
		a.ReferredAt.Equal(b.ReferredAt) && a.OpenedAt.Equal(b.OpenedAt) && sameTime(a.ClosedAt, b.ClosedAt) &&
		sameTime(a.AssignedAt, b.AssignedAt) && slices.Equal(a.FollowUps, b.FollowUps)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// figures are what an open journey adds to its team's and worker's counts.
type figures struct {
	Open, Unassigned, Waiting, Flagged int
	// WaitingDays sums the referral days (days since 1970, in England) of
	// the waiting journeys: the mean wait is worked out on the day it is read.
	WaitingDays int64
	ByStatus    map[events.Status]int `json:",omitempty"`
}

// workerFigures are a worker's counts and name.
type workerFigures struct {
	Name string `json:"name"`
	figures
}

func (f *figures) add(r *caseRow, sign int) {
	if r == nil || !r.Open {
		return
	}
	f.Open += sign
	if r.WorkerID == "" {
		f.Unassigned += sign
	}
	if r.Waiting {
		f.Waiting += sign
		f.WaitingDays += int64(sign) * dayNumber(r.ReferredAt)
	}
	if r.Flagged {
		f.Flagged += sign
	}
	if f.ByStatus == nil {
		f.ByStatus = map[events.Status]int{}
	}
	f.ByStatus[r.Status] += sign
	if f.ByStatus[r.Status] == 0 {
		delete(f.ByStatus, r.Status)
	}
}

// dayNumber is a moment's day in England, counted from 1970-01-01.
func dayNumber(t time.Time) int64 { return events.UKDate(t).Unix() / 86400 }

// counted is what a row counts for in the figures, to tell whether they change.
type counted struct {
	team, worker     string
	status           events.Status
	waiting, flagged bool
	referred         int64
}

// contribution is what a row counts for (nothing unless open).
func contribution(r *caseRow) counted {
	if r == nil || !r.Open {
		return counted{}
	}
	return counted{team: r.Team, worker: r.WorkerID, status: r.Status, waiting: r.Waiting, flagged: r.Flagged, referred: dayNumber(r.ReferredAt)}
}

// reindex moves a journey's list and figure keys from what its row was to
// what it is, and its team's and workers' counts with them.
func (p projection) reindex(b *views.Batch, old, cur *caseRow) error {
	if !sameKeys(old, cur) {
		was, is := rowKeys(old), rowKeys(cur)
		for k := range was {
			if _, keep := is[k]; !keep {
				b.Delete(k)
			}
		}
		for k, v := range is {
			if w, had := was[k]; !had || w != v {
				b.Set(k, []byte(v))
			}
		}
	}
	if contribution(old) == contribution(cur) && (old == nil || old.WorkerName == cur.WorkerName) {
		return nil
	}
	if contribution(old) != contribution(cur) {
		team, _, err := p.teams.Load(b, teamKey(cur.Team))
		if err != nil {
			return err
		}
		team.add(old, -1)
		team.add(cur, 1)
	}
	workers := []string{}
	if old != nil && old.WorkerID != "" {
		workers = append(workers, old.WorkerID)
	}
	if cur.WorkerID != "" && !slices.Contains(workers, cur.WorkerID) {
		workers = append(workers, cur.WorkerID)
	}
	for _, w := range workers {
		wf, _, err := p.workers.Load(b, workerKey(cur.Team, w))
		if err != nil {
			return err
		}
		if old != nil && old.WorkerID == w {
			wf.add(old, -1)
		}
		if cur.WorkerID == w {
			wf.add(cur, 1)
			wf.Name = cur.WorkerName
		}
	}
	return nil
}

// rowJSON decodes a row.
func rowJSON(raw []byte) (caseRow, error) {
	var r caseRow
	err := json.Unmarshal(raw, &r)
	return r, err
}
