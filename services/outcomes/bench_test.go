package outcomes_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/outcomes"
)

const benchJourneys = 40_000

// BenchmarkOutcomesLargeICB: a year of a large ICB (40,000 journeys, about
// 330,000 events) in the log. In the same run it measures, beside the raw
// JetStream figure (an ordered consumer reading and decoding the same
// JOURNEYS stream): the outcomes view rebuilt from the log by the reader
// (fold and projection), and summaries answered from the view, read from
// the store (cold) and from the cache of months (warm).
func BenchmarkOutcomesLargeICB(b *testing.B) {
	n := benchJourneys
	if v, err := strconv.Atoi(os.Getenv("OUTCOMES_BENCH_JOURNEYS")); err == nil && v > 0 {
		n = v
	}
	evs := outcomes.SyntheticYear(n, 42)
	v := outcomes.NewStoppedView(b)
	start := time.Now()
	v.Publish(evs...)
	b.Logf("log: %d events of %d journeys published in %s", len(evs), n, time.Since(start).Round(time.Millisecond))

	raw := rawRead(b, v.JS, len(evs))
	runtime.GC()
	start = time.Now()
	v.Start()
	v.Wait()
	build := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.Logf("outcomes view built from the log (fold, projection, a feed line for every event): %s, %.0f events/s; raw JetStream read and decode of the same log: %s, %.0f events/s; ratio %.2f; heap in use after %d MiB",
		build.Round(time.Millisecond), float64(len(evs))/build.Seconds(), raw.Round(time.Millisecond), float64(len(evs))/raw.Seconds(),
		raw.Seconds()/build.Seconds(), after.HeapInuse>>20)
	// A rebuild with the feed up to date writes no feed line.
	v.MarkPublished()
	if err := v.Reader.Rebuild(outcomes.ProjectionName); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	v.Wait()
	rebuild := time.Since(start)
	b.Logf("outcomes view rebuilt, the feed up to date: %s, %.0f events/s; ratio to the raw read %.2f",
		rebuild.Round(time.Millisecond), float64(len(evs))/rebuild.Seconds(), raw.Seconds()/rebuild.Seconds())
	b.ReportMetric(float64(len(evs))/build.Seconds(), "build-events/s")
	b.ReportMetric(float64(len(evs))/rebuild.Seconds(), "rebuild-events/s")
	b.ReportMetric(float64(len(evs))/raw.Seconds(), "raw-jetstream-events/s")
	want := strconv.Itoa((n + 2) / 5 * 5)

	year := outcomes.Query{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	for _, by := range []string{"month", "practice", "ethnicity", "deprivation_decile"} {
		b.Run("by="+by, func(b *testing.B) {
			q := year
			q.By = by
			v.ResetCache()
			start := time.Now()
			s := v.Summarise("QYG", []string{"U12345"}, q)
			cold := time.Since(start)
			if got := s.Total.Referrals.String(); got != want {
				b.Fatalf("summary of %s referrals, want %s", got, want)
			}
			for b.Loop() {
				s = v.Summarise("QYG", []string{"U12345"}, q)
			}
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/summary")
			b.ReportMetric(float64(cold.Microseconds())/1000, "ms/cold-summary")
			b.ReportMetric(float64(raw.Microseconds())/1000, "ms/raw-jetstream-read")
			b.Logf("summary by %s: %s warm, %s cold (from the store); raw JetStream read of the log: %s",
				by, per.Round(time.Microsecond), cold.Round(time.Microsecond), raw.Round(time.Millisecond))
			if per > 100*time.Millisecond || cold > time.Second {
				b.Errorf("summary by %s took %s warm, %s cold: over the 100 ms / 1 s budget", by, per, cold)
			}
		})
	}
}

// rawRead times one ordered-consumer pass over the JOURNEYS stream,
// decoding each event, as the reader consumes it.
func rawRead(b *testing.B, js jetstream.JetStream, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, events.JourneyStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2048))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	for range n {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		var e eventsv1.Envelope
		if err := proto.Unmarshal(m.Data(), &e); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
