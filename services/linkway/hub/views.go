package hub

import (
	"path/filepath"
	"sync/atomic"

	platformleases "linkway/services/platform/leases"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// The read side (DESIGN.md "Projections: version 2"): one view store beside
// the process, one registry the parties add their projections to, and one
// reader of the journey log that applies them all.

// viewsDir is where a hub with cfg keeps its views: cfg.ViewsDir, or
// <data>/views.
func viewsDir(cfg Config) string {
	if cfg.ViewsDir != "" {
		return cfg.ViewsDir
	}
	return filepath.Join(cfg.Data, "views")
}

// openViews opens the view store and the registry the parties are given.
func (h *Hub) openViews() error {
	scfg := viewstore.DefaultConfig(viewsDir(h.cfg))
	scfg.Log = h.cfg.Log
	st, err := viewstore.Open(scfg)
	if err != nil {
		return err
	}
	h.viewStore = st
	h.views = views.NewRegistry(st)
	return nil
}

// readerConfig is the reader's config: the journal decodes and unseals.
func (h *Hub) readerConfig() views.ReaderConfig {
	rc := views.DefaultReaderConfig()
	rc.Decode = h.store.Decode
	rc.Log = h.cfg.Log
	return rc
}

// startReader starts the one reader over every projection the parties
// added, in the hub's group, and attaches it to the registry. A process
// whose parties keep no view runs none. With history, the demo history is
// written first and the reader then catches up with it in bulk (unsynced
// batches) rather than applying it live as it is written.
func (h *Hub) startReader(history bool) error {
	if len(h.views.Projections()) == 0 {
		if history {
			h.group.Go(func() error { h.writeDemoHistory(h.ctx); return nil })
		}
		return nil // no view here (admin alone): nothing to read the log for
	}
	rc := h.readerConfig()
	m, err := views.NewReaderMetrics(h.registry)
	if err != nil {
		return err
	}
	rc.Metrics = m
	rd, err := views.NewReader(h.js, h.viewStore, h.views.Projections(), rc)
	if err != nil {
		return err
	}
	h.reader = rd
	h.views.Attach(rd)
	h.group.Go(func() error {
		if history {
			h.writeDemoHistory(h.ctx)
		}
		return rd.Run(h.ctx)
	})
	return nil
}

// watchIndex marks the person index ready for /readyz once it has caught
// up with the log as it was at start.
func (h *Hub) watchIndex(ready *atomic.Bool) {
	h.group.Go(func() error {
		if h.keyring.Index().Ready(h.ctx) == nil {
			ready.Store(true)
		}
		return nil
	})
}

// closeViews closes the view store once nothing writes it any more.
func (h *Hub) closeViews() {
	if h.viewStore != nil {
		if err := h.viewStore.Close(); err != nil {
			h.cfg.Log.Warn("closing the view store", "err", err)
		}
		h.viewStore = nil
	}
}

// Views is the registry of the hub's projections: the parties' view
// reads and read-your-writes waits go through it.
func (h *Hub) Views() *views.Registry { return h.views }

// Leases decide which replica does what only one may do, such as
// publishing a feed (Hold); nil, which holds every lease, on the embedded
// server.
func (h *Hub) Leases() *platformleases.Leases { return h.leases }

// Reader is the hub's one reader of the journey log (nil in a tool that
// runs none).
func (h *Hub) Reader() *views.Reader { return h.reader }

// viewsReady reports whether the reader has caught up with the log as it
// was at start (or is not run).
func (h *Hub) viewsReady() bool { return h.reader == nil || h.reader.Ready() }

// waitGroup waits for the run group after a failed start, so the view
// store closes only once the reader has stopped.
func (h *Hub) waitGroup() {
	if h.group != nil {
		_ = h.group.Wait()
	}
}
