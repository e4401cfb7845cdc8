package views

import (
	"container/list"
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/viewstore"
)

// StateTable is the view store table where the reader keeps each
// journey's folded state, with its own checkpoint: the stream sequence
// the fold has reached.
const StateTable = "_journeys"

// journeyState is one journey's folded state as the reader holds it.
type journeyState struct {
	id    string
	state events.State
	// record is the referral's envelope as stored on the log (personal
	// data sealed): what the state table keeps instead of the plain
	// referral. nil once the person is erased.
	record []byte

	dirty bool
}

// stateCache is a bounded LRU of journey states over the state table.
// States changed since the last commit are pinned (held in dirty): they
// exist nowhere else until the batch that writes them commits.
type stateCache struct {
	max   int
	byID  map[string]*list.Element // of *journeyState, in lru
	lru   list.List                // most recently used first
	dirty []*journeyState
	store *viewstore.Store
	// open reads a referral record back (the log's decoding, which opens
	// sealed personal data).
	open    func(ctx context.Context, data []byte) (*eventsv1.Envelope, error)
	metrics *ReaderMetrics
}

func newStateCache(max int, store *viewstore.Store, open func(context.Context, []byte) (*eventsv1.Envelope, error), m *ReaderMetrics) *stateCache {
	return &stateCache{max: max, byID: make(map[string]*list.Element, min(max, 1<<16)), store: store, open: open, metrics: m}
}

// cached returns a journey's state when it is in memory (and marks it
// recently used), else nil.
func (c *stateCache) cached(id string) *journeyState {
	el := c.byID[id]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*journeyState)
}

// forget drops e from memory, if it is still its journey's state.
func (c *stateCache) forget(e *journeyState) {
	if el := c.byID[e.id]; el != nil && el.Value == e {
		c.lru.Remove(el)
		delete(c.byID, e.id)
	}
}

// get returns a journey's state: from memory, else from the state table
// (as of the last commit), else the empty state.
func (c *stateCache) get(ctx context.Context, id string) (*journeyState, error) {
	if e := c.cached(id); e != nil {
		return e, nil
	}
	e := &journeyState{id: id}
	b, ok, err := c.store.View(StateTable).Lookup(id) // most journeys read here are new
	if err != nil {
		return nil, err
	}
	if ok {
		c.metrics.stateLoads.Inc()
		if e.state, e.record, err = c.decode(ctx, b); err != nil {
			return nil, fmt.Errorf("journey state: %w", err)
		}
	}
	c.byID[id] = c.lru.PushFront(e)
	c.evict()
	return e, nil
}

// evict drops the least recently used clean states beyond max.
func (c *stateCache) evict() {
	for el := c.lru.Back(); c.lru.Len() > c.max && el != nil; {
		prev := el.Prev()
		if e := el.Value.(*journeyState); !e.dirty {
			c.forget(e)
		}
		el = prev
	}
}

// set records a journey's new state; it is written with the next commit.
func (c *stateCache) set(e *journeyState, s events.State, record []byte) {
	e.state, e.record = s, record
	if !e.dirty {
		e.dirty = true
		c.dirty = append(c.dirty, e)
	}
}

// write adds every changed state to a commit's batch.
func (c *stateCache) write(b *viewstore.Batch) error {
	for _, e := range c.dirty {
		v, err := c.encode(e)
		if err != nil {
			return err
		}
		b.Set(StateTable, e.id, v)
	}
	return nil
}

// committed marks the changed states as stored.
func (c *stateCache) committed() {
	for _, e := range c.dirty {
		e.dirty = false
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
	c.evict()
	c.metrics.stateCached.Set(float64(len(c.byID)))
}

// rollback forgets the changed states: the next get reads them as the
// last commit left them.
func (c *stateCache) rollback() {
	for _, e := range c.dirty {
		c.forget(e)
		e.dirty = false
	}
	clear(c.dirty)
	c.dirty = c.dirty[:0]
}

// reset forgets every state (the state table was dropped).
func (c *stateCache) reset() {
	clear(c.byID)
	clear(c.dirty)
	c.dirty = c.dirty[:0]
	c.lru.Init()
}

// encode is the state at rest: the JourneyState message with the referral
// as recorded on the log (sealed) rather than in the clear; an erased
// journey keeps its referral with the personal data already cleared.
func (c *stateCache) encode(e *journeyState) ([]byte, error) {
	p := events.StateProto(e.state)
	if e.record != nil && !e.state.Erased {
		p.Referral, p.ReferralRecord = nil, e.record
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("journey state %s: %w", e.id, err)
	}
	return b, nil
}

func (c *stateCache) decode(ctx context.Context, b []byte) (events.State, []byte, error) {
	p := &eventsv1.JourneyState{}
	if err := proto.Unmarshal(b, p); err != nil {
		return events.State{}, nil, err
	}
	s := events.StateFromProto(p)
	rec := p.GetReferralRecord()
	if len(rec) > 0 {
		env, err := c.open(ctx, rec)
		if err != nil {
			return events.State{}, nil, fmt.Errorf("referral record: %w", err)
		}
		s.Referral = env.GetReferralReceived()
	}
	return s, rec, nil
}
