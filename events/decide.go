package events

import (
	"slices"
	"strconv"
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
	Refer  struct{ Referral *eventsv1.ReferralReceived }
	Assign struct{ WorkerID, WorkerName string }
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
	CompleteOnward    struct{ OnwardReferralID string }
	DropOutOnward     struct{ OnwardReferralID, Detail string }
	ScheduleFollowUp  struct{ FollowUpID, Due string }
	CompleteFollowUp  struct{ FollowUpID string }
	DeclineReferral   struct{ Detail string }
	Close             struct{ Reason string }
	Reopen            struct{ Reason string }
	ErasePersonalData struct{}
)

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
	if r, ok := cmd.(Refer); ok {
		if s.Exists() {
			return nil, nil
		}
		if r.Referral == nil {
			return nil, Invalid("referral", "is required")
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
		return one(&eventsv1.LinkWorkerAssigned{
			WorkerId: c.WorkerID, WorkerName: c.WorkerName})

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
		if err := s.mustBeOpen("schedule a follow-up"); err != nil {
			return nil, err
		}
		if _, err := ParseDate("due", c.Due); err != nil {
			return nil, err
		}
		return one(&eventsv1.FollowUpScheduled{
			FollowUpId: c.FollowUpID, Due: c.Due})

	case CompleteFollowUp:
		if err := s.mustHaveOpenFollowUp(c.FollowUpID); err != nil {
			return nil, err
		}
		return one(&eventsv1.FollowUpCompleted{FollowUpId: c.FollowUpID})

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
	}
	return nil, Errorf(CodeInternal, "unknown command %s", cmd.commandName())
}

func (s State) referOnward(c ReferOnward) ([]*eventsv1.Envelope, error) {
	if err := s.mustBeContacted("refer on"); err != nil {
		return nil, err
	}
	if !s.Referral.GetConsent().GetShareWithVcs() {
		return nil, &Error{Code: CodeFailedPrecondition, Field: "consent.share_with_vcs",
			Message: "the person has not consented to share their details with VCS organisations"}
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
	for i, f := range c.Share {
		if !slices.Contains(ShareableFields, f) {
			return nil, Invalid(fieldIndex("share", i), "must be one of %v", ShareableFields)
		}
	}
	shared := ShareWithVCS(&eventsv1.SharedWithVcs{Person: s.Referral.GetPerson(),
		Needs: s.Referral.GetReasons(), Notes: s.Referral.GetNotes()}, c.Share)
	return one(&eventsv1.OnwardReferralMade{
		OnwardReferralId: c.OnwardReferralID, ServiceId: svc.ID, ServiceName: svc.Name,
		OrganisationId: svc.OrganisationID, Shared: shared, WaitingList: c.WaitingList,
		LinkWorkerContact: c.LinkWorkerContact})
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
