package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/directory"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
)

// reader opens a second, non-serving directory on a test hub's NATS: what
// another process (or another service in this one) sees.
func reader(t *testing.T, h *hubtest.Hub) *directory.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir, err := directory.New(ctx, directory.Config{JS: h.JS(), Orgs: h.Orgs(), Metrics: prometheus.NewRegistry()})
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
	vcs1 := api.Principal{OrgID: "VCS001", Kind: events.KindVCS}
	if err := dir.SetCapacity(ctx, vcs1, "VCS001-walk", "full"); err != nil {
		t.Fatal(err)
	}
	f, _, _ = dir.Service(ctx, "VCS001-walk")
	if f.Capacity != "full" {
		t.Errorf("capacity after SetCapacity = %q, want full (read your writes)", f.Capacity)
	}
}

// TestConcurrentWriters changes one organisation's services from many
// goroutines and two directory instances at once (two processes sharing
// the stream): every change is decided on the latest state, none is lost.
func TestConcurrentWriters(t *testing.T) {
	h := hubtest.Start(t)
	a, b := reader(t, h), reader(t, h)
	ctx := context.Background()
	panel := api.Principal{OrgID: "PANEL-SALE", Kind: events.KindPanel}
	capacities := []string{"full", "waiting_list", "paused", "open"}
	errs := make(chan error, 40)
	for i := range 40 {
		dir := a
		if i%2 == 1 {
			dir = b
		}
		go func() { errs <- dir.SetCapacity(ctx, panel, "VCS001-walk", capacities[i%len(capacities)]) }()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Errorf("SetCapacity: %v", err)
		}
	}
	// Both instances converge on the stream's last word.
	st, err := h.JS().Stream(ctx, directory.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(ctx, directory.SubjectPrefix+"VCS001")
	if err != nil {
		t.Fatal(err)
	}
	var ev directoryv1.DirectoryEvent
	if err := proto.Unmarshal(last.Data, &ev); err != nil {
		t.Fatal(err)
	}
	want := ev.GetCapacityChanged().GetCapacity()
	if want == "" {
		t.Fatalf("the last VCS001 event is not a capacity change: %v", &ev)
	}
	hubtest.Eventually(t, 10*time.Second, func() bool {
		fa, _, _ := a.Service(ctx, "VCS001-walk")
		fb, _, _ := b.Service(ctx, "VCS001-walk")
		return fa.Capacity == want && fb.Capacity == want
	}, "both directories agree with the last event")
	// A VCS principal of another organisation cannot, whatever the race.
	if err := a.SetCapacity(ctx, api.Principal{OrgID: "VCS002", Kind: events.KindVCS}, "VCS001-walk", "open"); events.ErrorCode(err) != events.CodePermissionDenied {
		t.Errorf("VCS002 changing VCS001-walk: %v, want permission_denied", err)
	}
	if err := a.SetCapacity(ctx, api.Principal{OrgID: "A81001", Kind: events.KindGP}, "VCS001-walk", "open"); events.ErrorCode(err) != events.CodePermissionDenied {
		t.Errorf("a GP changing capacity: %v, want permission_denied", err)
	}
}
