package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"linkway/services/linkway/hub"
	"linkway/services/platform/procstat"
	"linkway/services/platform/views"
)

// runRebuild drops views (`all`, or one by name) from this process's view
// store and replays the whole log into them, with a progress bar, then
// prints the rate and the peak memory. Run it with the hub stopped: it
// opens the same data folder and view store.
func runRebuild(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	cfg, fs, decodeSecrets := toolFlags("rebuild", log, stderr)
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: linkway rebuild all|<view> [flags]")
		return flag.ErrHelp
	}
	name := args[0]
	cfg.Command = "rebuild " + name
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the rebuild to `FILE` (go tool pprof reads it)")
	memProfile := fs.String("memprofile", "", "write a profile of the heap in use to `FILE` when the rebuild is 70% through")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := decodeSecrets(); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	mem := watchMemory()
	bar := newProgress(stderr, log, "rebuilding "+name, "events", 0)
	heapWritten := false
	progress := func(applied, total uint64) {
		bar.setTotal(total)
		bar.update(applied)
		if *memProfile != "" && !heapWritten && total > 0 && applied*10 >= total*7 {
			heapWritten = true
			if err := writeHeapProfile(*memProfile); err != nil {
				log.Warn("heap profile", "err", err)
			}
		}
	}
	start, cpuStart := time.Now(), procstat.CPU()
	var (
		st  views.RebuildStats
		err error
	)
	if name == hub.AllViews {
		st, err = hub.RebuildViews(ctx, *cfg, nil, progress)
	} else {
		// A view still on the old runtime is rebuilt by its runner.
		var n uint64
		n, err = hub.Rebuild(ctx, *cfg, name, progress)
		st = views.RebuildStats{Views: []string{name}, Total: n, Folded: n, Elapsed: time.Since(start)}
	}
	peak, cpu := mem.stop(), procstat.CPU()-cpuStart
	if err != nil {
		return err
	}
	bar.finish(st.Total)
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	perEvent := 0.0
	if st.Folded > 0 {
		perEvent = float64(cpu.Microseconds()) / float64(st.Folded)
	}
	fmt.Fprintf(stdout, "rebuilt %s: %d events in %s, %.0f events/s; CPU %.1f s, %.1f µs an event (%d cores); peak memory: %s\n",
		strings.Join(st.Views, ", "), st.Folded, st.Elapsed.Round(time.Millisecond), st.EventsPerSecond(),
		cpu.Seconds(), perEvent, runtime.NumCPU(), peak)
	return nil
}

// writeHeapProfile writes the heap in use (after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runSnapshot brings the views up to the log's end and writes a Pebble
// checkpoint of them into a new folder: `linkway snapshot DIR`. A replica
// started with --views on a copy of it replays only the log's tail.
func runSnapshot(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	cfg, fs, decodeSecrets := toolFlags("snapshot", log, stderr)
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: linkway snapshot DIR [flags]")
		return flag.ErrHelp
	}
	dir := args[0]
	cfg.Command = "snapshot"
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := decodeSecrets(); err != nil {
		return err
	}
	bar := newProgress(stderr, log, "catching up", "events", 0)
	st, err := hub.Snapshot(ctx, *cfg, dir, func(applied, total uint64) {
		bar.setTotal(total)
		bar.update(applied)
	})
	if err != nil {
		return err
	}
	bar.finish(st.Total)
	fmt.Fprintf(stdout, "snapshot of %s at sequence %d written to %s (%d events applied first)\n",
		strings.Join(st.Views, ", "), st.Total, dir, st.Folded)
	return nil
}

// toolFlags are the flags of an offline tool that builds the parties
// (rebuild, snapshot): the hub's NATS and data, and the secrets that open
// the data.
func toolFlags(name string, log *slog.Logger, stderr io.Writer) (*hub.Config, *flag.FlagSet, func() error) {
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.NATSListen = "off"
	cfg.HTTP = "127.0.0.1:0"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	fs.BoolVar(&cfg.Demo, "demo", envBool("LINKWAY_DEMO"), "data of a --demo hub: read them with its demo master key [LINKWAY_DEMO]")
	// The parties are built and open the data as the hub does.
	decode := secretFlags(fs, &cfg)
	limit := fs.Int("memory-limit-mib", 768, "soft limit of the Go heap in MiB: the garbage collector works harder near it, so the process stays within about 1 GiB (with the NATS server embedded, its subject trees share this heap and grow with the log: past a few hundred thousand journeys the collector then runs almost without pause; raise the limit for speed); 0 for none; GOMEMLIMIT, when set, wins")
	return &cfg, fs, func() error {
		if os.Getenv("GOMEMLIMIT") == "" && *limit > 0 {
			debug.SetMemoryLimit(int64(*limit) << 20)
		}
		return decode()
	}
}

// memoryWatch samples the Go heap while a long operation runs; the
// process's peak resident size comes from the kernel at the end.
type memoryWatch struct {
	stopc    chan struct{}
	wg       sync.WaitGroup
	peakHeap uint64
}

func watchMemory() *memoryWatch {
	m := &memoryWatch{stopc: make(chan struct{})}
	m.wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.stopc:
				return
			case <-t.C:
			}
		}
	})
	return m
}

func (m *memoryWatch) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.peakHeap = max(m.peakHeap, ms.HeapInuse)
}

// peakMemory is what stop reports.
type peakMemory struct {
	// Resident is the process's peak resident set size (getrusage maxrss).
	Resident uint64
	// Heap is the highest Go heap in use sampled.
	Heap uint64
}

func (p peakMemory) String() string {
	return fmt.Sprintf("%d MiB resident (maxrss), Go heap %d MiB", p.Resident>>20, p.Heap>>20)
}

func (m *memoryWatch) stop() peakMemory {
	close(m.stopc)
	m.wg.Wait()
	m.sample()
	return peakMemory{Resident: procstat.PeakResident(), Heap: m.peakHeap}
}
