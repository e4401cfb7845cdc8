package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress reports a long operation (rebuild, gen): on a terminal a bar
// redrawn in place with the rate and the time left; otherwise (a log file,
// a pipe, CI) a structured log line every few seconds.
type progress struct {
	w     io.Writer
	log   *slog.Logger
	tty   bool
	what  string // "rebuilding referrals"
	unit  string // "events"
	total uint64
	every time.Duration

	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(stderr io.Writer, log *slog.Logger, what, unit string, total uint64) *progress {
	p := &progress{w: stderr, log: log, what: what, unit: unit, total: total, start: time.Now(), every: 5 * time.Second}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty, p.every = true, 200*time.Millisecond
	}
	return p
}

// setTotal sets the total once it is known.
func (p *progress) setTotal(total uint64) {
	p.mu.Lock()
	p.total = total
	p.mu.Unlock()
}

// update reports done of total; it draws at most every so often.
func (p *progress) update(done uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.report(done, now, false)
}

// finish reports the end (a last bar, ended by a new line).
func (p *progress) finish(done uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.report(done, time.Now(), true)
}

func (p *progress) report(done uint64, now time.Time, final bool) {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	var eta time.Duration
	if rate > 0 && p.total > done {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second))
	}
	if !p.tty {
		if final {
			p.log.Info(p.what+" done", p.unit, done, "seconds", elapsed.Round(time.Millisecond).Seconds(), "per_second", int(rate))
			return
		}
		p.log.Info(p.what, p.unit, done, "of", p.total, "per_second", int(rate), "eta_seconds", int(eta.Seconds()))
		return
	}
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	filled := int(frac * width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	line := fmt.Sprintf("\r%s %s %3.0f%% %d/%d %s  %s/s  ETA %s ", p.what, bar, frac*100, done, p.total, p.unit,
		humanRate(rate), eta.Round(time.Second))
	if final {
		line = fmt.Sprintf("\r%s %s 100%% %d %s in %s  %s/s%s\n", p.what, bar, done, p.unit, elapsed.Round(time.Millisecond), humanRate(rate), strings.Repeat(" ", 12))
	}
	fmt.Fprint(p.w, line)
	p.drawn = true
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1fM", r/1e6)
	case r >= 1e4:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
