package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/procstat"
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
// expected-sequence append fsynced by the server), at concurrency 1 and
// 64, beside raw JetStream publishes of a message of the stored event's
// size, with the same expected-sequence header and message id, on the same
// server at the same concurrency. Half the referrals are of eight people
// referred again and again (the person index and key pool under
// contention); every request must be answered 201, and the POST's own
// latency is recorded.
func BenchmarkReferralsHTTP(b *testing.B) {
	h := hubtest.Start(b, noLimit)
	c := httpClient(64)
	run(200, 64, func(i int) error { // warm up connections and caches
		_, err := post(c, h.Base+"/v1/referrals", gpKey, referralBody(fmt.Sprintf("WARM-%d", i), i))
		return err
	})
	idle(b, h, 0)
	ctx := context.Background()
	js := h.JS()
	// Raw publishes go to a stream of their own with the log's settings
	// (file storage, same replicas, the server fsyncing every write), so
	// that the hub's reader does not apply them.
	sc := journal.StreamConfig(journal.DefaultConfig())
	sc.Name, sc.Subjects, sc.SubjectTransform = "RAW_BENCH", []string{"rawbench.*"}, nil
	if _, err := js.CreateStream(ctx, sc); err != nil {
		b.Fatal(err)
	}
	type metric struct {
		v    float64
		unit string
	}
	var (
		lines   []string
		metrics []metric
	)
	for _, conc := range []int{1, 64} {
		n := max(b.N, 3000)
		if conc == 1 {
			n = max(b.N, 500)
		}
		lat := make([]time.Duration, n)
		var failures atomic.Int64
		var firstFailure atomic.Value
		b.ResetTimer()
		httpRate, _ := run(n, conc, func(i int) error {
			person := 1_000_000*conc + i // a new person
			if i%2 == 0 {
				person = i / 2 % 8 // one of eight people referred again and again
			}
			start := time.Now()
			st, err := post(c, h.Base+"/v1/referrals", gpKey, referralBody(fmt.Sprintf("BENCH-%d-%d", conc, i), person))
			lat[i] = time.Since(start)
			if err == nil && st != http.StatusCreated {
				err = fmt.Errorf("POST /v1/referrals: status %d", st)
			}
			if err != nil {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, err)
			}
			return nil // count it and go on
		})
		b.StopTimer()
		if err, _ := firstFailure.Load().(error); err != nil {
			b.Errorf("concurrency %d: %d of %d referrals failed, e.g. %v", conc, failures.Load(), n, err)
		}
		stream, err := js.Stream(ctx, events.JourneyStream)
		if err != nil {
			b.Fatal(err)
		}
		last, err := stream.GetLastMsgForSubject(ctx, events.JourneySubjects+".*")
		if err != nil {
			b.Fatal(err)
		}
		// The reader applies the referrals after they are acknowledged;
		// let it finish, so the raw publishes do not share the server
		// with it.
		idle(b, h, last.Sequence)
		payload := make([]byte, len(last.Data))
		rawRate, err := run(n, conc, func(int) error {
			_, err := js.PublishMsg(ctx, &nats.Msg{Subject: "rawbench." + events.NewID(), Data: payload},
				jetstream.WithMsgID(events.NewID()), jetstream.WithExpectLastSequencePerSubject(0))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		// Reported after the loop: ResetTimer clears reported metrics.
		metrics = append(metrics,
			metric{httpRate, fmt.Sprintf("referrals/s@c%d", conc)},
			metric{rawRate, fmt.Sprintf("raw_publishes/s@c%d", conc)},
			metric{httpRate / rawRate, fmt.Sprintf("ratio@c%d", conc)},
			metric{float64(p99.Microseconds()) / 1000, fmt.Sprintf("p99_ms@c%d", conc)})
		b.Logf("concurrency %d: %d referrals (half of 8 people again and again), %.0f/s, %d failed, POST p50 %s p99 %s; raw publishes %.0f/s; ratio %.2f",
			conc, n, httpRate, failures.Load(), ms(p50), ms(p99), rawRate, httpRate/rawRate)
		lines = append(lines, fmt.Sprintf("| referrals accepted through HTTP, concurrency %d (%d requests, half of 8 people referred again and again; %d failed; event %d B sealed) | %s/s, POST p50 %s, p99 %s | %s/s publishes | %.2f |",
			conc, n, failures.Load(), len(payload), thousands(httpRate), ms(p50), ms(p99), thousands(rawRate), httpRate/rawRate))
	}
	for _, m := range metrics {
		b.ReportMetric(m.v, m.unit)
	}
	results.set("a", strings.Join(lines, "\n"))
}

// BenchmarkCaseloadLatency is (c): a GP's POST to the referral's entry in
// the link-worker caseload view, at a steady 200 referrals a second. The
// referral's stream sequence is taken from the log (a headers-only
// ordered consumer), and the entry counts as visible once the process's
// reader has committed the caseload view at that sequence (what GET
// /v1/caseload then reads); at the end GET /v1/caseload is checked to
// list them all.
func BenchmarkCaseloadLatency(b *testing.B) {
	const rate, seconds = 200, 10
	h := hubtest.Start(b, noLimit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !slices.Contains(h.Reader().Views(), caseloadView) {
		b.Fatalf("no %s view on the reader (views: %v)", caseloadView, h.Reader().Views())
	}
	stream, err := h.JS().Stream(ctx, events.JourneyStream)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true,
		DeliverPolicy: jetstream.DeliverNewPolicy, FilterSubjects: []string{events.JourneySubjectPrefix + "*.*"}}) // stored as lw.journey.<partition>.<id>
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	sent, posted, seen := map[string]time.Time{}, map[string]time.Duration{}, map[string]time.Time{}
	var watchers sync.WaitGroup
	it, err := cons.Messages()
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	go func() {
		for {
			msg, err := it.Next()
			if err != nil {
				return
			}
			jid, ok := events.JourneyIDFromSubject(msg.Subject())
			md, merr := msg.Metadata()
			if !ok || merr != nil || md.Sequence.Stream == 0 {
				continue
			}
			mu.Lock()
			_, ours := sent[jid]
			_, known := seen[jid]
			if ours && !known {
				seen[jid] = time.Time{} // watched
			}
			mu.Unlock()
			if !ours || known {
				continue // not a benchmark referral, or its first event is watched already
			}
			seq := md.Sequence.Stream
			watchers.Go(func() {
				if h.Views().WaitFor(ctx, seq, caseloadView) == nil {
					mu.Lock()
					seen[jid] = time.Now()
					mu.Unlock()
				}
			})
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
	visible := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for jid := range posted {
			if !seen[jid].IsZero() {
				n++
			}
		}
		return n
	}
	hubtest.Eventually(b, 30*time.Second, func() bool { return visible() >= len(posted) }, "every referral in the caseload view")
	b.StopTimer()
	var lat, postLat []time.Duration
	mu.Lock()
	for jid, t0 := range sent {
		if s := seen[jid]; !s.IsZero() {
			lat = append(lat, s.Sub(t0))
		}
		if p, ok := posted[jid]; ok {
			postLat = append(postLat, p)
		}
	}
	mu.Unlock()
	listed, st := caseloadEntries(b, h)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(achieved, "referrals/s")
	results.set("c", fmt.Sprintf("| GP POST to the referral in the caseload view, %d/s offered for %d s (achieved %.0f/s; %d failed; GET /v1/caseload %d, %d entries listed page by page) | p50 %s, p99 %s (POST answered: p50 %s, p99 %s) | | goal p99 <= 50 ms |",
		rate, seconds, achieved, failed.Load(), st, listed, ms(p50), ms(p99), ms(percentile(postLat, 50)), ms(percentile(postLat, 99))))
}

// caseloadView is the link-worker caseload's view (linkwork.ProjectionName).
const caseloadView = "caseload"

// caseloadEntries pages through GET /v1/caseload as the demo team and
// counts the journeys listed; it returns the last status too.
func caseloadEntries(b *testing.B, h *hubtest.Hub) (int, int) {
	n, token := 0, ""
	for range 1000 {
		var page struct {
			Journeys      []json.RawMessage `json:"journeys"`
			NextPageToken string            `json:"next_page_token"`
		}
		st, body := h.Do("GET", "/v1/caseload?page_size=500&page_token="+token, "demo-lw-u12345", nil)
		if st != http.StatusOK {
			return n, st
		}
		if err := json.Unmarshal(body, &page); err != nil {
			b.Fatalf("GET /v1/caseload: %v", err)
		}
		n += len(page.Journeys)
		if page.NextPageToken == "" {
			return n, st
		}
		token = page.NextPageToken
	}
	return n, http.StatusOK
}

// idle waits until every view of h has applied the log up to seq (0: as it
// is now).
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
	if err := h.Views().WaitFor(ctx, seq); err != nil {
		b.Fatalf("views: %v", err)
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

// BenchmarkRebuild is (b) and (d): `linkway gen` writes synthetic history
// of growing size (20,000 then 100,000 journeys unless
// LINKWAY_BENCH_JOURNEYS says otherwise), and at each size, in the same
// run on the same data, a raw JetStream ordered consumer reads the whole
// log, then `linkway rebuild all` (the real binary, a process of its own,
// so its peak resident size is its own: the rebuild, the parties and the
// embedded NATS server) drops every view and replays the log into them.
// It runs twice: first over feeds never published (the projections write
// every feed message into their outboxes), then, once `linkway hub` has
// published the feeds, as the rebuild of a running deployment is.
func BenchmarkRebuild(b *testing.B) {
	sizes := []int{20_000, 100_000}
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
	bin := buildLinkway(b)
	ctx := context.Background()
	cfg := hub.DefaultConfig()
	cfg.Data = b.TempDir()
	cfg.NATSListen = "off"
	cfg.Demo = true
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	written := 0
	var rows []curvePoint
	for step, size := range sizes {
		if size <= written {
			continue
		}
		out := runLinkway(b, bin, "gen", "--demo", "--data", cfg.Data, "--journeys", strconv.Itoa(size-written), "--seed", strconv.Itoa(step+1))
		var genJourneys, genEvents int
		var genRate float64
		if _, err := fmt.Sscanf(out, "wrote %d journeys, %d events in", &genJourneys, &genEvents); err != nil {
			b.Fatalf("linkway gen printed %q: %v", out, err)
		}
		if m := reGenRate.FindStringSubmatch(out); m != nil {
			genRate, _ = strconv.ParseFloat(m[1], 64)
		}
		written = size

		c, err := hub.Connect(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		rawCPU := procstat.CPU()
		rawEvents, lastSeq, rawRate := rawConsume(b, c.JS)
		rawCPU = procstat.CPU() - rawCPU
		c.Close()

		// First catch-up: nothing of this history was ever published on the
		// feeds, so the projections also write every feed message into
		// their outboxes.
		first := rebuild(b, bin, cfg.Data, "all")
		// Then the feeds published, as a hub would have while the history
		// happened, and the views rebuilt: a rebuild never writes again what
		// a feed has published.
		publishFeeds(b, bin, cfg.Data, lastSeq)
		p := rebuild(b, bin, cfg.Data, "all")
		// The reader's own cost: the same replay (decoded, unsealed and
		// folded, the journeys' states written) into the view that writes
		// least, the directory's feedback (a count per service).
		floor := rebuild(b, bin, cfg.Data, readerView)
		p.journeys, p.events, p.rawRate, p.genRate, p.firstSeconds = size, rawEvents, rawRate, genRate, first.seconds
		p.rawCPUMicros = float64(rawCPU.Microseconds()) / float64(rawEvents)
		p.readerRate, p.readerCPUMicros = float64(rawEvents)/floor.seconds, floor.cpuMicros
		for _, r := range []curvePoint{first, p, floor} {
			if r.folded != rawEvents {
				b.Errorf("the rebuild read %d events, the log holds %d", r.folded, rawEvents)
			}
		}
		b.Logf("%d journeys, %d events: first catch-up of all %d views (feeds' outboxes written) in %.1f s (%.0f events/s, ratio %.2f)",
			size, rawEvents, first.views, first.seconds, float64(rawEvents)/first.seconds, float64(rawEvents)/first.seconds/rawRate)
		elapsed := time.Duration(p.seconds * float64(time.Second))
		rows = append(rows, p)
		b.Logf("%d journeys, %d events, feeds published: all %d views (%s) rebuilt in %s (%.0f events/s), raw consumer %.0f/s, ratio %.2f, peak RSS %d MiB (Go heap %d MiB); generated at %.0f events/s",
			size, rawEvents, p.views, p.viewNames, elapsed.Round(time.Millisecond), p.rate(), rawRate, p.rate()/rawRate, p.peakMB, p.heapMB, genRate)
		b.Logf("%d journeys: the reader with %s alone %.0f events/s (ratio %.2f); CPU an event: raw consumer %.1f µs, reader alone %.1f µs, all views %.1f µs; at ratio 0.5 on %d cores a rebuild may spend %.1f µs",
			size, readerView, p.readerRate, p.readerRate/rawRate, p.rawCPUMicros, p.readerCPUMicros, p.cpuMicros, runtime.NumCPU(), p.cpuBudgetMicros())
	}
	if len(rows) == 0 {
		return
	}
	last := rows[len(rows)-1]
	b.ReportMetric(last.rate(), "events_applied/s")
	b.ReportMetric(last.rawRate, "raw_consumed/s")
	b.ReportMetric(last.rate()/last.rawRate, "ratio")
	b.ReportMetric(float64(last.peakMB), "peak_MiB")
	firstRate := float64(last.events) / last.firstSeconds
	results.set("b", fmt.Sprintf("| catch-up of every view, `linkway rebuild all` (%d views; %s events of `linkway gen --journeys %s`), feeds published | %s events/s | %s/s consumed (ordered consumer) | %.2f (goal >= 0.5) |\n"+
		"| the same, first catch-up: the feeds never published, every feed message written to the outboxes | %s events/s | %s/s | %.2f |",
		last.views, thousands(float64(last.events)), thousands(float64(last.journeys)), thousands(last.rate()), thousands(last.rawRate), last.rate()/last.rawRate,
		thousands(firstRate), thousands(last.rawRate), firstRate/last.rawRate))
	results.curve = rows
}

var (
	reGenRate = regexp.MustCompile(`\(([0-9.]+) events/s\)`)
	// "rebuilt a, b: 123 events in 1.5s, 82 events/s; CPU 2.1 s, 17.0 µs an event (2 cores); peak memory: 80 MiB resident (maxrss), Go heap 20 MiB"
	reRebuilt = regexp.MustCompile(`rebuilt (.*): (\d+) events in (\S+), (\d+) events/s; CPU \S+ s, ([0-9.]+) µs an event \(\d+ cores\); peak memory: (\d+) MiB resident \(maxrss\), Go heap (\d+) MiB`)
)

// rebuild runs `linkway rebuild <what>` (all, or a view) and reads what
// it printed.
func rebuild(b *testing.B, bin, data, what string) curvePoint {
	out := runLinkway(b, bin, "rebuild", what, "--demo", "--data", data)
	m := reRebuilt.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("linkway rebuild %s printed %q", what, out)
	}
	folded, _ := strconv.Atoi(m[2])
	elapsed, err := time.ParseDuration(m[3])
	if err != nil {
		b.Fatalf("linkway rebuild %s printed %q: %v", what, out, err)
	}
	cpu, _ := strconv.ParseFloat(m[5], 64)
	rss, _ := strconv.Atoi(m[6])
	heap, _ := strconv.Atoi(m[7])
	return curvePoint{folded: folded, seconds: elapsed.Seconds(), cpuMicros: cpu, peakMB: rss, heapMB: heap,
		views: len(strings.Split(m[1], ", ")), viewNames: m[1]}
}

// publishFeeds runs `linkway hub` on the data until each feed (GP, VCS,
// outcomes) reports its outbox published through the log's last sequence,
// then stops it.
func publishFeeds(b *testing.B, bin, data string, lastSeq uint64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "hub", "--demo", "--data", data, "--http", addr)
	cmd.Env = append(os.Environ(), "LINKWAY_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	gauges := []string{"linkway_referrals_feed_published_through_sequence", "linkway_vcs_feed_published_through_sequence",
		"linkway_outcomes_feed_published_through_sequence"}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		got := metricValues("http://"+addr+"/metrics", gauges)
		done := len(got) == len(gauges)
		for _, v := range got {
			done = done && v >= float64(lastSeq)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the feeds were not published through sequence %d in 15 minutes: %v\n%s", lastSeq, got, stderr.String())
		}
		select {
		case err := <-exited:
			exited <- err
			b.Fatalf("linkway hub exited (%v): %s", err, stderr.String())
		case <-time.After(250 * time.Millisecond): // polling the hub's metrics
		}
	}
}

// metricValues reads the named gauges (unlabelled) from a metrics page;
// those not (yet) there are missing.
func metricValues(url string, names []string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(raw)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && slices.Contains(names, name) {
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out
}

// buildLinkway builds the linkway binary for the benchmark.
func buildLinkway(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "linkway")
	if out, err := exec.Command("go", "build", "-o", bin, "linkway/services/linkway").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runLinkway runs the binary and returns what it printed on stdout.
func runLinkway(b *testing.B, bin string, args ...string) string {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LINKWAY_LOG_LEVEL=warn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("linkway %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// readerView is the view whose rebuild measures the reader's own cost:
// it writes a count per service, next to nothing.
const readerView = "directory_feedback"

type curvePoint struct {
	journeys, events, folded int
	seconds                  float64
	// cpuMicros is the rebuild's CPU time an event (what `linkway
	// rebuild` prints), rawCPUMicros the raw consumer's (this process, its
	// embedded server included).
	cpuMicros, rawCPUMicros float64
	// readerRate and readerCPUMicros are the rebuild of readerView alone.
	readerRate, readerCPUMicros float64
	// firstSeconds is the first catch-up's, with the feeds never published.
	firstSeconds     float64
	peakMB, heapMB   int
	rawRate, genRate float64
	views            int
	viewNames        string
}

func (p curvePoint) rate() float64 { return float64(p.events) / p.seconds }

// cpuBudgetMicros is the most CPU an event a rebuild can spend and still
// reach half the raw consumer's rate, with every core busy throughout.
func (p curvePoint) cpuBudgetMicros() float64 {
	return float64(runtime.NumCPU()) / (0.5 * p.rawRate) * 1e6
}

// rawConsume reads the whole JOURNEYS stream with an ordered consumer.
func rawConsume(b *testing.B, js jetstream.JetStream) (n int, lastSeq uint64, rate float64) {
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
	start := time.Now()
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
	return n, info.State.LastSeq, float64(n) / time.Since(start).Seconds()
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
