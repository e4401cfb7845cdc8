package journal_test

import (
	"context"
	"fmt"
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

// BenchmarkAppend measures referrals appended through the event store
// (decide, expected-sequence check, msg id, fsync on the server) and, in
// the same run against the same server, raw JetStream publishes of a
// message of the same size with the same durability. It reports both
// rates and their ratio, which holds on a noisy machine where the absolute
// figures do not.
func BenchmarkAppend(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s, js := openStore(b)
			ctx := context.Background()
			size := len(mustMarshal(b, refer("EMIS-000000")))

			storeRate := measure(b.N, conc, func(int) error {
				id := events.NewID()
				_, err := s.Execute(ctx, id, journal.Meta{}, refer(id))
				return err
			})
			b.StopTimer()
			payload := make([]byte, size)
			rawRate := measure(b.N, conc, func(i int) error {
				_, err := js.PublishMsg(ctx, &nats.Msg{Subject: events.JourneySubject(events.NewID()), Data: payload},
					jetstream.WithMsgID(events.NewID()), jetstream.WithExpectLastSequencePerSubject(0))
				return err
			})
			b.ReportMetric(storeRate, "appends/s")
			b.ReportMetric(rawRate, "raw_publishes/s")
			b.ReportMetric(storeRate/rawRate, "ratio")
		})
	}
}

// measure runs n operations over conc goroutines and returns operations
// per second.
func measure(n, conc int, op func(i int) error) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		panic(err) // a benchmark that cannot append has nothing to report
	}
	return float64(n) / time.Since(start).Seconds()
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
