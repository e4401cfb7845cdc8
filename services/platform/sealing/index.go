package sealing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// Headers that tie a journey's referral to its person on the log, set by
// the journal from Keyring.Enrol. Neither names anyone: the person is a
// keyed hash of the NHS number, the key a random id.
const (
	HeaderPerson = "Lw-Person"
	HeaderKey    = "Lw-Key"
	// headerEvent is journal.HeaderEvent (the event's full name).
	headerEvent = "Lw-Event"
)

var (
	referralEvent = string((&eventsv1.ReferralReceived{}).ProtoReflect().Descriptor().FullName())
	erasedEvent   = string((&eventsv1.PersonalDataErased{}).ProtoReflect().Descriptor().FullName())
)

// Index is the person index: a projection of the journey log from a
// person (keyed hash of the NHS number) to the keys that sealed their
// data and their journeys. It is fed in log order (Apply: by its own
// follower, Follow, or by the process's log reader) and, for this
// process's own appends, at once (Observe), so a command's answer never
// waits for the reader. It is held in memory: a national year is about
// 1.3 million journeys.
type Index struct {
	js jetstream.JetStream

	mu       sync.Mutex
	persons  map[string]*indexedPerson
	journeys map[string]*indexedJourney
	// erasedFirst holds journeys whose erasure was seen before their
	// referral (an own append racing the follower).
	erasedFirst map[string]bool
	applied     uint64        // the log sequence applied in order
	moved       chan struct{} // closed and replaced whenever applied moves
	ready       chan struct{} // closed once caught up with the log at start
	readyOnce   sync.Once
}

type indexedPerson struct {
	keys     []*indexedKey // in the order first seen
	journeys []string
}

type indexedKey struct {
	id string
	// retired: a journey it sealed was erased, so no new journey takes
	// it; destroyed: its record is gone.
	retired, destroyed bool
}

type indexedJourney struct {
	person *indexedPerson
	key    *indexedKey
}

// NewIndex returns an empty index of the journey log on js.
func NewIndex(js jetstream.JetStream) *Index {
	return &Index{js: js, persons: map[string]*indexedPerson{}, journeys: map[string]*indexedJourney{},
		erasedFirst: map[string]bool{}, moved: make(chan struct{}), ready: make(chan struct{})}
}

// Apply takes one journey message in log order: its stream sequence, its
// journey and its headers (a headers-only read is enough).
func (x *Index) Apply(seq uint64, journeyID string, h nats.Header) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.observe(journeyID, h)
	if seq > x.applied {
		x.applied = seq
		close(x.moved)
		x.moved = make(chan struct{})
	}
}

// Observe takes a message this process has just appended, ahead of the
// log reader; applying it again later changes nothing.
func (x *Index) Observe(journeyID string, h nats.Header) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.observe(journeyID, h)
}

func (x *Index) observe(journeyID string, h nats.Header) {
	switch h.Get(headerEvent) {
	case referralEvent:
		ref, keyID := h.Get(HeaderPerson), h.Get(HeaderKey)
		if ref == "" || keyID == "" || x.journeys[journeyID] != nil {
			return
		}
		p := x.persons[ref]
		if p == nil {
			p = &indexedPerson{}
			x.persons[ref] = p
		}
		var k *indexedKey
		for _, pk := range p.keys {
			if pk.id == keyID {
				k = pk
			}
		}
		if k == nil {
			k = &indexedKey{id: keyID}
			p.keys = append(p.keys, k)
		}
		p.journeys = append(p.journeys, journeyID)
		x.journeys[journeyID] = &indexedJourney{person: p, key: k}
		if x.erasedFirst[journeyID] {
			delete(x.erasedFirst, journeyID)
			k.retired = true
		}
	case erasedEvent:
		if j := x.journeys[journeyID]; j != nil {
			j.key.retired = true
		} else {
			x.erasedFirst[journeyID] = true
		}
	}
}

// current is the key a new journey of the person takes: the latest one
// neither retired nor destroyed.
func (x *Index) current(ref string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p := x.persons[ref]
	if p == nil {
		return "", false
	}
	for i := len(p.keys) - 1; i >= 0; i-- {
		if k := p.keys[i]; !k.retired && !k.destroyed {
			return k.id, true
		}
	}
	return "", false
}

// PersonKeys is what the index holds of a person.
type PersonKeys struct {
	// Keys are every key that sealed the person's data, destroyed or not.
	Keys []string
	// Journeys are the person's journeys whose key is not destroyed.
	Journeys []string
}

func (x *Index) person(ref string) (PersonKeys, map[string]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out PersonKeys
	destroyed := map[string]bool{}
	p := x.persons[ref]
	if p == nil {
		return out, destroyed
	}
	for _, k := range p.keys {
		out.Keys = append(out.Keys, k.id)
		destroyed[k.id] = k.destroyed
	}
	for _, j := range p.journeys {
		if !x.journeys[j].key.destroyed {
			out.Journeys = append(out.Journeys, j)
		}
	}
	return out, destroyed
}

// destroyed records that a key's record is gone.
func (x *Index) destroyed(keyID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	// Keys are few per person and erasures rare: a scan is enough.
	for _, p := range x.persons {
		for _, k := range p.keys {
			if k.id == keyID {
				k.destroyed = true
				return
			}
		}
	}
}

// Applied is the log sequence the index has applied in order.
func (x *Index) Applied() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.applied
}

// MarkReady says the index has caught up with the log as it was at start:
// a person it does not know has no key yet.
func (x *Index) MarkReady() { x.readyOnce.Do(func() { close(x.ready) }) }

// Ready waits until the index has caught up with the log at start.
func (x *Index) Ready(ctx context.Context) error {
	select {
	case <-x.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the person index is catching up: %w", ctx.Err())
	}
}

// Sync waits until the index has applied everything the log holds now,
// so that what it answers of a person is complete (erasure asks it).
func (x *Index) Sync(ctx context.Context) error {
	if err := x.Ready(ctx); err != nil {
		return err
	}
	stream, err := x.js.Stream(ctx, events.JourneyStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the journey log: %w", err)
	}
	last := stream.CachedInfo().State.LastSeq
	for {
		x.mu.Lock()
		applied, moved := x.applied, x.moved
		x.mu.Unlock()
		if applied >= last {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the person index is behind the log: %w", ctx.Err())
		case <-moved:
		}
	}
}

// Follow keeps the index up with the JOURNEYS stream (headers only) until
// ctx ends: first it catches up with what the log holds, then it follows
// new messages, whoever appends them. It waits for the stream if it does
// not exist yet (an empty log: the index is ready at once).
func (x *Index) Follow(ctx context.Context, log *slog.Logger) {
	for ctx.Err() == nil {
		err := x.follow(ctx)
		if errors.Is(err, nats.ErrConnectionClosed) {
			return // the process is closing its connection: nothing more to follow
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("person index: following the journey log", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (x *Index) follow(ctx context.Context) error {
	stream, err := x.js.Stream(ctx, events.JourneyStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		x.MarkReady()
		return nil
	}
	if err != nil {
		return err
	}
	target := stream.CachedInfo().State.LastSeq
	if x.Applied() >= target {
		x.MarkReady()
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		HeadersOnly: true, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: x.Applied() + 1})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		id, _ := events.JourneyIDFromSubject(msg.Subject())
		x.Apply(meta.Sequence.Stream, id, msg.Headers())
		if meta.Sequence.Stream >= target {
			x.MarkReady()
		}
	}
}
