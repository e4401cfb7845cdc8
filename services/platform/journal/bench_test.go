package journal_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	"linkway/services/platform/journal"
)

// BenchmarkExecute measures commands through the event store (decide,
// group commit, expected-sequence check, msg id, fsync on the server) and,
// in the same run against the same fsync-always server, raw JetStream
// synchronous publishes of a message of the same size at the same
// concurrency. Half the commands go to a few journeys over and over (a
// person's busy journey), half refer new journeys. It reports both rates,
// their ratio (which holds on a noisy machine where absolute figures do
// not) and both p99 latencies.
func BenchmarkExecute(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s, js := openStore(b)
			ctx := context.Background()
			size := len(mustMarshal(b, refer("EMIS-000000")))
			hot := make([]string, 4)
			for i := range hot {
				hot[i] = started(b, s)
			}
			n := max(b.N, 100*conc)
			payload := make([]byte, size)
			b.ResetTimer()
			// In turns, so that a machine whose load drifts weighs on both.
			store, raw := interleave(n, conc, 4, func(i int) error {
				if i%2 == 0 {
					_, err := s.Execute(ctx, hot[(i/2)%len(hot)], journal.Meta{}, events.ScheduleFollowUp{
						FollowUpID: fmt.Sprint("f", i), Due: "2027-01-01"})
					return err
				}
				id := events.NewID()
				_, err := s.Execute(ctx, id, journal.Meta{}, refer(id))
				return err
			}, func(int) error {
				_, err := js.PublishMsg(ctx, &nats.Msg{Subject: events.JourneySubject(events.NewID()), Data: payload},
					jetstream.WithMsgID(events.NewID()), jetstream.WithExpectLastSequencePerSubject(0))
				return err
			})
			b.StopTimer()
			b.ReportMetric(store.rate, "executes/s")
			b.ReportMetric(raw.rate, "raw_publishes/s")
			b.ReportMetric(store.rate/raw.rate, "ratio")
			b.ReportMetric(store.p99.Seconds()*1000, "p99_ms")
			b.ReportMetric(raw.p99.Seconds()*1000, "raw_p99_ms")
			b.ReportMetric(float64(store.failed), "failures")
		})
	}
}

// interleave runs n operations of a and n of b over conc goroutines, in
// turns of n/turns each, and returns each one's figures.
func interleave(n, conc, turns int, a, b func(i int) error) (run, run) {
	var ra, rb []run
	per := n / turns
	for t := range turns {
		ra = append(ra, measure(per, conc, func(i int) error { return a(t*per + i) }))
		rb = append(rb, measure(per, conc, b))
	}
	return merge(ra), merge(rb)
}

// merge combines turns: the rate over their total time, the worst p99.
func merge(rs []run) run {
	var out run
	var secs, ops float64
	for _, r := range rs {
		secs += float64(r.n) / r.rate
		ops += float64(r.n)
		out.p99 = max(out.p99, r.p99)
		out.failed += r.failed
	}
	out.rate, out.n = ops/secs, int(ops)
	return out
}

type run struct {
	n      int
	rate   float64
	p99    time.Duration
	failed int
}

// measure runs n operations over conc goroutines: operations per second,
// the 99th percentile latency and how many failed.
func measure(n, conc int, op func(i int) error) run {
	var next, failed atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return run{n: n, rate: float64(n) / elapsed.Seconds(), p99: lat[min(n-1, n*99/100)], failed: int(failed.Load())}
}

func mustMarshal(tb testing.TB, r events.Refer) []byte {
	tb.Helper()
	env := events.Wrap(r.Referral)
	env.EventId, env.JourneyId = events.NewID(), events.NewID()
	b, err := proto.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
