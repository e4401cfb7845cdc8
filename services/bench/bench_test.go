package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/ops/synthhistory"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/views"
)

const (
	gpKey, gpOrg = "demo-gp-a81001", "A81001"
	lwTeam       = "U12345"
)

// noLimit runs a test hub without the per-key rate limit: the benchmark
// is one GP key sending as fast as it can.
func noLimit(c *hub.Config) { c.RateLimit.Rate = 0 }

// nhsNumber makes a valid (modulus-11) NHS number from n.
func nhsNumber(n int) string { return events.NHSNumberFrom(int64(600_000_000 + n*3)) }

func referralBody(sid string, n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"source_id": sid,
		"patient": map[string]any{"nhs_number": nhsNumber(n), "given_name": "Bench", "family_name": "Mark",
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX", "phone": "07700 900123"},
		"reasons": []string{"422650009"}, "notes": "Recently bereaved, isolated since moving.",
		"consent": map[string]any{"share_with_vcs": true}, "link_work_team": lwTeam, "urgency": "routine",
	})
	return b
}

func httpClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns}}
}

func post(c *http.Client, url, key string, body []byte) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// run runs n operations over conc goroutines; it returns operations per
// second and the first error.
func run(n, conc int, op func(i int) error) (float64, error) {
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
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	if err, _ := failed.Load().(error); err != nil {
		return rate, err
	}
	return rate, nil
}

// BenchmarkReferralsHTTP is (a): GP referrals accepted per second through
// the HTTP API (JSON decoding, validation, sealing, decide, the
// expected-sequence append fsynced by the server) at concurrency 64, and
// raw JetStream publishes of a message of the stored event's size, with
// the same expected-sequence header and message id, on the same server.
func BenchmarkReferralsHTTP(b *testing.B) {
	const conc = 64
	n := max(b.N, 3000)
	h := hubtest.Start(b, noLimit)
	c := httpClient(conc)
	run(200, conc, func(i int) error { // warm up connections and caches
		_, err := post(c, h.Base+"/v1/referrals", gpKey, referralBody(fmt.Sprintf("WARM-%d", i), i))
		return err
	})
	idle(b, h, 0)
	b.ResetTimer()
	httpRate, err := run(n, conc, func(i int) error {
		st, err := post(c, h.Base+"/v1/referrals", gpKey, referralBody(fmt.Sprintf("BENCH-%d", i), 1000+i))
		if err == nil && st != http.StatusCreated {
			err = fmt.Errorf("POST /v1/referrals: status %d", st)
		}
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	js := h.JS()
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		b.Fatal(err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, events.JourneySubjects+".*")
	if err != nil {
		b.Fatal(err)
	}
	// The projections apply the referrals after they are acknowledged;
	// let them finish, so the raw publishes do not share the server with
	// them.
	idle(b, h, last.Sequence)
	// Raw publishes go to a stream of their own with the log's settings
	// (file storage, same replicas, the server fsyncing every write), so
	// that the hub's projections do not try to apply them.
	sc := journal.StreamConfig(journal.DefaultConfig())
	sc.Name, sc.Subjects, sc.SubjectTransform = "RAW_BENCH", []string{"rawbench.*"}, nil
	if _, err := js.CreateStream(ctx, sc); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, len(last.Data))
	rawRate, err := run(n, conc, func(int) error {
		_, err := js.PublishMsg(ctx, &nats.Msg{Subject: "rawbench." + events.NewID(), Data: payload},
			jetstream.WithMsgID(events.NewID()), jetstream.WithExpectLastSequencePerSubject(0))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(httpRate, "referrals/s")
	b.ReportMetric(rawRate, "raw_publishes/s")
	b.ReportMetric(httpRate/rawRate, "ratio")
	results.set("a", fmt.Sprintf("| referrals accepted through HTTP, concurrency 64 (%d requests, event %d B sealed) | %s/s | %s/s publishes | %.2f |",
		n, len(payload), thousands(httpRate), thousands(rawRate), httpRate/rawRate))
}

// BenchmarkCaseloadLatency is (c): a GP's POST to the referral's entry in
// the link-worker caseload view, at a steady 200 referrals a second. The
// entry is seen by watching the caseload's view bucket, the bucket that
// GET /v1/caseload lists (through a mirror kept by the same kind of
// watch); at the end GET /v1/caseload is checked to list them all.
func BenchmarkCaseloadLatency(b *testing.B) {
	const rate, seconds = 200, 10
	h := hubtest.Start(b, noLimit)
	ctx := context.Background()
	kv, err := h.JS().KeyValue(ctx, views.BucketName("caseload"))
	if err != nil {
		b.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	sent, posted, seen := map[string]time.Time{}, map[string]time.Duration{}, map[string]time.Time{}
	go func() {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			if jid, ok := strings.CutPrefix(e.Key(), "c."+lwTeam+"."); ok {
				mu.Lock()
				if _, dup := seen[jid]; !dup {
					seen[jid] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()
	c := httpClient(64)
	total := rate * seconds
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	b.ResetTimer()
	for i := range total {
		<-tick.C
		sid := fmt.Sprintf("LAT-%d", i)
		jid := events.ReferralJourneyID(gpOrg, sid)
		wg.Go(func() {
			t0 := time.Now()
			mu.Lock()
			sent[jid] = t0
			mu.Unlock()
			st, err := post(c, h.Base+"/v1/referrals", gpKey, referralBody(sid, 5000+i))
			if err != nil || st != http.StatusCreated {
				failed.Add(1)
				return
			}
			mu.Lock()
			posted[jid] = time.Since(t0)
			mu.Unlock()
		})
	}
	wg.Wait()
	achieved := float64(total) / time.Since(start).Seconds()
	hubtest.Eventually(b, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(posted)
	}, "every referral in the caseload view")
	b.StopTimer()
	var lat, postLat []time.Duration
	mu.Lock()
	for jid, t0 := range sent {
		if s, ok := seen[jid]; ok {
			lat = append(lat, s.Sub(t0))
		}
		if p, ok := posted[jid]; ok {
			postLat = append(postLat, p)
		}
	}
	mu.Unlock()
	var list struct {
		Journeys []json.RawMessage `json:"journeys"`
	}
	st, body := h.Do("GET", "/v1/caseload", "demo-lw-u12345", nil)
	_ = json.Unmarshal(body, &list)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(achieved, "referrals/s")
	results.set("c", fmt.Sprintf("| GP POST to the referral in the caseload view, %d/s for %d s (achieved %.0f/s; %d failed; GET /v1/caseload %d, %d entries) | p50 %s, p99 %s (POST answered: p50 %s, p99 %s) | | |",
		rate, seconds, achieved, failed.Load(), st, len(list.Journeys), ms(p50), ms(p99), ms(percentile(postLat, 50)), ms(percentile(postLat, 99))))
}

// idle waits until every projection of h has applied the log up to seq
// (0: as it is now).
func idle(b *testing.B, h *hubtest.Hub, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if seq == 0 {
		st, err := h.JS().Stream(ctx, events.JourneyStream)
		if err != nil {
			b.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		seq = info.State.LastSeq
	}
	for _, r := range h.Runners() {
		if err := r.WaitFor(ctx, seq); err != nil {
			b.Fatalf("projection %s: %v", r.Name(), err)
		}
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// BenchmarkRebuild is (b) and (d): synthetic history of growing size
// (linkway gen's generator, through the event store), then every view
// dropped and rebuilt from the log by a hub starting on it, timed until
// every projection has caught up, with the process's peak resident
// memory; and in the same run, on the same server, a raw JetStream
// ordered consumer reading the whole stream.
func BenchmarkRebuild(b *testing.B) {
	sizes := []int{5_000, 15_000, 45_000}
	if s := os.Getenv("LINKWAY_BENCH_JOURNEYS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("LINKWAY_BENCH_JOURNEYS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	ctx := context.Background()
	cfg := hub.DefaultConfig()
	cfg.Data = b.TempDir()
	cfg.NATSListen = "off"
	cfg.HTTP = "127.0.0.1:0"
	cfg.Demo = true
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	written := 0
	var rows []curvePoint
	for step, size := range sizes {
		if size <= written {
			continue
		}
		store, conn, err := hub.OpenStore(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		sc := synthhistory.DefaultConfig()
		sc.Journeys, sc.Seed = size-written, uint64(step+1)
		gstart := time.Now()
		st, err := synthhistory.Generate(ctx, store, sc)
		conn.Close()
		if err != nil {
			b.Fatal(err)
		}
		genRate := float64(st.Events) / time.Since(gstart).Seconds()
		written = size

		// Drop every view, and read the whole log raw on the same server.
		c, err := hub.Connect(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for name := range c.JS.KeyValueStoreNames(ctx).Name() {
			if view, ok := strings.CutPrefix(name, "view_"); ok {
				if err := views.Drop(ctx, c.JS, events.JourneyStream, view); err != nil {
					b.Fatal(err)
				}
			}
		}
		rawEvents, rawRate := rawConsume(b, c.JS)
		c.Close()

		peak := &peakRSS{}
		peak.start()
		rstart := time.Now()
		h, err := hub.Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		hubtest.Eventually(b, 30*time.Minute, func() bool {
			for _, r := range h.Runners() {
				if !r.Ready() {
					return false
				}
			}
			return true
		}, "every view rebuilt")
		elapsed := time.Since(rstart)
		views := len(h.Runners())
		h.Stop()
		if err := h.Wait(); err != nil {
			b.Fatal(err)
		}
		mem := peak.stop()
		p := curvePoint{journeys: size, events: rawEvents, seconds: elapsed.Seconds(), peakMB: mem / (1 << 20),
			rawRate: rawRate, views: views, genRate: genRate}
		rows = append(rows, p)
		b.Logf("%d journeys, %d events: all %d views rebuilt in %s (%.0f events/s), raw consumer %.0f/s, peak RSS %d MB; generated at %.0f events/s",
			size, rawEvents, views, elapsed.Round(time.Millisecond), p.rate(), rawRate, p.peakMB, genRate)
	}
	if len(rows) == 0 {
		return
	}
	last := rows[len(rows)-1]
	b.ReportMetric(last.rate(), "events_applied/s")
	b.ReportMetric(last.rawRate, "raw_consumed/s")
	b.ReportMetric(last.rate()/last.rawRate, "ratio")
	b.ReportMetric(float64(last.peakMB), "peak_MB")
	results.set("b", fmt.Sprintf("| projection catch-up into all %d views (%d events of synthetic history) | %s events/s | %s/s consumed (ordered consumer) | %.2f |",
		last.views, last.events, thousands(last.rate()), thousands(last.rawRate), last.rate()/last.rawRate))
	results.curve = rows
}

type curvePoint struct {
	journeys, events int
	seconds          float64
	peakMB           int
	rawRate, genRate float64
	views            int
}

func (p curvePoint) rate() float64 { return float64(p.events) / p.seconds }

// rawConsume reads the whole JOURNEYS stream with an ordered consumer.
func rawConsume(b *testing.B, js jetstream.JetStream) (int, float64) {
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	n, start := 0, time.Now()
	for last := uint64(0); last < info.State.LastSeq; {
		// A fetch waits for its whole batch: never ask for more than is left.
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-uint64(n))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			last = md.Sequence.Stream
			n++
		}
		if err := batch.Error(); err != nil {
			b.Fatal(err)
		}
	}
	return n, float64(n) / time.Since(start).Seconds()
}

// peakRSS samples this process's resident memory (the hub and its
// embedded NATS server both run in it) while a rebuild runs.
type peakRSS struct {
	max  atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup
}

func (p *peakRSS) start() {
	p.done = make(chan struct{})
	p.wg.Go(func() {
		for {
			if v := rss(); v > p.max.Load() {
				p.max.Store(v)
			}
			select {
			case <-p.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

func (p *peakRSS) stop() int {
	close(p.done)
	p.wg.Wait()
	return int(p.max.Load())
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
