package events

import (
	"testing"

	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestCaseloadFiguresOfAState(t *testing.T) {
	ref := &eventsv1.ReferralReceived{LinkWorkTeam: "U12345"}
	open := State{Referral: ref, FollowUps: []FollowUp{{ID: "a", Done: true}, {ID: "b"}}}
	closed := State{Referral: ref, Closed: true, ClosedReason: "goals_met", FollowUps: []FollowUp{{ID: "c", AfterClosure: true}}}
	declined := State{Referral: ref, Closed: true, Declined: true, FollowUps: []FollowUp{{ID: "d"}}}
	for _, c := range []struct {
		name string
		s    State
		want []string
	}{
		{"open: the open ones", open, []string{"b"}},
		{"closed: check-ins", closed, []string{"c"}},
		{"declined: none", declined, nil},
		{"no journey: none", State{}, nil},
	} {
		var got []string
		for _, f := range c.s.FollowUpsToHold() {
			got = append(got, f.ID)
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	s := State{Referral: ref, Onward: []Onward{{Status: OnwardSent}, {Status: OnwardAccepted}, {Status: OnwardAttending},
		{Status: OnwardCompleted}, {Status: OnwardDeclined}, {Status: OnwardWithdrawn}, {Status: OnwardDroppedOut}}}
	if a, tk := s.OnwardCounts(); a != 1 || tk != 3 {
		t.Errorf("onward counts %d awaiting, %d taken; want 1, 3", a, tk)
	}
	if !(State{Referral: ref}).Waiting() || (State{Referral: ref, Contacted: true}).Waiting() || closed.Waiting() {
		t.Error("waiting: open and not yet reached")
	}
}
