package outcomes

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/leases"
)

// TestOnePublisherAmongReplicas: two replicas, each with its own view of
// the same log, publish the feed by lease: one at a time, every line once
// and in order, and the other takes over from the feed's own mark when
// the first stops.
func TestOnePublisherAmongReplicas(t *testing.T) {
	v := NewStoppedView(t) // the log
	a, b := v.Replica(), v.Replica()
	ctx := context.Background()
	la, err := leases.Open(ctx, v.JS, "replica-a", time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := leases.Open(ctx, v.JS, "replica-b", time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	stopA := a.RunFeed(la)
	eventually(t, func() bool { return a.svc.feed.leader.Load() }, "replica a publishes")
	b.RunFeed(lb)

	evs := SyntheticYear(60, 9) // every event makes a line for QYG
	half := len(evs) / 2
	publish := func(n int, evs ...*eventsv1.Envelope) {
		v.Publish(evs...)
		a.last, b.last = v.last, v.last
		b.Wait()
		eventually(t, func() bool { return feedMsgs(t, v.JS) == uint64(n) }, strconv.Itoa(n)+" lines in the feed")
	}
	publish(half, evs[:half]...)
	if b.svc.feed.leader.Load() || b.svc.feed.processed.Load() != 0 {
		t.Error("replica b published while a held the lease")
	}
	eventually(t, func() bool { return b.svc.feed.hwm.Load() > 0 }, "replica b follows the feed's high-water mark")
	stopA()
	eventually(t, func() bool { return b.svc.feed.leader.Load() }, "replica b takes over")
	publish(len(evs), evs[half:]...)

	// Every line once, in the order of the log.
	s, err := v.JS.Stream(ctx, FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for seq := uint64(1); seq <= uint64(len(evs)); seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		src, _ := strconv.ParseUint(m.Header.Get(headerSourceSeq), 10, 64)
		if src <= last {
			t.Fatalf("feed message %d is from JOURNEYS %d, after %d: twice or out of order", seq, src, last)
		}
		last = src
	}
	if last != v.last {
		t.Errorf("the feed ends at JOURNEYS %d, the log at %d", last, v.last)
	}
}

func feedMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
