// Package events is Linkway's vocabulary: the generated event types, the
// journey aggregate's rules (Decide and Evolve), subjects and errors. It
// does no I/O and imports no service; every service uses these rules, so
// they live in one place.
package events

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Status is a journey's status as the outside contract names it.
type Status string

// Journey statuses (API.md). A journey is open in every status but closed
// and declined.
const (
	StatusNone       Status = ""
	StatusReferred   Status = "referred"
	StatusAssigned   Status = "assigned"
	StatusInProgress Status = "in_progress"
	StatusConnected  Status = "connected"
	StatusClosed     Status = "closed"
	StatusDeclined   Status = "declined"
)

// OnwardStatus is the sub-state of one onward referral.
type OnwardStatus string

// Onward referral statuses.
const (
	OnwardSent       OnwardStatus = "sent"
	OnwardAccepted   OnwardStatus = "accepted"
	OnwardDeclined   OnwardStatus = "declined"
	OnwardAttending  OnwardStatus = "attending"
	OnwardWithdrawn  OnwardStatus = "withdrawn"
	OnwardCompleted  OnwardStatus = "completed"
	OnwardDroppedOut OnwardStatus = "dropped_out"
)

// Onward is what the rules need to know of one onward referral.
type Onward struct {
	ID             string
	ServiceID      string
	OrganisationID string
	Status         OnwardStatus
	// MadeAt is when it was made (zero when the log gives no time):
	// attendance is on or after that day.
	MadeAt time.Time
	// WaitingList: made to the service's waiting list.
	WaitingList bool
	// DeclineReason (DeclineReasons) and DeclinedAt say why and when the
	// organisation declined it: unmet need.
	DeclineReason string
	DeclinedAt    time.Time
}

// taken reports whether the person has taken the service up.
func (o Onward) taken() bool {
	return o.Status == OnwardAccepted || o.Status == OnwardAttending || o.Status == OnwardCompleted
}

// FollowUp is one scheduled follow-up.
type FollowUp struct {
	ID   string
	Due  string
	Done bool
	// Timepoint is 3_months, 6_months, 12_months or "" (a date chosen freely).
	Timepoint string
	// AfterClosure: a check-in scheduled on a closed journey.
	AfterClosure bool
}

// Consent is the consent to share with VCS organisations in force: the
// referrer's until the person records their own choice, then the latest.
type Consent struct {
	ShareWithVCS bool
	// Method is verbal, written or digital for the person's own choice;
	// empty for the referrer's.
	Method string
	// ByPerson: the person's own recorded choice (or a self-referral).
	ByPerson bool
	At       time.Time
}

// Signpost is one signposting: to a directory service (ServiceID set) or
// to something described in words (ServiceID empty; the words are sealed
// in the event).
type Signpost struct {
	ID             string
	ServiceID      string
	OrganisationID string
	At             time.Time
}

// Risk is one recorded risk, without its detail (sealed in the event).
type Risk struct {
	ID            string
	Kind          string
	EscalatedToGP bool
	At            time.Time
}

// State is a journey folded from its events. It is a value: Evolve returns
// a new State and never changes the one it was given, so a State can be
// cached and shared.
type State struct {
	JourneyID string
	// Version is the number of events applied.
	Version  int
	Referral *eventsv1.ReferralReceived // immutable once received
	// Closed and Declined are the terminal flags; ClosedReason says why.
	Closed       bool
	Declined     bool
	ClosedReason string
	WorkerID     string
	WorkerName   string
	Contacted    bool
	LastContact  time.Time
	// FailedAttempts since the person was last reached.
	FailedAttempts []time.Time
	Assessed       bool
	Goals          []string // goal ids
	Onward         []Onward
	FollowUps      []FollowUp
	Measures       int
	Erased         bool

	// ReferredAt and ClosedAt (zero while open) are when those happened.
	ReferredAt time.Time
	ClosedAt   time.Time
	// Urgent: the referral asked for urgency; the team sees a flag (link
	// workers are not a crisis route; see UrgentWarning).
	Urgent bool
	// Consent in force; onward referrals follow it.
	Consent Consent
	// Needs are the needs last assessed, as taxonomy ids (PlaceNeeds):
	// what a VCS is given as needs, never the referrer's reason codes.
	Needs     []string
	Signposts []Signpost
	// Notes is how many case notes the team has written.
	Notes int
	Risks []Risk
	// Handovers counts reassignments from one worker to another.
	Handovers int
}

// Exists reports whether the journey has been referred.
func (s State) Exists() bool { return s.Referral != nil }

// Open reports whether the journey is referred and not closed.
func (s State) Open() bool { return s.Exists() && !s.Closed }

// Status derives the journey's status from what has happened.
func (s State) Status() Status {
	switch {
	case !s.Exists():
		return StatusNone
	case s.Closed && s.Declined:
		return StatusDeclined
	case s.Closed:
		return StatusClosed
	case slices.ContainsFunc(s.Onward, Onward.taken):
		return StatusConnected
	case s.Contacted:
		return StatusInProgress
	case s.WorkerID != "":
		return StatusAssigned
	}
	return StatusReferred
}

// OnwardByID returns the onward referral with the id.
func (s State) OnwardByID(id string) (Onward, bool) {
	i := slices.IndexFunc(s.Onward, func(o Onward) bool { return o.ID == id })
	if i < 0 {
		return Onward{}, false
	}
	return s.Onward[i], true
}

// UncontactablePolicy says when repeated failed contact attempts flag a
// journey for closure as uncontactable.
type UncontactablePolicy struct {
	Attempts int           // at least this many failed attempts ...
	Within   time.Duration // ... no more than this apart from first to last
}

// FlaggedUncontactable reports whether the journey should be considered for
// closure as uncontactable. It only flags: closing is the link worker's call.
func (s State) FlaggedUncontactable(p UncontactablePolicy) bool {
	n := len(s.FailedAttempts)
	if !s.Open() || p.Attempts <= 0 || n < p.Attempts {
		return false
	}
	window := s.FailedAttempts[n-p.Attempts:]
	return p.Within <= 0 || window[len(window)-1].Sub(window[0]) <= p.Within
}

// Connection says how far a journey got in connecting the person, for
// views and summaries that count signposted against connected.
type Connection string

// Connections, strongest first.
const (
	// ConnectionConnected: an onward referral taken up (accepted,
	// attending or completed), whatever else happened.
	ConnectionConnected Connection = "connected"
	// ConnectionSignposted: told of a service, with no onward referral
	// taken up.
	ConnectionSignposted Connection = "signposted"
	// ConnectionNone: neither.
	ConnectionNone Connection = "none"
)

// Connection is how far the journey got in connecting the person.
func (s State) Connection() Connection {
	switch {
	case slices.ContainsFunc(s.Onward, Onward.taken):
		return ConnectionConnected
	case len(s.Signposts) > 0:
		return ConnectionSignposted
	}
	return ConnectionNone
}

// ShareWithVCS reports whether the consent in force lets onward referrals
// share the person's details.
func (s State) ShareWithVCS() bool { return s.Consent.ShareWithVCS }

// ReferredOrSignposted reports whether the journey was ever referred on or
// signposted to a service (feedback is only about such a service).
func (s State) ReferredOrSignposted(serviceID string) bool {
	return serviceID != "" && (slices.ContainsFunc(s.Onward, func(o Onward) bool { return o.ServiceID == serviceID }) ||
		slices.ContainsFunc(s.Signposts, func(p Signpost) bool { return p.ServiceID == serviceID }))
}

// ReferredOnTo reports whether an onward referral of the journey went to
// organisation org (a VCS may act on its own onward referrals only).
func (s State) ReferredOnTo(org string) bool {
	return org != "" && slices.ContainsFunc(s.Onward, func(o Onward) bool { return o.OrganisationID == org })
}

// Escalations counts the risks escalated to the GP.
func (s State) Escalations() int {
	n := 0
	for _, r := range s.Risks {
		if r.EscalatedToGP {
			n++
		}
	}
	return n
}

// OpenFollowUps are the follow-ups not yet held, check-ins after closure
// included: what a due list shows.
func (s State) OpenFollowUps() []FollowUp {
	var out []FollowUp
	for _, f := range s.FollowUps {
		if !f.Done {
			out = append(out, f)
		}
	}
	return out
}

func (s State) clone() State {
	s.FailedAttempts = slices.Clone(s.FailedAttempts)
	s.Goals = slices.Clone(s.Goals)
	s.Onward = slices.Clone(s.Onward)
	s.FollowUps = slices.Clone(s.FollowUps)
	s.Needs = slices.Clone(s.Needs)
	s.Signposts = slices.Clone(s.Signposts)
	s.Risks = slices.Clone(s.Risks)
	return s
}

// when is an event's time, or the zero time when the log gives none.
func when(env *eventsv1.Envelope) time.Time {
	if env.GetOccurredAt() == nil {
		return time.Time{}
	}
	return env.GetOccurredAt().AsTime()
}

func (s *State) setOnward(id string, st OnwardStatus) {
	for i := range s.Onward {
		if s.Onward[i].ID == id {
			s.Onward[i].Status = st
		}
	}
}

// Evolve folds one event into the state. It accepts any event in any order
// the log holds: the log is the truth, and refusing a recorded fact would
// make the journey unreadable. Decide is where rules are enforced.
func Evolve(s State, env *eventsv1.Envelope) State {
	s = s.clone()
	s.Version++
	if s.JourneyID == "" {
		s.JourneyID = env.GetJourneyId()
	}
	at := env.GetOccurredAt().AsTime()
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		if s.Referral == nil {
			r := e.ReferralReceived
			s.Referral, s.ReferredAt, s.Urgent = r, when(env), r.GetUrgency() == UrgencyUrgent
			if !s.Consent.ByPerson { // the person's own choice, if already folded, stands
				s.Consent = Consent{ShareWithVCS: r.GetConsent().GetShareWithVcs(), At: when(env)}
				if r.GetSource() == SourceSelf { // given by the person on the form
					s.Consent.ByPerson, s.Consent.Method = true, "digital"
				}
			}
		}
	case *eventsv1.Envelope_LinkWorkerAssigned:
		a := e.LinkWorkerAssigned
		if s.WorkerID != "" && a.GetWorkerId() != s.WorkerID {
			s.Handovers++
		}
		s.WorkerID, s.WorkerName = a.GetWorkerId(), a.GetWorkerName()
	case *eventsv1.Envelope_ContactAttempted:
		s.FailedAttempts = append(s.FailedAttempts, at)
	case *eventsv1.Envelope_ContactMade:
		s.Contacted, s.LastContact, s.FailedAttempts = true, at, nil
	case *eventsv1.Envelope_NeedsAssessed:
		s.Assessed = true
		s.Needs = PlaceNeeds(e.NeedsAssessed.GetNeeds())
		for _, g := range e.NeedsAssessed.GetGoals() {
			s.Goals = append(s.Goals, g.GetGoalId())
		}
	case *eventsv1.Envelope_GoalUpdated:
	case *eventsv1.Envelope_WellbeingMeasured:
		s.Measures++
		if id := e.WellbeingMeasured.GetFollowUpId(); id != "" {
			s.completeFollowUp(id)
		}
	case *eventsv1.Envelope_OnwardReferralMade:
		m := e.OnwardReferralMade
		s.Onward = append(s.Onward, Onward{ID: m.GetOnwardReferralId(), ServiceID: m.GetServiceId(),
			OrganisationID: m.GetOrganisationId(), Status: OnwardSent, MadeAt: when(env), WaitingList: m.GetWaitingList()})
	case *eventsv1.Envelope_OnwardReferralAccepted:
		s.setOnward(e.OnwardReferralAccepted.GetOnwardReferralId(), OnwardAccepted)
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		for i := range s.Onward {
			if s.Onward[i].ID == d.GetOnwardReferralId() {
				o := &s.Onward[i]
				o.Status, o.DeclineReason, o.DeclinedAt = OnwardDeclined, DeclineReason(d.GetReason()), when(env)
			}
		}
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		s.setOnward(e.OnwardReferralWithdrawn.GetOnwardReferralId(), OnwardWithdrawn)
	case *eventsv1.Envelope_AttendanceRecorded:
		if e.AttendanceRecorded.GetAttended() {
			s.setOnward(e.AttendanceRecorded.GetOnwardReferralId(), OnwardAttending)
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		s.setOnward(e.OnwardReferralCompleted.GetOnwardReferralId(), OnwardCompleted)
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		s.setOnward(e.OnwardReferralDroppedOut.GetOnwardReferralId(), OnwardDroppedOut)
	case *eventsv1.Envelope_FollowUpScheduled:
		f := e.FollowUpScheduled
		s.FollowUps = append(s.FollowUps, FollowUp{ID: f.GetFollowUpId(), Due: f.GetDue(),
			Timepoint: f.GetTimepoint(), AfterClosure: f.GetAfterClosure()})
	case *eventsv1.Envelope_FollowUpCompleted:
		s.completeFollowUp(e.FollowUpCompleted.GetFollowUpId())
	case *eventsv1.Envelope_PatientDeclined:
		s.Closed, s.Declined, s.ClosedReason, s.ClosedAt = true, true, "declined", when(env)
	case *eventsv1.Envelope_JourneyClosed:
		s.Closed, s.ClosedReason, s.ClosedAt = true, e.JourneyClosed.GetReason(), when(env)
		s.Declined = s.ClosedReason == "declined"
	case *eventsv1.Envelope_JourneyReopened:
		s.Closed, s.Declined, s.ClosedReason, s.FailedAttempts, s.ClosedAt = false, false, "", nil, time.Time{}
	case *eventsv1.Envelope_ConsentRecorded:
		c := e.ConsentRecorded
		s.Consent = Consent{ShareWithVCS: c.GetShareWithVcs(), Method: c.GetMethod(), ByPerson: true, At: when(env)}
	case *eventsv1.Envelope_Signposted:
		p := e.Signposted
		s.Signposts = append(s.Signposts, Signpost{ID: p.GetSignpostId(), ServiceID: p.GetServiceId(),
			OrganisationID: p.GetOrganisationId(), At: when(env)})
	case *eventsv1.Envelope_CaseNoteAdded:
		s.Notes++
	case *eventsv1.Envelope_RiskRecorded:
		r := e.RiskRecorded
		s.Risks = append(s.Risks, Risk{ID: r.GetRiskId(), Kind: r.GetKind(), EscalatedToGP: r.GetEscalateToGp(), At: when(env)})
	case *eventsv1.Envelope_FeedbackGiven:
	case *eventsv1.Envelope_SupervisionRecorded:
		// About a worker, not a journey: folded by TeamSupervision.
	case *eventsv1.Envelope_PersonalDataErased:
		s.Erased = true
		if s.Referral != nil { // what this process still holds in memory goes too
			r := proto.Clone(s.Referral).(*eventsv1.ReferralReceived)
			r.Person, r.Notes, r.WhatMatters = nil, nil, nil
			s.Referral = r
		}
	}
	return s
}

func (s *State) completeFollowUp(id string) {
	for i := range s.FollowUps {
		if s.FollowUps[i].ID == id {
			s.FollowUps[i].Done = true
		}
	}
}

// Fold evolves the empty state through a history.
func Fold(history []*eventsv1.Envelope) State {
	var s State
	for _, e := range history {
		s = Evolve(s, e)
	}
	return s
}
