package hub

import (
	"context"
	"fmt"
	"time"

	"linkway/ops/synthhistory"
)

// The demo's history: on the first --demo start, a year of synthetic
// journeys of the demo organisations (synthhistory.Demo) is written through
// the event store, so that every page and chart has something to show.
// "First" is the log's own state: the embedded store's JOURNEYS stream has
// never held a message. A later start, or a hub on an external NATS (whose
// log other replicas share), writes none. It is written before the reader
// runs, which then catches up with it as with any log at start-up; /readyz
// is 503 until both are done.

// demoHistoryDue reports whether this start writes the demo history; if
// so, /readyz waits for it from now on.
func (h *Hub) demoHistoryDue(ctx context.Context) (bool, error) {
	if !h.cfg.Demo || h.cfg.DemoHistory <= 0 || h.cfg.offline || h.cfg.NATS != "" {
		return false, nil
	}
	var first bool
	if err := h.step(ctx, "look at the journey log", func(sctx context.Context) error {
		info, err := h.store.Stream().Info(sctx)
		if err != nil {
			return err
		}
		first = info.State.LastSeq == 0
		return nil
	}); err != nil {
		return false, err
	}
	h.demoHistory.Store(first)
	return first, nil
}

// writeDemoHistory writes the history and says how long it took. A failure
// is logged and the hub goes on with what was written: the demo works,
// with less to show.
func (h *Hub) writeDemoHistory(ctx context.Context) {
	defer h.demoHistory.Store(false)
	log := h.cfg.Log
	start := time.Now()
	log.Info("demo history: writing", "journeys", h.cfg.DemoHistory)
	st, err := synthhistory.Generate(ctx, h.store, synthhistory.Demo(h.cfg.DemoHistory, start))
	switch {
	case ctx.Err() != nil:
		return // the hub is stopping
	case err != nil:
		log.Error("demo history: writing failed; the demo goes on with what was written", "err", err,
			"journeys", st.Journeys, "events", st.Events)
		return
	}
	took := time.Since(start).Seconds()
	log.Info(fmt.Sprintf("demo history: %d journeys, %d events in %.1fs", st.Journeys, st.Events, took),
		"journeys", st.Journeys, "events", st.Events, "seconds", took,
		"events_per_second", float64(st.Events)/max(took, 1e-9), "still_open", st.Outcomes["still_open"])
	if h.reader == nil {
		return
	}
	// The reader starts once this returns: say when it has applied it all.
	h.group.Go(func() error {
		var last uint64
		if err := h.step(ctx, "look at the journey log", func(sctx context.Context) error {
			info, err := h.store.Stream().Info(sctx)
			if err != nil {
				return err
			}
			last = info.State.LastSeq
			return nil
		}); err != nil {
			return nil // the hub is stopping, or the figure is only not logged
		}
		if h.reader.WaitFor(ctx, last) == nil {
			log.Info(fmt.Sprintf("demo history: views caught up in %.1fs", time.Since(start).Seconds()))
		}
		return nil
	})
}
