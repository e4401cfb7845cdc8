package views

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/viewstore"
)

// RebuildStats are the figures of a rebuild.
type RebuildStats struct {
	// Views rebuilt.
	Views []string
	// Total is the log's last sequence when the rebuild started: every
	// rebuilt view has applied it.
	Total uint64
	// Folded is how many events the reader read and folded (the whole log
	// for a rebuild: the fold starts again at the beginning).
	Folded  uint64
	Elapsed time.Duration
}

// EventsPerSecond is the rebuild's rate.
func (s RebuildStats) EventsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Folded) / s.Elapsed.Seconds()
}

// RebuildViews drops the named views (every projection's when names is
// empty) from store and replays the log into them, the other views kept
// (they skip what they have applied and follow the log's tail), and
// returns once the rebuilt views have applied everything the log held when
// it started. It runs a reader of its own: no other reader may be running
// on store. progress, when set, is called about once a second with the
// sequence the rebuilt views have reached and the total.
func RebuildViews(ctx context.Context, js jetstream.JetStream, store *viewstore.Store, projections []Projection,
	names []string, cfg ReaderConfig, progress func(applied, total uint64)) (RebuildStats, error) {
	r, err := NewReader(js, store, projections, cfg)
	if err != nil {
		return RebuildStats{}, err
	}
	if len(names) == 0 {
		names = r.Views()
	}
	if err := r.Rebuild(names...); err != nil {
		return RebuildStats{}, err
	}
	st, err := CatchUp(ctx, r, names, progress)
	if progress != nil && err == nil {
		progress(st.Total, st.Total)
	}
	return st, err
}

// CatchUp runs r until the named views (every view when names is empty)
// have applied the log's last event as it is when CatchUp starts, then
// stops it. No other Run of r may be going. progress, when set, is called
// about once a second with the sequence the views have reached and the
// total. It is the wait of RebuildViews and of a snapshot's catch-up.
func CatchUp(ctx context.Context, r *Reader, names []string, progress func(applied, total uint64)) (RebuildStats, error) {
	if len(names) == 0 {
		names = r.Views()
	}
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	st := RebuildStats{Views: names, Total: info.State.LastSeq}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	done := make(chan error, 1)
	go func() { done <- r.WaitFor(ctx, st.Total, names...) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			st.Elapsed, st.Folded = time.Since(start), r.Folded()
			cancel()
			if rerr := <-ran; rerr != nil && err == nil {
				err = rerr
			}
			return st, err
		case err := <-ran:
			return st, errors.Join(errors.New("the reader stopped before the views caught up"), err, ctx.Err())
		case <-tick.C:
			if progress != nil {
				progress(r.Applied(names...), st.Total)
			}
		}
	}
}
