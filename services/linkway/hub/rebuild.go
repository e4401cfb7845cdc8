package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/views"
)

// Rebuild drops projection's view and replays the log into it: the hub's
// services start without HTTP traffic, the dropped runner replays from the
// first event, and Rebuild returns once it has caught up. progress is
// called about once a second.
func Rebuild(ctx context.Context, cfg Config, name string, progress func(applied, total uint64)) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Drop first, on a hub of its own, so that the runner that starts next
	// finds no view and no consumer.
	// A rebuild re-derives views from the data there: a folder a --demo
	// hub made is read with its demo key (nothing new is sealed under it).
	cfg.DemoKey = true
	cfg.Demo = false
	h, err := Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	names := []string{}
	for _, r := range h.Runners() {
		names = append(names, r.Name())
	}
	h.Stop()
	if err := h.Wait(); err != nil {
		return 0, err
	}
	if !slices.Contains(names, name) {
		return 0, fmt.Errorf("no projection %q (projections: %v)", name, names)
	}
	if err := dropWith(ctx, cfg, name); err != nil {
		return 0, err
	}
	h, err = Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer func() { h.Stop(); _ = h.Wait() }()
	info, err := h.store.Stream().Info(ctx)
	if err != nil {
		return 0, err
	}
	total := info.State.LastSeq
	var run *views.Runner
	for _, r := range h.Runners() {
		if r.Name() == name {
			run = r
		}
	}
	// Wait for every partition's last event, not only the log's last: a
	// partitioned view is applied by one consumer per partition (on a
	// cluster, shared with other replicas by lease), and WaitFor follows the
	// partition of the sequence it is given.
	var lasts []uint64
	for k := range events.JourneyPartitions {
		m, err := h.store.Stream().GetLastMsgForSubject(ctx, events.PartitionFilter(k))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		lasts = append(lasts, m.Sequence)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan error, 1)
	go func() {
		for _, seq := range lasts {
			if err := run.WaitFor(ctx, seq); err != nil {
				done <- err
				return
			}
		}
		done <- run.WaitFor(ctx, total)
	}()
	for {
		select {
		case err := <-done:
			return run.Applied(), err
		case <-tick.C:
			if progress != nil {
				progress(run.Applied(), total)
			}
		}
	}
}

// dropWith connects as the hub would and drops one projection.
func dropWith(ctx context.Context, cfg Config, name string) error {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return views.Drop(ctx, c.JS, events.JourneyStream, name)
}
