package vcs_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/linkway/hubtest"
	"linkway/services/vcs"
)

// BenchmarkFeedCatchUp measures how fast the feed's publisher empties a
// backlog in its outbox (n onward referrals made while FEED_VCS was gone,
// then the stream back), beside the raw figure of the same run: the same
// number of messages of the same size published to a stream of its own
// on the same server as atomic batches of 500, the publisher's way.
//
//	go test -run '^$' -bench FeedCatchUp -benchtime 1x ./services/vcs/
func BenchmarkFeedCatchUp(b *testing.B) {
	const n = 5000
	for range b.N {
		b.StopTimer()
		h := hubtest.Start(b, hubtest.Services("vcs"))
		ctx := context.Background()
		if err := h.JS().DeleteStream(ctx, vcs.FeedStream); err != nil {
			b.Fatal(err)
		}
		// 50 journeys, each referred on to 100 of the organisation's services.
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				steps := onwardSteps(walk, "name", "phone", "needs")
				for k := 1; k < n/50; k++ {
					svc := walk
					svc.ID = fmt.Sprintf("VCS001-b%d-%d", i, k)
					steps = append(steps, step{linkWorker, events.ReferOnward{OnwardReferralID: events.NewID(), Service: svc, Share: []string{"name", "phone", "needs"}}})
				}
				jid := events.ReferralJourneyID("A81001", "VCS-BENCH-"+events.NewID())
				for _, s := range steps {
					if _, err := h.Journal().Execute(ctx, jid, s.meta, s.cmd); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		last, err := h.Journal().Stream().Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		if err := h.Views().WaitFor(wait, last.State.LastSeq, vcs.InboxProjection); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StartTimer()
		start := time.Now()
		stream, err := h.JS().CreateOrUpdateStream(ctx, vcs.FeedStreamConfig(1))
		if err != nil {
			b.Fatal(err)
		}
		var size uint64
		hubtest.Eventually(b, 2*time.Minute, func() bool {
			info, err := stream.Info(ctx)
			if err == nil && info.State.Msgs == n {
				size = info.State.Bytes / n
			}
			return err == nil && info.State.Msgs == n
		}, "the feed publishes the backlog")
		b.StopTimer()
		// From the first message stored to the last (the publisher may be
		// in a pause after failing through the outage when it comes back).
		ours := storedSpan(b, stream)
		b.Logf("stream back to feed caught up: %v", time.Since(start))
		raw := rawAtomicBatches(b, h, n, int(size))
		b.ReportMetric(n/ours.Seconds(), "feed-msgs/s")
		b.ReportMetric(n/raw.Seconds(), "raw-msgs/s")
		b.Logf("feed catch-up: %d messages of ~%d bytes in %v (%.0f msg/s); raw JetStream atomic batches of 500, same server, same run: %v (%.0f msg/s); ratio %.2f",
			n, size, ours, n/ours.Seconds(), raw, n/raw.Seconds(), raw.Seconds()/ours.Seconds())
		h.Stop()
		_ = h.Wait()
	}
}

// rawAtomicBatches publishes n messages of size bytes to a stream of its
// own as atomic batches of 500 and returns how long that took.
func rawAtomicBatches(tb testing.TB, h *hubtest.Hub, n, size int) time.Duration {
	tb.Helper()
	ctx := context.Background()
	js, nc := h.JS(), h.NC()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_VCS_FEED_RAW", Subjects: []string{"bench.vcs.feed.>"},
		Storage: jetstream.FileStorage, AllowAtomicPublish: true, Duplicates: 10 * time.Minute}); err != nil {
		tb.Fatal(err)
	}
	stream, err := js.Stream(ctx, "BENCH_VCS_FEED_RAW")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), "BENCH_VCS_FEED_RAW") }()
	body := make([]byte, max(size-100, 10))
	for done := 0; done < n; {
		id := events.NewID()
		k := min(500, n-done)
		for i := range k {
			m := &nats.Msg{Subject: "bench.vcs.feed." + strconv.Itoa(done+i), Data: body, Header: nats.Header{}}
			m.Header.Set(jetstream.MsgIDHeader, id+"/"+strconv.Itoa(i))
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
			if i < k-1 {
				if err := nc.PublishMsg(m); err != nil {
					tb.Fatal(err)
				}
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			if _, err := nc.RequestMsg(m, 10*time.Second); err != nil {
				tb.Fatal(err)
			}
		}
		done += k
	}
	return storedSpan(tb, stream)
}

// storedSpan is the time from a stream's first message to its last, as
// the server stamped them.
func storedSpan(tb testing.TB, stream jetstream.Stream) time.Duration {
	tb.Helper()
	ctx := context.Background()
	info, err := stream.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	first, err := stream.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		tb.Fatal(err)
	}
	last, err := stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		tb.Fatal(err)
	}
	return last.Time.Sub(first.Time)
}
