package hub_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
)

// startHub starts a hub with cfg and waits until its views have applied
// the log's last event.
func startHub(t *testing.T, cfg hub.Config) *hub.Hub {
	t.Helper()
	h, err := hub.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 30*time.Second, func() bool { return h.Reader().Ready() }, "the views catch up")
	return h
}

func stopHub(t *testing.T, h *hub.Hub) {
	t.Helper()
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatalf("hub stopped with: %v", err)
	}
}

// refer appends n referrals and returns the log's last sequence.
func refer(t *testing.T, h *hub.Hub, n int, tag string) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		res, err := h.Journal().Execute(context.Background(), events.NewID(), journal.Meta{},
			events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: fmt.Sprint(tag, i), LinkWorkTeam: "U12345"}})
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastSeq
	}
	return last
}

// TestSnapshotSeedsAReplicaThatReplaysOnlyTheTail: a snapshot of the views
// taken at some point of the log, copied and given to a hub with --views,
// starts that hub from the snapshot's checkpoints: it reads only the
// events appended since, and its views end where the log ends. A rebuild
// of every view replays the whole log.
func TestSnapshotSeedsAReplicaThatReplaysOnlyTheTail(t *testing.T) {
	cfg := hubtest.Config(t)
	h := startHub(t, cfg)
	atSnapshot := refer(t, h, 12, "SNAP-")
	stopHub(t, h)

	snap := filepath.Join(t.TempDir(), "snap")
	st, err := hub.Snapshot(context.Background(), cfg, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != atSnapshot {
		t.Fatalf("snapshot at sequence %d, want %d", st.Total, atSnapshot)
	}

	// The log moves on after the snapshot.
	h = startHub(t, cfg)
	const tail = 5
	last := refer(t, h, tail, "TAIL-")
	stopHub(t, h)

	// A new replica's views: a copy of the snapshot.
	seeded := filepath.Join(t.TempDir(), "views")
	if out, err := exec.Command("cp", "-a", snap, seeded).CombinedOutput(); err != nil {
		t.Fatalf("copy the snapshot: %v: %s", err, out)
	}
	rcfg := cfg
	rcfg.ViewsDir = seeded
	r := startHub(t, rcfg)
	if got := r.Reader().Folded(); got != tail {
		t.Errorf("the seeded replica read %d events, want only the %d of the tail", got, tail)
	}
	if got := r.Reader().Applied(); got != last {
		t.Errorf("the seeded replica's views are at %d, want the log's last %d", got, last)
	}
	names := r.Reader().Views()
	stopHub(t, r)
	if _, err := os.Stat(filepath.Join(cfg.Data, "views")); err != nil {
		t.Errorf("the first hub's views are not under the data folder: %v", err)
	}

	// A rebuild of every view replays the whole log into them.
	rb, err := hub.RebuildViews(context.Background(), rcfg, []string{hub.AllViews}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Total != last || rb.Folded != last {
		t.Errorf("rebuild: total %d, folded %d, want the whole log, %d", rb.Total, rb.Folded, last)
	}
	if !slices.Equal(rb.Views, names) {
		t.Errorf("rebuild all rebuilt %v, want every view %v", rb.Views, names)
	}
	if _, err := hub.RebuildViews(context.Background(), rcfg, []string{"no_such_view"}, nil); err == nil {
		t.Error("a rebuild of an unknown view succeeded")
	}
}
