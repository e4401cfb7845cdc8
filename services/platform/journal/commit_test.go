package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
)

func openStoreReg(t testing.TB, js jetstream.JetStream) (*journal.Store, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := journal.Open(context.Background(), js, journal.DefaultConfig(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// metric reads one counter of a registry: the sum over the series whose
// labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == k && lp.GetValue() == v
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// gather holds the committer while run queues n commands, then lets them
// go as one round.
func gather(t *testing.T, s *journal.Store, n int, run func(wg *sync.WaitGroup)) {
	t.Helper()
	release := s.HoldCommits()
	var wg sync.WaitGroup
	run(&wg)
	deadline := time.Now().Add(10 * time.Second)
	for s.Queued() < n {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("%d commands queued, want %d", s.Queued(), n)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	release()
	wg.Wait()
}

// TestOneJourneySixtyFourWriters: 64 concurrent commands on one journey
// all land, none lost or doubled, and the store's answers match the log.
func TestOneJourneySixtyFourWriters(t *testing.T) {
	t.Parallel()
	_, js := natsserver.Test(t)
	s, reg := openStoreReg(t, js)
	id := started(t, s)
	const writers = 64
	results := make([]journal.Result, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			res, err := s.Execute(context.Background(), id, journal.Meta{}, events.ScheduleFollowUp{
				FollowUpID: fmt.Sprintf("f%02d", i), Due: "2027-01-01"})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	hist := rawHistory(t, js, id)
	if n := len(events.Fold(hist).FollowUps); n != writers {
		t.Fatalf("%d follow-ups recorded, want %d", n, writers)
	}
	if len(hist) != 3+writers {
		t.Errorf("history has %d events, want %d", len(hist), 3+writers)
	}
	// Each answer is the state folded up to its own append, with the
	// sequence of that append, and no read after it.
	_, loaded, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]string{}
	for _, r := range loaded {
		seqs[r.Seq] = r.Event.GetEventId()
	}
	for i, res := range results {
		if len(res.Events) != 1 || res.LastSeq != res.Events[0].Seq || seqs[res.LastSeq] != res.Events[0].Event.GetEventId() {
			t.Fatalf("writer %d: answer at seq %d does not match the log", i, res.LastSeq)
		}
		if len(res.History) != len(res.State.FollowUps)+3 || res.History[len(res.History)-1].Seq != res.LastSeq {
			t.Fatalf("writer %d: history of %d events for %d follow-ups", i, len(res.History), len(res.State.FollowUps))
		}
	}
	if conflicts := metric(t, reg, "linkway_append_conflicts_total", nil); conflicts != 0 {
		t.Errorf("%v conflicts: commands on one journey should queue, not collide", conflicts)
	}
}

// TestBatchCarriesManyJourneys: commands gathered in one round land as one
// atomic batch, a journey's chained commands included.
func TestBatchCarriesManyJourneys(t *testing.T) {
	t.Parallel()
	_, js := natsserver.Test(t)
	s, reg := openStoreReg(t, js)
	hot := started(t, s)
	var cold []string
	for range 10 {
		cold = append(cold, events.NewID())
	}
	gather(t, s, 20, func(wg *sync.WaitGroup) {
		for i, id := range cold {
			wg.Go(func() {
				if _, err := s.Execute(context.Background(), id, journal.Meta{}, refer(fmt.Sprint("S", i))); err != nil {
					t.Error(err)
				}
			})
		}
		for i := range 10 {
			wg.Go(func() {
				if _, err := s.Execute(context.Background(), hot, journal.Meta{}, events.ScheduleFollowUp{
					FollowUpID: fmt.Sprint("f", i), Due: "2027-01-01"}); err != nil {
					t.Error(err)
				}
			})
		}
	})
	if n := metric(t, reg, "linkway_append_publishes_total", map[string]string{"mode": "batch", "result": "ok"}); n != 1 {
		t.Errorf("%v atomic batches, want 1", n)
	}
	if n := len(events.Fold(rawHistory(t, js, hot)).FollowUps); n != 10 {
		t.Errorf("%d follow-ups on the busy journey, want 10", n)
	}
	for _, id := range cold {
		if n := len(rawHistory(t, js, id)); n != 1 {
			t.Errorf("journey %s has %d events, want 1", id, n)
		}
	}
}

// TestConflictInBatchFailsOnlyItsCommand: a command decided on a stale
// journey (another process wrote it) makes its batch fail; published again
// one by one, only that command fails, and with the journey's real state.
func TestConflictInBatchFailsOnlyItsCommand(t *testing.T) {
	t.Parallel()
	_, js := natsserver.Test(t)
	a, reg := openStoreReg(t, js)
	b, _ := openStoreReg(t, js)
	stale := started(t, a)
	if _, err := b.Execute(context.Background(), stale, journal.Meta{}, events.Close{Reason: "moved_away"}); err != nil {
		t.Fatal(err)
	}
	var others []string
	for range 12 {
		others = append(others, events.NewID())
	}
	var staleErr error
	gather(t, a, 13, func(wg *sync.WaitGroup) {
		wg.Go(func() {
			_, staleErr = a.Execute(context.Background(), stale, journal.Meta{}, events.Close{Reason: "goals_met"})
		})
		for i, id := range others {
			wg.Go(func() {
				if _, err := a.Execute(context.Background(), id, journal.Meta{}, refer(fmt.Sprint("S", i))); err != nil {
					t.Errorf("a neighbour failed: %v", err)
				}
			})
		}
	})
	if events.ErrorCode(staleErr) != events.CodeFailedPrecondition {
		t.Errorf("the stale close: %v, want failed_precondition (the journey is closed)", staleErr)
	}
	if n := metric(t, reg, "linkway_append_publishes_total", map[string]string{"mode": "batch", "result": "failed"}); n != 1 {
		t.Errorf("%v failed batches, want 1", n)
	}
	for _, id := range others {
		if n := len(rawHistory(t, js, id)); n != 1 {
			t.Errorf("journey %s has %d events, want 1", id, n)
		}
	}
	if st := events.Fold(rawHistory(t, js, stale)); st.ClosedReason != "moved_away" {
		t.Errorf("the stale journey closed for %q", st.ClosedReason)
	}
}

// TestDuplicateInBatchAnsweredAsOriginal: a retried request whose first
// append landed (its acknowledgement lost) rides in a batch: the batch
// fails on the duplicate id, and the request is answered with the original
// event while its neighbours land.
func TestDuplicateInBatchAnsweredAsOriginal(t *testing.T) {
	t.Parallel()
	_, js := natsserver.Test(t)
	s, _ := openStoreReg(t, js)
	ctx := context.Background()
	id := started(t, s)
	_, hist, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	env := events.Wrap(&eventsv1.FollowUpScheduled{FollowUpId: "f1", Due: "2027-01-01"})
	env.EventId = events.NewID()
	data, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: events.JourneySubject(id), Data: data}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(journal.MsgIDBase(id, "req-9")+"/0"),
		jetstream.WithExpectLastSequencePerSubject(hist[len(hist)-1].Seq)); err != nil {
		t.Fatal(err)
	}
	var res journal.Result
	var resErr error
	var others []string
	for range 10 {
		others = append(others, events.NewID())
	}
	gather(t, s, 11, func(wg *sync.WaitGroup) {
		wg.Go(func() {
			res, resErr = s.Execute(ctx, id, journal.Meta{IdempotencyKey: "req-9"}, events.ScheduleFollowUp{FollowUpID: "f1", Due: "2027-01-01"})
		})
		for i, o := range others {
			wg.Go(func() {
				if _, err := s.Execute(ctx, o, journal.Meta{}, refer(fmt.Sprint("S", i))); err != nil {
					t.Errorf("a neighbour failed: %v", err)
				}
			})
		}
	})
	if resErr != nil || !res.Replayed || len(res.Events) != 1 || res.Events[0].Event.GetEventId() != env.EventId {
		t.Fatalf("the retried request: %+v, %v; want the original event replayed", res, resErr)
	}
	if n := len(events.Fold(rawHistory(t, js, id)).FollowUps); n != 1 {
		t.Errorf("%d follow-ups, want 1", n)
	}
	for _, o := range others {
		if n := len(rawHistory(t, js, o)); n != 1 {
			t.Errorf("journey %s has %d events, want 1", o, n)
		}
	}
}

// TestUnavailableSaysWhy: with the server gone, Execute answers 503 and the
// error carries the cause for the log; it is not called a conflict.
func TestUnavailableSaysWhy(t *testing.T) {
	t.Parallel()
	ns, js := natsserver.Test(t)
	cfg := journal.DefaultConfig()
	cfg.PublishTimeout = 500 * time.Millisecond
	s, err := journal.Open(context.Background(), js, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	id := started(t, s)
	ns.Shutdown()
	ns.WaitForShutdown()
	_, err = s.Execute(context.Background(), id, journal.Meta{}, events.ScheduleFollowUp{FollowUpID: "f1", Due: "2027-01-01"})
	if events.ErrorCode(err) != events.CodeUnavailable {
		t.Fatalf("with the server down: %v, want unavailable", err)
	}
	var e *events.Error
	errors.As(err, &e)
	if e.Message == err.Error() || !strings.Contains(err.Error(), id) {
		t.Errorf("the error %q carries no cause beside what the caller is told (%q)", err, e.Message)
	}
}
