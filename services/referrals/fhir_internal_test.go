package referrals

import (
	"testing"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestTaskStatus(t *testing.T) {
	ref := &eventsv1.ReferralReceived{}
	tests := []struct {
		state events.State
		want  string
	}{
		{events.State{Referral: ref}, "requested"},
		{events.State{Referral: ref, WorkerID: "w"}, "accepted"},
		{events.State{Referral: ref, WorkerID: "w", Contacted: true}, "in-progress"},
		{events.State{Referral: ref, WorkerID: "w", Contacted: true, Onward: []events.Onward{{Status: events.OnwardAttending}}}, "in-progress"},
		{events.State{Referral: ref, Closed: true, ClosedReason: "goals_met"}, "completed"},
		{events.State{Referral: ref, Closed: true, ClosedReason: "clinical"}, "rejected"},
		{events.State{Referral: ref, Closed: true, ClosedReason: "uncontactable"}, "cancelled"},
		{events.State{Referral: ref, Closed: true, ClosedReason: "moved_away"}, "cancelled"},
		{events.State{Referral: ref, Closed: true, Declined: true, ClosedReason: "declined"}, "cancelled"},
	}
	for _, tt := range tests {
		if got := TaskStatus(tt.state); got != tt.want {
			t.Errorf("%s/%s: Task status %s, want %s", tt.state.Status(), tt.state.ClosedReason, got, tt.want)
		}
	}
}
