package views_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	"linkway/services/platform/sealing"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// testLog is a JOURNEYS stream on a real in-process server, written
// through the event store.
type testLog struct {
	js      jetstream.JetStream
	store   *journal.Store
	keyring *sealing.Keyring
}

func newLog(t *testing.T, sealed bool) *testLog {
	t.Helper()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	cfg := journal.DefaultConfig()
	l := &testLog{js: js}
	if sealed {
		master := make([]byte, 32)
		_, _ = rand.Read(master)
		k, err := sealing.Open(ctx, js, master, 1)
		if err != nil {
			t.Fatal(err)
		}
		l.keyring, cfg.Sealer = k, k
	}
	store, err := journal.Open(ctx, js, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l.store = store
	return l
}

func (l *testLog) decode() func(context.Context, []byte) (*eventsv1.Envelope, error) {
	return l.store.Decode
}

var nhsNumbers = []string{"9434765919", "9434765870", "9434765862", "9434765854", "9434765846"}

// refer opens a journey for team; it returns the journey id and sequence.
func (l *testLog) refer(t *testing.T, team, given string, n int) (string, uint64) {
	t.Helper()
	id := events.NewID()
	return id, l.do(t, id, events.Refer{Referral: &eventsv1.ReferralReceived{Source: "gp", ReferrerOrganisationId: "A81001",
		SourceId: id, LinkWorkTeam: team, Urgency: "routine", Reasons: []string{"422650009"},
		Person: &eventsv1.PersonalData{NhsNumber: nhsNumbers[n%len(nhsNumbers)], GivenName: given, FamilyName: "Test"}}})
}

func (l *testLog) do(t *testing.T, id string, cmd events.Command) uint64 {
	t.Helper()
	res, err := l.store.Execute(context.Background(), id, journal.Meta{}, cmd)
	if err != nil {
		t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
	return res.LastSeq
}

// journeys writes n journeys over teams, each with a few events after its
// referral, interleaved; it returns the log's last sequence.
func (l *testLog) journeys(t *testing.T, n int, teams ...string) uint64 {
	t.Helper()
	ids := make([]string, n)
	var last uint64
	for i := range n {
		ids[i], last = l.refer(t, teams[i%len(teams)], fmt.Sprintf("Person%d", i), i)
	}
	steps := []events.Command{events.Assign{WorkerID: "w1", WorkerName: "Sam"},
		events.RecordContact{Outcome: "no_answer", Method: "phone"}, events.RecordContact{Outcome: "reached", Method: "phone"},
		events.Close{Reason: "goals_met"}}
	for s, cmd := range steps {
		for i, id := range ids {
			if (i+s)%5 == 4 && s > 0 {
				continue // some journeys stop early
			}
			last = l.do(t, id, cmd)
		}
	}
	return last
}

// seqLog records what a projection was handed.
type seqLog struct {
	mu   sync.Mutex
	seqs []uint64
}

func (s *seqLog) add(seq uint64) {
	s.mu.Lock()
	s.seqs = append(s.seqs, seq)
	s.mu.Unlock()
}

func (s *seqLog) get() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs)
}

func (s *seqLog) reset() {
	s.mu.Lock()
	s.seqs = nil
	s.mu.Unlock()
}

// caseView is shaped like the caseload: a record per journey under its
// team, rendered from the folded state alone, and a per-team index by
// status.
type caseView struct {
	name   string
	seen   seqLog
	failAt uint64 // Apply fails at this sequence, when set
	// pauseAt: Apply closes paused and waits for resume at this sequence.
	pauseAt        uint64
	paused, resume chan struct{}
}

type caseRec struct {
	Status  string `json:"status"`
	Worker  string `json:"worker,omitempty"`
	Version int    `json:"version"`
	Erased  bool   `json:"erased,omitempty"`
}

func (p *caseView) Name() string { return p.name }

func (p *caseView) Apply(b *views.Batch, c views.Change) error {
	p.seen.add(c.Seq)
	if p.failAt != 0 && c.Seq == p.failAt {
		return errors.New("injected failure")
	}
	if p.pauseAt != 0 && c.Seq == p.pauseAt {
		close(p.paused)
		<-p.resume
	}
	team := c.After.Referral.GetLinkWorkTeam()
	if team == "" {
		return fmt.Errorf("seq %d: a journey with no referral in its state", c.Seq)
	}
	if err := b.SetJSON("c."+team+"."+c.JourneyID, caseRec{Status: string(c.After.Status()), Worker: c.After.WorkerName,
		Version: c.After.Version, Erased: c.After.Erased}); err != nil {
		return err
	}
	if c.Before.Exists() && c.Before.Status() != c.After.Status() {
		b.Delete("s." + team + "." + string(c.Before.Status()) + "." + c.JourneyID)
	}
	b.Set("s."+team+"."+string(c.After.Status())+"."+c.JourneyID, []byte{})
	return nil
}

// timelineView reads its own record back and appends to it, like the
// practices' timeline.
type timelineView struct{ seen seqLog }

func (p *timelineView) Name() string { return "timeline" }

func (p *timelineView) Apply(b *views.Batch, c views.Change) error {
	p.seen.add(c.Seq)
	var steps []string
	if _, err := b.GetJSON("t."+c.JourneyID, &steps); err != nil {
		return err
	}
	steps = append(steps, fmt.Sprintf("%d:%s", c.Seq, events.ShortName(c.Envelope)))
	return b.SetJSON("t."+c.JourneyID, steps)
}

func openStore(t *testing.T, dir string) *viewstore.Store {
	t.Helper()
	s, err := viewstore.Open(viewstore.DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newReader(t *testing.T, l *testLog, store *viewstore.Store, cfg views.ReaderConfig, ps ...views.Projection) *views.Reader {
	t.Helper()
	cfg.Decode = l.decode()
	r, err := views.NewReader(l.js, store, ps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs r until the test ends or stop is called.
func start(t *testing.T, r *views.Reader) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("reader: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, r *views.Reader, seq uint64, views ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, seq, views...); err != nil {
		t.Fatalf("waiting for seq %d: %v (applied %d)", seq, err, r.Applied(views...))
	}
}

// dumpView is a view's whole content.
func dumpView(t *testing.T, s *viewstore.Store, view string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.View(view).ForEach("", func(k string, v []byte) error {
		out[k] = string(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReaderAppliesInOrderAndWaitFor(t *testing.T) {
	l := newLog(t, false)
	last := l.journeys(t, 6, "U12345", "U22222")
	store := openStore(t, t.TempDir())
	cv, tv := &caseView{name: "caseload"}, &timelineView{}
	r := newReader(t, l, store, views.DefaultReaderConfig(), cv, tv)
	if r.Ready() {
		t.Fatal("ready before reading anything")
	}
	start(t, r)
	waitFor(t, r, last)
	hubtestEventually(t, r.Ready, "ready once caught up")

	// Every event once, in stream order, to each view.
	for _, got := range [][]uint64{cv.seen.get(), tv.seen.get()} {
		if len(got) != int(last) || !slices.IsSorted(got) || got[0] != 1 {
			t.Fatalf("handed %d events (want %d), sorted %v", len(got), last, slices.IsSorted(got))
		}
	}
	// A live event is visible once WaitFor its sequence returns.
	id, seq := l.refer(t, "U12345", "Live", 0)
	waitFor(t, r, seq, "caseload")
	v, ok, err := store.View("caseload").Get("c.U12345." + id)
	if err != nil || !ok || !strings.Contains(string(v), `"status":"referred"`) {
		t.Fatalf("live referral in the caseload: %q %v %v", v, ok, err)
	}
	seq = l.do(t, id, events.Assign{WorkerID: "w9", WorkerName: "Alex"})
	waitFor(t, r, seq)
	if _, ok, _ := store.View("caseload").Get("s.U12345.referred." + id); ok {
		t.Fatal("the old status index key stayed")
	}
	if _, ok, _ := store.View("caseload").Get("s.U12345.assigned." + id); !ok {
		t.Fatal("no new status index key")
	}
	// Bounded by its context for a sequence the log does not hold yet.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(ctx, seq+100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor beyond the log: %v", err)
	}
	if err := r.WaitFor(ctx, 1, "nosuchview"); err == nil {
		t.Fatal("WaitFor an unknown view")
	}
	// The checkpoints in the store are the reader's.
	for _, name := range []string{"caseload", "timeline", views.StateTable} {
		if cp, _ := store.Checkpoint(name); cp != seq {
			t.Fatalf("%s checkpoint %d, want %d", name, cp, seq)
		}
	}
}

// hubtestEventually polls cond (the services' hubtest helper is not
// importable from the machinery).
func hubtestEventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// timelinesMatchCheckpoint checks that the timeline view holds exactly
// the events up to its checkpoint: the view and the checkpoint were
// written together.
func timelinesMatchCheckpoint(t *testing.T, store *viewstore.Store) uint64 {
	t.Helper()
	cp, err := store.Checkpoint("timeline")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, v := range dumpView(t, store, "timeline") {
		for _, step := range strings.Split(strings.Trim(v, `[]`), ",") {
			var s uint64
			if _, err := fmt.Sscanf(strings.Trim(step, `"`), "%d:", &s); err != nil {
				t.Fatalf("step %q: %v", step, err)
			}
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	if uint64(len(seqs)) != cp || (cp > 0 && seqs[len(seqs)-1] != cp) {
		t.Fatalf("checkpoint %d but the view holds %d events (last %v)", cp, len(seqs), seqs[max(0, len(seqs)-1):])
	}
	return cp
}

func TestCrashBetweenBatchesReappliesOnlyTheTail(t *testing.T) {
	l := newLog(t, false)
	last := l.journeys(t, 40, "U12345")
	dir := t.TempDir()
	store := openStore(t, dir)
	cfg := views.DefaultReaderConfig()
	cfg.BatchEvents = 7

	// A view that fails part way: the slice it fails in is never
	// committed, for it or for any other view, and the reader keeps
	// trying from the checkpoint without ending.
	failing := &caseView{name: "caseload", failAt: last / 2}
	tv := &timelineView{}
	r := newReader(t, l, store, cfg, failing, tv)
	stop := start(t, r)
	hubtestEventually(t, func() bool { return len(failing.seen.get()) > int(last/2)+10 }, "the failing slice retried")
	stop()
	cp := timelinesMatchCheckpoint(t, store)
	if cp >= last/2 || cp < last/2-7 {
		t.Fatalf("checkpoint %d: want the last full slice before %d", cp, last/2)
	}
	if ccp, _ := store.Checkpoint("caseload"); ccp != cp {
		t.Fatalf("caseload checkpoint %d, timeline %d", ccp, cp)
	}

	// A crash of the process between batches: the store closed while the
	// reader is in the middle of a slice (its commit then fails), then
	// opened again by a new reader, which applies only what no commit
	// holds.
	pauseAt := cp + 20
	healthy := &caseView{name: "caseload", pauseAt: pauseAt, paused: make(chan struct{}), resume: make(chan struct{})}
	tv2 := &timelineView{}
	r = newReader(t, l, store, cfg, healthy, tv2)
	ran := make(chan error, 1)
	go func() { ran <- r.Run(context.Background()) }()
	select {
	case <-healthy.paused:
	case <-time.After(30 * time.Second):
		t.Fatal("the reader never reached the pause")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	close(healthy.resume)
	select {
	case err := <-ran:
		if !errors.Is(err, viewstore.ErrClosed) {
			t.Fatalf("reader on a closed store: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not stop when its store closed")
	}
	healthy.pauseAt = 0
	store = openStore(t, dir)
	if cp = timelinesMatchCheckpoint(t, store); cp >= pauseAt {
		t.Fatalf("checkpoint %d after the crash: the slice holding %d was committed", cp, pauseAt)
	}
	healthy.seen.reset()
	tv2.seen.reset()
	r = newReader(t, l, store, cfg, healthy, tv2)
	start(t, r)
	waitFor(t, r, last)
	for _, got := range [][]uint64{healthy.seen.get(), tv2.seen.get()} {
		if len(got) == 0 || got[0] != cp+1 || uint64(len(got)) != last-cp {
			t.Fatalf("after the restart: %d events from %v, want %d from %d", len(got), got[:min(1, len(got))], last-cp, cp+1)
		}
	}
	timelinesMatchCheckpoint(t, store)
	// And the views are what a rebuild from nothing makes.
	fresh := openStore(t, t.TempDir())
	rf := newReader(t, l, fresh, cfg, &caseView{name: "caseload"}, &timelineView{})
	start(t, rf)
	waitFor(t, rf, last)
	for _, v := range []string{"caseload", "timeline"} {
		if !maps.Equal(dumpView(t, store, v), dumpView(t, fresh, v)) {
			t.Fatalf("view %s after a crash differs from one built from nothing", v)
		}
	}
}

func TestRebuildOneViewEqualsLiveAndLeavesTheOthers(t *testing.T) {
	l := newLog(t, false)
	l.journeys(t, 30, "U12345", "U22222", "U33333")
	store := openStore(t, t.TempDir())
	cv, tv := &caseView{name: "caseload"}, &timelineView{}
	cfg := views.DefaultReaderConfig()
	cfg.BatchEvents = 50
	r := newReader(t, l, store, cfg, cv, tv)
	stop := start(t, r)
	// Some events arrive while the reader is live.
	id, _ := l.refer(t, "U12345", "Live", 1)
	last := l.do(t, id, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	waitFor(t, r, last)
	stop()
	liveCase, liveTimeline := dumpView(t, store, "caseload"), dumpView(t, store, "timeline")
	if len(liveCase) == 0 || len(liveTimeline) != 31 {
		t.Fatalf("live views: %d caseload keys, %d timelines", len(liveCase), len(liveTimeline))
	}

	cv.seen.reset()
	tv.seen.reset()
	var calls [][2]uint64
	st, err := views.RebuildViews(context.Background(), l.js, store, []views.Projection{cv, tv}, []string{"caseload"}, cfg,
		func(applied, total uint64) { calls = append(calls, [2]uint64{applied, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != last || st.Folded != last || st.EventsPerSecond() <= 0 || len(calls) == 0 || calls[len(calls)-1] != [2]uint64{last, last} {
		t.Fatalf("rebuild stats %+v, progress %v", st, calls)
	}
	if !maps.Equal(dumpView(t, store, "caseload"), liveCase) {
		t.Fatal("the rebuilt caseload differs from the live one")
	}
	if !maps.Equal(dumpView(t, store, "timeline"), liveTimeline) {
		t.Fatal("the view not rebuilt changed")
	}
	if got := cv.seen.get(); uint64(len(got)) != last {
		t.Fatalf("rebuilt view handed %d events, want %d", len(got), last)
	}
	if got := tv.seen.get(); len(got) != 0 {
		t.Fatalf("the view not rebuilt was handed %d events it had applied", len(got))
	}

	// In a running reader: Rebuild of every view.
	cv.seen.reset()
	tv.seen.reset()
	r = newReader(t, l, store, cfg, cv, tv)
	start(t, r)
	waitFor(t, r, last)
	if err := r.Rebuild(); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild("nosuchview"); err == nil {
		t.Fatal("rebuilt an unknown view")
	}
	waitFor(t, r, last)
	hubtestEventually(t, r.Ready, "ready after the rebuild")
	if !maps.Equal(dumpView(t, store, "caseload"), liveCase) || !maps.Equal(dumpView(t, store, "timeline"), liveTimeline) {
		t.Fatal("views rebuilt in a running reader differ from the live ones")
	}
	if got := tv.seen.get(); uint64(len(got)) != last {
		t.Fatalf("a view rebuilt in a running reader was handed %d events, want %d", len(got), last)
	}
}

func TestSnapshotThenOpenContinuesFromTheTail(t *testing.T) {
	l := newLog(t, false)
	first := l.journeys(t, 10, "U12345")
	store := openStore(t, t.TempDir())
	cv, tv := &caseView{name: "caseload"}, &timelineView{}
	r := newReader(t, l, store, views.DefaultReaderConfig(), cv, tv)
	stop := start(t, r)
	waitFor(t, r, first)
	snap := filepath.Join(t.TempDir(), "snapshot")
	if err := store.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	// The log goes on; the original follows it.
	last := l.journeys(t, 5, "U22222")
	waitFor(t, r, last)
	stop()

	// A new replica seeded from the snapshot applies only the tail.
	cv2, tv2 := &caseView{name: "caseload"}, &timelineView{}
	seeded := openStore(t, snap)
	r2 := newReader(t, l, seeded, views.DefaultReaderConfig(), cv2, tv2)
	start(t, r2)
	waitFor(t, r2, last)
	if got := cv2.seen.get(); len(got) == 0 || got[0] != first+1 || uint64(len(got)) != last-first {
		t.Fatalf("seeded replica handed %d events from %v, want %d from %d", len(got), got[:min(1, len(got))], last-first, first+1)
	}
	for _, v := range []string{"caseload", "timeline"} {
		if !maps.Equal(dumpView(t, seeded, v), dumpView(t, store, v)) {
			t.Fatalf("view %s of the seeded replica differs from the original's", v)
		}
	}
}

func TestProjectionsAheadAreSkipped(t *testing.T) {
	l := newLog(t, false)
	mid := l.journeys(t, 8, "U12345")
	store := openStore(t, t.TempDir())
	old := &caseView{name: "caseload"}
	r := newReader(t, l, store, views.DefaultReaderConfig(), old)
	stop := start(t, r)
	waitFor(t, r, mid)
	stop()
	last := l.journeys(t, 4, "U12345")

	// A view added later: the fold starts again at the beginning for it,
	// while the view that has the early events is handed only the rest.
	old.seen.reset()
	added := &timelineView{}
	r = newReader(t, l, store, views.DefaultReaderConfig(), old, added)
	start(t, r)
	waitFor(t, r, last)
	if got := old.seen.get(); len(got) == 0 || got[0] != mid+1 || uint64(len(got)) != last-mid {
		t.Fatalf("the view ahead was handed %d events from %v, want %d from %d", len(got), got[:min(1, len(got))], last-mid, mid+1)
	}
	if got := added.seen.get(); uint64(len(got)) != last {
		t.Fatalf("the added view was handed %d events, want %d", len(got), last)
	}
	// The view ahead was right after the skip too (its Before states came
	// from a fold that started at the beginning).
	fresh := openStore(t, t.TempDir())
	rf := newReader(t, l, fresh, views.DefaultReaderConfig(), &caseView{name: "caseload"})
	start(t, rf)
	waitFor(t, rf, last)
	if !maps.Equal(dumpView(t, store, "caseload"), dumpView(t, fresh, "caseload")) {
		t.Fatal("the view that skipped differs from one built from nothing")
	}
}

// nameView renders from the person's name in the folded referral, which
// the reader must read back (and open) from the state table when the
// journey's state is not in memory.
type nameView struct{ names map[string]string }

func (p *nameView) Name() string { return "names" }

func (p *nameView) Apply(b *views.Batch, c views.Change) error {
	if c.After.Referral == nil {
		return fmt.Errorf("seq %d: no referral in the state", c.Seq)
	}
	p.names[c.JourneyID] = c.After.Referral.GetPerson().GetGivenName()
	b.Set("n."+c.JourneyID, fmt.Appendf(nil, "%d", c.After.Version))
	return nil
}

func TestBoundedStateCacheAndNoPlainPersonalDataAtRest(t *testing.T) {
	l := newLog(t, true)
	const n = 60
	last := l.journeys(t, n, "U12345")
	dir := t.TempDir()
	store := openStore(t, dir)
	reg := prometheus.NewRegistry()
	m, err := views.NewReaderMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := views.DefaultReaderConfig()
	cfg.StateCache, cfg.BatchEvents, cfg.Metrics = 8, 4, m
	nv := &nameView{names: map[string]string{}}
	cv := &caseView{name: "caseload"}
	r := newReader(t, l, store, cfg, nv, cv)
	start(t, r)
	waitFor(t, r, last)
	if cached := m.StateCachedForTest(); cached > 8 {
		t.Fatalf("%v journey states in memory, bound 8", cached)
	}
	if loads := m.StateLoadsForTest(); loads < n {
		t.Fatalf("%v states read back from the store: the bound was not reached", loads)
	}
	// States read back carry the referral, opened: every journey's last
	// event saw its person's name.
	for id, name := range nv.names {
		if !strings.HasPrefix(name, "Person") {
			t.Fatalf("journey %s: name %q in the folded state", id, name)
		}
	}
	if len(nv.names) != n {
		t.Fatalf("%d journeys seen, want %d", len(nv.names), n)
	}
	// The versions the view holds are each journey's event count.
	want := map[string]int{}
	for seq := uint64(1); seq <= last; seq++ {
		msg, err := l.store.Stream().GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := events.JourneyIDFromSubject(msg.Subject)
		want[id]++
	}
	for id, count := range want {
		v, _, _ := store.View("names").Get("n." + id)
		if string(v) != fmt.Sprint(count) {
			t.Fatalf("journey %s: version %s, want %d", id, v, count)
		}
	}
	// No person's name lies in the store's files in the clear: the state
	// table keeps the referral sealed, as the log does.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a folder
		}
		if strings.Contains(string(b), "Person1") || strings.Contains(string(b), nhsNumbers[0]) {
			t.Fatalf("%s holds personal data in the clear", filepath.Base(f))
		}
	}
}

// TestCatchUpCommitsFullSlices: while the events already waiting fill a
// slice, it is committed when full, not each time its first event has
// waited BatchDelay (which, with a 1 ns delay, would be after about every
// chunk of 128 the consumer passes on).
func TestCatchUpCommitsFullSlices(t *testing.T) {
	l := newLog(t, false)
	last := l.journeys(t, 600, "U12345", "U12346")
	reg := prometheus.NewRegistry()
	m, err := views.NewReaderMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := views.DefaultReaderConfig()
	// Three slices hold the log: what waits always fills the current one.
	cfg.BatchEvents, cfg.BatchDelay, cfg.Metrics = int(last+2)/3, time.Nanosecond, m
	r := newReader(t, l, openStore(t, t.TempDir()), cfg, &caseView{name: "caseload"})
	start(t, r)
	waitFor(t, r, last)
	if got := m.CommitsForTest(); got > 4 {
		t.Fatalf("%d events caught up in %d commits; want 3 slices of %d (4 commits at most)", last, got, cfg.BatchEvents)
	}
}

func TestErasedJourneyStateKeepsNoPersonalData(t *testing.T) {
	l := newLog(t, true)
	id, _ := l.refer(t, "U12345", "Erasable", 0)
	other, _ := l.refer(t, "U12345", "Other", 1)
	l.do(t, id, events.ErasePersonalData{})
	// Another event after the erasure, once the state has left memory.
	l.do(t, other, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	last := l.do(t, id, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	store := openStore(t, t.TempDir())
	nv := &nameView{names: map[string]string{}}
	cfg := views.DefaultReaderConfig()
	cfg.StateCache, cfg.BatchEvents = 1, 1
	r := newReader(t, l, store, cfg, nv)
	start(t, r)
	waitFor(t, r, last)
	if nv.names[id] != "" {
		t.Fatalf("erased journey's state has the name %q", nv.names[id])
	}
	if nv.names[other] != "Other" {
		t.Fatalf("the other journey's name: %q", nv.names[other])
	}
	st, ok, err := store.View(views.StateTable).Get(id)
	if err != nil || !ok {
		t.Fatalf("state of the erased journey: %v %v", ok, err)
	}
	s, err := events.UnmarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Erased || s.Referral == nil || s.Referral.GetPerson() != nil || s.Referral.GetLinkWorkTeam() != "U12345" {
		t.Fatalf("stored state of the erased journey: erased %v, referral %v", s.Erased, s.Referral)
	}
}

func TestUndecodableMessagesAreSkipped(t *testing.T) {
	l := newLog(t, false)
	id, _ := l.refer(t, "U12345", "Before", 0)
	ack, err := l.js.Publish(context.Background(), events.JourneySubject(events.NewID()), []byte{0xff, 0x01, 0x02})
	if err != nil {
		t.Fatal(err)
	}
	last := l.do(t, id, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	store := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	m, _ := views.NewReaderMetrics(reg)
	cfg := views.DefaultReaderConfig()
	cfg.Metrics = m
	cv := &caseView{name: "caseload"}
	r := newReader(t, l, store, cfg, cv)
	start(t, r)
	waitFor(t, r, last)
	if got := cv.seen.get(); slices.Contains(got, ack.Sequence) || len(got) != 2 {
		t.Fatalf("handed %v (the undecodable message is %d)", got, ack.Sequence)
	}
	if n := m.UndecodableForTest(); n != 1 {
		t.Fatalf("%v undecodable counted", n)
	}
}

func TestReaderRefusesBadProjections(t *testing.T) {
	l := newLog(t, false)
	store := openStore(t, t.TempDir())
	for _, ps := range [][]views.Projection{
		{&caseView{name: "Bad.Name"}},
		{&caseView{name: "_journeys"}},
		{&caseView{name: "twice"}, &caseView{name: "twice"}},
	} {
		if _, err := views.NewReader(l.js, store, ps, views.DefaultReaderConfig()); err == nil {
			t.Errorf("accepted %v", ps[0].Name())
		}
	}
}

func TestReaderRetriesUntilTheLogIsThere(t *testing.T) {
	ctx := context.Background()
	_, js := natsserver.Test(t)
	store := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	m, _ := views.NewReaderMetrics(reg)
	cfg := views.DefaultReaderConfig()
	cfg.Metrics = m
	cv := &caseView{name: "caseload"}
	r, err := views.NewReader(js, store, []views.Projection{cv}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// No JOURNEYS stream yet (NATS still electing, or a first start): the
	// reader waits and tries again rather than stopping.
	start(t, r)
	hubtestEventually(t, func() bool { return m.RestartsForTest() >= 2 }, "retries while the stream is missing")
	if r.Ready() {
		t.Fatal("ready without a log")
	}
	j, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{js: js, store: j}
	_, seq := l.refer(t, "U12345", "Late", 0)
	waitFor(t, r, seq)
	hubtestEventually(t, r.Ready, "ready once the log is read")
}
