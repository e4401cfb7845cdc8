package apikeys_test

import (
	"context"
	"testing"

	"linkway/events"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/natsserver"
)

// TestKeysNameTheirOrganisation: a new key says which organisation it is
// for (so failed sign-ins count per organisation attempted); OrgOf reads
// it from new and demo keys, and says nothing of others.
func TestKeysNameTheirOrganisation(t *testing.T) {
	_, js := natsserver.Test(t)
	ring, err := apikeys.OpenKeyRing(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := ring.NewKey(context.Background(), "A81001", events.KindGP)
	if err != nil {
		t.Fatal(err)
	}
	if got := apikeys.OrgOf(key); got != "A81001" || rec.OrgID != "A81001" {
		t.Errorf("OrgOf(new key) = %q", got)
	}
	if p, ok, err := ring.Lookup(context.Background(), key); err != nil || !ok || p.OrgID != "A81001" {
		t.Errorf("the new key does not work: %v %v", ok, err)
	}
	for key, want := range map[string]string{
		"demo-gp-a81001": "GP-A81001",
		"lw_VCS-001_x_y": "VCS-001",
		"lw_noorg":       "",
		"random":         "",
		"":               "",
	} {
		if got := apikeys.OrgOf(key); got != want {
			t.Errorf("OrgOf(%q) = %q, want %q", key, got, want)
		}
	}
}
