package outcomes_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/outcomes"
)

const benchJourneys = 40_000

// BenchmarkSummaryLargeICB answers a year's summary for a large ICB (about
// 40,000 journeys, 300,000 events) from the in-memory view, and, in the
// same run, reads just the 40,000 referral events raw from JetStream: the
// floor of any summary that rereads the log per request.
func BenchmarkSummaryLargeICB(b *testing.B) {
	evs := outcomes.SyntheticYear(benchJourneys, 42)
	v := outcomes.NewView(b)
	start := time.Now()
	for _, e := range evs {
		v.Apply(e)
	}
	b.Logf("view: %d events of %d journeys applied in %s", len(evs), benchJourneys, time.Since(start).Round(time.Millisecond))

	jsRead := rawJetStreamRead(b, evs)
	b.Logf("raw JetStream: reading the %d referral events back took %s", benchJourneys, jsRead.Round(time.Millisecond))

	year := outcomes.Query{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	for _, by := range []string{"month", "practice", "deprivation_decile"} {
		b.Run("by="+by, func(b *testing.B) {
			q := year
			q.By = by
			var s outcomes.Summary
			for b.Loop() {
				s = v.Summarise("QYG", []string{"U12345"}, q)
			}
			if got := s.Total.Referrals.String(); got != "40000" {
				b.Fatalf("summary of %s referrals, want 40000", got)
			}
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/summary")
			b.ReportMetric(float64(jsRead.Microseconds())/1000, "ms/raw-jetstream-read")
			b.Logf("summary by %s: %s per request; raw JetStream read of the referrals alone: %s", by, per.Round(time.Microsecond), jsRead.Round(time.Millisecond))
			if per > 100*time.Millisecond {
				b.Errorf("summary by %s took %s, over the 100 ms budget", by, per)
			}
		})
	}
}

// rawJetStreamRead stores the referral events on a real JetStream stream
// and times one ordered-consumer pass over them.
func rawJetStreamRead(b *testing.B, evs []*eventsv1.Envelope) time.Duration {
	b.Helper()
	_, js := hubtest.NATS(b)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}}); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.GetReferralReceived() == nil {
			continue
		}
		data, err := proto.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("bench."+e.GetJourneyId(), data); err != nil {
			b.Fatal(err)
		}
		if n++; n%2000 == 0 { // stay under the client's limit of pending async publishes
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("publishing did not finish")
	}
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, "BENCH", jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for got := 0; got < n; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			var e eventsv1.Envelope
			if err := proto.Unmarshal(m.Data(), &e); err != nil {
				b.Fatal(err)
			}
			got++
		}
	}
	return time.Since(start)
}
