package events

import (
	"testing"

	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestWorkflow(t *testing.T) {
	ref := &eventsv1.ReferralReceived{}
	tests := []struct {
		state         State
		task, request string
	}{
		{State{Referral: ref}, "requested", "active"},
		{State{Referral: ref, WorkerID: "w"}, "accepted", "active"},
		{State{Referral: ref, WorkerID: "w", Contacted: true}, "in-progress", "active"},
		{State{Referral: ref, WorkerID: "w", Contacted: true, Onward: []Onward{{Status: OnwardAttending}}}, "in-progress", "active"},
		{State{Referral: ref, Closed: true, ClosedReason: "goals_met"}, "completed", "completed"},
		{State{Referral: ref, Closed: true, ClosedReason: "clinical"}, "rejected", "completed"},
		{State{Referral: ref, Closed: true, ClosedReason: "uncontactable"}, "cancelled", "completed"},
		{State{Referral: ref, Closed: true, ClosedReason: "moved_away"}, "cancelled", "completed"},
		{State{Referral: ref, Closed: true, Declined: true, ClosedReason: "declined"}, "cancelled", "revoked"},
	}
	for _, tt := range tests {
		if got := tt.state.Workflow(); got.Task != tt.task || got.Request != tt.request {
			t.Errorf("%s/%s: %+v, want Task %s, ServiceRequest %s", tt.state.Status(), tt.state.ClosedReason, got, tt.task, tt.request)
		}
	}
}

func TestSource(t *testing.T) {
	for src, want := range map[string]string{"": "gp", "gp": "gp", "self": "self", "housing": "housing", "council": "other_agency"} {
		if got := (State{Referral: &eventsv1.ReferralReceived{Source: src}}).Source(); got != want {
			t.Errorf("source %q reads as %q, want %q", src, got, want)
		}
	}
	if got := (State{}).Source(); got != "" {
		t.Errorf("no referral: source %q", got)
	}
}
