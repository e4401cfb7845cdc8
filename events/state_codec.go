package events

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// The folded state's encoding at rest is the protobuf message
// linkway.events.v1.JourneyState: the same additive schema rules as the
// events, so a state written by one version is read by the next, and a
// field added to State without being added here is caught by the
// round-trip test (which fills every field of State by reflection).

// StateProto is the state as a JourneyState message. The referral is
// carried as it is held (plain); a store that must not keep personal data
// in the clear replaces it with the referral's record from the log.
func StateProto(s State) *eventsv1.JourneyState {
	p := &eventsv1.JourneyState{
		JourneyId:    s.JourneyID,
		Version:      int64(s.Version),
		Referral:     s.Referral,
		Closed:       s.Closed,
		Declined:     s.Declined,
		ClosedReason: s.ClosedReason,
		WorkerId:     s.WorkerID,
		WorkerName:   s.WorkerName,
		Contacted:    s.Contacted,
		LastContact:  timestamp(s.LastContact),
		Assessed:     s.Assessed,
		Goals:        s.Goals,
		Measures:     int64(s.Measures),
		Erased:       s.Erased,
		ReferredAt:   timestamp(s.ReferredAt),
		ClosedAt:     timestamp(s.ClosedAt),
		Urgent:       s.Urgent,
		Consent: &eventsv1.ConsentState{ShareWithVcs: s.Consent.ShareWithVCS, Method: s.Consent.Method,
			ByPerson: s.Consent.ByPerson, At: timestamp(s.Consent.At)},
		Needs:     s.Needs,
		Notes:     int64(s.Notes),
		Handovers: int64(s.Handovers),
	}
	for _, p2 := range s.Signposts {
		p.Signposts = append(p.Signposts, &eventsv1.SignpostState{Id: p2.ID, ServiceId: p2.ServiceID,
			OrganisationId: p2.OrganisationID, At: timestamp(p2.At)})
	}
	for _, r := range s.Risks {
		p.Risks = append(p.Risks, &eventsv1.RiskState{Id: r.ID, Kind: r.Kind, EscalatedToGp: r.EscalatedToGP, At: timestamp(r.At)})
	}
	for _, t := range s.FailedAttempts {
		p.FailedAttempts = append(p.FailedAttempts, timestamp(t))
	}
	for _, o := range s.Onward {
		p.Onward = append(p.Onward, &eventsv1.OnwardState{Id: o.ID, ServiceId: o.ServiceID,
			OrganisationId: o.OrganisationID, Status: string(o.Status), MadeAt: timestamp(o.MadeAt),
			WaitingList: o.WaitingList, DeclineReason: o.DeclineReason, DeclinedAt: timestamp(o.DeclinedAt)})
	}
	for _, f := range s.FollowUps {
		p.FollowUps = append(p.FollowUps, &eventsv1.FollowUpState{Id: f.ID, Due: f.Due, Done: f.Done,
			Timepoint: f.Timepoint, AfterClosure: f.AfterClosure})
	}
	return p
}

// StateFromProto is the inverse of StateProto. A referral_record is not
// read here (that needs the log's decoding and the person's key): the
// caller decodes it and sets Referral.
func StateFromProto(p *eventsv1.JourneyState) State {
	s := State{
		JourneyID:    p.GetJourneyId(),
		Version:      int(p.GetVersion()),
		Referral:     p.GetReferral(),
		Closed:       p.GetClosed(),
		Declined:     p.GetDeclined(),
		ClosedReason: p.GetClosedReason(),
		WorkerID:     p.GetWorkerId(),
		WorkerName:   p.GetWorkerName(),
		Contacted:    p.GetContacted(),
		LastContact:  fromTimestamp(p.GetLastContact()),
		Assessed:     p.GetAssessed(),
		Goals:        p.GetGoals(),
		Measures:     int(p.GetMeasures()),
		Erased:       p.GetErased(),
		ReferredAt:   fromTimestamp(p.GetReferredAt()),
		ClosedAt:     fromTimestamp(p.GetClosedAt()),
		Urgent:       p.GetUrgent(),
		Consent: Consent{ShareWithVCS: p.GetConsent().GetShareWithVcs(), Method: p.GetConsent().GetMethod(),
			ByPerson: p.GetConsent().GetByPerson(), At: fromTimestamp(p.GetConsent().GetAt())},
		Needs:     p.GetNeeds(),
		Notes:     int(p.GetNotes()),
		Handovers: int(p.GetHandovers()),
	}
	for _, sp := range p.GetSignposts() {
		s.Signposts = append(s.Signposts, Signpost{ID: sp.GetId(), ServiceID: sp.GetServiceId(),
			OrganisationID: sp.GetOrganisationId(), At: fromTimestamp(sp.GetAt())})
	}
	for _, r := range p.GetRisks() {
		s.Risks = append(s.Risks, Risk{ID: r.GetId(), Kind: r.GetKind(), EscalatedToGP: r.GetEscalatedToGp(), At: fromTimestamp(r.GetAt())})
	}
	for _, t := range p.GetFailedAttempts() {
		s.FailedAttempts = append(s.FailedAttempts, fromTimestamp(t))
	}
	for _, o := range p.GetOnward() {
		s.Onward = append(s.Onward, Onward{ID: o.GetId(), ServiceID: o.GetServiceId(),
			OrganisationID: o.GetOrganisationId(), Status: OnwardStatus(o.GetStatus()), MadeAt: fromTimestamp(o.GetMadeAt()),
			WaitingList: o.GetWaitingList(), DeclineReason: o.GetDeclineReason(), DeclinedAt: fromTimestamp(o.GetDeclinedAt())})
	}
	for _, f := range p.GetFollowUps() {
		s.FollowUps = append(s.FollowUps, FollowUp{ID: f.GetId(), Due: f.GetDue(), Done: f.GetDone(),
			Timepoint: f.GetTimepoint(), AfterClosure: f.GetAfterClosure()})
	}
	return s
}

// MarshalState encodes a state (its referral plain) as a JourneyState.
func MarshalState(s State) ([]byte, error) {
	b, err := proto.Marshal(StateProto(s))
	if err != nil {
		return nil, fmt.Errorf("marshal journey state: %w", err)
	}
	return b, nil
}

// UnmarshalState decodes what MarshalState encoded.
func UnmarshalState(b []byte) (State, error) {
	p := &eventsv1.JourneyState{}
	if err := proto.Unmarshal(b, p); err != nil {
		return State{}, fmt.Errorf("unmarshal journey state: %w", err)
	}
	return StateFromProto(p), nil
}

// The zero time is no timestamp, so that an unset time reads back as the
// zero time.Time and State values compare equal after a round trip.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
