package directory

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	eventsv1 "linkway/proto/linkway/events/v1"
)

func testOrg() *directoryv1.Organisation {
	return &directoryv1.Organisation{Id: "VCS001", Name: "Sale Walking Group"}
}

func testService(capacity string) *directoryv1.Service {
	return &directoryv1.Service{Id: "VCS001-walk", OrganisationId: "VCS001", Name: "Health walks",
		Category: "physical_activity", Areas: []string{"Sale"}, AcceptsReferrals: true, Capacity: capacity}
}

// state folds events into an organisation's state, as the directory does.
func state(evs ...[]*directoryv1.DirectoryEvent) orgState {
	s := orgState{}
	for _, list := range evs {
		for _, e := range list {
			e.OccurredAt = timestamppb.Now()
			e.Actor = &eventsv1.Actor{OrganisationId: "PANEL-SALE"}
			s.evolve(e)
		}
	}
	return s
}

func mustDecide(t *testing.T, s orgState, cmd any) []*directoryv1.DirectoryEvent {
	t.Helper()
	evs, err := decide(s, cmd)
	if err != nil {
		t.Fatalf("decide %T: %v", cmd, err)
	}
	return evs
}

func TestDecide(t *testing.T) {
	empty := orgState{}
	registered := state(mustDecide(t, empty, registerOrg{org: testOrg()}))
	open := state(mustDecide(t, empty, registerOrg{org: testOrg()}), mustDecide(t, registered, addService{svc: testService("open")}))
	withdrawn := state(mustDecide(t, empty, registerOrg{org: testOrg()}), mustDecide(t, registered, addService{svc: testService("open")}),
		mustDecide(t, open, withdrawService{id: "VCS001-walk"}))

	renamed := proto.CloneOf(testService("full")) // capacity in an update is ignored
	renamed.Name = "Sale health walks"
	badCategory := testService("open")
	badCategory.Category = "knitting"
	badID := testService("open")
	badID.Id = "VCS002-walk"
	badCapacity := testService("busy")
	otherOrg := testOrg()
	otherOrg.Name = "Another name"

	tests := []struct {
		name      string
		state     orgState
		cmd       any
		wantEvent string // full name of the one event expected; "" for none
		wantCode  events.Code
		wantField string
	}{
		{"register", empty, registerOrg{org: testOrg()}, "linkway.directory.v1.OrganisationRegistered", "", ""},
		{"register again, same details: nothing", registered, registerOrg{org: testOrg()}, "", "", ""},
		{"register again, other details: 409", registered, registerOrg{org: otherOrg}, "", events.CodeFailedPrecondition, "id"},
		{"register without a name", empty, registerOrg{org: &directoryv1.Organisation{Id: "VCS001"}}, "", events.CodeInvalid, "name"},
		{"register a bad code", empty, registerOrg{org: &directoryv1.Organisation{Id: "VCS 001", Name: "x"}}, "", events.CodeInvalid, "id"},
		{"update an unknown organisation", empty, updateOrg{org: testOrg()}, "", events.CodeNotFound, ""},
		{"update", registered, updateOrg{org: otherOrg}, "linkway.directory.v1.OrganisationUpdated", "", ""},
		{"add to an unregistered organisation", empty, addService{svc: testService("open")}, "", events.CodeInvalid, "organisation_id"},
		{"add", registered, addService{svc: testService("open")}, "linkway.directory.v1.ServiceAdded", "", ""},
		{"add with an unknown category", registered, addService{svc: badCategory}, "", events.CodeInvalid, "category"},
		{"add with an id of another organisation", registered, addService{svc: badID}, "", events.CodeInvalid, "id"},
		{"add with an unknown capacity", registered, addService{svc: badCapacity}, "", events.CodeInvalid, "capacity"},
		{"add again, same details: nothing", open, addService{svc: testService("open")}, "", "", ""},
		{"add again, other details: 409", open, addService{svc: testService("full")}, "", events.CodeFailedPrecondition, "id"},
		{"add over a withdrawn one: 409", withdrawn, addService{svc: testService("open")}, "", events.CodeFailedPrecondition, "id"},
		{"update", open, updateService{svc: renamed}, "linkway.directory.v1.ServiceUpdated", "", ""},
		{"update a withdrawn service", withdrawn, updateService{svc: renamed}, "", events.CodeFailedPrecondition, ""},
		{"update an unknown service", registered, updateService{svc: renamed}, "", events.CodeNotFound, ""},
		{"withdraw", open, withdrawService{id: "VCS001-walk"}, "linkway.directory.v1.ServiceWithdrawn", "", ""},
		{"withdraw again: nothing", withdrawn, withdrawService{id: "VCS001-walk"}, "", "", ""},
		{"withdraw an unknown service", registered, withdrawService{id: "VCS001-none"}, "", events.CodeNotFound, ""},
		// Capacity rules.
		{"open to full", open, setCapacity{id: "VCS001-walk", capacity: "full"}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to waiting list", open, setCapacity{id: "VCS001-walk", capacity: "waiting_list"}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to paused", open, setCapacity{id: "VCS001-walk", capacity: "paused"}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to open: nothing", open, setCapacity{id: "VCS001-walk", capacity: "open"}, "", "", ""},
		{"an unknown capacity", open, setCapacity{id: "VCS001-walk", capacity: "closed"}, "", events.CodeInvalid, "capacity"},
		{"an empty capacity", open, setCapacity{id: "VCS001-walk", capacity: ""}, "", events.CodeInvalid, "capacity"},
		{"capacity of a withdrawn service", withdrawn, setCapacity{id: "VCS001-walk", capacity: "open"}, "", events.CodeFailedPrecondition, ""},
		{"capacity of an unknown service", open, setCapacity{id: "VCS001-run", capacity: "open"}, "", events.CodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := decide(tt.state, tt.cmd)
			if tt.wantCode != "" {
				var e *events.Error
				if !errors.As(err, &e) || e.Code != tt.wantCode {
					t.Fatalf("err = %v, want code %s", err, tt.wantCode)
				}
				if e.Field != tt.wantField {
					t.Errorf("field = %q, want %q", e.Field, tt.wantField)
				}
				if len(evs) != 0 {
					t.Errorf("refused, yet %d events", len(evs))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantEvent == "" {
				if len(evs) != 0 {
					t.Fatalf("got %d events (%s), want none", len(evs), eventName(evs[0]))
				}
				return
			}
			if len(evs) != 1 || eventName(evs[0]) != tt.wantEvent {
				t.Fatalf("events = %v, want one %s", evs, tt.wantEvent)
			}
		})
	}
}

func TestUpdateKeepsCapacityAndWithdrawnIsFinal(t *testing.T) {
	s := state(mustDecide(t, orgState{}, registerOrg{org: testOrg()}))
	s = state(mustDecide(t, orgState{}, registerOrg{org: testOrg()}), mustDecide(t, s, addService{svc: testService("open")}))
	s.evolve(mustDecide(t, s, setCapacity{id: "VCS001-walk", capacity: "full"})[0])
	up := testService("open")
	up.Description = "Now on Sundays too."
	s.evolve(mustDecide(t, s, updateService{svc: up})[0])
	got := s.services["VCS001-walk"]
	if got.svc.GetCapacity() != "full" || got.svc.GetDescription() != "Now on Sundays too." {
		t.Errorf("after update: capacity %q, description %q; want full and the new description", got.svc.GetCapacity(), got.svc.GetDescription())
	}
	if accepting(got.svc) {
		t.Error("a full service is accepting")
	}
	s.evolve(mustDecide(t, s, withdrawService{id: "VCS001-walk"})[0])
	if !s.services["VCS001-walk"].withdrawn {
		t.Error("withdrawn service is not marked withdrawn")
	}
}

func TestAccepting(t *testing.T) {
	for _, tt := range []struct {
		capacity string
		accepts  bool
		want     bool
	}{
		{"open", true, true},
		{"waiting_list", true, true},
		{"full", true, false},
		{"paused", true, false},
		{"open", false, false}, // signposting only
	} {
		svc := testService(tt.capacity)
		svc.AcceptsReferrals = tt.accepts
		if got := accepting(svc); got != tt.want {
			t.Errorf("accepting(%s, accepts_referrals=%v) = %v, want %v", tt.capacity, tt.accepts, got, tt.want)
		}
	}
}

func TestServiceID(t *testing.T) {
	for _, tt := range []struct{ org, name, want string }{
		{"VCS009", "Knit & Natter!", "VCS009-knit-natter"},
		{"VCS009", "   ", "VCS009-service"},
	} {
		got := serviceID(tt.org, tt.name)
		if got != tt.want || !ValidServiceID(got) {
			t.Errorf("serviceID(%q, %q) = %q, want %q (valid)", tt.org, tt.name, got, tt.want)
		}
	}
}

func TestPlacementFollowsTime(t *testing.T) {
	s := state(mustDecide(t, orgState{}, registerOrg{org: testOrg()}))
	add := mustDecide(t, s, addService{svc: testService("open")})[0]
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add.OccurredAt = timestamppb.New(t0)
	s.evolve(add)
	moved := testService("open")
	moved.Category, moved.Areas = "nature_and_green_space", []string{"Altrincham"}
	up := mustDecide(t, s, updateService{svc: moved})[0]
	up.OccurredAt = timestamppb.New(t0.Add(time.Hour))
	s.evolve(up)
	dir := &Service{byOrg: map[string]*orgState{"VCS001": &s}, svcOrg: map[string]string{"VCS001-walk": "VCS001"}}
	for _, tt := range []struct {
		at             time.Time
		category, area string
	}{
		{t0.Add(-time.Hour), "physical_activity", "Sale"}, // before it was added: its first placing
		{t0.Add(time.Minute), "physical_activity", "Sale"},
		{t0.Add(2 * time.Hour), "nature_and_green_space", "Altrincham"},
	} {
		if c, a := dir.placementAt("VCS001-walk", tt.at); c != tt.category || a != tt.area {
			t.Errorf("placementAt(%s) = %s, %s; want %s, %s", tt.at, c, a, tt.category, tt.area)
		}
	}
	if c, a := dir.placementAt("VCS001-none", t0); c != "unknown" || a != "unknown" {
		t.Errorf("an unknown service is placed at %s, %s", c, a)
	}
}
