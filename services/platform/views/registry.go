package views

import (
	"context"
	"errors"
	"sync"

	"linkway/services/platform/viewstore"
)

// ErrNotStarted is returned by Registry.WaitFor before the process has
// started its reader.
var ErrNotStarted = errors.New("views: the reader has not started")

// Registry gathers the projections of the parties a process runs, so that
// one reader (one consumer of JOURNEYS, each event decoded, unsealed and
// folded once) applies them all. Parties Add their projections while they
// are built; the process then starts one Reader over Projections() and
// Attaches it. Parties read their views from Store() and wait for their
// own writes with WaitFor.
type Registry struct {
	store *viewstore.Store

	mu          sync.Mutex
	projections []Projection
	reader      *Reader
}

// NewRegistry gathers projections over the process's view store.
func NewRegistry(store *viewstore.Store) *Registry { return &Registry{store: store} }

// Add registers a projection. It must be called before the reader starts.
func (r *Registry) Add(p Projection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.projections = append(r.projections, p)
}

// Projections lists what was added, in order.
func (r *Registry) Projections() []Projection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Projection(nil), r.projections...)
}

// Store is the process's view store, for reads.
func (r *Registry) Store() *viewstore.Store { return r.store }

// View is one view of the store, for reads (Get, Page, ForEach).
func (r *Registry) View(name string) *viewstore.View { return r.store.View(name) }

// Attach gives the registry the reader that applies its projections.
func (r *Registry) Attach(rd *Reader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reader = rd
}

// Reader is the attached reader, or nil.
func (r *Registry) Reader() *Reader {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reader
}

// WaitFor returns once the named views (all when none are named) have
// applied stream sequence seq: read-your-writes for a command's answer.
// It is bounded by ctx.
func (r *Registry) WaitFor(ctx context.Context, seq uint64, views ...string) error {
	rd := r.Reader()
	if rd == nil {
		return ErrNotStarted
	}
	return rd.WaitFor(ctx, seq, views...)
}
