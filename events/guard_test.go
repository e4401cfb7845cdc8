package events

import (
	"testing"

	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestGuardedChecksTheDecidedState(t *testing.T) {
	s := Evolve(State{}, Wrap(&eventsv1.ReferralReceived{LinkWorkTeam: "U12345"}))
	team := func(want string) func(State) error {
		return func(s State) error {
			if s.Referral.GetLinkWorkTeam() != want {
				return ErrNotFound
			}
			return nil
		}
	}
	cmd := Assign{WorkerID: "w1", WorkerName: "Sam"}
	if evs, err := Decide(s, Guarded{Command: cmd, Check: team("U99999")}); err != ErrNotFound || len(evs) != 0 {
		t.Fatalf("another team's journey: %v %v", evs, err)
	}
	evs, err := Decide(s, Guarded{Command: cmd, Check: team("U12345")})
	if err != nil || len(evs) != 1 || evs[0].GetLinkWorkerAssigned().GetWorkerId() != "w1" {
		t.Fatalf("the team's own journey: %v %v", evs, err)
	}
	if CommandName(Guarded{Command: cmd}) != "assign" {
		t.Errorf("name %q", CommandName(Guarded{Command: cmd}))
	}
	if _, err := Decide(State{}, Guarded{Command: cmd, Check: team("U12345")}); err != ErrNotFound {
		t.Fatalf("no journey: %v", err)
	}
}
