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

func (s State) clone() State {
	s.FailedAttempts = slices.Clone(s.FailedAttempts)
	s.Goals = slices.Clone(s.Goals)
	s.Onward = slices.Clone(s.Onward)
	s.FollowUps = slices.Clone(s.FollowUps)
	return s
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
			s.Referral = e.ReferralReceived
		}
	case *eventsv1.Envelope_LinkWorkerAssigned:
		s.WorkerID, s.WorkerName = e.LinkWorkerAssigned.GetWorkerId(), e.LinkWorkerAssigned.GetWorkerName()
	case *eventsv1.Envelope_ContactAttempted:
		s.FailedAttempts = append(s.FailedAttempts, at)
	case *eventsv1.Envelope_ContactMade:
		s.Contacted, s.LastContact, s.FailedAttempts = true, at, nil
	case *eventsv1.Envelope_NeedsAssessed:
		s.Assessed = true
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
			OrganisationID: m.GetOrganisationId(), Status: OnwardSent})
	case *eventsv1.Envelope_OnwardReferralAccepted:
		s.setOnward(e.OnwardReferralAccepted.GetOnwardReferralId(), OnwardAccepted)
	case *eventsv1.Envelope_OnwardReferralDeclined:
		s.setOnward(e.OnwardReferralDeclined.GetOnwardReferralId(), OnwardDeclined)
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
		s.FollowUps = append(s.FollowUps, FollowUp{ID: e.FollowUpScheduled.GetFollowUpId(), Due: e.FollowUpScheduled.GetDue()})
	case *eventsv1.Envelope_FollowUpCompleted:
		s.completeFollowUp(e.FollowUpCompleted.GetFollowUpId())
	case *eventsv1.Envelope_PatientDeclined:
		s.Closed, s.Declined, s.ClosedReason = true, true, "declined"
	case *eventsv1.Envelope_JourneyClosed:
		s.Closed, s.ClosedReason = true, e.JourneyClosed.GetReason()
		s.Declined = s.ClosedReason == "declined"
	case *eventsv1.Envelope_JourneyReopened:
		s.Closed, s.Declined, s.ClosedReason, s.FailedAttempts = false, false, "", nil
	case *eventsv1.Envelope_PersonalDataErased:
		s.Erased = true
		if s.Referral != nil { // what this process still holds in memory goes too
			r := proto.Clone(s.Referral).(*eventsv1.ReferralReceived)
			r.Person, r.Notes = nil, nil
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
