package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// results collects the figures of one `make bench` run for
// ops/bench/README.md.
var results = &collected{rows: map[string]string{}}

type collected struct {
	mu    sync.Mutex
	rows  map[string]string
	curve []curvePoint
}

func (c *collected) set(k, row string) {
	c.mu.Lock()
	c.rows[k] = row
	c.mu.Unlock()
}

// TestMain writes ops/bench/README.md after a benchmark run when
// LINKWAY_BENCH_WRITE is set (make bench sets it).
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("LINKWAY_BENCH_WRITE") != "" && len(results.rows) > 0 {
		if err := writeReport(filepath.Join("..", "..", "ops", "bench", "README.md")); err != nil {
			fmt.Fprintln(os.Stderr, "write ops/bench/README.md:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func machine() string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("- CPU: %s, %d logical CPUs (nproc)\n- memory: %s\n- Go: %s, %s/%s; kernel %s\n- NATS: nats-server %s embedded (JetStream file store, fsync on every write, R1)\n- load average when the run ended: %s (other work shares this machine: figures are from one run; the ratios, taken against the same server in the same run, are the steadier figures)\n",
		cpu, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), server.VERSION, load)
}

// fit is a least-squares line y = a + b x.
func fit(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	if d := n*sxx - sx*sx; d != 0 {
		b = (n*sxy - sx*sy) / d
	}
	return (sy - b*sx) / n, b
}

// notesMarker starts the hand-written part of ops/bench/README.md.
const notesMarker = "<!-- notes below are written by hand and kept by make bench -->"

func writeReport(path string) error {
	var sb strings.Builder
	sb.WriteString("# Linkway benchmarks\n\n")
	sb.WriteString("Written by `make bench` (services/bench, LINKWAY_BENCH_WRITE=1); each figure beside raw JetStream measured in\n")
	sb.WriteString("the same run against the same server. Run " + time.Now().UTC().Format("2006-01-02 15:04 MST") + " on:\n\n")
	sb.WriteString(machine())
	sb.WriteString("\n| what | Linkway | raw JetStream | ratio |\n| --- | --- | --- | --- |\n")
	for _, k := range []string{"a", "b", "c"} {
		if r, ok := results.rows[k]; ok {
			sb.WriteString(r + "\n")
		}
	}
	if len(results.curve) > 0 {
		sb.WriteString("\n## Catch-up of every view: `linkway rebuild all` over `linkway gen`\n\n")
		sb.WriteString("Synthetic history from `linkway gen` (ops/synthhistory: declines, uncontactable closures, several onward\n")
		sb.WriteString("referrals, VCS declines by reason, attendance, follow-ups with measures, reopenings; 200 practices, 30 teams, dated\n")
		sb.WriteString("over a year), written through the event store. At each size, in the same run on the same data: a raw JetStream\n")
		sb.WriteString("ordered consumer reads the whole log, then `linkway rebuild all` (a process of its own: the parties, the one\n")
		sb.WriteString("reader, the Pebble view store and the embedded NATS server) drops every view and the folded journeys and replays\n")
		sb.WriteString("the log into them, each event decoded, unsealed and folded once. Its figures are what it prints: events/s over\n")
		sb.WriteString("the replay, peak resident set (getrusage maxrss, the whole process) and the highest Go heap in use sampled.\n")
		sb.WriteString("It runs twice at each size: first with the feeds never published (the history was written by `linkway gen`, not\n")
		sb.WriteString("through a hub), so the projections also render every feed message into their outboxes; then, after `linkway hub`\n")
		sb.WriteString("has published the feeds, as a running deployment's rebuild is (a rebuild writes nothing a feed has published).\n")
		sb.WriteString("The table and the extrapolation are the second; the first is its own column.\n\n")
		fmt.Fprintf(&sb, "Views: %s.\n\n", results.curve[len(results.curve)-1].viewNames)
		sb.WriteString("| journeys | events | rebuild all | events/s | raw consumer events/s | ratio | peak RSS | Go heap | first catch-up events/s (ratio) | `linkway gen` events/s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		var xs, ts, js, ms []float64
		for _, p := range results.curve {
			first := float64(p.events) / p.firstSeconds
			fmt.Fprintf(&sb, "| %s | %s | %.1f s | %s | %s | %.2f | %d MiB | %d MiB | %s (%.2f) | %s |\n", thousands(float64(p.journeys)), thousands(float64(p.events)),
				p.seconds, thousands(p.rate()), thousands(p.rawRate), p.rate()/p.rawRate, p.peakMB, p.heapMB, thousands(first), first/p.rawRate, thousands(p.genRate))
			xs, ts = append(xs, float64(p.events)), append(ts, p.seconds)
			js, ms = append(js, float64(p.journeys)), append(ms, float64(p.peakMB))
		}
		last := results.curve[len(results.curve)-1]
		perJourney := float64(last.events) / float64(last.journeys)
		const national = 1_300_000
		nationalEvents := national * perJourney
		a, b := fit(xs, ts)
		ma, mb := fit(js, ms)
		secs := a + b*nationalEvents
		if len(xs) == 1 || secs <= 0 {
			secs = nationalEvents / last.rate()
		}
		fmt.Fprintf(&sb, "\nExtrapolation to a national year (1.3 million journeys; %.1f events a journey in this history, so %s events),\n", perJourney, thousands(nationalEvents))
		fmt.Fprintf(&sb, "by a least-squares line through the points above: rebuild time %.1f s + %.2f µs/event = **%s** (goal <= 3 min);\n", a, b*1e6, (time.Duration(secs * float64(time.Second))).Round(time.Second))
		fmt.Fprintf(&sb, "peak resident memory %.0f MiB + %.2f MiB per 1,000 journeys = **%.0f MiB** (goal <= 1 GiB), on %d cores (GOMAXPROCS %d).\n",
			ma, mb*1000, ma+mb*national, runtime.NumCPU(), runtime.GOMAXPROCS(0))
		sb.WriteString("\nWhere the time goes, in the same run: CPU time an event (user and system, every thread, the embedded NATS\n")
		sb.WriteString("server's included; for a rebuild the whole command's, opening and dropping the views included) of the raw\n")
		sb.WriteString("consumer, of the reader alone (`linkway rebuild " + readerView + "`: the same replay,\n")
		sb.WriteString("each event decoded, unsealed and folded and each journey's state written, into the view that writes least) and of\n")
		sb.WriteString("`linkway rebuild all`; and the budget the goal leaves: to reach half the raw rate with every core busy throughout,\n")
		sb.WriteString("a rebuild may spend at most cores / (0.5 x raw rate) of CPU an event.\n\n")
		sb.WriteString("| journeys | raw consumer CPU an event | reader alone events/s (ratio) | reader alone CPU an event | all views CPU an event | budget at ratio 0.5 |\n| --- | --- | --- | --- | --- | --- |\n")
		for _, p := range results.curve {
			fmt.Fprintf(&sb, "| %s | %.1f µs | %s (%.2f) | %.1f µs | %.1f µs | %.1f µs |\n", thousands(float64(p.journeys)), p.rawCPUMicros,
				thousands(p.readerRate), p.readerRate/p.rawRate, p.readerCPUMicros, p.cpuMicros, p.cpuBudgetMicros())
		}
		sb.WriteString("\nMemory is bounded by design (a bounded LRU of folded journeys, a 64 MiB block cache and at most four 16 MiB\n")
		sb.WriteString("memtables in the view store, person keys in a bounded cache), so the line's slope is what the bounds have not yet\n")
		sb.WriteString("reached at these sizes; the machine is shared with other work, so the ratio, against the same server in the same\n")
		sb.WriteString("run, is the steadier figure.\n")
	}
	// Notes written by hand below the marker stay across runs.
	sb.WriteString("\n" + notesMarker + "\n")
	if old, err := os.ReadFile(path); err == nil {
		if _, notes, ok := strings.Cut(string(old), notesMarker+"\n"); ok {
			sb.WriteString(notes)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
