package views_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/views"
)

// perJourney counts each journey's events and remembers their order: a
// view whose keys each belong to one journey, so it may be partitioned.
type perJourney struct {
	mu      sync.Mutex
	applied map[uint64]int // seq -> times applied, across replicas
}

func (*perJourney) Name() string      { return "test_per_journey" }
func (*perJourney) Partitioned() bool { return true }

func (p *perJourney) Apply(tx *views.Tx, ev views.Event) error {
	p.mu.Lock()
	p.applied[ev.Seq]++
	p.mu.Unlock()
	key := "j." + ev.Envelope.GetJourneyId()
	var seqs []uint64
	if _, err := tx.GetJSON(key, &seqs); err != nil {
		return err
	}
	if n := len(seqs); n > 0 && seqs[n-1] >= ev.Seq {
		return fmt.Errorf("journey %s applied out of order: %d after %d", ev.Envelope.GetJourneyId(), ev.Seq, seqs[n-1])
	}
	return tx.PutJSON(key, append(seqs, ev.Seq))
}

type world struct {
	t     *testing.T
	js    jetstream.JetStream
	store *journal.Store
	m     *views.Metrics
	log   *slog.Logger
}

func newWorld(t *testing.T) *world {
	_, js := natsserver.Test(t)
	store, err := journal.Open(context.Background(), js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := views.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, js: js, store: store, m: m, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// journeys writes n journeys of three events each and returns each
// journey's last sequence; all records every journey's sequences.
func (w *world) journeys(n int, all map[string][]uint64) map[string]uint64 {
	w.t.Helper()
	out := map[string]uint64{}
	for range n {
		id := events.NewID()
		for _, c := range []events.Command{events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: id}},
			events.Assign{WorkerID: "w", WorkerName: "W"}, events.Close{Reason: "other"}} {
			res, err := w.store.Execute(context.Background(), id, journal.Meta{}, c)
			if err != nil {
				w.t.Fatal(err)
			}
			out[id] = res.LastSeq
			all[id] = append(all[id], res.LastSeq)
		}
	}
	return out
}

func (w *world) runner(ctx context.Context, p views.Projector, leases *views.Leases) *views.Runner {
	w.t.Helper()
	cfg := views.DefaultConfig()
	cfg.Batch = 5
	cfg.Leases = leases
	r, err := views.New(ctx, w.js, p, cfg, w.m, w.log)
	if err != nil {
		w.t.Fatal(err)
	}
	go func() {
		if err := r.Run(ctx); err != nil {
			w.t.Errorf("runner stopped: %v", err) // the test is still running: its wait fails first otherwise
		}
	}()
	return r
}

func waitAll(t *testing.T, r *views.Runner, last map[string]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for id, seq := range last {
		if err := r.WaitFor(ctx, seq); err != nil {
			t.Fatalf("journey %s seq %d never applied: %v", id, seq, err)
		}
	}
}

func TestPartitionedProjectionAppliesEachJourneyInOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &perJourney{applied: map[uint64]int{}}
	r := w.runner(ctx, p, nil)
	last := w.journeys(60, map[string][]uint64{})
	waitAll(t, r, last)
	view := dump(t, r.KV())
	if len(view) != 60 {
		t.Fatalf("%d journeys in the view, want 60", len(view))
	}
	for seq, n := range p.applied {
		if n != 1 {
			t.Errorf("seq %d applied %d times", seq, n)
		}
	}
	// Every partition has its own checkpoint, and more than one was used.
	keys, _ := r.KV().ListKeys(ctx)
	cps := 0
	for k := range keys.Keys() {
		if len(k) > len(views.CheckpointKey) && k[:len(views.CheckpointKey)] == views.CheckpointKey {
			cps++
		}
	}
	if cps < 2 {
		t.Errorf("%d partition checkpoints, want several", cps)
	}

	cancel()
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	if err := views.Drop(rctx, w.js, events.JourneyStream, p.Name()); err != nil {
		t.Fatal(err)
	}
	rebuilt := w.runner(rctx, &perJourney{applied: map[uint64]int{}}, nil)
	waitAll(t, rebuilt, last)
	if got := dump(t, rebuilt.KV()); !maps.Equal(got, view) {
		t.Error("the rebuilt partitioned view differs from the live one")
	}
}

// TestReplicasSharePartitionsAndTakeOver runs two replicas of one
// projection with leases: each applies a share, every event is applied
// exactly once, and when one replica stops the other takes its partitions
// over and applies what comes next.
func TestReplicasSharePartitionsAndTakeOver(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	bg := context.Background()
	const ttl = time.Second
	leases := func(ctx context.Context, member string) *views.Leases {
		l, err := views.OpenLeases(bg, w.js, member, ttl, 1)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = l.Run(ctx) }()
		return l
	}
	p := &perJourney{applied: map[uint64]int{}}
	ctxA, stopA := context.WithCancel(bg)
	defer stopA()
	ctxB, stopB := context.WithCancel(bg)
	defer stopB()
	a := w.runner(ctxA, p, leases(ctxA, "replica-a"))
	b := w.runner(ctxB, p, leases(ctxB, "replica-b"))

	all := map[string][]uint64{}
	last := w.journeys(40, all)
	waitAll(t, a, last) // a waits through b's checkpoints for b's partitions
	waitAll(t, b, last)
	// Both replicas applied something once the shares settled.
	deadline := time.Now().Add(20 * time.Second)
	for !(a.Ready() && b.Ready()) {
		if time.Now().After(deadline) {
			t.Fatal("replicas never both ready")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}

	stopA()
	more := w.journeys(20, all)
	waitAll(t, b, more)
	// The view holds every journey's events once each, in order (Apply
	// refuses anything else). A batch cut short by a hand-over may be
	// applied again by the next holder: its writes had not been flushed.
	view := dump(t, b.KV())
	if len(view) != 60 {
		t.Errorf("%d journeys in the view, want 60", len(view))
	}
	for id, seqs := range all {
		if want, _ := json.Marshal(seqs); view["j."+id] != string(want) {
			t.Errorf("journey %s: view %s, want %s", id, view["j."+id], want)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.applied) != 180 {
		t.Errorf("%d distinct events applied, want 180", len(p.applied))
	}
}
