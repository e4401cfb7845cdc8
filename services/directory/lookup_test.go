package directory

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
)

// The rules' own tables are in events/directory_test.go.

func TestServiceID(t *testing.T) {
	for _, tt := range []struct{ org, name, want string }{
		{"VCS009", "Knit & Natter!", "VCS009-knit-natter"},
		{"VCS009", "   ", "VCS009-service"},
	} {
		got := serviceID(tt.org, tt.name)
		if got != tt.want || !events.ValidServiceID(got) {
			t.Errorf("serviceID(%q, %q) = %q, want %q (valid)", tt.org, tt.name, got, tt.want)
		}
	}
}

func TestPlacementAtLooksUpTheService(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var org events.DirectoryOrg
	for _, cmd := range []events.DirectoryCommand{
		events.RegisterOrganisation{Organisation: &directoryv1.Organisation{Id: "VCS001", Name: "Sale Walking Group"}},
		events.AddService{Service: &directoryv1.Service{Id: "VCS001-walk", OrganisationId: "VCS001", Name: "Health walks",
			Category: "physical_activity", Areas: []string{"Sale"}, AcceptsReferrals: true, Capacity: events.CapacityOpen}},
	} {
		evs, err := events.DecideDirectory(org, cmd)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			ev.OccurredAt = timestamppb.New(t0)
			org.Evolve(ev)
		}
	}
	dir := &Service{byOrg: map[string]*events.DirectoryOrg{"VCS001": &org}, svcOrg: map[string]string{"VCS001-walk": "VCS001"}}
	if c, a := dir.placementAt("VCS001-walk", t0.Add(time.Hour)); c != "physical_activity" || a != "Sale" {
		t.Errorf("placementAt = %s, %s; want physical_activity, Sale", c, a)
	}
	if c, a := dir.placementAt("VCS001-none", t0); c != "unknown" || a != "unknown" {
		t.Errorf("an unknown service is placed at %s, %s", c, a)
	}
}
