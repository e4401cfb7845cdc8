package vcs_test

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/linkway/hubtest"
)

// BenchmarkAcceptanceVisibleInGPView measures how long after a VCS
// organisation accepts an onward referral (POST .../accept sent) the GP
// practice's view (GET /v1/referrals/{id}) shows it, and beside it, in the
// same run and on the same server, how long a raw JetStream message takes
// from publish to a consumer: the floor any view lag stands on.
//
//	go test -run '^$' -bench AcceptanceVisible ./services/vcs/
func BenchmarkAcceptanceVisibleInGPView(b *testing.B) {
	h := hubtest.Start(b)
	var lags, accepts []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		j := toOnward(b, h, walk, "name")
		waitInInbox(b, h, vcs1Key, j.OnwardID)
		b.StartTimer()
		start := time.Now()
		if st, out := h.Do("POST", "/v1/onward-referrals/"+j.OnwardID+"/accept", vcs1Key, []byte(`{}`)); st != 200 {
			b.Fatalf("accept: %d %s", st, out)
		}
		accepts = append(accepts, time.Since(start))
		for {
			st, out := h.Do("GET", "/v1/referrals/"+j.ID, gpKey, nil)
			if st == 200 && (strings.Contains(string(out), `"accepted"`) || strings.Contains(string(out), `"onward_referral_accepted"`)) {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("the GP view never showed the acceptance: %d %s", st, out)
			}
			time.Sleep(time.Millisecond) // polling interval of the reader, not a wait for the outcome
		}
		lags = append(lags, time.Since(start))
	}
	b.StopTimer()
	raw := rawPublishConsume(b, h, max(len(lags), 50))
	report(b, "accept-to-gp", lags)
	report(b, "accept-answer", accepts)
	report(b, "raw-js", raw)
	// The target: the acceptance visible in the GP view within
	// 200 ms at the 99th percentile (judged once there are enough samples).
	if len(lags) >= 20 && pct(lags, 99) > 200*time.Millisecond {
		b.Errorf("accept -> GP view p99 %v, over the 200 ms target", pct(lags, 99))
	}
	b.Logf("n=%d  accept->GP view p50 %v p99 %v | accept answer p50 %v p99 %v | raw JetStream publish->consume p50 %v p99 %v",
		len(lags), pct(lags, 50), pct(lags, 99), pct(accepts, 50), pct(accepts, 99), pct(raw, 50), pct(raw, 99))
}

// rawPublishConsume publishes n messages, one at a time, to a stream of its
// own on the hub's server and times each from publish to delivery.
func rawPublishConsume(tb testing.TB, h *hubtest.Hub, n int) []time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := h.JS()
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH_VCS_RAW", Subjects: []string{"bench.vcs.raw"}, Storage: jetstream.FileStorage})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), "BENCH_VCS_RAW") }()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		tb.Fatal(err)
	}
	got := make(chan time.Duration, n)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data())))
		got <- time.Since(sent)
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer cc.Stop()
	var out []time.Duration
	buf := make([]byte, 8)
	for range n {
		binary.BigEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
		if _, err := js.Publish(ctx, "bench.vcs.raw", buf); err != nil {
			tb.Fatal(err)
		}
		select {
		case d := <-got:
			out = append(out, d)
		case <-ctx.Done():
			tb.Fatal("raw consumer got nothing")
		}
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func report(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(float64(pct(ds, 50).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(pct(ds, 99).Microseconds())/1000, name+"-p99-ms")
}
