package vcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/viewstore"
)

// The VCS feed: the inbox's events, minimised exactly as the inbox is, on
// lw.feed.vcs.<org-id>.<onward-referral-id>.<event>, so that an
// organisation with its own system can consume lw.feed.vcs.<org-id>.> with
// credentials limited to its own subjects, and an erasure can find one
// onward referral's messages.
//
// The feed is not a view, and no view rebuild republishes it. It is fed by
// a projection-like consumer of the reader's changes: the inbox
// projection renders each change's message once, from the same folded
// state as the item, into an outbox in its own view, in the same batch as
// the item (so a crash loses no message and a slow NATS never holds the
// reader up). One publisher per deployment (the holder of the "vcs-feed"
// lease) publishes the outbox in stream order, in atomic batches, from the
// feed's own high-water mark: the Lw-Source-Seq (and Lw-Source-Part) of
// the feed's last message, read when it takes the lease. The projection
// writes nothing at or before that mark, so replaying the log into a
// rebuilt view writes nothing already published, and trims what has been
// published. (The other choice, a cursor of the feed's own on JOURNEYS,
// would decode, unseal and fold every event a second time.)
const (
	FeedStream        = "FEED_VCS"
	FeedSubjectPrefix = "lw.feed.vcs."
	FeedSubjects      = FeedSubjectPrefix + ">"
	HeaderFeedEventID = "Lw-Event-Id"
	// HeaderSourceSeq is the JOURNEYS sequence of the event a message
	// comes from; HeaderSourcePart, when set, which of its messages it is
	// (an erasure makes one per onward referral).
	HeaderSourceSeq  = "Lw-Source-Seq"
	HeaderSourcePart = "Lw-Source-Part"

	feedBatch          = 500 // messages in one atomic batch at most
	feedPublishTimeout = 10 * time.Second
	// FeedLease names the lease of the feed's publisher.
	FeedLease = "vcs-feed"
	// feedMarkSubject carries a mark of the feed's position when it has
	// been quiet for markEvery, so that the feed's last message, which
	// the publisher starts from, never ages out of the stream (no
	// organisation's subjects: _ is no organisation code).
	feedMarkSubject = FeedSubjectPrefix + "_mark"
	markEvery       = 24 * time.Hour
)

// Headers of JetStream atomic batch publishing (nats-server 2.12 on).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// FeedSubject is the subject of one onward referral's event (made,
// accepted, declined, withdrawn, attendance, completed, dropped_out, erased)
// in an organisation's feed.
func FeedSubject(orgID, onwardID, event string) string {
	return FeedSubjectPrefix + orgID + "." + onwardID + "." + event
}

// FeedMessage is the body of a feed message (JSON).
type FeedMessage struct {
	// EventID is the journey event's id: the same on a redelivery.
	EventID        string    `json:"event_id"`
	Event          string    `json:"event"`
	OccurredAt     time.Time `json:"occurred_at"`
	OrganisationID string    `json:"organisation_id"`
	// OnwardReferral is the inbox item as it was after the event.
	OnwardReferral Item `json:"onward_referral"`
}

// FeedStreamConfig is the FEED_VCS stream: a window of recent events for
// organisations to catch up from, not a record (the journey log is that).
func FeedStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        FeedStream,
		Description: "Linkway VCS organisations' feeds: minimised onward-referral events per organisation",
		Subjects:    []string{FeedSubjects},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      90 * 24 * time.Hour,
		Duplicates:  10 * time.Minute,
		// The publisher sends the outbox in atomic batches: a batch lands
		// whole or not at all, so the feed's last message is its mark.
		AllowAtomicPublish: true,
	}
}

// Leases decides which replica publishes the feed (leases.Leases: Hold
// runs fn while this replica holds the named lease, and ends its context
// when the lease is lost).
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

// publisher publishes the outbox while this process holds the lease.
type publisher struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	view    *viewstore.View
	views   Views
	pos     *feedPosition
	leases  Leases // nil: this process alone
	log     *slog.Logger
	metrics *metrics
	leading atomic.Bool
	// scanned is the view checkpoint up to which the outbox has been read
	// and found to hold nothing more: the next read starts there, not at
	// the feed's mark (events for VCS organisations may be far apart).
	// Owned by lead.
	scanned uint64
}

// errFull stops an outbox scan once a batch is full.
var errFull = errors.New("batch full")

// run publishes while this process holds the feed's lease, until ctx ends.
func (p *publisher) run(ctx context.Context) error {
	if p.leases == nil {
		return p.lead(ctx)
	}
	for ctx.Err() == nil {
		if err := p.leases.Hold(ctx, FeedLease, p.lead); err != nil {
			p.log.Warn("the VCS feed's lease failed; trying again", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
	return nil
}

// follow keeps the feed's position while another replica publishes: the
// outbox is trimmed by it, and a rebuild writes nothing before it.
func (p *publisher) follow(ctx context.Context) error {
	for sleepCtx(ctx, 2*time.Second) {
		if p.leading.Load() {
			continue
		}
		if pos, err := feedMark(ctx, p.js); err == nil {
			p.pos.advance(pos)
		}
	}
	return nil
}

// lead publishes the outbox until ctx ends (or the lease is lost).
func (p *publisher) lead(ctx context.Context) error {
	p.leading.Store(true)
	defer p.leading.Store(false)
	fresh, failures, quietSince := true, 0, time.Now()
	for ctx.Err() == nil {
		if fresh {
			// Where the feed stands: another publisher may have moved it.
			pos, err := feedMark(ctx, p.js)
			if err != nil {
				failures++
				p.pause(ctx, "reading the VCS feed's position", err, failures)
				continue
			}
			p.pos.advance(pos)
			fresh, p.scanned = false, 0
		}
		entries, last, err := p.pending(p.pos.get())
		if err == nil && len(entries) > 0 {
			err = p.publish(ctx, entries, last)
		}
		if err == nil && len(entries) == 0 && time.Since(quietSince) >= markEvery {
			if err = p.publishMark(ctx); err == nil {
				quietSince = time.Now()
			}
		}
		if err != nil {
			failures++
			p.metrics.feedErrors.Inc()
			fresh = true
			p.pause(ctx, "publishing the VCS feed", err, failures)
			continue
		}
		failures = 0
		if len(entries) > 0 {
			quietSince = time.Now()
		} else {
			p.awaitOutbox(ctx)
		}
	}
	return nil
}

// publishMark publishes the feed's position on the mark subject.
func (p *publisher) publishMark(ctx context.Context) error {
	at := p.pos.get()
	m := message(outboxEntry{Subject: feedMarkSubject, MsgID: fmt.Sprintf("mark/%d/%d", at.Seq, at.Part), Body: []byte("{}")}, at)
	ctx, cancel := context.WithTimeout(ctx, feedPublishTimeout)
	defer cancel()
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish to %s: %w", FeedStream, err)
	}
	return nil
}

func (p *publisher) pause(ctx context.Context, what string, err error, failures int) {
	d := time.Duration(min(failures, 25)) * 200 * time.Millisecond
	p.log.Warn(what+" failed; trying again", "err", err, "attempt", failures, "pause", d)
	sleepCtx(ctx, d)
}

// awaitOutbox waits until the inbox view commits again (a second at most).
func (p *publisher) awaitOutbox(ctx context.Context) {
	cp, err := p.view.Checkpoint()
	if err != nil {
		sleepCtx(ctx, time.Second)
		return
	}
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.views.WaitFor(wait, cp+1, InboxProjection); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		sleepCtx(wait, time.Second) // no reader runs (a tool): look again later
	}
}

// pending reads up to a batch of outbox entries after from, in order;
// last is the position of the last one.
func (p *publisher) pending(from position) ([]outboxEntry, []position, error) {
	cp, err := p.view.Checkpoint()
	if err != nil {
		return nil, nil, err
	}
	if cp < p.scanned {
		p.scanned = 0 // the view was dropped and is being rebuilt
	}
	var (
		out []outboxEntry
		pos []position
	)
	for blk := outboxBlock(max(from.Seq, p.scanned)); blk <= outboxBlock(cp); blk++ {
		err := p.view.ForEach(outboxBlockPrefix(blk), func(key string, value []byte) error {
			at, ok := parseOutboxKey(key)
			if !ok || !at.after(from) {
				return nil
			}
			var e outboxEntry
			if err := json.Unmarshal(value, &e); err != nil {
				return fmt.Errorf("outbox %s: %w", key, err)
			}
			out, pos = append(out, e), append(pos, at)
			if len(out) == feedBatch {
				return errFull
			}
			return nil
		})
		if errors.Is(err, errFull) {
			return out, pos, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
	// Everything the view had committed when this began has been seen.
	p.scanned = cp
	return out, pos, nil
}

// parseOutboxKey reads an outbox key's position.
func parseOutboxKey(key string) (position, bool) {
	// q.<block 12>.<seq 16>.<part 4>
	if len(key) != len(outboxPrefix)+12+1+16+1+4 {
		return position{}, false
	}
	rest := key[len(outboxPrefix)+13:]
	seq, err1 := strconv.ParseUint(rest[:16], 16, 64)
	part, err2 := strconv.ParseUint(rest[17:], 16, 16)
	if err1 != nil || err2 != nil {
		return position{}, false
	}
	return position{Seq: seq, Part: int(part)}, true
}

// publish sends entries in order: runs of them as atomic batches, each
// erasure notice alone, after the onward referral's earlier messages have
// been securely deleted from the stream. The position moves after each
// run that landed.
func (p *publisher) publish(ctx context.Context, entries []outboxEntry, pos []position) error {
	start := 0
	flush := func(end int) error {
		if end <= start {
			return nil
		}
		if err := p.send(ctx, entries[start:end], pos[start:end]); err != nil {
			return err
		}
		p.pos.advance(pos[end-1])
		for _, e := range entries[start:end] {
			p.metrics.feedPublished.WithLabelValues(e.Event).Inc()
		}
		start = end
		return nil
	}
	for i, e := range entries {
		if e.Event != "erased" {
			continue
		}
		if err := flush(i); err != nil {
			return err
		}
		if err := p.secureDelete(ctx, e.OrganisationID, e.OnwardID); err != nil {
			return err
		}
		if err := flush(i + 1); err != nil {
			return err
		}
	}
	return flush(len(entries))
}

// message is an outbox entry as a NATS message.
func message(e outboxEntry, at position) *nats.Msg {
	m := &nats.Msg{Subject: e.Subject, Data: e.Body, Header: nats.Header{}}
	if e.EventID != "" {
		m.Header.Set(HeaderFeedEventID, e.EventID)
	}
	m.Header.Set(HeaderSourceSeq, strconv.FormatUint(at.Seq, 10))
	if at.Part > 0 {
		m.Header.Set(HeaderSourcePart, strconv.Itoa(at.Part))
	}
	m.Header.Set(jetstream.MsgIDHeader, e.MsgID)
	return m
}

// send publishes one run: a lone message as a plain publish (an atomic
// batch of one costs more), several as one atomic batch.
func (p *publisher) send(ctx context.Context, entries []outboxEntry, pos []position) error {
	ctx, cancel := context.WithTimeout(ctx, feedPublishTimeout)
	defer cancel()
	if len(entries) == 1 {
		if _, err := p.js.PublishMsg(ctx, message(entries[0], pos[0])); err != nil {
			return fmt.Errorf("publish to %s: %w", FeedStream, err)
		}
		return nil
	}
	id := events.NewID()
	for i, e := range entries {
		m := message(e, pos[i])
		m.Header.Set(headerBatchID, id)
		m.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if i < len(entries)-1 {
			// Staged without an acknowledgement: one the server could not
			// stage leaves a gap, and the commit then fails whole.
			if err := p.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("publish to %s: %w", FeedStream, err)
			}
			continue
		}
		m.Header.Set(headerBatchCommit, "1")
		reply, err := p.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", FeedStream, err)
		}
		var ack struct {
			Error *jetstream.APIError `json:"error,omitempty"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return fmt.Errorf("publish to %s: %w", FeedStream, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("publish to %s: %w", FeedStream, ack.Error)
		}
		if ack.Count != 0 && ack.Count != len(entries) {
			return fmt.Errorf("publish to %s: %d of %d messages acknowledged", FeedStream, ack.Count, len(entries))
		}
	}
	return nil
}

// secureDelete removes every message the feed holds of one onward
// referral with JetStream's secure deletion (the bytes are overwritten in
// the store's files; a purge would only drop them from the index): what
// the feed held of the person goes, and only the erasure notice stays.
func (p *publisher) secureDelete(ctx context.Context, orgID, onwardID string) error {
	stream, err := p.js.Stream(ctx, FeedStream)
	if err != nil {
		return fmt.Errorf("erase from %s: %w", FeedStream, err)
	}
	subject := FeedSubject(orgID, onwardID, "*")
	for seq := uint64(1); ; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("erase from %s: %w", FeedStream, err)
		}
		if err := stream.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("erase from %s: %w", FeedStream, err)
		}
		seq = m.Sequence + 1
	}
}

// errLegacyFeed: the feed's last message carries no source.
var errLegacyFeed = errors.New("the feed's last message carries no source sequence")

// feedMark is the feed's high-water mark: the source position of its last
// message. A feed written before messages carried their source (version
// 1) is taken to be as far as the log was when this process started,
// rather than published again.
func feedMark(ctx context.Context, js jetstream.JetStream) (position, error) {
	stream, err := js.Stream(ctx, FeedStream)
	if err != nil {
		return position{}, fmt.Errorf("stream %s: %w", FeedStream, err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, FeedSubjects)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return position{}, nil
	}
	if err != nil {
		return position{}, fmt.Errorf("stream %s: %w", FeedStream, err)
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSourceSeq), 10, 64)
	if err != nil {
		return legacyMark(ctx, js)
	}
	part, _ := strconv.Atoi(m.Header.Get(HeaderSourcePart))
	return position{Seq: seq, Part: part}, nil
}

// legacyMark is the log's last sequence: where a version 1 feed, which
// published from its own projection, stood when the hub stopped.
func legacyMark(ctx context.Context, js jetstream.JetStream) (position, error) {
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		return position{}, fmt.Errorf("%w; stream %s: %w", errLegacyFeed, events.JourneyStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return position{}, fmt.Errorf("%w; stream %s: %w", errLegacyFeed, events.JourneyStream, err)
	}
	return position{Seq: info.State.LastSeq, Part: 1 << 15}, nil
}
