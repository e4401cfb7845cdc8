package leases_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"linkway/services/platform/leases"
	"linkway/services/platform/natsserver"
)

// TestOneHolderAtATimeAndTakeover: two replicas hold for the same lease;
// only one runs at a time, and when the holder stops, the other takes
// over.
func TestOneHolderAtATimeAndTakeover(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx := context.Background()
	const ttl = time.Second
	var running, most atomic.Int32
	who := make(chan string, 4)
	hold := func(l *leases.Leases) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			who <- l.Member()
			<-ctx.Done()
			return nil
		}
	}
	var stops []context.CancelFunc
	var wg sync.WaitGroup
	for _, member := range []string{"r1", "r2"} {
		l, err := leases.Open(ctx, js, member, ttl, 1)
		if err != nil {
			t.Fatal(err)
		}
		lctx, stop := context.WithCancel(ctx)
		stops = append(stops, stop)
		wg.Go(func() {
			if err := l.Hold(lctx, "feed.test", hold(l)); err != nil {
				t.Error(err)
			}
		})
	}
	defer func() {
		for _, s := range stops {
			s()
		}
		wg.Wait()
	}()
	first := <-who
	select {
	case second := <-who:
		t.Fatalf("%s and %s hold the lease at once", first, second)
	case <-time.After(2 * ttl):
	}
	stops[map[string]int{"r1": 0, "r2": 1}[first]]()
	select {
	case second := <-who:
		if second == first {
			t.Fatalf("%s took the lease again after it stopped", first)
		}
	case <-time.After(5 * ttl):
		t.Fatal("the other replica did not take the lease over")
	}
	if most.Load() != 1 {
		t.Errorf("%d holders ran at once", most.Load())
	}
}

// TestNilLeasesHoldEverything: a process alone holds every lease.
func TestNilLeasesHoldEverything(t *testing.T) {
	var l *leases.Leases
	ran := false
	if err := l.Hold(context.Background(), "feed.x", func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("ran %v, err %v", ran, err)
	}
}

// TestNeverHoldsNothing: a tool's leases never run what they hold.
func TestNeverHoldsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	if err := leases.Never().Hold(ctx, "feed.x", func(context.Context) error { ran = true; return nil }); err != nil || ran {
		t.Errorf("ran %v, err %v", ran, err)
	}
}
