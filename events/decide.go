package events

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Command is a request to change a journey. Each command type is handled
// by one case of Decide. Ids a command needs (onward referral, follow-up,
// goal ids) are chosen by the caller, so Decide stays pure.
type Command interface{ commandName() string }

// Commands. Field names follow the outside contract.
type (
	// Refer opens a journey. Sent again for an existing journey it is a
	// no-op: that is how a resend is recognised.
	Refer struct{ Referral *eventsv1.ReferralReceived }
	// Assign gives the case to a worker; to another worker than the one
	// holding it, it is a handover and may carry a note for the new one.
	Assign struct{ WorkerID, WorkerName, HandoverNote string }
	// RecordContact: Outcome is reached, no_answer or left_message.
	RecordContact struct{ Outcome, Method string }
	AssessNeeds   struct {
		WhatMatters string
		Needs       []string
		Goals       []GoalInput
		Barriers    []string
	}
	UpdateGoal struct{ GoalID, Status string }
	// RecordMeasure scores Answers by the instrument's rules.
	RecordMeasure struct {
		MeasureID, Instrument, Timepoint string
		Answers                          []int32
		FollowUpID                       string // optional: the follow-up it completes
	}
	// ReferOnward connects the person to a VCS service. Service facts are
	// looked up by the caller in the directory.
	ReferOnward struct {
		OnwardReferralID  string
		Service           ServiceFacts
		Share             []string
		WaitingList       bool
		LinkWorkerContact string
	}
	AcceptOnward     struct{ OnwardReferralID string }
	DeclineOnward    struct{ OnwardReferralID, Reason, Detail string }
	WithdrawOnward   struct{ OnwardReferralID, Reason string }
	RecordAttendance struct {
		OnwardReferralID, Date string
		Attended               bool
	}
	CompleteOnward struct{ OnwardReferralID string }
	DropOutOnward  struct{ OnwardReferralID, Detail string }
	// ScheduleFollowUp: on an open journey any date; on a closed one (not
	// declined) a check-in, due from the closure up to CheckInWindow
	// months after it. Timepoint is optional (FollowUpTimepoints).
	ScheduleFollowUp struct{ FollowUpID, Due, Timepoint string }
	// CompleteFollowUp may carry a measure taken at it (a check-in after
	// closure records its measure this way).
	CompleteFollowUp struct {
		FollowUpID string
		Measure    *MeasureInput
	}
	DeclineReferral   struct{ Detail string }
	Close             struct{ Reason string }
	Reopen            struct{ Reason string }
	ErasePersonalData struct{}

	// RecordConsent is the person's own choice (Method: ConsentMethods).
	RecordConsent struct {
		ShareWithVCS bool
		Method       string
	}
	// SignpostTo records signposting to a directory service (Service, looked
	// up by the caller; signposting-only services too) or to something
	// described in words (Description), one or the other.
	SignpostTo struct {
		SignpostID  string
		Service     *ServiceFacts
		Description string
	}
	// AddCaseNote is a case note, sealed, seen by the team only.
	AddCaseNote struct{ NoteID, Text string }
	// RecordRisk is a risk or safeguarding concern (Kind: RiskKinds).
	RecordRisk struct {
		RiskID, Kind, Detail string
		EscalateToGP         bool
	}
	// GiveFeedback is a person's or carer's feedback (From: FeedbackFrom)
	// on a service the journey was referred or signposted to.
	GiveFeedback struct {
		FeedbackID, ServiceID, From string
		Rating                      int
		Comment                     string
		ShareComment                bool
	}
)

// MeasureInput is a questionnaire answered at a follow-up.
type MeasureInput struct {
	MeasureID, Instrument string
	Answers               []int32
}

// GoalInput is a new goal.
type GoalInput struct{ GoalID, Text string }

// ServiceFacts is what Decide needs to know of a directory service.
type ServiceFacts struct {
	ID, Name, OrganisationID string
	// AcceptsReferrals is false for signposting-only services.
	AcceptsReferrals bool
	// Capacity: open, waiting_list, full, paused.
	Capacity string
}

func (Refer) commandName() string             { return "refer" }
func (Assign) commandName() string            { return "assign" }
func (RecordContact) commandName() string     { return "record_contact" }
func (AssessNeeds) commandName() string       { return "assess_needs" }
func (UpdateGoal) commandName() string        { return "update_goal" }
func (RecordMeasure) commandName() string     { return "record_measure" }
func (ReferOnward) commandName() string       { return "refer_onward" }
func (AcceptOnward) commandName() string      { return "accept_onward" }
func (DeclineOnward) commandName() string     { return "decline_onward" }
func (WithdrawOnward) commandName() string    { return "withdraw_onward" }
func (RecordAttendance) commandName() string  { return "record_attendance" }
func (CompleteOnward) commandName() string    { return "complete_onward" }
func (DropOutOnward) commandName() string     { return "drop_out_onward" }
func (ScheduleFollowUp) commandName() string  { return "schedule_follow_up" }
func (CompleteFollowUp) commandName() string  { return "complete_follow_up" }
func (DeclineReferral) commandName() string   { return "decline_referral" }
func (Close) commandName() string             { return "close" }
func (Reopen) commandName() string            { return "reopen" }
func (ErasePersonalData) commandName() string { return "erase_personal_data" }
func (RecordConsent) commandName() string     { return "record_consent" }
func (SignpostTo) commandName() string        { return "signpost" }
func (AddCaseNote) commandName() string       { return "add_case_note" }
func (RecordRisk) commandName() string        { return "record_risk" }
func (GiveFeedback) commandName() string      { return "give_feedback" }

// CommandName is a command's stable name, for metrics and logs.
func CommandName(c Command) string { return c.commandName() }

// Value sets the rules check. The JSON and FHIR edges use them too.
var (
	ContactOutcomes  = []string{"reached", "no_answer", "left_message"}
	CloseReasons     = []string{"goals_met", "declined", "uncontactable", "moved_away", "clinical", "other"}
	DeclineReasons   = []string{"no_capacity", "not_eligible", "person_declined", "uncontactable", "other"}
	GoalStatuses     = []string{"not_started", "in_progress", "achieved", "dropped"}
	ShareableFields  = []string{"name", "phone", "email", "needs", "notes"}
	Timepoints       = []string{"baseline", "follow_up"}
	CapacityStatuses = []string{CapacityOpen, CapacityWaitingList, CapacityFull, CapacityPaused}
)

// Decide returns the events that carry out cmd on a journey in state s, or
// an *Error saying why not; when it refuses, nothing is to be appended. An
// empty result with no error means the command had already been carried out.
func Decide(s State, cmd Command) ([]*eventsv1.Envelope, error) {
	if g, ok := cmd.(Guarded); ok {
		return decideGuarded(s, g)
	}
	if r, ok := cmd.(Refer); ok {
		if s.Exists() {
			return nil, nil
		}
		if r.Referral == nil {
			return nil, Invalid("referral", "is required")
		}
		if err := checkReferral(r.Referral); err != nil {
			return nil, err
		}
		return one(r.Referral)
	}
	if !s.Exists() {
		return nil, ErrNotFound
	}
	switch c := cmd.(type) {
	case Assign:
		if err := s.mustBeOpen("assign a link worker"); err != nil {
			return nil, err
		}
		if c.WorkerID == "" {
			return nil, Invalid("worker_id", "is required")
		}
		if c.WorkerName == "" {
			return nil, Invalid("worker_name", "is required")
		}
		if c.WorkerID == s.WorkerID && c.WorkerName == s.WorkerName {
			return nil, nil
		}
		a := &eventsv1.LinkWorkerAssigned{WorkerId: c.WorkerID, WorkerName: c.WorkerName}
		if s.WorkerID != "" && s.WorkerID != c.WorkerID {
			a.PreviousWorkerId, a.PreviousWorkerName = s.WorkerID, s.WorkerName
		}
		if strings.TrimSpace(c.HandoverNote) != "" {
			if a.PreviousWorkerId == "" {
				return nil, Invalid("handover_note", "is only for a handover from another worker; the journey has no other worker (it is %s)", s.Status())
			}
			a.HandoverNote = &eventsv1.FreeText{Text: c.HandoverNote}
		}
		return one(a)

	case RecordContact:
		if err := s.mustBeOpen("record a contact"); err != nil {
			return nil, err
		}
		if s.WorkerID == "" {
			return nil, s.refuse("record a contact before a link worker is assigned")
		}
		if !slices.Contains(ContactOutcomes, c.Outcome) {
			return nil, Invalid("outcome", "must be one of %v", ContactOutcomes)
		}
		if c.Outcome == "reached" {
			return one(&eventsv1.ContactMade{Method: c.Method})
		}
		return one(&eventsv1.ContactAttempted{
			Outcome: c.Outcome, Method: c.Method})

	case AssessNeeds:
		if err := s.mustBeContacted("record an assessment"); err != nil {
			return nil, err
		}
		if len(c.Needs) == 0 && len(c.Goals) == 0 && c.WhatMatters == "" {
			return nil, Invalid("needs", "an assessment needs at least one need, goal or what matters")
		}
		na := &eventsv1.NeedsAssessed{Needs: c.Needs, Barriers: c.Barriers}
		if c.WhatMatters != "" {
			na.WhatMatters = &eventsv1.FreeText{Text: c.WhatMatters}
		}
		for i, g := range c.Goals {
			if g.Text == "" {
				return nil, Invalid(fieldIndex("goals", i)+".text", "is required")
			}
			na.Goals = append(na.Goals, &eventsv1.Goal{GoalId: g.GoalID, Text: &eventsv1.FreeText{Text: g.Text}, Status: "not_started"})
		}
		return one(na)

	case UpdateGoal:
		if err := s.mustBeContacted("update a goal"); err != nil {
			return nil, err
		}
		if !slices.Contains(s.Goals, c.GoalID) {
			return nil, ErrNotFound
		}
		if !slices.Contains(GoalStatuses, c.Status) {
			return nil, Invalid("status", "must be one of %v", GoalStatuses)
		}
		return one(&eventsv1.GoalUpdated{GoalId: c.GoalID, Status: c.Status})

	case RecordMeasure:
		if err := s.mustBeContacted("record a measure"); err != nil {
			return nil, err
		}
		if !slices.Contains(Timepoints, c.Timepoint) {
			return nil, Invalid("timepoint", "must be one of %v", Timepoints)
		}
		sc, err := Score(c.Instrument, c.Answers)
		if err != nil {
			return nil, err
		}
		if c.FollowUpID != "" {
			if err := s.mustHaveOpenFollowUp(c.FollowUpID); err != nil {
				return nil, err
			}
		}
		return one(&eventsv1.WellbeingMeasured{
			MeasureId: c.MeasureID, Instrument: sc.Instrument, InstrumentVersion: sc.Version,
			Timepoint: c.Timepoint, Answers: c.Answers, RawScore: sc.Raw, Score: sc.Score,
			FollowUpId: c.FollowUpID})

	case ReferOnward:
		return s.referOnward(c)

	case AcceptOnward:
		return s.onwardStep(c.OnwardReferralID, "accept", []OnwardStatus{OnwardSent},
			&eventsv1.OnwardReferralAccepted{
				OnwardReferralId: c.OnwardReferralID})

	case DeclineOnward:
		if !slices.Contains(DeclineReasons, c.Reason) {
			return nil, Invalid("reason", "must be one of %v", DeclineReasons)
		}
		d := &eventsv1.OnwardReferralDeclined{OnwardReferralId: c.OnwardReferralID, Reason: c.Reason}
		if c.Detail != "" {
			d.Detail = &eventsv1.FreeText{Text: c.Detail}
		}
		return s.onwardStep(c.OnwardReferralID, "decline", []OnwardStatus{OnwardSent},
			d)

	case WithdrawOnward:
		w := &eventsv1.OnwardReferralWithdrawn{OnwardReferralId: c.OnwardReferralID}
		if c.Reason != "" {
			w.Reason = &eventsv1.FreeText{Text: c.Reason}
		}
		return s.onwardStep(c.OnwardReferralID, "withdraw", []OnwardStatus{OnwardSent, OnwardAccepted, OnwardAttending},
			w)

	case RecordAttendance:
		if _, err := ParseDate("date", c.Date); err != nil {
			return nil, err
		}
		// A session dated before the onward referral was made is kept:
		// paperwork is often written up after the fact (AttendanceWarning).
		return s.onwardStep(c.OnwardReferralID, "record attendance", []OnwardStatus{OnwardAccepted, OnwardAttending},
			&eventsv1.AttendanceRecorded{
				OnwardReferralId: c.OnwardReferralID, Date: c.Date, Attended: c.Attended})

	case CompleteOnward:
		return s.onwardStep(c.OnwardReferralID, "complete", []OnwardStatus{OnwardAttending},
			&eventsv1.OnwardReferralCompleted{
				OnwardReferralId: c.OnwardReferralID})

	case DropOutOnward:
		d := &eventsv1.OnwardReferralDroppedOut{OnwardReferralId: c.OnwardReferralID}
		if c.Detail != "" {
			d.Detail = &eventsv1.FreeText{Text: c.Detail}
		}
		return s.onwardStep(c.OnwardReferralID, "record a drop-out", []OnwardStatus{OnwardAccepted, OnwardAttending},
			d)

	case ScheduleFollowUp:
		return s.scheduleFollowUp(c)

	case CompleteFollowUp:
		if err := s.mustHaveOpenFollowUp(c.FollowUpID); err != nil {
			return nil, err
		}
		if c.Measure == nil {
			return one(&eventsv1.FollowUpCompleted{FollowUpId: c.FollowUpID})
		}
		sc, err := Score(c.Measure.Instrument, c.Measure.Answers)
		if err != nil {
			return nil, err
		}
		// The measure first: it is what outcome views count, and folding
		// it completes the follow-up already; the completion names it.
		return []*eventsv1.Envelope{
			Wrap(&eventsv1.WellbeingMeasured{MeasureId: c.Measure.MeasureID, Instrument: sc.Instrument,
				InstrumentVersion: sc.Version, Timepoint: "follow_up", Answers: c.Measure.Answers, RawScore: sc.Raw,
				Score: sc.Score, FollowUpId: c.FollowUpID}),
			Wrap(&eventsv1.FollowUpCompleted{FollowUpId: c.FollowUpID, MeasureId: c.Measure.MeasureID}),
		}, nil

	case DeclineReferral:
		if err := s.mustBeOpen("record that the person declined"); err != nil {
			return nil, err
		}
		d := &eventsv1.PatientDeclined{}
		if c.Detail != "" {
			d.Detail = &eventsv1.FreeText{Text: c.Detail}
		}
		return one(d)

	case Close:
		if !slices.Contains(CloseReasons, c.Reason) {
			return nil, Invalid("reason", "must be one of %v", CloseReasons)
		}
		if err := s.mustBeOpen("close it"); err != nil {
			return nil, err
		}
		return one(&eventsv1.JourneyClosed{Reason: c.Reason})

	case Reopen:
		if !s.Closed {
			return nil, s.refuse("reopen it: it is not closed")
		}
		r := &eventsv1.JourneyReopened{}
		if c.Reason != "" {
			r.Reason = &eventsv1.FreeText{Text: c.Reason}
		}
		return one(r)

	case ErasePersonalData:
		if s.Erased {
			return nil, nil
		}
		return one(&eventsv1.PersonalDataErased{})

	case RecordConsent:
		if !slices.Contains(ConsentMethods, c.Method) {
			return nil, Invalid("method", "must be one of %v", ConsentMethods)
		}
		if s.Consent.ByPerson && s.Consent.ShareWithVCS == c.ShareWithVCS && s.Consent.Method == c.Method {
			return nil, nil // the same choice, the same way: already recorded
		}
		return one(&eventsv1.ConsentRecorded{ShareWithVcs: c.ShareWithVCS, Method: c.Method})

	case SignpostTo:
		return s.signpost(c)

	case AddCaseNote:
		if err := s.mustHoldPersonalData("add a case note"); err != nil {
			return nil, err
		}
		if strings.TrimSpace(c.Text) == "" {
			return nil, Invalid("text", "is required")
		}
		return one(&eventsv1.CaseNoteAdded{NoteId: c.NoteID, Text: &eventsv1.FreeText{Text: c.Text}})

	case RecordRisk:
		if !slices.Contains(RiskKinds, c.Kind) {
			return nil, Invalid("kind", "must be one of %v", RiskKinds)
		}
		if strings.TrimSpace(c.Detail) == "" {
			return nil, Invalid("detail", "is required")
		}
		if err := s.mustHoldPersonalData("record a risk"); err != nil {
			return nil, err
		}
		if c.RiskID != "" && slices.ContainsFunc(s.Risks, func(r Risk) bool { return r.ID == c.RiskID }) {
			return nil, nil
		}
		return one(&eventsv1.RiskRecorded{RiskId: c.RiskID, Kind: c.Kind,
			Detail: &eventsv1.FreeText{Text: c.Detail}, EscalateToGp: c.EscalateToGP})

	case GiveFeedback:
		return s.giveFeedback(c)
	}
	return nil, Errorf(CodeInternal, "unknown command %s", cmd.commandName())
}

func (s State) referOnward(c ReferOnward) ([]*eventsv1.Envelope, error) {
	if err := s.mustBeContacted("refer on"); err != nil {
		return nil, err
	}
	if !s.ShareWithVCS() {
		msg := "the person has not consented to share their details with VCS organisations"
		if s.Consent.ByPerson {
			msg = "the person's latest recorded choice (" + cmp.Or(s.Consent.Method, "digital") + ") is not to share their details with VCS organisations"
		}
		return nil, &Error{Code: CodeFailedPrecondition, Field: "consent.share_with_vcs", Message: msg}
	}
	svc := c.Service
	switch {
	case !svc.AcceptsReferrals:
		return nil, Invalid("service_id", "service %s is signposting only and takes no direct referrals", svc.ID)
	case svc.Capacity == CapacityPaused:
		return nil, &Error{Code: CodeFailedPrecondition, Field: "service_id", Message: "service " + svc.ID + " is paused"}
	case svc.Capacity == CapacityFull && !c.WaitingList:
		return nil, &Error{Code: CodeFailedPrecondition, Field: "service_id",
			Message: "service " + svc.ID + " is full; refer with waiting_list true to join its waiting list"}
	}
	if slices.ContainsFunc(s.Onward, func(o Onward) bool {
		return o.ServiceID == svc.ID && (o.Status == OnwardSent || o.taken())
	}) {
		return nil, s.refuse("refer on to " + svc.ID + ": a referral to it is already open")
	}
	if err := CheckShare(c.Share, false); err != nil {
		return nil, err
	}
	// Needs are those the link worker assessed, in the taxonomy: never the
	// referrer's clinical reason codes.
	shared := ShareWithVCS(&eventsv1.SharedWithVcs{Person: s.Referral.GetPerson(),
		Needs: s.Needs, Notes: s.Referral.GetNotes()}, c.Share)
	return one(&eventsv1.OnwardReferralMade{
		OnwardReferralId: c.OnwardReferralID, ServiceId: svc.ID, ServiceName: svc.Name,
		OrganisationId: svc.OrganisationID, Shared: shared, WaitingList: c.WaitingList,
		LinkWorkerContact: c.LinkWorkerContact})
}

func (s State) scheduleFollowUp(c ScheduleFollowUp) ([]*eventsv1.Envelope, error) {
	if s.Declined {
		return nil, s.refuse("schedule a follow-up")
	}
	due, err := ParseDate("due", c.Due)
	if err != nil {
		return nil, err
	}
	if c.Timepoint != "" && !slices.Contains(FollowUpTimepoints, c.Timepoint) {
		return nil, Invalid("timepoint", "must be one of %v, or left out for a date chosen freely", FollowUpTimepoints)
	}
	f := &eventsv1.FollowUpScheduled{FollowUpId: c.FollowUpID, Due: c.Due, Timepoint: c.Timepoint}
	if s.Closed {
		// A check-in after closure: it does not reopen the journey.
		f.AfterClosure = true
		if !s.ClosedAt.IsZero() {
			closed := earliestDay(s.ClosedAt)
			last := UKDate(s.ClosedAt).AddDate(0, CheckInWindow, 0)
			switch {
			case due.Before(closed):
				return nil, Invalid("due", "a check-in after closure is due on or after the closure (%s)", closed.Format(time.DateOnly))
			case due.After(last):
				return nil, Invalid("due", "a check-in after closure is due at most %d months after it (by %s)", CheckInWindow, last.Format(time.DateOnly))
			}
		}
	}
	return one(f)
}

func (s State) signpost(c SignpostTo) ([]*eventsv1.Envelope, error) {
	if err := s.mustBeContacted("signpost"); err != nil {
		return nil, err
	}
	desc := strings.TrimSpace(c.Description)
	switch {
	case c.Service == nil && desc == "":
		return nil, Invalid("service_id", "give a service_id or a description")
	case c.Service != nil && desc != "":
		return nil, Invalid("description", "give a service_id or a description, not both")
	}
	if c.SignpostID != "" && slices.ContainsFunc(s.Signposts, func(p Signpost) bool { return p.ID == c.SignpostID }) {
		return nil, nil
	}
	p := &eventsv1.Signposted{SignpostId: c.SignpostID}
	if svc := c.Service; svc != nil {
		if svc.ID == "" {
			return nil, Invalid("service_id", "is required")
		}
		// Signposting-only services are what signposting is for; a
		// paused one has nothing to go to.
		if svc.Capacity == CapacityPaused {
			return nil, &Error{Code: CodeFailedPrecondition, Field: "service_id", Message: "service " + svc.ID + " is paused"}
		}
		p.ServiceId, p.ServiceName, p.OrganisationId = svc.ID, svc.Name, svc.OrganisationID
	} else {
		p.Description = &eventsv1.FreeText{Text: desc}
	}
	return one(p)
}

// CheckFeedbackFrom and CheckRating are the rules for who feedback is
// from and its rating: the parties' HTTP layers check a request's fields
// with them before anything is loaded, and Decide again.
func CheckFeedbackFrom(from string) error {
	if !slices.Contains(FeedbackFrom, from) {
		return Invalid("from", "must be one of %v", FeedbackFrom)
	}
	return nil
}

// CheckRating: see CheckFeedbackFrom.
func CheckRating(rating int) error {
	if rating < MinRating || rating > MaxRating {
		return Invalid("rating", "must be from %d to %d", MinRating, MaxRating)
	}
	return nil
}

func (s State) giveFeedback(c GiveFeedback) ([]*eventsv1.Envelope, error) {
	if c.ServiceID == "" {
		return nil, Invalid("service_id", "is required")
	}
	if err := cmp.Or(CheckFeedbackFrom(c.From), CheckRating(c.Rating)); err != nil {
		return nil, err
	}
	switch {
	case c.ShareComment && strings.TrimSpace(c.Comment) == "":
		return nil, Invalid("share_comment", "there is no comment to share")
	}
	if !s.ReferredOrSignposted(c.ServiceID) {
		return nil, &Error{Code: CodeFailedPrecondition, Field: "service_id",
			Message: "the journey was never referred or signposted to service " + c.ServiceID}
	}
	f := &eventsv1.FeedbackGiven{FeedbackId: c.FeedbackID, ServiceId: c.ServiceID, From: c.From,
		Rating: int32(c.Rating), ShareComment: c.ShareComment}
	if strings.TrimSpace(c.Comment) != "" {
		if err := s.mustHoldPersonalData("record a comment"); err != nil {
			return nil, err
		}
		f.Comment = &eventsv1.FreeText{Text: c.Comment}
	}
	return one(f)
}

// checkReferral checks the fields of a referral that Decide can judge on
// its own (the edges check the rest against the world: teams, value sets).
func checkReferral(r *eventsv1.ReferralReceived) error {
	switch {
	case r.GetSource() != "" && !slices.Contains(ReferralSources, r.GetSource()):
		return Invalid("source", "must be one of %v", ReferralSources)
	case r.GetUrgency() != "" && !slices.Contains(Urgencies, r.GetUrgency()):
		return Invalid("urgency", "must be one of %v", Urgencies)
	case r.GetContactPreference() != "" && !slices.Contains(ContactPreferences, r.GetContactPreference()):
		return Invalid("contact_preference", "must be one of %v", ContactPreferences)
	case r.GetSource() == SourceSelf && r.GetContactPreference() == "":
		return Invalid("contact_preference", "is required for a self-referral")
	}
	return CheckEthnicity("person.ethnicity", r.GetPerson().GetEthnicity())
}

// mustHoldPersonalData refuses new personal data (sealed under the
// person's key) once the person's data is erased: it could not be sealed
// under a destroyed key, nor be wanted.
func (s State) mustHoldPersonalData(what string) error {
	if s.Erased {
		return &Error{Code: CodeFailedPrecondition, Message: "cannot " + what + ": the person's personal data has been erased"}
	}
	return nil
}

// onwardStep checks that the onward referral exists and is in one of from.
func (s State) onwardStep(id, what string, from []OnwardStatus, ev proto.Message) ([]*eventsv1.Envelope, error) {
	o, ok := s.OnwardByID(id)
	if !ok {
		return nil, ErrNotFound
	}
	if !slices.Contains(from, o.Status) {
		return nil, &Error{Code: CodeFailedPrecondition,
			Message: "cannot " + what + ": the onward referral is " + string(o.Status)}
	}
	return one(ev)
}

func (s State) mustBeOpen(what string) error {
	if !s.Open() {
		return s.refuse(what)
	}
	return nil
}

func (s State) mustBeContacted(what string) error {
	if err := s.mustBeOpen(what); err != nil {
		return err
	}
	if !s.Contacted {
		return s.refuse(what + " before the person has been reached")
	}
	return nil
}

func (s State) mustHaveOpenFollowUp(id string) error {
	i := slices.IndexFunc(s.FollowUps, func(f FollowUp) bool { return f.ID == id })
	if i < 0 {
		return &Error{Code: CodeNotFound, Field: "follow_up_id", Message: "no such follow-up"}
	}
	if s.FollowUps[i].Done {
		return &Error{Code: CodeFailedPrecondition, Field: "follow_up_id", Message: "the follow-up is already completed"}
	}
	return nil
}

// refuse is the failed_precondition error naming the journey's state.
func (s State) refuse(what string) *Error {
	return &Error{Code: CodeFailedPrecondition, Message: "cannot " + what + ": the journey is " + string(s.Status())}
}

func one(e proto.Message) ([]*eventsv1.Envelope, error) {
	return []*eventsv1.Envelope{Wrap(e)}, nil
}

// ParseDate parses an ISO 8601 date, naming field when it is not one.
func ParseDate(field, s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, Invalid(field, "must be a date YYYY-MM-DD")
	}
	return t, nil
}

func fieldIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
