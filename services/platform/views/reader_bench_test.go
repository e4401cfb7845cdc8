package views_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/ops/synthhistory"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/procstat"
	"linkway/services/platform/sealing"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// Projections shaped like the real ones, for the benchmark.

// benchCaseload: a record per journey under its team, rendered from the
// folded state, and a per-team index by status (the caseload's shape).
type benchCaseload struct{}

func (benchCaseload) Name() string { return "caseload" }

type benchCase struct {
	Team, Practice, Status, Worker string
	Failed, Onward, Open           int
	Version                        int
	Updated                        time.Time
}

func (benchCaseload) Apply(b *views.Batch, c views.Change) error {
	ref := c.After.Referral
	team := ref.GetLinkWorkTeam()
	if team == "" {
		return nil
	}
	rec := benchCase{Team: team, Practice: ref.GetReferrerOrganisationId(), Status: string(c.After.Status()),
		Worker: c.After.WorkerName, Failed: len(c.After.FailedAttempts), Onward: len(c.After.Onward),
		Version: c.After.Version, Updated: c.Envelope.GetOccurredAt().AsTime()}
	for _, f := range c.After.FollowUps {
		if !f.Done {
			rec.Open++
		}
	}
	if err := b.SetJSON("c."+team+"."+c.JourneyID, rec); err != nil {
		return err
	}
	if before := c.Before.Status(); before != c.After.Status() {
		if before != events.StatusNone {
			b.Delete("s." + team + "." + string(before) + "." + c.JourneyID)
		}
		b.Set("s."+team+"."+rec.Status+"."+c.JourneyID, []byte{})
	}
	return nil
}

// benchReferralsRMW: the practice's record, read back and written again
// on every event because it keeps what the folded state does not (the
// names of the services the person was referred to, the scores), and a
// timeline step per event under the record, written without a read (the
// referrals view as it is today, its timeline paged like a list).
type benchReferralsRMW struct{}

func (benchReferralsRMW) Name() string { return "referrals" }

type benchReferral struct {
	Status      string            `json:"status"`
	Worker      string            `json:"worker,omitempty"`
	Connections map[string]string `json:"connections,omitempty"` // onward id -> service name
	Scores      []float64         `json:"scores,omitempty"`
	Updated     time.Time         `json:"updated"`
}

func (benchReferralsRMW) Apply(b *views.Batch, c views.Change) error {
	practice := c.After.Referral.GetReferrerOrganisationId()
	if practice == "" {
		return nil
	}
	key := "r." + practice + "." + c.JourneyID
	var rec benchReferral
	if _, err := b.GetJSON(key, &rec); err != nil {
		return err
	}
	at := c.Envelope.GetOccurredAt().AsTime()
	rec.Status, rec.Worker, rec.Updated = string(c.After.Status()), c.After.WorkerName, at
	if m := c.Envelope.GetOnwardReferralMade(); m != nil {
		if rec.Connections == nil {
			rec.Connections = map[string]string{}
		}
		rec.Connections[m.GetOnwardReferralId()] = m.GetServiceName()
	}
	if m := c.Envelope.GetWellbeingMeasured(); m != nil {
		rec.Scores = append(rec.Scores, m.GetScore())
	}
	if err := b.SetJSON(key, rec); err != nil {
		return err
	}
	return b.SetJSON(fmt.Sprintf("%s/%012d", key, c.Seq), benchStep{Type: events.ShortName(c.Envelope), At: at})
}

// benchReferrals: the practice's record rendered from the folded state
// alone, and a timeline step per event under it: written, never read
// (the referrals view ported onto the one fold).
type benchReferrals struct{}

func (benchReferrals) Name() string { return "referrals" }

func (benchReferrals) Apply(b *views.Batch, c views.Change) error {
	practice := c.After.Referral.GetReferrerOrganisationId()
	if practice == "" {
		return nil
	}
	key := "r." + practice + "." + c.JourneyID
	at := c.Envelope.GetOccurredAt().AsTime()
	if err := b.SetJSON(key, benchReferral{Status: string(c.After.Status()), Worker: c.After.WorkerName, Updated: at}); err != nil {
		return err
	}
	return b.SetJSON(fmt.Sprintf("%s/%012d", key, c.Seq), benchStep{Type: events.ShortName(c.Envelope), At: at})
}

type benchStep struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
}

// benchInbox: an entry per onward referral under its organisation, only
// for the events that change one, and a per-organisation status index
// (the VCS inbox's shape).
type benchInbox struct{}

func (benchInbox) Name() string { return "inbox" }

func (benchInbox) Apply(b *views.Batch, c views.Change) error {
	for _, o := range c.After.Onward {
		prev, existed := c.Before.OnwardByID(o.ID)
		if existed && prev.Status == o.Status {
			continue
		}
		if existed {
			b.Delete("s." + o.OrganisationID + "." + string(prev.Status) + "." + o.ID)
		}
		if err := b.SetJSON("i."+o.OrganisationID+"."+o.ID, map[string]string{"journey": c.JourneyID,
			"service": o.ServiceID, "status": string(o.Status)}); err != nil {
			return err
		}
		b.Set("s."+o.OrganisationID+"."+string(o.Status)+"."+o.ID, []byte{})
	}
	return nil
}

// BenchmarkReaderCatchUp writes a synthetic history (ops/synthhistory,
// through the event store, personal data sealed) and then, in each
// iteration, on the same server: a raw ordered consumer reading the whole
// JOURNEYS stream (no decoding), and the reader catching three views up
// from an empty view store (decode and unseal once, fold once, apply to
// each view, commit). It reports both rates, their ratio (goal >= 0.5)
// and the peak Go heap during the catch-up. Two sets of views: rendered
// from the folded state alone (a record per journey and an index key; the
// shape the parties are ported to), and the same with the practices' view
// reading its record back and writing it again on every event (today's
// shape). With no views at all, the figure is the reader's own cost
// (read, decode and unseal, fold, keep the states). LINKWAY_BENCH_JOURNEYS
// sets the journeys (default 3000); LINKWAY_BENCH_STATE_CACHE the journey
// states kept in memory (small: most events find their journey's state on
// disk, as in a long history where a journey's events lie months apart).
func BenchmarkReaderCatchUp(b *testing.B) {
	journeys := 3000
	if s := os.Getenv("LINKWAY_BENCH_JOURNEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("LINKWAY_BENCH_JOURNEYS: %v", err)
		}
		journeys = n
	}
	b.Run("views=none", func(b *testing.B) { benchCatchUp(b, journeys, nil) })
	b.Run("views=from-state", func(b *testing.B) {
		benchCatchUp(b, journeys, []views.Projection{benchCaseload{}, benchReferrals{}, benchInbox{}})
	})
	b.Run("views=read-modify-write", func(b *testing.B) {
		benchCatchUp(b, journeys, []views.Projection{benchCaseload{}, benchReferralsRMW{}, benchInbox{}})
	})
}

func benchCatchUp(b *testing.B, journeys int, projections []views.Projection) {
	ctx := context.Background()
	h := benchHistory(b, journeys)
	js, store, total := h.js, h.store, h.total
	// The machine is shared: each iteration reads raw, then catches up,
	// and the best of each is reported (load only ever slows a run down),
	// with every iteration's pair logged.
	var bestRaw, bestRead, cpuRaw, cpuRead float64
	var peak, base uint64
	var loads float64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cpu0 := procstat.CPU()
		rawRate := float64(total) / rawOrdered(b, js, total).Seconds()
		rawCPU := procstat.CPU() - cpu0
		dir := b.TempDir()
		vs, err := viewstore.Open(viewstore.DefaultConfig(dir))
		if err != nil {
			b.Fatal(err)
		}
		m, err := views.NewReaderMetrics(prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		rcfg := views.DefaultReaderConfig()
		rcfg.Decode, rcfg.Metrics = store.Decode, m
		if n, err := strconv.Atoi(os.Getenv("LINKWAY_BENCH_STATE_CACHE")); err == nil {
			rcfg.StateCache = n
		}
		r, err := views.NewReader(js, vs, projections, rcfg)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		base = max(base, heapBytes())
		hp := startHeapPeak()
		b.StartTimer()
		start, cpu0 := time.Now(), procstat.CPU()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		if err := r.WaitFor(ctx, total); err != nil {
			b.Fatal(err)
		}
		readRate := float64(total) / time.Since(start).Seconds()
		readCPU := procstat.CPU() - cpu0
		b.StopTimer()
		peak = max(peak, hp.stop())
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		loads = m.StateLoadsForTest()
		if err := vs.Close(); err != nil {
			b.Fatal(err)
		}
		us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(total) }
		b.Logf("run %d: reader %.0f events/s, raw %.0f events/s, ratio %.2f; CPU per event (this process: server, client, reader) reader %.1f µs, raw %.1f µs",
			i+1, readRate, rawRate, readRate/rawRate, us(readCPU), us(rawCPU))
		bestRaw, bestRead = max(bestRaw, rawRate), max(bestRead, readRate)
		if cpuRead == 0 || us(readCPU) < cpuRead {
			cpuRead = us(readCPU)
		}
		if cpuRaw == 0 || us(rawCPU) < cpuRaw {
			cpuRaw = us(rawCPU)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(bestRead, "events/s")
	b.ReportMetric(bestRaw, "raw_events/s")
	b.ReportMetric(bestRead/bestRaw, "ratio")
	b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MiB")
	b.ReportMetric(cpuRead, "cpu_us/event")
	b.ReportMetric(cpuRaw, "raw_cpu_us/event")
	b.Logf("least CPU per event: reader %.1f µs, raw %.1f µs (ratio of costs %.2f: what the rates' ratio tends to when the machine is not shared)",
		cpuRead, cpuRaw, cpuRaw/cpuRead)
	b.Logf("%d events (%d journeys), best of %d: reader into %d views %.0f events/s, raw ordered consumer %.0f events/s, ratio %.2f; "+
		"peak Go heap %.0f MiB (%.0f MiB before the catch-up, the NATS server included); %.0f states read back; %d CPUs, load %s",
		total, journeys, b.N, len(projections), bestRead, bestRaw, bestRead/bestRaw, float64(peak)/(1<<20), float64(base)/(1<<20), loads,
		runtime.NumCPU(), loadAverage())
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// history is a synthetic history on a server of its own, written once per
// process (the benchmark function runs more than once) or, with
// LINKWAY_BENCH_HISTORY_DIR set, once and for all in that folder.
type history struct {
	js    jetstream.JetStream
	store *journal.Store
	total uint64
}

var (
	historiesMu sync.Mutex
	histories   = map[int]*history{}
	historyDirs []string // removed by TestMain
)

func benchHistory(b *testing.B, journeys int) *history {
	historiesMu.Lock()
	defer historiesMu.Unlock()
	if h := histories[journeys]; h != nil {
		return h
	}
	ctx := context.Background()
	dir := os.Getenv("LINKWAY_BENCH_HISTORY_DIR")
	if dir != "" {
		dir = filepath.Join(dir, fmt.Sprintf("journeys-%d", journeys))
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "linkway-reader-bench-"); err != nil {
			b.Fatal(err)
		}
		historyDirs = append(historyDirs, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	ns, err := natsserver.Start(dir, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	keyFile := filepath.Join(dir, "master.key")
	master, err := os.ReadFile(keyFile)
	if err != nil {
		master = make([]byte, 32)
		_, _ = rand.Read(master)
		if err := os.WriteFile(keyFile, master, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	keyring, err := sealing.Open(ctx, js, master, 1)
	if err != nil {
		b.Fatal(err)
	}
	cfg := journal.DefaultConfig()
	cfg.Sealer = keyring
	store, err := journal.Open(ctx, js, cfg, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	sc := synthhistory.DefaultConfig()
	sc.Journeys = journeys
	gen := time.Now()
	var st synthhistory.Stats
	if info, err := store.Stream().Info(ctx); err != nil || info.State.Msgs == 0 { // else a kept history
		if st, err = synthhistory.Generate(ctx, store, sc); err != nil {
			b.Fatal(err)
		}
	}
	info, err := store.Stream().Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("history: %d journeys, %d events on the log (%d written now, in %s)", journeys, info.State.Msgs, st.Events,
		time.Since(gen).Round(time.Millisecond))
	h := &history{js: js, store: store, total: info.State.LastSeq}
	histories[journeys] = h
	return h
}

// rawOrdered reads the whole stream with an ordered consumer, as the
// reader does, without decoding: the figure the reader is measured against.
func rawOrdered(b *testing.B, js jetstream.JetStream, total uint64) time.Duration {
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(views.DefaultReaderConfig().Prefetch))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	var n int
	for {
		msg, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		n++
		md, err := msg.Metadata()
		if err != nil {
			b.Fatal(err)
		}
		if md.Sequence.Stream >= total {
			break
		}
	}
	if uint64(n) != total {
		b.Fatalf("raw consumer read %d of %d", n, total)
	}
	return time.Since(start)
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapBytes() uint64 {
	metrics.Read(heapSample)
	return heapSample[0].Value.Uint64()
}

// heapPeak samples the heap's live and not yet swept objects.
type heapPeak struct {
	max  atomic.Uint64
	done chan struct{}
	wg   sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	p := &heapPeak{done: make(chan struct{})}
	p.wg.Go(func() {
		s := []metrics.Sample{{Name: heapSample[0].Name}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > p.max.Load() {
				p.max.Store(v)
			}
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return p
}

func (p *heapPeak) stop() uint64 {
	close(p.done)
	p.wg.Wait()
	return p.max.Load()
}
