package vcs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"linkway/services/platform/views"
)

// The feed's outbox: the inbox projection writes each change's feed
// message into its own view, in the same batch as the item it renders, so
// a message is never lost between the view and the feed; the publisher
// (feed.go) publishes the outbox in stream order and the projection trims
// what has been published.
//
//	q.<block>.<seq>.<part>   a message not yet known to be published (block = seq >> outboxBlockBits)
//	t                        the lowest block that may still hold messages
//	x.<journey id>           the outbox keys of the journey's messages (erasure erases them)
//
// Keys are fixed-width hex, so key order is stream order, and a block is
// one prefix: trimming a published block is one range deletion.
const (
	outboxPrefix    = "q."
	outboxLowKey    = "t"
	outboxOfJourney = "x."
	outboxBlockBits = 8
)

// position is a place in the feed: the journey event's stream sequence,
// and which of the messages it made (an erasure makes one per onward
// referral of the journey; other events one).
type position struct {
	Seq  uint64 `json:"seq"`
	Part int    `json:"part"`
}

// after reports whether p comes after q.
func (p position) after(q position) bool {
	return p.Seq > q.Seq || p.Seq == q.Seq && p.Part > q.Part
}

func outboxBlock(seq uint64) uint64 { return seq >> outboxBlockBits }

func outboxBlockPrefix(block uint64) string { return fmt.Sprintf("%s%012x.", outboxPrefix, block) }

func outboxKey(p position) string {
	return fmt.Sprintf("%s%016x.%04x", outboxBlockPrefix(outboxBlock(p.Seq)), p.Seq, p.Part)
}

// feedPosition is how far the feed is known to be published: the
// projection writes no message at or before it (a rebuild of the view
// replays the log, and must never publish the feed again), and trims the
// outbox up to it. The publisher moves it.
type feedPosition struct {
	mu  sync.Mutex
	pos position
}

func (f *feedPosition) get() position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// advance moves the position forward to p (never back).
func (f *feedPosition) advance(p position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.after(f.pos) {
		f.pos = p
	}
}

// outboxEntry is one message waiting in the outbox.
type outboxEntry struct {
	Subject        string          `json:"subject"`
	MsgID          string          `json:"msg_id"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	OrganisationID string          `json:"organisation_id"`
	OnwardID       string          `json:"onward_id"`
	Body           json.RawMessage `json:"body"`
}

// outbox writes the feed message of a change (the item r after event
// name) into the outbox, unless the feed is already past it.
func (p *inboxProjection) outbox(b *views.Batch, c views.Change, part int, name string, r record) error {
	pos := position{Seq: c.Seq, Part: part}
	if !pos.after(p.feed.get()) {
		return nil // published before: this is a replay
	}
	at := c.Envelope.GetOccurredAt().AsTime().UTC()
	body, err := json.Marshal(FeedMessage{EventID: c.Envelope.GetEventId(), Event: name, OccurredAt: at,
		OrganisationID: r.OrganisationID, OnwardReferral: r.item(at)})
	if err != nil {
		return fmt.Errorf("feed message: %w", err)
	}
	// One journey event can make several messages (an erasure), so the
	// message id is the event id qualified by the item when it must be.
	msgID := c.Envelope.GetEventId()
	if name == "erased" {
		msgID += "/" + r.ID
	}
	key := outboxKey(pos)
	if err := b.SetJSON(key, outboxEntry{Subject: FeedSubject(r.OrganisationID, r.ID, name), MsgID: msgID,
		EventID: c.Envelope.GetEventId(), Event: name, OrganisationID: r.OrganisationID, OnwardID: r.ID, Body: body}); err != nil {
		return err
	}
	if name != "erased" {
		// The message holds what was shared of the person: listed by
		// journey, so that an erasure erases it.
		var keys []string
		if _, err := b.GetJSON(outboxOfJourney+c.JourneyID, &keys); err != nil {
			return err
		}
		if err := b.SetJSON(outboxOfJourney+c.JourneyID, append(keys, key)); err != nil {
			return err
		}
	}
	return p.trim(b, c.Seq)
}

// eraseOutbox erases the outbox's messages of a journey, published (and
// trimmed, so deleted but perhaps still in the store's files) or not.
func eraseOutbox(b *views.Batch, journeyID string) error {
	var keys []string
	if _, err := b.GetJSON(outboxOfJourney+journeyID, &keys); err != nil {
		return err
	}
	for _, k := range keys {
		b.Erase(k)
	}
	b.Delete(outboxOfJourney + journeyID)
	return nil
}

// trim deletes the outbox's blocks the feed has published entirely.
func (p *inboxProjection) trim(b *views.Batch, seq uint64) error {
	low := outboxBlock(seq)
	raw, ok, err := b.Get(outboxLowKey)
	if err != nil {
		return err
	}
	if ok {
		if low, err = strconv.ParseUint(string(raw), 10, 64); err != nil {
			return fmt.Errorf("outbox low block %q: %w", raw, err)
		}
	}
	upto := outboxBlock(p.feed.get().Seq) // blocks below it are published
	if upto <= low {
		if !ok {
			b.Set(outboxLowKey, []byte(strconv.FormatUint(low, 10)))
		}
		return nil
	}
	for blk := low; blk < upto; blk++ {
		b.DeletePrefix(outboxBlockPrefix(blk))
	}
	b.Set(outboxLowKey, []byte(strconv.FormatUint(upto, 10)))
	return nil
}
