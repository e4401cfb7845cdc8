package hub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"linkway/services/platform/views"
)

// AllViews names every view in Rebuild and RebuildViews.
const AllViews = "all"

// startOffline starts a hub for a tool: the parties are built (so their
// projections are in the registry) but no reader runs and no demo data
// are seeded; a --demo folder's data are read with its demo key, --demo
// given or not (views are re-derived; nothing new is sealed under it).
func startOffline(ctx context.Context, cfg Config) (*Hub, error) {
	cfg.DemoKey = true
	cfg.Demo = false
	cfg.offline = true
	if cfg.HTTP == "" || cfg.HTTP == DefaultConfig().HTTP {
		cfg.HTTP = "127.0.0.1:0"
	}
	return Start(ctx, cfg)
}

// ViewNames are the views the registry of a hub with cfg holds.
func (h *Hub) viewNames() []string {
	var names []string
	for _, p := range h.views.Projections() {
		names = append(names, p.Name())
	}
	return names
}

// RebuildViews drops the named views (every view when names is empty or
// is "all") from the view store a hub with cfg would use, and replays the
// log into them; the other views keep what they hold. Run it with the hub
// stopped: it holds the data folder and the view store. progress, when
// set, is called about once a second with the sequence reached and the
// log's last.
func RebuildViews(ctx context.Context, cfg Config, names []string, progress func(applied, total uint64)) (views.RebuildStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h, err := startOffline(ctx, cfg)
	if err != nil {
		return views.RebuildStats{}, err
	}
	defer func() { h.Stop(); _ = h.Wait() }()
	if len(names) == 1 && names[0] == AllViews {
		names = nil
	}
	known := h.viewNames()
	for _, n := range names {
		if !slices.Contains(known, n) {
			return views.RebuildStats{}, fmt.Errorf("no view %q (views: %v, or all)", n, known)
		}
	}
	if len(names) == 0 {
		// Everything derived from the log, the folded journeys too: a new
		// version's fold (events.Evolve) applies from the first event.
		if err := h.viewStore.DropView(ctx, views.StateTable); err != nil {
			return views.RebuildStats{}, err
		}
	}
	return views.RebuildViews(ctx, h.js, h.viewStore, h.views.Projections(), names, h.readerConfig(), progress)
}

// Snapshot brings the views of the view store a hub with cfg would use up
// to the log's last event, then writes a Pebble checkpoint of them into
// dir (which must not exist). A replica started with --views on a copy of
// dir continues from the snapshot's checkpoints, replaying only the tail.
func Snapshot(ctx context.Context, cfg Config, dir string, progress func(applied, total uint64)) (views.RebuildStats, error) {
	if _, err := os.Stat(dir); err == nil {
		return views.RebuildStats{}, fmt.Errorf("snapshot folder %s exists: give a new one", dir)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h, err := startOffline(ctx, cfg)
	if err != nil {
		return views.RebuildStats{}, err
	}
	defer func() { h.Stop(); _ = h.Wait() }()
	st, err := h.catchUp(ctx, progress)
	if err != nil {
		return st, err
	}
	return st, h.viewStore.Snapshot(dir)
}

// catchUp runs a reader until every view has applied the log's last
// event as it is now.
func (h *Hub) catchUp(ctx context.Context, progress func(applied, total uint64)) (views.RebuildStats, error) {
	rd, err := views.NewReader(h.js, h.viewStore, h.views.Projections(), h.readerConfig())
	if err != nil {
		return views.RebuildStats{}, err
	}
	return views.CatchUp(ctx, rd, nil, progress)
}

// Rebuild rebuilds one view (or "all") and returns the events replayed.
func Rebuild(ctx context.Context, cfg Config, name string, progress func(applied, total uint64)) (uint64, error) {
	st, err := RebuildViews(ctx, cfg, []string{name}, progress)
	return st.Folded, err
}

// demoFolder reports whether a --demo hub made the data folder (it keeps
// its demo master key there).
func demoFolder(data string) bool {
	_, err := os.Stat(filepath.Join(data, DemoMasterKeyFile))
	return err == nil
}
