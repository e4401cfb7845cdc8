package views_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"strings"
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

// counter is a small projection: per journey, its status and event count;
// per status, how many journeys are in it.
type counter struct{}

func (counter) Name() string { return "test_counter" }

type journeyRow struct {
	Status string `json:"status"`
	Events int    `json:"events"`
	State  []byte `json:"-"`
}

func (counter) Apply(tx *views.Tx, ev views.Event) error {
	key := "journey." + ev.Envelope.GetJourneyId()
	var row journeyRow
	if _, err := tx.GetJSON(key, &row); err != nil {
		return err
	}
	old := row.Status
	row.Events++
	switch ev.Envelope.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		row.Status = "referred"
	case *eventsv1.Envelope_LinkWorkerAssigned:
		row.Status = "assigned"
	case *eventsv1.Envelope_JourneyClosed:
		row.Status = "closed"
	}
	if old != row.Status {
		for st, d := range map[string]int{old: -1, row.Status: 1} {
			if st == "" {
				continue
			}
			b, _, err := tx.Get("status." + st)
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(string(b))
			tx.Put("status."+st, []byte(strconv.Itoa(n+d)))
		}
	}
	return tx.PutJSON(key, row)
}

func dump(t *testing.T, kv jetstream.KeyValue) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k := range keys.Keys() {
		if strings.HasPrefix(k, views.CheckpointKey) {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = string(e.Value())
	}
	return out
}

func TestRebuiltViewEqualsLiveView(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := natsserver.Test(t)
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := views.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := views.DefaultConfig()
	cfg.Batch = 7 // several batches, and batches that end mid-journey

	live, err := views.New(ctx, js, counter{}, cfg, m, log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan error, 1)
	go func() { liveDone <- live.Run(runCtx) }()

	var last uint64
	for i := range 40 {
		id := events.NewID()
		cmds := []events.Command{events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: id, LinkWorkTeam: "U12345"}}}
		if i%2 == 0 {
			cmds = append(cmds, events.Assign{WorkerID: "w", WorkerName: "W"})
		}
		if i%5 == 0 {
			cmds = append(cmds, events.Close{Reason: "other"})
		}
		for _, c := range cmds {
			res, err := store.Execute(ctx, id, journal.Meta{}, c)
			if err != nil {
				t.Fatal(err)
			}
			last = res.LastSeq
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := live.WaitFor(wctx, last); err != nil {
		t.Fatalf("live view did not reach seq %d: %v", last, err)
	}
	if !live.Ready() {
		t.Error("caught-up runner is not ready")
	}
	liveView := dump(t, live.KV())
	if liveView["status.closed"] != "8" || liveView["status.assigned"] != "16" || liveView["status.referred"] != "16" {
		t.Fatalf("live view counts wrong: closed %s assigned %s referred %s",
			liveView["status.closed"], liveView["status.assigned"], liveView["status.referred"])
	}
	stopLive()
	if err := <-liveDone; err != nil {
		t.Fatal(err)
	}

	// A restart on the same view re-applies nothing.
	again, err := views.New(ctx, js, counter{}, cfg, m, log)
	if err != nil {
		t.Fatal(err)
	}
	if again.Applied() != last {
		t.Errorf("restarted runner resumes at %d, want %d", again.Applied(), last)
	}

	if err := views.Drop(ctx, js, events.JourneyStream, counter{}.Name()); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := views.New(ctx, js, counter{}, cfg, m, log)
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt.Applied() != 0 || rebuilt.Ready() {
		t.Fatalf("dropped view starts at %d (ready %v), want 0 and not ready", rebuilt.Applied(), rebuilt.Ready())
	}
	go func() { _ = rebuilt.Run(ctx) }()
	if err := rebuilt.WaitFor(wctx, last); err != nil {
		t.Fatalf("rebuild did not reach seq %d: %v", last, err)
	}
	if got := dump(t, rebuilt.KV()); !maps.Equal(got, liveView) {
		t.Errorf("rebuilt view differs from the live one:\nlive    %v\nrebuilt %v", liveView, got)
	}
}

func TestRedeliveredEventsAreNotAppliedTwice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := natsserver.Test(t)
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := views.NewMetrics(prometheus.NewRegistry())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := views.New(ctx, js, counter{}, views.DefaultConfig(), m, log)
	if err != nil {
		t.Fatal(err)
	}
	id := events.NewID()
	res, err := store.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := r.WaitFor(wctx, res.LastSeq); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash after the views and checkpoint were written but
	// before the ack: recreate the consumer from the start of the stream.
	cancel()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if err := js.DeleteConsumer(ctx2, events.JourneyStream, views.ConsumerName(counter{}.Name())); err != nil {
		t.Fatal(err)
	}
	stream, _ := js.Stream(ctx2, events.JourneyStream)
	if _, err := stream.CreateConsumer(ctx2, jetstream.ConsumerConfig{Durable: views.ConsumerName(counter{}.Name()),
		AckPolicy: jetstream.AckAllPolicy, DeliverPolicy: jetstream.DeliverAllPolicy}); err != nil {
		t.Fatal(err)
	}
	r2, err := views.New(ctx2, js, counter{}, views.DefaultConfig(), m, log)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := store.Execute(ctx2, id, journal.Meta{}, events.Assign{WorkerID: "w", WorkerName: "W"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r2.Run(ctx2) }()
	wctx2, wcancel2 := context.WithTimeout(ctx2, 10*time.Second)
	defer wcancel2()
	if err := r2.WaitFor(wctx2, res2.LastSeq); err != nil {
		t.Fatal(err)
	}
	view := dump(t, r2.KV())
	if want := `{"status":"assigned","events":2}`; view["journey."+id] != want {
		t.Errorf("journey row %s, want %s (the re-delivered referral was applied again?)", view["journey."+id], want)
	}
}

// TestDroppedWhileRunning: a view dropped under a running runner (a
// rebuild on a live system) is noticed and replayed from the log.
func TestDroppedWhileRunning(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := natsserver.Test(t)
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := views.NewMetrics(prometheus.NewRegistry())
	r, err := views.New(ctx, js, counter{}, views.DefaultConfig(), m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(ctx) }()
	refer := func() uint64 {
		id := events.NewID()
		res, err := store.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: id}})
		if err != nil {
			t.Fatal(err)
		}
		return res.LastSeq
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := r.WaitFor(wctx, refer()); err != nil {
		t.Fatal(err)
	}
	if err := views.Drop(ctx, js, events.JourneyStream, counter{}.Name()); err != nil {
		t.Fatal(err)
	}
	last := refer()
	deadline := time.Now().Add(20 * time.Second)
	for {
		kv, err := js.KeyValue(ctx, views.BucketName(counter{}.Name()))
		if err == nil {
			if e, err := kv.Get(ctx, "status.referred"); err == nil && string(e.Value()) == "2" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dropped view was not replayed (last seq %d, applied %d)", last, r.Applied())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// memoryView is a local projection's view: this process's memory.
type memoryView struct {
	mu   sync.Mutex
	seen map[string]int
}

func (*memoryView) Name() string { return "test_memory" }

func (v *memoryView) Apply(_ *views.Tx, ev views.Event) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen[ev.Envelope.GetJourneyId()]++
	return nil
}

// TestLocalProjectionsEachSeeEverything: two replicas of a local
// projection each apply every event into their own memory, with leases
// present or not, and a restart replays the log from its beginning.
func TestLocalProjectionsEachSeeEverything(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, js := natsserver.Test(t)
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := views.NewMetrics(prometheus.NewRegistry())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	leases, err := views.OpenLeases(ctx, js, "one", time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 10 {
		id := events.NewID()
		res, err := store.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: id}})
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastSeq
	}
	replicas := []*memoryView{{seen: map[string]int{}}, {seen: map[string]int{}}, {seen: map[string]int{}}}
	for i, v := range replicas {
		cfg := views.DefaultConfig()
		cfg.Local = true
		if i == 1 {
			cfg.Leases = leases // ignored: every replica applies everything
		}
		r, err := views.New(ctx, js, v, cfg, m, log)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.Run(ctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := r.WaitFor(wctx, last); err != nil {
			t.Fatalf("replica %d never reached seq %d: %v", i, last, err)
		}
		wcancel()
		v.mu.Lock()
		if len(v.seen) != 10 {
			t.Errorf("replica %d saw %d journeys, want 10", i, len(v.seen))
		}
		for id, n := range v.seen {
			if n != 1 {
				t.Errorf("replica %d applied %s %d times", i, id, n)
			}
		}
		v.mu.Unlock()
	}
}
