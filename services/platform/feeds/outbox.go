// Package feeds publishes a party's NATS feed (FEED_VCS, FEED_GP) from an
// outbox kept in the party's own view.
//
// A feed is not a view, and no view rebuild republishes it. The party's
// projection renders each change's message once, from the same folded
// state as its view, into an outbox in its own view, in the same batch as
// the view's change (Feed.Add): so a crash loses no message and a slow NATS
// never holds the reader up. One publisher per deployment (the holder of
// the feed's lease) publishes the outbox in stream order, in atomic
// batches, from the feed's own high-water mark: the Lw-Source-Seq (and
// Lw-Source-Part) of the feed's last message, read when it takes the lease.
// The projection writes nothing at or before that mark, so replaying the
// log into a rebuilt view writes nothing already published, and trims what
// has been published. (The other choice, a cursor of the feed's own on
// JOURNEYS, would decode, unseal and fold every event a second time.)
//
// Erasure: the outbox lists each journey's messages, so the projection
// erases them from the view store (Feed.EraseJourney), and a message that
// names subjects to erase (Message.Erase, an erasure notice) is published
// only after every earlier message on them has been securely deleted from
// the stream (overwritten in its files; a purge would only drop them from
// the index).
package feeds

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"linkway/services/platform/views"
)

// The outbox's keys in the party's view:
//
//	q.<block>.<seq>.<part>   a message not yet known to be published (block = seq >> outboxBlockBits)
//	t                        the lowest block that may still hold messages
//	x.<journey id>           the outbox keys of the journey's messages (erasure erases them)
//
// Keys are fixed-width hex, so key order is stream order, and a block is
// one prefix: trimming a published block is one range deletion. The
// party's own keys must not start with these.
const (
	OutboxPrefix    = "q."
	OutboxLowKey    = "t"
	OutboxOfJourney = "x."
	outboxBlockBits = 8
)

// Position is a place in a feed: the journey event's stream sequence, and
// which of the messages it made (an erasure may make one per item of the
// journey; other events one).
type Position struct {
	Seq  uint64 `json:"seq"`
	Part int    `json:"part"`
}

// After reports whether p comes after q.
func (p Position) After(q Position) bool {
	return p.Seq > q.Seq || p.Seq == q.Seq && p.Part > q.Part
}

func outboxBlock(seq uint64) uint64 { return seq >> outboxBlockBits }

func outboxBlockPrefix(block uint64) string { return fmt.Sprintf("%s%012x.", OutboxPrefix, block) }

// OutboxKey is the outbox key of the message at p.
func OutboxKey(p Position) string {
	return fmt.Sprintf("%s%016x.%04x", outboxBlockPrefix(outboxBlock(p.Seq)), p.Seq, p.Part)
}

// ParseOutboxKey reads an outbox key's position.
func ParseOutboxKey(key string) (Position, bool) {
	// q.<block 12>.<seq 16>.<part 4>
	if len(key) != len(OutboxPrefix)+12+1+16+1+4 || key[:len(OutboxPrefix)] != OutboxPrefix {
		return Position{}, false
	}
	rest := key[len(OutboxPrefix)+13:]
	seq, err1 := strconv.ParseUint(rest[:16], 16, 64)
	part, err2 := strconv.ParseUint(rest[17:], 16, 16)
	if err1 != nil || err2 != nil {
		return Position{}, false
	}
	return Position{Seq: seq, Part: int(part)}, true
}

// mark is how far the feed is known to be published: the projection
// writes no message at or before it (a rebuild of the view replays the
// log, and must never publish the feed again), and trims the outbox up to
// it. The publisher moves it.
type mark struct {
	mu  sync.Mutex
	pos Position
}

func (f *mark) get() Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// advance moves the position forward to p (never back).
func (f *mark) advance(p Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.After(f.pos) {
		f.pos = p
	}
}

// Message is one feed message as the projection renders it.
type Message struct {
	Subject string `json:"subject"`
	// MsgID is the message's Nats-Msg-Id (the journey event's id), for
	// subscribers. The stream keeps each message once because every
	// publish expects the stream's last sequence, not by this id.
	MsgID string `json:"msg_id"`
	// EventID is the journey event's id (header Lw-Event-Id).
	EventID string `json:"event_id"`
	// Event names the message's event: a metrics label, bounded.
	Event string `json:"event"`
	// Erase, on an erasure notice, is the subject filter (a wildcard) of
	// the messages the stream holds of the person: each is securely
	// deleted before the notice is published.
	Erase string          `json:"erase,omitempty"`
	Body  json.RawMessage `json:"body"`
}

// Wants reports whether the feed still wants the message of the change at
// 'at': false for a replay of what it has published (a rebuild), so that
// the projection need not render it.
func (f *Feed) Wants(at Position) bool { return at.After(f.mark.get()) }

// Add writes a message made by the change at 'at' of journeyID into the
// outbox, unless the feed is already past it (a replay). A message with
// nothing to erase is listed under its journey, so that an erasure erases
// it; the outbox's published blocks are trimmed.
func (f *Feed) Add(b *views.Batch, at Position, journeyID string, m Message) error {
	if !f.Wants(at) {
		return nil // published before: this is a replay
	}
	key := OutboxKey(at)
	b.Set(key, encodeMessage(m))
	if m.Erase == "" {
		keys, _, err := f.journeys.Load(b, OutboxOfJourney+journeyID)
		if err != nil {
			return err
		}
		*keys = append(*keys, key)
	}
	return f.trim(b, at.Seq)
}

// EraseJourney erases the outbox's messages of a journey, published (and
// trimmed, so deleted but perhaps still in the store's files) or not.
func (f *Feed) EraseJourney(b *views.Batch, journeyID string) error {
	keys, _, err := f.journeys.Get(b, OutboxOfJourney+journeyID)
	if err != nil {
		return err
	}
	if keys != nil {
		for _, k := range *keys {
			b.Erase(k)
		}
	}
	f.journeys.Delete(b, OutboxOfJourney+journeyID)
	return nil
}

// trim deletes the outbox's blocks the feed has published entirely.
func (f *Feed) trim(b *views.Batch, seq uint64) error {
	low, ok, err := f.low.Load(b, OutboxLowKey)
	if err != nil {
		return err
	}
	if !ok {
		*low = outboxBlock(seq)
	}
	upto := outboxBlock(f.mark.get().Seq) // blocks below it are published
	for ; *low < upto; *low++ {
		b.DeletePrefix(outboxBlockPrefix(*low))
	}
	return nil
}
