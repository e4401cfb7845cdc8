package views_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/views"
)

// BenchmarkReplay measures a projection replaying the log into its view
// (decode, apply, one KV write per touched key per batch, checkpoint) and,
// in the same run, a raw durable pull consumer reading the same messages.
// Each iteration replays the whole history; the rates and their ratio are
// reported.
func BenchmarkReplay(b *testing.B) {
	for _, st := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		b.Run("view="+st.String(), func(b *testing.B) { benchReplay(b, st) })
	}
}

func benchReplay(b *testing.B, storage jetstream.StorageType) {
	const journeys, perJourney = 2000, 5
	ctx := context.Background()
	_, js := natsserver.Test(b)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.JourneyStream, Subjects: []string{events.JourneySubjects}}); err != nil {
		b.Fatal(err)
	}
	// History written with async publishes: the benchmark is of reading.
	for j := range journeys {
		id := events.NewID()
		for e := range perJourney {
			var ev proto.Message = &eventsv1.ReferralReceived{SourceId: id}
			if e > 0 {
				ev = &eventsv1.LinkWorkerAssigned{WorkerId: "w", WorkerName: "W"}
			}
			env := events.Wrap(ev)
			env.JourneyId, env.EventId = id, events.NewID()
			data, _ := proto.Marshal(env)
			if _, err := js.PublishMsgAsync(&nats.Msg{Subject: events.JourneySubject(id), Data: data}); err != nil {
				b.Fatal(err)
			}
		}
		if j%500 == 0 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	total := uint64(journeys * perJourney)
	m, err := views.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var projTime, rawTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := views.Drop(ctx, js, events.JourneyStream, counter{}.Name()); err != nil {
			b.Fatal(err)
		}
		cfg := views.DefaultConfig()
		cfg.Storage = storage
		r, err := views.New(ctx, js, counter{}, cfg, m, log)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rctx, cancel := context.WithCancel(ctx)
		go func() { _ = r.Run(rctx) }()
		if err := r.WaitFor(ctx, total); err != nil {
			b.Fatal(err)
		}
		projTime += time.Since(start)
		cancel()

		b.StopTimer()
		start = time.Now()
		rawConsume(b, js, total)
		rawTime += time.Since(start)
		b.StartTimer()
	}
	projRate := float64(total) * float64(b.N) / projTime.Seconds()
	rawRate := float64(total) * float64(b.N) / rawTime.Seconds()
	b.ReportMetric(projRate, "applied/s")
	b.ReportMetric(rawRate, "raw_consumed/s")
	b.ReportMetric(projRate/rawRate, "ratio")
}

// rawConsume reads n messages with a fresh durable pull consumer, acking
// each batch, as a projection with nothing to apply would.
func rawConsume(b *testing.B, js jetstream.JetStream, n uint64) {
	ctx := context.Background()
	c, err := js.CreateOrUpdateConsumer(ctx, events.JourneyStream, jetstream.ConsumerConfig{
		Durable: "bench_raw", AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = js.DeleteConsumer(ctx, events.JourneyStream, "bench_raw") }()
	for got := uint64(0); got < n; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var last jetstream.Msg
		for msg := range batch.Messages() {
			env := &eventsv1.Envelope{}
			if err := proto.Unmarshal(msg.Data(), env); err != nil {
				b.Fatal(err)
			}
			last = msg
			got++
		}
		if last != nil {
			_ = last.Ack()
		}
	}
}
