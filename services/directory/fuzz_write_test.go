package directory

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/orgs"
)

// FuzzDirectoryWrites feeds arbitrary bodies to the decoding and rules of
// POST /v1/directory/organisations and POST /v1/directory/services, as
// their handlers do: never a panic; a refusal is an *events.Error, naming
// a field when it is invalid_argument; anything accepted encodes, and
// deciding it again once applied changes nothing (a retry is harmless).
func FuzzDirectoryWrites(f *testing.F) {
	f.Add(false, []byte(`{"id": "VCS009", "name": "Sale Knitters", "email": "k@example.org"}`))
	f.Add(true, []byte(`{"organisation_id": "VCS009", "name": "Knit and natter", "category": "physical_activity", "accepts_referrals": true, "areas": ["Sale"]}`))
	f.Add(true, []byte(`{"organisation_id": "VCS009", "id": "VCS009-x", "name": " ", "category": "food", "accepts_referrals": false, "capacity": "full", "contact": {"email": "x"}}`))
	f.Add(true, []byte(`{"organisation_id": "VCS009", "name": "\u0000\u00ff---", "category": "food", "accepts_referrals": true, "areas": [""]}`))
	f.Add(false, []byte(`{"id": "-", "name": 1}`))
	registered := &directoryv1.Organisation{Id: "VCS009", Name: "Sale Knitters"}
	f.Fuzz(func(t *testing.T, service bool, body []byte) {
		var cmd events.DirectoryCommand
		st := events.DirectoryOrg{}
		if service {
			var b newServiceBody
			if err := api.Unmarshal(body, &b); err != nil {
				return
			}
			// As addService does before it decides.
			if !orgs.ValidCode(b.OrganisationID) || b.AcceptsReferrals == nil {
				return
			}
			if b.ID == "" {
				b.ID = serviceID(b.OrganisationID, b.Name)
			}
			if b.Capacity == "" {
				b.Capacity = events.CapacityOpen
			}
			org := proto.CloneOf(registered)
			org.Id = b.OrganisationID
			st.Org = org
			cmd = events.AddService{Service: b.proto(b.Capacity)}
		} else {
			var b orgBody
			if err := api.Unmarshal(body, &b); err != nil {
				return
			}
			cmd = events.RegisterOrganisation{Organisation: b.proto()}
		}
		evs, err := events.DecideDirectory(st, cmd)
		if err != nil {
			e, ok := err.(*events.Error)
			if !ok || (e.Code == events.CodeInvalid && e.Field == "") || e.Code == events.CodeInternal {
				t.Fatalf("refusal %#v: not an invalid_argument naming a field", err)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatalf("a new write changed nothing")
		}
		for _, ev := range evs {
			if _, err := proto.Marshal(ev); err != nil {
				t.Fatalf("accepted a write whose event does not encode: %v", err)
			}
			st.Evolve(ev)
		}
		again, err := events.DecideDirectory(st, cmd)
		if err != nil || len(again) != 0 {
			t.Fatalf("the same write again: %d events, %v", len(again), err)
		}
	})
}
