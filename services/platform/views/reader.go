package views

// The reader is the version 2 read side (DESIGN.md "Projections: version
// 2"): one ordered consumer of JOURNEYS per process; each message decoded
// and unsealed once and folded once (events.Evolve) into the journey's
// state; every projection the process runs handed the Change in stream
// order, writing its view in the embedded view store (viewstore) in the
// same batch as its checkpoint and the folded states. No durable
// consumers, no leases: every replica keeps its own views.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/ctxwait"
	"linkway/services/platform/journal"
	"linkway/services/platform/viewstore"
)

// Change is one journey event as every projection sees it: the event, and
// the journey's state before and after it, folded by events.Evolve. The
// envelope and the states are shared by every projection: read them,
// never change them. An event of a team's log (a SupervisionRecorded on
// lw.team.<team>.supervision) comes with JourneyID empty and Before and
// After zero: a projection that shows journeys only passes it over.
type Change struct {
	// Seq is the event's stream sequence.
	Seq uint64
	// Subject is the stored subject (lw.journey.<partition>.<id>).
	Subject   string
	JourneyID string
	// Stored is when the log stored the event.
	Stored        time.Time
	Envelope      *eventsv1.Envelope
	Before, After events.State
	// First: the journey's first event the fold has seen (Before is the
	// empty state). No view holds a key of the journey yet: a projection
	// need not read its journey's records (Records.LoadJourney).
	First bool
}

// Projection renders one view from the folded journeys.
type Projection interface {
	// Name names the view: its key prefix and checkpoint in the view
	// store and its metrics ([a-z][a-z0-9_]*).
	Name() string
	// Apply writes what the change means for the view through b. An error
	// (or a panic) abandons the slice of events being applied: nothing of
	// it is committed and the reader starts again from the checkpoints,
	// after a pause. It is a bug or a failed read, never bad input.
	Apply(b *Batch, c Change) error
}

// ReaderConfig configures a reader.
type ReaderConfig struct {
	// Stream read; JOURNEYS unless set.
	Stream string
	// Decode reads a stored event and opens its sealed personal data
	// (journal.Store.Decode); nil reads it as stored. It is called from two
	// goroutines at once.
	Decode func(ctx context.Context, data []byte) (*eventsv1.Envelope, error)
	// StateCache bounds the journeys whose folded state is kept in memory;
	// the others are read back from the view store when their next event
	// comes.
	StateCache int
	// BatchEvents is the most events applied in one commit.
	BatchEvents int
	// BatchDelay is the longest an applied event waits for its commit
	// while more events are coming. When none are waiting (the reader is
	// live) each slice commits at once, synced.
	BatchDelay time.Duration
	// While catching up, commits are not synced, except every SyncEvents
	// events or SyncInterval, and at the end of the catch-up: a crash of
	// the machine loses at most that much work, never a view's consistency.
	SyncEvents   int
	SyncInterval time.Duration
	// Prefetch is how many messages the consumer keeps buffered.
	Prefetch int
	Log      *slog.Logger
	// Metrics; nil registers them nowhere.
	Metrics *ReaderMetrics
}

// DefaultReaderConfig is right for one process on an ordinary machine.
func DefaultReaderConfig() ReaderConfig {
	return ReaderConfig{Stream: events.JourneyStream, StateCache: 10_000, BatchEvents: 2000, BatchDelay: 50 * time.Millisecond,
		SyncEvents: 200_000, SyncInterval: 5 * time.Second, Prefetch: 2048}
}

// Reader applies the journey log to a process's projections.
type Reader struct {
	js      jetstream.JetStream
	store   *viewstore.Store
	projs   []Projection
	names   []string
	cfg     ReaderConfig
	log     *slog.Logger
	m       *ReaderMetrics
	states  *stateCache
	w       *viewstore.Batch
	batches []*Batch

	// Owned by the goroutine in Run.
	cps      []uint64 // committed checkpoint of each projection
	stateCP  uint64   // committed position of the fold
	pos      uint64   // last sequence folded, committed or not
	slice    slice
	lastSync time.Time
	unsynced int

	folded atomic.Uint64 // events folded since the reader was made

	mu        sync.Mutex
	running   bool
	published map[string]uint64 // committed checkpoints, for WaitFor
	changed   chan struct{}     // closed and replaced at every commit
	readyAt   uint64
	readyKnown,
	ready bool
	drops   []string           // views to drop before the next start
	restart context.CancelFunc // ends the current consumer
}

// slice is the events applied since the last commit.
type slice struct {
	events, undecodable int
	applied             []int
	last, pending       uint64
	lastStored          time.Time
}

// NewReader makes a reader of the log for projections, over store.
func NewReader(js jetstream.JetStream, store *viewstore.Store, projections []Projection, cfg ReaderConfig) (*Reader, error) {
	def := DefaultReaderConfig()
	if cfg.Stream == "" {
		cfg.Stream = def.Stream
	}
	if cfg.StateCache <= 0 {
		cfg.StateCache = def.StateCache
	}
	if cfg.BatchEvents <= 0 {
		cfg.BatchEvents = def.BatchEvents
	}
	if cfg.BatchDelay <= 0 {
		cfg.BatchDelay = def.BatchDelay
	}
	if cfg.SyncEvents <= 0 {
		cfg.SyncEvents = def.SyncEvents
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = def.SyncInterval
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = def.Prefetch
	}
	if cfg.Decode == nil {
		cfg.Decode = func(_ context.Context, data []byte) (*eventsv1.Envelope, error) { return journal.Decode(data) }
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		m, err := NewReaderMetrics(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	r := &Reader{js: js, store: store, projs: projections, cfg: cfg, log: cfg.Log, m: cfg.Metrics,
		w: store.NewBatch(), cps: make([]uint64, len(projections)), published: map[string]uint64{},
		changed: make(chan struct{})}
	r.states = newStateCache(cfg.StateCache, store, cfg.Decode, cfg.Metrics)
	r.slice.applied = make([]int, len(projections))
	for _, p := range projections {
		name := p.Name()
		if err := viewstore.ValidName(name); err != nil || name[0] == '_' {
			return nil, fmt.Errorf("projection %q: a view name is [a-z][a-z0-9_]*", name)
		}
		if slices.Contains(r.names, name) {
			return nil, fmt.Errorf("two projections named %q", name)
		}
		r.names = append(r.names, name)
		r.batches = append(r.batches, &Batch{view: name, w: r.w})
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads the committed checkpoints.
func (r *Reader) load() error {
	cps, err := r.store.Checkpoints()
	if err != nil {
		return err
	}
	for i, n := range r.names {
		r.cps[i] = cps[n]
	}
	r.stateCP = cps[StateTable]
	r.pos = r.stateCP
	r.publish()
	return nil
}

// publish makes the committed checkpoints visible to WaitFor and Applied.
func (r *Reader) publish() {
	r.mu.Lock()
	for i, n := range r.names {
		r.published[n] = r.cps[i]
		if slices.Contains(r.drops, n) {
			r.published[n] = 0 // to be rebuilt: what it holds does not count
		}
	}
	r.published[StateTable] = r.stateCP
	if !r.ready && r.readyKnown && r.lowest(nil) >= r.readyAt {
		r.ready = true
		r.log.Info("views caught up with the log", "seq", r.readyAt)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	for i, n := range r.names {
		r.m.checkpoint.WithLabelValues(n).Set(float64(r.cps[i]))
	}
}

// lowest is the lowest committed checkpoint of the named views (every
// projection's when names is empty; the fold's when there is none).
// r.mu is held.
func (r *Reader) lowest(names []string) uint64 {
	if len(names) == 0 {
		names = r.names
	}
	if len(names) == 0 {
		return r.published[StateTable]
	}
	lo := uint64(1<<64 - 1)
	for _, n := range names {
		lo = min(lo, r.published[n])
	}
	return lo
}

// Applied is the stream sequence that every named view (every view when
// none is named) has applied and committed.
func (r *Reader) Applied(views ...string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lowest(views)
}

// Ready reports whether every view has caught up, at least once, with the
// log as it was when the reader started (or was last asked to rebuild).
func (r *Reader) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// Views are the names of the projections the reader runs.
func (r *Reader) Views() []string { return slices.Clone(r.names) }

// Folded is how many events the reader has decoded and folded so far.
func (r *Reader) Folded() uint64 { return r.folded.Load() }

// WaitFor returns once every named view (every view when none is named)
// has applied stream sequence seq, or when ctx ends: read-your-writes for
// a command that knows the sequence of its append.
func (r *Reader) WaitFor(ctx context.Context, seq uint64, views ...string) error {
	for _, v := range views {
		if !slices.Contains(r.names, v) {
			return fmt.Errorf("no view %q", v)
		}
	}
	for {
		r.mu.Lock()
		done, ch := r.lowest(views) >= seq, r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Rebuild drops the named views (every view when none is named) and
// replays the whole log into them; the other views keep what they hold and
// skip the events they have applied. Until the rebuilt views have caught
// up again the reader is not Ready, and the other views apply new events
// only once the replay reaches them. It returns at once; WaitFor the
// log's last sequence to know when the rebuild is done.
func (r *Reader) Rebuild(views ...string) error {
	if len(views) == 0 {
		views = r.names
	}
	for _, v := range views {
		if !slices.Contains(r.names, v) {
			return fmt.Errorf("no view %q (views: %v)", v, r.names)
		}
	}
	r.mu.Lock()
	r.drops = append(r.drops, views...)
	for _, v := range views {
		r.published[v] = 0
	}
	r.ready, r.readyKnown = false, false
	if r.restart != nil {
		r.restart()
	}
	r.mu.Unlock()
	return nil
}

// errStoreClosed ends Run: there is nowhere to write.
var errStoreClosed = viewstore.ErrClosed

// Run applies the log until ctx ends. Failures to read the log (NATS
// electing a leader, a restart) and failed slices are retried from the
// committed checkpoints with a growing pause; Run returns an error only
// when the view store is closed, or when another Run is going.
func (r *Reader) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("the reader is already running")
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.restart = false, nil
		r.mu.Unlock()
	}()
	failures := 0
	for ctx.Err() == nil {
		rctx, cancel := context.WithCancel(ctx)
		r.mu.Lock()
		r.restart = cancel
		r.mu.Unlock()
		err := r.runOnce(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStoreClosed) {
			return err
		}
		r.mu.Lock()
		rebuild := len(r.drops) > 0
		r.mu.Unlock()
		if rebuild && errors.Is(err, context.Canceled) {
			failures = 0 // stopped by Rebuild: start again at once
			continue
		}
		failures++
		cause := "log"
		if errors.Is(err, errApply) {
			cause = "apply"
		}
		r.m.restarts.WithLabelValues(cause).Inc()
		pause := min(time.Duration(failures)*200*time.Millisecond, 10*time.Second)
		r.log.Warn("reader stopped; starting again from the views' checkpoints", "err", err, "attempt", failures, "pause", pause)
		if !ctxwait.Sleep(ctx, pause) {
			return nil
		}
	}
	return nil
}

// errApply marks a failure of a projection or of the store while applying.
var errApply = errors.New("apply")

// start drops what Rebuild asked for and works out where the fold starts:
// at the state table's checkpoint, or at the beginning when a view is
// behind the fold (a new or rebuilt view needs the states as they were).
// lastSeq is the log's last sequence: checkpoints beyond it belong to
// another log (the NATS store was replaced) and are dropped.
func (r *Reader) start(ctx context.Context, lastSeq uint64) (uint64, error) {
	r.mu.Lock()
	drops := slices.Clone(r.drops)
	r.mu.Unlock()
	cps, err := r.store.Checkpoints()
	if err != nil {
		return 0, err
	}
	for _, n := range r.names {
		if cps[n] > lastSeq && !slices.Contains(drops, n) {
			r.log.Warn("a view is ahead of the log: it was built from another log; rebuilding it", "view", n,
				"checkpoint", cps[n], "log_last_seq", lastSeq)
			drops = append(drops, n)
		}
	}
	for _, n := range drops {
		if err := r.store.DropView(ctx, n); err != nil {
			return 0, err
		}
		cps[n] = 0
		r.log.Info("view dropped; replaying the log into it", "view", n)
	}
	r.mu.Lock()
	r.drops = slices.DeleteFunc(r.drops, func(n string) bool { return slices.Contains(drops, n) })
	r.mu.Unlock()
	stateCP := cps[StateTable]
	lowest := stateCP
	for _, n := range r.names {
		lowest = min(lowest, cps[n])
	}
	if lowest < stateCP || stateCP > lastSeq {
		if err := r.store.DropView(ctx, StateTable); err != nil {
			return 0, err
		}
		stateCP = 0
		r.states.reset()
	}
	for i, n := range r.names {
		r.cps[i] = cps[n]
		r.batches[i].reset() // what the views' Records hold is read again from the store
	}
	r.stateCP, r.pos = stateCP, stateCP
	r.mu.Lock()
	if !r.readyKnown {
		r.readyAt, r.readyKnown = lastSeq, true
	}
	r.mu.Unlock()
	r.publish()
	return stateCP, nil
}

// item is one message of the log, decoded.
type item struct {
	seq, pending uint64
	subject      string
	stored       time.Time
	env          *eventsv1.Envelope // nil: undecodable
	raw          []byte             // the stored bytes of a ReferralReceived
}

// chunk is a run of items passed from the fetching goroutine to the
// applying one; err ends the run.
type chunk struct {
	items []item
	err   error
}

const chunkItems = 128

// runOnce reads the log from the fold's position until ctx ends or
// something fails.
func (r *Reader) runOnce(ctx context.Context) error {
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	from, err := r.start(ctx, info.State.LastSeq)
	if err != nil {
		return fmt.Errorf("%w: %w", errApply, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from + 1})
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", r.cfg.Stream, err)
	}
	// Heartbeats every second: when the server feeding the consumer dies
	// (a NATS node killed, a stream leader moved), the ordered consumer
	// notices two missed heartbeats and starts again on a live one. With
	// the default (5 s, and a 30 s pull) the views stood still for 10 s
	// and more after a node's kill -9, and writes waiting to read their
	// own answer timed out.
	it, err := cons.Messages(jetstream.PullMaxMessages(r.cfg.Prefetch),
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("consumer of %s: %w", r.cfg.Stream, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, it.Stop)
	chunks := make(chan chunk, max(2, r.cfg.Prefetch/chunkItems))
	var wg sync.WaitGroup
	wg.Go(func() { r.fetch(ctx, it, chunks) })
	defer func() {
		cancel()
		stop()
		it.Stop()
		wg.Wait()
	}()
	r.lastSync, r.unsynced = time.Now(), 0
	return r.applyChunks(ctx, chunks)
}

// fetch reads and decodes messages, in a goroutine of its own so that
// decoding and unsealing overlap with applying.
func (r *Reader) fetch(ctx context.Context, it jetstream.MessagesContext, out chan<- chunk) {
	defer close(out)
	var c chunk
	send := func() bool {
		select {
		case out <- c:
			c = chunk{items: make([]item, 0, chunkItems)}
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		// No timeout: a chunk is passed on as soon as its last message says
		// nothing more is pending, and while something is pending the next
		// message is on its way (the log is never deleted from). Stop
		// (when ctx ends) ends the wait.
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() == nil {
				c.err = fmt.Errorf("read %s: %w", r.cfg.Stream, err)
				send()
			}
			return
		}
		meta, err := msg.Metadata()
		if err != nil {
			c.err = fmt.Errorf("read %s: message metadata: %w", r.cfg.Stream, err)
			send()
			return
		}
		in := item{seq: meta.Sequence.Stream, pending: meta.NumPending, subject: msg.Subject(), stored: meta.Timestamp}
		env, err := r.decode(ctx, msg.Data())
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			in.env = env
			if env.GetReferralReceived() != nil {
				in.raw = msg.Data()
			}
		} else {
			r.log.Error("skipping an event this version cannot read", "seq", in.seq, "err", err)
		}
		c.items = append(c.items, in)
		if (in.pending == 0 || len(c.items) >= chunkItems) && !send() {
			return
		}
	}
}

// decode reads an event, retrying while its personal data cannot be opened
// (the keys' bucket unavailable); only an unreadable message is an error.
func (r *Reader) decode(ctx context.Context, data []byte) (*eventsv1.Envelope, error) {
	for attempt := 0; ; attempt++ {
		env, err := r.cfg.Decode(ctx, data)
		if err == nil || errors.Is(err, journal.ErrUndecodable) {
			return env, err
		}
		r.log.Warn("opening an event failed; retrying", "err", err, "attempt", attempt)
		if !ctxwait.Sleep(ctx, time.Duration(min(attempt+1, 10))*200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// applyChunks folds and applies what fetch passes on, committing a slice
// when the reader is live (nothing pending), when it is full, or when its
// first event has waited BatchDelay and the events already waiting would
// not fill it.
func (r *Reader) applyChunks(ctx context.Context, chunks <-chan chunk) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var due <-chan time.Time
		// While catching up, a slice is committed when full: committing it
		// by time as well (every 50 ms, some 600 events) wrote each
		// journey's records three times as often. A read waiting for a
		// sequence waits at most a full slice's time for it.
		if r.slice.events > 0 && uint64(r.slice.events)+r.slice.pending < uint64(r.cfg.BatchEvents) {
			due = timer.C
		}
		select {
		case c, ok := <-chunks:
			if !ok {
				r.discard()
				return ctx.Err()
			}
			for _, in := range c.items {
				if in.seq <= r.pos {
					continue // delivered again after the consumer was reset
				}
				if r.slice.events == 0 {
					timer.Reset(r.cfg.BatchDelay)
				}
				if err := r.applyItem(ctx, in); err != nil {
					r.discard()
					return fmt.Errorf("%w: %w", errApply, err)
				}
				if r.slice.events >= r.cfg.BatchEvents || r.w.Size() >= maxSliceBytes {
					if err := r.commit(ctx); err != nil {
						return err
					}
				}
			}
			if c.err != nil {
				if err := r.commit(ctx); err != nil {
					return err
				}
				return c.err
			}
			if r.slice.events > 0 && r.slice.pending == 0 {
				if err := r.commit(ctx); err != nil {
					return err
				}
			}
		case <-due:
			if err := r.commit(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			r.discard()
			return ctx.Err()
		}
	}
}

// maxSliceBytes bounds the memory of one uncommitted slice.
const maxSliceBytes = 32 << 20

// applyItem folds one event and hands it to every projection that has not
// applied it yet.
func (r *Reader) applyItem(ctx context.Context, in item) error {
	r.slice.events++
	r.slice.last, r.slice.pending, r.slice.lastStored = in.seq, in.pending, in.stored
	r.pos = in.seq
	r.folded.Add(1)
	id := subjectID(in.subject)
	js := r.states.cached(id)
	if js == nil {
		// Checked only for a journey not in memory: a cached one was
		// checked when it was first read.
		if _, ok := events.JourneyIDFromSubject(in.subject); !ok {
			if _, team := events.TeamFromSupervisionSubject(in.subject); team && in.env != nil {
				return r.applyTeam(in)
			}
			in.env = nil
		}
	}
	if in.env == nil {
		r.slice.undecodable++
		return nil
	}
	if js == nil {
		var err error
		if js, err = r.states.get(ctx, id); err != nil {
			return err
		}
	}
	before := js.state
	after := events.Evolve(before, in.env)
	record := js.record
	if before.Referral == nil && after.Referral != nil {
		record = in.raw
	}
	if after.Erased {
		record = nil
	}
	r.states.set(js, after, record)
	c := Change{Seq: in.seq, Subject: in.subject, JourneyID: id, Stored: in.stored, Envelope: in.env, Before: before, After: after,
		First: !before.Exists()}
	for i, p := range r.projs {
		if r.cps[i] >= in.seq {
			continue // the view has it already
		}
		if err := apply(p, r.batches[i], c); err != nil {
			return fmt.Errorf("view %s, seq %d: %w", r.names[i], in.seq, err)
		}
		r.slice.applied[i]++
	}
	return nil
}

// applyTeam hands an event of a team's log (a supervision session: about
// a worker, not a journey) to every projection that has not applied it,
// with no journey and no fold: JourneyID empty, Before and After zero.
func (r *Reader) applyTeam(in item) error {
	c := Change{Seq: in.seq, Subject: in.subject, Stored: in.stored, Envelope: in.env}
	for i, p := range r.projs {
		if r.cps[i] >= in.seq {
			continue
		}
		if err := apply(p, r.batches[i], c); err != nil {
			return fmt.Errorf("view %s, seq %d: %w", r.names[i], in.seq, err)
		}
		r.slice.applied[i]++
	}
	return nil
}

// subjectID is the last token of a journey subject: the journey id, as
// published (lw.journey.<id>) or as stored (lw.journey.<partition>.<id>).
func subjectID(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

// apply runs one projection, turning a panic into an error so that a bug
// in one view stops the reader's progress, not the process.
func apply(p Projection, b *Batch, c Change) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return p.Apply(b, c)
}

// commit writes the slice: every view's changes, the changed journey
// states, and the checkpoints of the fold and of every view behind it, in
// one batch; synced when live, at a checkpoint of the catch-up, or at its
// end.
func (r *Reader) commit(ctx context.Context) error {
	if r.slice.events == 0 {
		return nil
	}
	last := r.slice.last
	for i, n := range r.names {
		if r.cps[i] < last {
			r.w.SetCheckpoint(n, last)
		}
	}
	r.w.SetCheckpoint(StateTable, last)
	for i, b := range r.batches {
		if err := b.flush(); err != nil {
			r.discard()
			return fmt.Errorf("%w: view %s: %w", errApply, r.names[i], err)
		}
	}
	if err := r.states.write(r.w); err != nil {
		r.discard()
		return fmt.Errorf("%w: %w", errApply, err)
	}
	r.unsynced += r.slice.events
	live := r.slice.pending == 0
	sync := live || r.unsynced >= r.cfg.SyncEvents || time.Since(r.lastSync) >= r.cfg.SyncInterval
	start := time.Now()
	if err := r.w.Commit(ctx, sync); err != nil {
		r.discard()
		return fmt.Errorf("%w: %w", errApply, err)
	}
	r.m.commitSeconds.WithLabelValues(strconv.FormatBool(sync)).Observe(time.Since(start).Seconds())
	if sync {
		r.lastSync, r.unsynced = time.Now(), 0
	}
	r.states.committed()
	for _, b := range r.batches {
		b.committed()
	}
	for i := range r.cps {
		r.cps[i] = max(r.cps[i], last)
		if n := r.slice.applied[i]; n > 0 {
			r.m.applied.WithLabelValues(r.names[i]).Add(float64(n))
		}
	}
	r.stateCP = last
	r.m.events.Add(float64(r.slice.events))
	r.m.undecodable.Add(float64(r.slice.undecodable))
	r.m.lagEvents.Set(float64(r.slice.pending))
	lag := 0.0
	if !live {
		lag = time.Since(r.slice.lastStored).Seconds()
	}
	r.m.lagSeconds.Set(lag)
	r.resetSlice()
	r.publish()
	return nil
}

// discard drops the uncommitted slice: its view changes and its states.
func (r *Reader) discard() {
	r.w.Discard()
	r.states.rollback()
	for _, b := range r.batches {
		b.rollback()
	}
	r.pos = r.stateCP
	r.resetSlice()
}

func (r *Reader) resetSlice() {
	clear(r.slice.applied)
	r.slice = slice{applied: r.slice.applied}
}
