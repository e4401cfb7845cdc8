package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	directoryv1 "linkway/proto/linkway/directory/v1"
	eventsv1 "linkway/proto/linkway/events/v1"
)

func testOrganisation() *directoryv1.Organisation {
	return &directoryv1.Organisation{Id: "VCS001", Name: "Sale Walking Group"}
}

func testListedService(capacity string) *directoryv1.Service {
	return &directoryv1.Service{Id: "VCS001-walk", OrganisationId: "VCS001", Name: "Health walks",
		Category: "physical_activity", Areas: []string{"Sale"}, AcceptsReferrals: true, Capacity: capacity}
}

// directoryState folds events into an organisation's state, as the
// directory does.
func directoryState(evs ...[]*directoryv1.DirectoryEvent) DirectoryOrg {
	s := DirectoryOrg{}
	for _, list := range evs {
		for _, e := range list {
			e.OccurredAt = timestamppb.Now()
			e.Actor = &eventsv1.Actor{OrganisationId: "PANEL-SALE"}
			s.Evolve(e)
		}
	}
	return s
}

func mustDecideDirectory(t *testing.T, s DirectoryOrg, cmd DirectoryCommand) []*directoryv1.DirectoryEvent {
	t.Helper()
	evs, err := DecideDirectory(s, cmd)
	if err != nil {
		t.Fatalf("decide %s: %v", DirectoryCommandName(cmd), err)
	}
	return evs
}

func TestDecideDirectory(t *testing.T) {
	empty := DirectoryOrg{}
	register := RegisterOrganisation{Organisation: testOrganisation()}
	registered := directoryState(mustDecideDirectory(t, empty, register))
	add := AddService{Service: testListedService(CapacityOpen)}
	open := directoryState(mustDecideDirectory(t, empty, register), mustDecideDirectory(t, registered, add))
	withdrawn := directoryState(mustDecideDirectory(t, empty, register), mustDecideDirectory(t, registered, add),
		mustDecideDirectory(t, open, WithdrawService{ServiceID: "VCS001-walk"}))

	renamed := proto.CloneOf(testListedService(CapacityFull)) // capacity in an update is ignored
	renamed.Name = "Sale health walks"
	badCategory := testListedService(CapacityOpen)
	badCategory.Category = "knitting"
	badID := testListedService(CapacityOpen)
	badID.Id = "VCS002-walk"
	badCapacity := testListedService("busy")
	tooManyAreas := testListedService(CapacityOpen)
	tooManyAreas.Areas = strings.Fields(strings.Repeat("Sale ", 21))
	blankArea := testListedService(CapacityOpen)
	blankArea.Areas = []string{"Sale", " "}
	badContact := testListedService(CapacityOpen)
	badContact.Contact = &directoryv1.Contact{Email: "walks.example.org"}
	otherOrg := testOrganisation()
	otherOrg.Name = "Another name"
	badEmail := testOrganisation()
	badEmail.Email = "walks"

	tests := []struct {
		name      string
		state     DirectoryOrg
		cmd       DirectoryCommand
		wantEvent string // full name of the one event expected; "" for none
		wantCode  Code
		wantField string
	}{
		{"register", empty, register, "linkway.directory.v1.OrganisationRegistered", "", ""},
		{"register again, same details: nothing", registered, register, "", "", ""},
		{"register again, other details: 409", registered, RegisterOrganisation{Organisation: otherOrg}, "", CodeFailedPrecondition, "id"},
		{"register without a name", empty, RegisterOrganisation{Organisation: &directoryv1.Organisation{Id: "VCS001"}}, "", CodeInvalid, "name"},
		{"register a bad code", empty, RegisterOrganisation{Organisation: &directoryv1.Organisation{Id: "VCS 001", Name: "x"}}, "", CodeInvalid, "id"},
		{"register a bad email", empty, RegisterOrganisation{Organisation: badEmail}, "", CodeInvalid, "email"},
		{"update an unknown organisation", empty, UpdateOrganisation{Organisation: testOrganisation()}, "", CodeNotFound, ""},
		{"update", registered, UpdateOrganisation{Organisation: otherOrg}, "linkway.directory.v1.OrganisationUpdated", "", ""},
		{"update, same details: nothing", registered, UpdateOrganisation{Organisation: testOrganisation()}, "", "", ""},
		{"add to an unregistered organisation", empty, add, "", CodeInvalid, "organisation_id"},
		{"add", registered, add, "linkway.directory.v1.ServiceAdded", "", ""},
		{"add with an unknown category", registered, AddService{Service: badCategory}, "", CodeInvalid, "category"},
		{"add with an id of another organisation", registered, AddService{Service: badID}, "", CodeInvalid, "id"},
		{"add with an unknown capacity", registered, AddService{Service: badCapacity}, "", CodeInvalid, "capacity"},
		{"add with 21 areas", registered, AddService{Service: tooManyAreas}, "", CodeInvalid, "areas"},
		{"add with a blank area", registered, AddService{Service: blankArea}, "", CodeInvalid, "areas[1]"},
		{"add with a bad contact email", registered, AddService{Service: badContact}, "", CodeInvalid, "contact.email"},
		{"add again, same details: nothing", open, add, "", "", ""},
		{"add again, other details: 409", open, AddService{Service: testListedService(CapacityFull)}, "", CodeFailedPrecondition, "id"},
		{"add over a withdrawn one: 409", withdrawn, add, "", CodeFailedPrecondition, "id"},
		{"update", open, UpdateService{Service: renamed}, "linkway.directory.v1.ServiceUpdated", "", ""},
		{"update a withdrawn service", withdrawn, UpdateService{Service: renamed}, "", CodeFailedPrecondition, ""},
		{"update an unknown service", registered, UpdateService{Service: renamed}, "", CodeNotFound, ""},
		{"withdraw", open, WithdrawService{ServiceID: "VCS001-walk"}, "linkway.directory.v1.ServiceWithdrawn", "", ""},
		{"withdraw again: nothing", withdrawn, WithdrawService{ServiceID: "VCS001-walk"}, "", "", ""},
		{"withdraw an unknown service", registered, WithdrawService{ServiceID: "VCS001-none"}, "", CodeNotFound, ""},
		{"withdraw with a long reason", open, WithdrawService{ServiceID: "VCS001-walk", Reason: strings.Repeat("x", 301)}, "", CodeInvalid, "reason"},
		// Capacity rules.
		{"open to full", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityFull}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to waiting list", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityWaitingList}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to paused", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityPaused}, "linkway.directory.v1.CapacityChanged", "", ""},
		{"open to open: nothing", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityOpen}, "", "", ""},
		{"an unknown capacity", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: "closed"}, "", CodeInvalid, "capacity"},
		{"an empty capacity", open, SetCapacity{ServiceID: "VCS001-walk", Capacity: ""}, "", CodeInvalid, "capacity"},
		{"capacity of a withdrawn service", withdrawn, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityOpen}, "", CodeFailedPrecondition, ""},
		{"capacity of an unknown service", open, SetCapacity{ServiceID: "VCS001-run", Capacity: CapacityOpen}, "", CodeNotFound, ""},
		{"no command", open, nil, "", CodeInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideDirectory(tt.state, tt.cmd)
			if tt.wantCode != "" {
				var e *Error
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
					t.Fatalf("got %d events (%s), want none", len(evs), DirectoryEventName(evs[0]))
				}
				return
			}
			if len(evs) != 1 || DirectoryEventName(evs[0]) != tt.wantEvent {
				t.Fatalf("events = %v, want one %s", evs, tt.wantEvent)
			}
		})
	}
}

func TestDirectoryUpdateKeepsCapacityAndWithdrawnIsFinal(t *testing.T) {
	register := mustDecideDirectory(t, DirectoryOrg{}, RegisterOrganisation{Organisation: testOrganisation()})
	s := directoryState(register)
	s = directoryState(register, mustDecideDirectory(t, s, AddService{Service: testListedService(CapacityOpen)}))
	before := s.Snapshot()
	full := mustDecideDirectory(t, s, SetCapacity{ServiceID: "VCS001-walk", Capacity: CapacityFull})[0]
	full.Actor = &eventsv1.Actor{OrganisationId: "VCS001"}
	s.Evolve(full)
	up := testListedService(CapacityOpen)
	up.Description = "Now on Sundays too."
	s.Evolve(mustDecideDirectory(t, s, UpdateService{Service: up})[0])
	got := s.Services["VCS001-walk"]
	if got.Service.GetCapacity() != CapacityFull || got.Service.GetDescription() != "Now on Sundays too." {
		t.Errorf("after update: capacity %q, description %q; want full and the new description", got.Service.GetCapacity(), got.Service.GetDescription())
	}
	if got.CapacityBy != "VCS001" {
		t.Errorf("capacity changed by %q, want VCS001", got.CapacityBy)
	}
	if ServiceAccepting(got.Service) {
		t.Error("a full service is accepting")
	}
	if c := before.Services["VCS001-walk"].Service.GetCapacity(); c != CapacityOpen {
		t.Errorf("a snapshot taken before the change sees capacity %q, want open", c)
	}
	s.Evolve(mustDecideDirectory(t, s, WithdrawService{ServiceID: "VCS001-walk"})[0])
	if !s.Services["VCS001-walk"].Withdrawn {
		t.Error("withdrawn service is not marked withdrawn")
	}
}

func TestServiceAccepting(t *testing.T) {
	for _, tt := range []struct {
		capacity string
		accepts  bool
		want     bool
	}{
		{CapacityOpen, true, true},
		{CapacityWaitingList, true, true},
		{CapacityFull, true, false},
		{CapacityPaused, true, false},
		{CapacityOpen, false, false}, // signposting only
	} {
		svc := testListedService(tt.capacity)
		svc.AcceptsReferrals = tt.accepts
		if got := ServiceAccepting(svc); got != tt.want {
			t.Errorf("ServiceAccepting(%s, accepts_referrals=%v) = %v, want %v", tt.capacity, tt.accepts, got, tt.want)
		}
	}
}

func TestValidCodes(t *testing.T) {
	for _, tt := range []struct {
		s              string
		org, serviceID bool
	}{
		{"VCS001", true, true},
		{"VCS001-walk", true, true},
		{"-VCS001", false, false},
		{"VCS 001", false, false},
		{"VCS.001", false, false},
		{"", false, false},
		{strings.Repeat("A", 32), true, true},
		{strings.Repeat("A", 33), false, true},
		{strings.Repeat("A", 64), false, true},
		{strings.Repeat("A", 65), false, false},
	} {
		if got := ValidOrgCode(tt.s); got != tt.org {
			t.Errorf("ValidOrgCode(%q) = %v, want %v", tt.s, got, tt.org)
		}
		if got := ValidServiceID(tt.s); got != tt.serviceID {
			t.Errorf("ValidServiceID(%q) = %v, want %v", tt.s, got, tt.serviceID)
		}
	}
}

func TestPlacementFollowsTime(t *testing.T) {
	s := directoryState(mustDecideDirectory(t, DirectoryOrg{}, RegisterOrganisation{Organisation: testOrganisation()}))
	add := mustDecideDirectory(t, s, AddService{Service: testListedService(CapacityOpen)})[0]
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	add.OccurredAt = timestamppb.New(t0)
	s.Evolve(add)
	moved := testListedService(CapacityOpen)
	moved.Category, moved.Areas = "nature_and_green_space", []string{"Altrincham"}
	up := mustDecideDirectory(t, s, UpdateService{Service: moved})[0]
	up.OccurredAt = timestamppb.New(t0.Add(time.Hour))
	s.Evolve(up)
	svc := s.Services["VCS001-walk"]
	for _, tt := range []struct {
		at             time.Time
		category, area string
	}{
		{t0.Add(-time.Hour), "physical_activity", "Sale"}, // before it was added: its first placing
		{t0.Add(time.Minute), "physical_activity", "Sale"},
		{t0.Add(2 * time.Hour), "nature_and_green_space", "Altrincham"},
	} {
		if c, a := svc.PlacementAt(tt.at); c != tt.category || a != tt.area {
			t.Errorf("PlacementAt(%s) = %s, %s; want %s, %s", tt.at, c, a, tt.category, tt.area)
		}
	}
	if c, a := (&DirectoryService{}).PlacementAt(t0); c != "unknown" || a != "unknown" {
		t.Errorf("a service never placed is placed at %s, %s", c, a)
	}
	noArea := directoryState(mustDecideDirectory(t, DirectoryOrg{}, RegisterOrganisation{Organisation: testOrganisation()}))
	bare := testListedService(CapacityOpen)
	bare.Areas = nil
	noArea.Evolve(mustDecideDirectory(t, noArea, AddService{Service: bare})[0])
	if _, a := noArea.Services["VCS001-walk"].PlacementAt(t0); a != "unknown" {
		t.Errorf("a service without areas is placed in %q, want unknown", a)
	}
}
