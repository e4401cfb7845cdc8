package directory_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/services/api"
	"linkway/services/directory"
	"linkway/services/hub/hubtest"
)

// reader opens a second, non-serving directory on a test hub's NATS: what
// another process (or another service in this one) sees.
func reader(t *testing.T, h *hubtest.Hub) *directory.Service {
	t.Helper()
	d := h.Deps()
	d.Reg = prometheus.NewRegistry()
	d.Demo = false
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d.Go = nil
	dir, err := directory.Start(ctx, d, false)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDemoSeedAndPlatformDirectory(t *testing.T) {
	h := hubtest.Start(t)
	dir := reader(t, h)
	ctx := context.Background()
	f, ok, err := dir.Service(ctx, "VCS001-walk")
	if err != nil || !ok {
		t.Fatalf("VCS001-walk: found %v, err %v", ok, err)
	}
	if f.OrganisationID != "VCS001" || !f.AcceptsReferrals || f.Capacity != "open" {
		t.Errorf("VCS001-walk facts = %+v", f)
	}
	if _, ok, _ := dir.Service(ctx, "VCS999-none"); ok {
		t.Error("an unknown service was found")
	}
	list, err := dir.ServicesOf(ctx, "VCS002")
	if err != nil || len(list) != 1 || list[0].ID != "VCS002-debt" {
		t.Errorf("ServicesOf(VCS002) = %+v, %v", list, err)
	}
	vcs1 := api.Principal{OrgID: "VCS001", Kind: api.KindVCS}
	if err := dir.SetCapacity(ctx, vcs1, "VCS001-walk", "full"); err != nil {
		t.Fatal(err)
	}
	f, _, _ = dir.Service(ctx, "VCS001-walk")
	if f.Capacity != "full" {
		t.Errorf("capacity after SetCapacity = %q, want full (read your writes)", f.Capacity)
	}
}
