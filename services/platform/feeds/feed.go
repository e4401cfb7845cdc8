package feeds

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
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/ctxwait"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// Headers of a feed message.
const (
	// HeaderEventID is the journey event's id.
	HeaderEventID = "Lw-Event-Id"
	// HeaderSourceSeq is the JOURNEYS sequence of the event a message
	// comes from; HeaderSourcePart, when set, which of its messages it is.
	HeaderSourceSeq  = "Lw-Source-Seq"
	HeaderSourcePart = "Lw-Source-Part"
)

// Headers of JetStream atomic batch publishing (nats-server 2.12 on).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

const (
	batchSize      = 500 // messages in one atomic batch at most
	publishTimeout = 10 * time.Second
	// markEvery: a feed quiet this long gets a message on its mark
	// subject, so that the feed's last message, which the publisher
	// starts from, never ages out of the stream.
	markEvery = 24 * time.Hour
)

// Spec names a feed.
type Spec struct {
	// Stream is the feed's stream (FEED_VCS).
	Stream string
	// Prefix is its subjects' prefix, ending in a dot (lw.feed.vcs.).
	Prefix string
	// Lease names the lease of its publisher.
	Lease string
	// Title names the feed in logs ("the VCS feed").
	Title string
	// Description is the stream's description.
	Description string
}

// Subjects are the feed's subjects (Prefix>).
func (s Spec) Subjects() string { return s.Prefix + ">" }

// MarkSubject carries a mark of the feed's position when it has been
// quiet for a day (no organisation's subjects: _ is no organisation code).
func (s Spec) MarkSubject() string { return s.Prefix + "_mark" }

// StreamConfig is the feed's stream: a window of recent events for
// organisations to catch up from, not a record (the journey log is that).
func (s Spec) StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.Stream,
		Description: s.Description,
		Subjects:    []string{s.Subjects()},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      90 * 24 * time.Hour,
		// The server's least window (100 ms). A publish is never taken twice
		// because each one expects the stream's last sequence the publisher
		// knows, not because of Nats-Msg-Id: a window of minutes made every
		// start of the server read back, and hold in memory, each message of
		// the window (after a feed caught up with a year of history, all of
		// it).
		Duplicates: 100 * time.Millisecond,
		// The publisher sends the outbox in atomic batches: a batch lands
		// whole or not at all, so the feed's last message is its mark.
		AllowAtomicPublish: true,
	}
}

// Feed is one feed of a process: where it stands, which the projection
// writing its outbox consults, and its publisher.
type Feed struct {
	spec Spec
	js   jetstream.JetStream
	mark *mark
	// journeys are the outbox's lists of each journey's messages
	// (OutboxOfJourney) as the reader applies the log.
	journeys *views.Records[[]string]
	// low is the outbox's lowest block that may hold messages
	// (OutboxLowKey), a JSON number.
	low *views.Records[uint64]
}

// Open creates or updates the feed's stream and reads where the feed
// stands. Call it before the reader applies anything: a view rebuilt from
// the log then writes nothing the feed has published.
func Open(ctx context.Context, js jetstream.JetStream, spec Spec, replicas int) (*Feed, error) {
	if _, err := js.CreateOrUpdateStream(ctx, spec.StreamConfig(replicas)); err != nil {
		return nil, fmt.Errorf("stream %s: %w", spec.Stream, err)
	}
	f := &Feed{spec: spec, js: js, mark: &mark{}, journeys: views.NewRecords[[]string](views.CachedRecords),
		low: views.NewRecords[uint64](1)}
	pos, err := f.Mark(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s's position: %w", spec.Title, err)
	}
	f.mark.advance(pos)
	return f, nil
}

// Leases decide which replica publishes the feed (leases.Leases: Hold
// runs fn while this replica holds the named lease, and ends its context
// when the lease is lost).
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

// Waiter waits for the process's views to reach a sequence (views.Registry).
type Waiter interface {
	WaitFor(ctx context.Context, seq uint64, views ...string) error
}

// Group runs long-running parts of the process (errgroup.Group is one).
type Group interface {
	Go(func() error)
}

// Publishing is what a feed's publisher needs of the process.
type Publishing struct {
	// View is the view the outbox is in; Views waits for it to move.
	View  *viewstore.View
	Views Waiter
	// Leases: nil when this process is alone (it publishes).
	Leases Leases
	// Group runs the publisher; without one it runs on its own goroutines
	// until ctx ends.
	Group Group
	Log   *slog.Logger
	// Published counts messages by event (label "event"); Errors failed
	// publishes. Either may be nil.
	Published *prometheus.CounterVec
	Errors    prometheus.Counter
	// Through, if set, is the JOURNEYS sequence through which this
	// replica, publishing, last found its outbox fully published.
	Through prometheus.Gauge
}

// Start starts the feed's publisher (publishing while this process holds
// the feed's lease) and its follower (keeping the feed's position while
// another replica publishes), until ctx ends.
func (f *Feed) Start(ctx context.Context, p Publishing) {
	if p.Log == nil {
		p.Log = slog.Default()
	}
	pub := &publisher{feed: f, nc: f.js.Conn(), cfg: p}
	for _, run := range []func(context.Context) error{pub.run, pub.follow} {
		if p.Group != nil {
			p.Group.Go(func() error { return run(ctx) })
		} else {
			go func() { _ = run(ctx) }()
		}
	}
}

// publisher publishes the outbox while this process holds the lease.
type publisher struct {
	feed    *Feed
	nc      *nats.Conn
	cfg     Publishing
	leading atomic.Bool
	// scanned is the view checkpoint up to which the outbox has been read
	// and found to hold nothing more: the next read starts there, not at
	// the feed's mark (a feed's events may be far apart). Owned by lead.
	scanned uint64
	// last is the stream's last sequence as this publisher last saw or
	// made it. Every publish expects it (Nats-Expected-Last-Sequence), so
	// one that follows a publish this publisher does not know of (another
	// replica's, or its own that timed out and landed) is refused, and the
	// publisher reads where the feed stands again, instead of publishing a
	// message twice. Owned by lead.
	last uint64
}

// errFull stops an outbox scan once a batch is full.
var errFull = errors.New("batch full")

// run publishes while this process holds the feed's lease, until ctx ends.
func (p *publisher) run(ctx context.Context) error {
	if p.cfg.Leases == nil {
		return p.lead(ctx)
	}
	for ctx.Err() == nil {
		if err := p.cfg.Leases.Hold(ctx, p.feed.spec.Lease, p.lead); err != nil {
			p.cfg.Log.Warn(p.feed.spec.Title+"'s lease failed; trying again", "err", err)
			ctxwait.Sleep(ctx, time.Second)
		}
	}
	return nil
}

// follow keeps the feed's position while another replica publishes: the
// outbox is trimmed by it, and a rebuild writes nothing before it.
func (p *publisher) follow(ctx context.Context) error {
	for ctxwait.Sleep(ctx, 2*time.Second) {
		if p.leading.Load() {
			continue
		}
		if pos, err := p.feed.Mark(ctx); err == nil {
			p.feed.mark.advance(pos)
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
			pos, last, err := p.feed.position(ctx)
			if err != nil {
				failures++
				p.pause(ctx, "reading "+p.feed.spec.Title+"'s position", err, failures)
				continue
			}
			p.feed.mark.advance(pos)
			fresh, p.scanned, p.last = false, 0, last
		}
		entries, last, err := p.pending(p.feed.mark.get())
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
			if p.cfg.Errors != nil {
				p.cfg.Errors.Inc()
			}
			fresh = true
			p.pause(ctx, "publishing "+p.feed.spec.Title, err, failures)
			continue
		}
		failures = 0
		if len(entries) > 0 {
			quietSince = time.Now()
		} else {
			if p.cfg.Through != nil {
				p.cfg.Through.Set(float64(p.scanned))
			}
			p.awaitOutbox(ctx)
		}
	}
	return nil
}

// publishMark publishes the feed's position on the mark subject.
func (p *publisher) publishMark(ctx context.Context) error {
	at := p.feed.mark.get()
	m := p.feed.message(Message{Subject: p.feed.spec.MarkSubject(), MsgID: fmt.Sprintf("mark/%d/%d", at.Seq, at.Part), Body: []byte("{}")}, at)
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	ack, err := p.feed.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(p.last))
	if err != nil {
		return fmt.Errorf("publish to %s: %w", p.feed.spec.Stream, err)
	}
	p.last = ack.Sequence
	return nil
}

func (p *publisher) pause(ctx context.Context, what string, err error, failures int) {
	d := time.Duration(min(failures, 25)) * 200 * time.Millisecond
	p.cfg.Log.Warn(what+" failed; trying again", "err", err, "attempt", failures, "pause", d)
	ctxwait.Sleep(ctx, d)
}

// awaitOutbox waits until the view commits again (a second at most).
func (p *publisher) awaitOutbox(ctx context.Context) {
	cp, err := p.cfg.View.Checkpoint()
	if err != nil {
		ctxwait.Sleep(ctx, time.Second)
		return
	}
	wait, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.cfg.Views.WaitFor(wait, cp+1, p.cfg.View.Name()); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		ctxwait.Sleep(wait, time.Second) // no reader runs (a tool): look again later
	}
}

// pending reads up to a batch of outbox entries after from, in order, and
// their positions.
func (p *publisher) pending(from Position) ([]Message, []Position, error) {
	cp, err := p.cfg.View.Checkpoint()
	if err != nil {
		return nil, nil, err
	}
	if cp < p.scanned {
		p.scanned = 0 // the view was dropped and is being rebuilt
	}
	var (
		out []Message
		pos []Position
	)
	for blk := outboxBlock(max(from.Seq, p.scanned)); blk <= outboxBlock(cp); blk++ {
		err := p.cfg.View.ForEach(outboxBlockPrefix(blk), func(key string, value []byte) error {
			at, ok := ParseOutboxKey(key)
			if !ok || !at.After(from) {
				return nil
			}
			e, err := decodeMessage(value)
			if err != nil {
				return fmt.Errorf("outbox %s: %w", key, err)
			}
			out, pos = append(out, e), append(pos, at)
			if len(out) == batchSize {
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

// publish sends entries in order: runs of them as atomic batches, each
// erasure notice alone, after the messages it erases have been securely
// deleted from the stream. The position moves after each run that landed.
func (p *publisher) publish(ctx context.Context, entries []Message, pos []Position) error {
	start := 0
	flush := func(end int) error {
		if end <= start {
			return nil
		}
		if err := p.send(ctx, entries[start:end], pos[start:end]); err != nil {
			return err
		}
		p.feed.mark.advance(pos[end-1])
		if p.cfg.Published != nil {
			for _, e := range entries[start:end] {
				p.cfg.Published.WithLabelValues(e.Event).Inc()
			}
		}
		start = end
		return nil
	}
	for i, e := range entries {
		if e.Erase == "" {
			continue
		}
		if err := flush(i); err != nil {
			return err
		}
		if err := p.feed.SecureDelete(ctx, e.Erase); err != nil {
			return err
		}
		if err := flush(i + 1); err != nil {
			return err
		}
	}
	return flush(len(entries))
}

// message is an outbox entry as a NATS message.
func (f *Feed) message(e Message, at Position) *nats.Msg {
	m := &nats.Msg{Subject: e.Subject, Data: e.Body, Header: nats.Header{}}
	if e.EventID != "" {
		m.Header.Set(HeaderEventID, e.EventID)
	}
	m.Header.Set(HeaderSourceSeq, strconv.FormatUint(at.Seq, 10))
	if at.Part > 0 {
		m.Header.Set(HeaderSourcePart, strconv.Itoa(at.Part))
	}
	m.Header.Set(jetstream.MsgIDHeader, e.MsgID)
	return m
}

// send publishes one run: a lone message as a plain publish (an atomic
// batch of one costs more), several as one atomic batch. Either expects
// the stream's last sequence to be p.last, and moves p.last on.
func (p *publisher) send(ctx context.Context, entries []Message, pos []Position) error {
	stream := p.feed.spec.Stream
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if len(entries) == 1 {
		ack, err := p.feed.js.PublishMsg(ctx, p.feed.message(entries[0], pos[0]), jetstream.WithExpectLastSequence(p.last))
		if err != nil {
			return fmt.Errorf("publish to %s: %w", stream, err)
		}
		p.last = ack.Sequence
		return nil
	}
	id := events.NewID()
	for i, e := range entries {
		m := p.feed.message(e, pos[i])
		if i == 0 {
			// Only a batch's first message may carry it.
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(p.last, 10))
		}
		m.Header.Set(headerBatchID, id)
		m.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if i < len(entries)-1 {
			// Staged without an acknowledgement: one the server could not
			// stage leaves a gap, and the commit then fails whole.
			if err := p.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("publish to %s: %w", stream, err)
			}
			continue
		}
		m.Header.Set(headerBatchCommit, "1")
		reply, err := p.nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", stream, err)
		}
		var ack struct {
			Error *jetstream.APIError `json:"error,omitempty"`
			Seq   uint64              `json:"seq"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return fmt.Errorf("publish to %s: %w", stream, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("publish to %s: %w", stream, ack.Error)
		}
		if ack.Count != 0 && ack.Count != len(entries) {
			return fmt.Errorf("publish to %s: %d of %d messages acknowledged", stream, ack.Count, len(entries))
		}
		p.last = ack.Seq
	}
	return nil
}

// SecureDelete removes every message the feed holds on subjects matching
// filter with JetStream's secure deletion (the bytes are overwritten in the
// store's files; a purge would only drop them from the index).
func (f *Feed) SecureDelete(ctx context.Context, filter string) error {
	stream, err := f.js.Stream(ctx, f.spec.Stream)
	if err != nil {
		return fmt.Errorf("erase from %s: %w", f.spec.Stream, err)
	}
	for seq := uint64(1); ; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("erase from %s: %w", f.spec.Stream, err)
		}
		if err := stream.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("erase from %s: %w", f.spec.Stream, err)
		}
		seq = m.Sequence + 1
	}
}

// errLegacyFeed: the feed's last message carries no source.
var errLegacyFeed = errors.New("the feed's last message carries no source sequence")

// Mark is the feed's high-water mark: the source position of its last
// message. A feed written before messages carried their source (version
// 1) is taken to be as far as the log is now, rather than published again.
func (f *Feed) Mark(ctx context.Context) (Position, error) {
	pos, _, err := f.position(ctx)
	return pos, err
}

// position is the feed's mark and the stream's last sequence, read in that
// order of time: the sequence first, so that a message published between
// the two reads makes the mark newer than the sequence, and the next
// publish, expecting the older sequence, is refused rather than repeating
// that message.
func (f *Feed) position(ctx context.Context) (Position, uint64, error) {
	stream, err := f.js.Stream(ctx, f.spec.Stream) // reads the stream's info
	if err != nil {
		return Position{}, 0, fmt.Errorf("stream %s: %w", f.spec.Stream, err)
	}
	last := stream.CachedInfo().State.LastSeq
	m, err := stream.GetLastMsgForSubject(ctx, f.spec.Subjects())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Position{}, last, nil
	}
	if err != nil {
		return Position{}, 0, fmt.Errorf("stream %s: %w", f.spec.Stream, err)
	}
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSourceSeq), 10, 64)
	if err != nil {
		pos, err := f.legacyMark(ctx)
		return pos, last, err
	}
	part, _ := strconv.Atoi(m.Header.Get(HeaderSourcePart))
	return Position{Seq: seq, Part: part}, last, nil
}

// legacyMark is the log's last sequence: where a version 1 feed, which
// published from its own projection, stood when the hub stopped.
func (f *Feed) legacyMark(ctx context.Context) (Position, error) {
	stream, err := f.js.Stream(ctx, events.JourneyStream)
	if err != nil {
		return Position{}, fmt.Errorf("%w; stream %s: %w", errLegacyFeed, events.JourneyStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Position{}, fmt.Errorf("%w; stream %s: %w", errLegacyFeed, events.JourneyStream, err)
	}
	return Position{Seq: info.State.LastSeq, Part: 1 << 15}, nil
}
