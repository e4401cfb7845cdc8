package views

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// partition is one consumer of a projection: a partition of the journeys,
// or (k = -1) the whole stream.
type partition struct {
	r *Runner
	k int

	seq     atomic.Uint64 // last applied stream sequence
	readyAt atomic.Uint64 // stream's last sequence when the partition (re)started
	ready   atomic.Bool
	owned   atomic.Bool
	cache   *viewCache // used only by the partition's own goroutine
	cpRev   uint64     // revision of the checkpoint this holder last read or wrote
}

func (pt *partition) name() string {
	if pt.r.cfg.Local {
		return ConsumerName(pt.r.p.Name()) + "_" + pt.r.instance
	}
	if pt.k < 0 {
		return ConsumerName(pt.r.p.Name())
	}
	return partitionConsumer(pt.r.p.Name(), pt.k)
}

func (pt *partition) label() string {
	if pt.k < 0 {
		return "all"
	}
	return strconv.Itoa(pt.k)
}

func (pt *partition) leaseName() string { return pt.r.p.Name() + "." + pt.label() }

func (pt *partition) checkpointKey() string {
	if pt.k < 0 {
		return CheckpointKey
	}
	return CheckpointKey + "." + strconv.Itoa(pt.k)
}

func (pt *partition) applied() uint64 { return pt.seq.Load() }

// readyNow: a partition another replica applies does not hold this one back.
func (pt *partition) readyNow() bool {
	return pt.ready.Load() || (pt.r.cfg.Leases != nil && !pt.owned.Load())
}

// reached reports whether seq is in the view: by this process's progress
// when it applies the partition, else by the checkpoint another wrote.
func (pt *partition) reached(ctx context.Context, seq uint64) (bool, error) {
	if pt.r.cfg.Leases == nil || pt.owned.Load() {
		return pt.seq.Load() >= seq, nil
	}
	cp, _, err := readCheckpoint(ctx, pt.r.kv, pt.checkpointKey())
	return cp >= seq, err
}

// init loads the checkpoint and makes sure the consumer exists. It runs at
// start and again whenever this replica takes the partition (over): then
// (restart) the consumer is made anew from the checkpoint, since the
// previous holder may have left messages fetched and not acknowledged,
// which would otherwise come back only after the ack wait, out of order.
func (pt *partition) init(ctx context.Context, restart bool) error {
	r := pt.r
	var cp, rev uint64
	var err error
	if !r.cfg.Local { // a local view starts empty, from the log's beginning
		if cp, rev, err = readCheckpoint(ctx, r.kv, pt.checkpointKey()); err != nil {
			return err
		}
	}
	pt.seq.Store(cp)
	pt.cpRev = rev
	pt.cache = newViewCache(r.cfg.CacheSize, cp == 0 && empty(ctx, r.kv))
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	pt.readyAt.Store(info.State.LastSeq)
	pt.ready.Store(cp >= info.State.LastSeq)
	if restart {
		if err := stream.DeleteConsumer(ctx, pt.name()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("consumer %s: %w", pt.name(), err)
		}
	}
	// An existing consumer resumes at its ack floor; a new one starts
	// after the checkpoint (a view kept while its consumer was lost).
	if _, err := stream.Consumer(ctx, pt.name()); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s: %w", pt.name(), err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       pt.name(),
		Description:   "Linkway projection " + r.p.Name(),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       time.Minute,
		MaxAckPending: r.cfg.Batch * 2,
	}
	if pt.k >= 0 {
		cc.FilterSubject = events.PartitionFilter(pt.k)
	}
	if r.cfg.Local {
		cc.InactiveThreshold = 10 * time.Minute // the server removes it after this process
	}
	_, err = stream.CreateConsumer(ctx, cc)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return fmt.Errorf("consumer %s: %w", pt.name(), err)
	}
	return nil
}

// run applies the partition's events until ctx ends (or, with leases, the
// lease is lost: ctx ends then too).
func (pt *partition) run(ctx context.Context) error {
	r := pt.r
	if r.cfg.Leases != nil {
		// Taking a partition over recreates its consumer, which on a
		// cluster fails while a node restarts or a leader is elected
		// (503, timeouts): keep the lease and try again, rather than stop
		// the process and hand the partition round the replicas.
		for {
			err := pt.init(ctx, true)
			if err == nil {
				break
			}
			r.log.Warn("taking over the partition failed; retrying", "consumer", pt.name(), "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
		}
		pt.owned.Store(true)
		defer pt.owned.Store(false)
		// Another replica reports this partition's lag from now on.
		defer r.metrics.lagEvents.DeleteLabelValues(r.p.Name(), pt.label())
		defer r.metrics.lagSeconds.DeleteLabelValues(r.p.Name(), pt.label())
	}
	cons, err := r.js.Consumer(ctx, r.cfg.Stream, pt.name())
	for err != nil && r.cfg.Leases != nil {
		r.log.Warn("projection consumer unavailable; retrying", "consumer", pt.name(), "err", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
		cons, err = r.js.Consumer(ctx, r.cfg.Stream, pt.name())
	}
	if err != nil {
		return fmt.Errorf("projection %s: %w", pt.name(), err)
	}
	// Take what is there without waiting; when nothing is, wait for the
	// next message (up to a second) and take it at once. A fetch of a full
	// batch with a wait would hold a lone event until the wait ran out.
	wait := false
	for ctx.Err() == nil {
		var batch jetstream.MessageBatch
		if wait {
			batch, err = cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		} else {
			batch, err = cons.FetchNoWait(r.cfg.Batch)
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", errFetch, err)
		}
		var n int
		if err == nil {
			n, err = pt.applyBatch(ctx, batch)
		}
		if errors.Is(err, nats.ErrNoResponders) {
			// A pull from a consumer that was deleted finds no one to
			// answer: ask whether it is still there.
			if _, cerr := r.js.Consumer(ctx, r.cfg.Stream, pt.name()); errors.Is(cerr, jetstream.ErrConsumerNotFound) {
				err = cerr
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				// Dropped for a rebuild: start again from the log's beginning.
				r.log.Warn("projection consumer gone; rebuilding the view", "consumer", pt.name())
				if err := r.openBucket(ctx); err != nil {
					return err
				}
				if err := pt.init(ctx, false); err != nil {
					return err
				}
				if cons, err = r.js.Consumer(ctx, r.cfg.Stream, pt.name()); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, errFenced) {
				r.log.Warn("starting again from the view's checkpoint", "consumer", pt.name(), "err", err)
				// Retried while NATS is unavailable, like a failed fetch.
				for ierr := pt.init(ctx, true); ierr != nil; ierr = pt.init(ctx, true) {
					r.log.Warn("restarting the projection failed; retrying", "consumer", pt.name(), "err", ierr)
					if !sleep(ctx, time.Second) {
						return nil
					}
				}
				if c, cerr := r.js.Consumer(ctx, r.cfg.Stream, pt.name()); cerr == nil {
					cons = c
				} // else the next fetch fails, and is retried
				continue
			}
			if !errors.Is(err, errFetch) {
				return err // the view cannot be written: stop the process
			}
			r.log.Warn("fetch failed; retrying", "consumer", pt.name(), "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		wait = n == 0
	}
	return nil
}

// errFetch marks a failed fetch: retried, unlike a failure to write the view.
var errFetch = errors.New("fetch")

// applyBatch folds every message of one fetch into one Tx, flushes it, then
// writes the checkpoint and acknowledges the last message. It returns how
// many messages the fetch brought.
func (pt *partition) applyBatch(ctx context.Context, batch jetstream.MessageBatch) (int, error) {
	r := pt.r
	name := r.p.Name()
	tx := newTx(ctx, r.js, r.kv, pt.cache)
	var last jetstream.Msg
	var lastMeta *jetstream.MsgMetadata
	n, got := 0, 0
	for msg := range batch.Messages() {
		got++
		meta, err := msg.Metadata()
		if err != nil {
			return got, fmt.Errorf("projection %s: message metadata: %w", name, err)
		}
		last, lastMeta = msg, meta
		seq := meta.Sequence.Stream
		if seq <= pt.seq.Load() {
			continue // re-delivered after a crash: already in the view
		}
		env, err := pt.decode(ctx, msg.Data())
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		if err != nil {
			// A message this version cannot read: counted and skipped, so one
			// bad message cannot stop every view.
			r.metrics.errors.WithLabelValues(name).Inc()
			r.log.Error("skipping undecodable event", "seq", seq, "err", err)
			tx.checkpoint = seq
			continue
		}
		start := time.Now()
		if err := r.p.Apply(tx, Event{Seq: seq, Envelope: env}); err != nil {
			if tx.readErr != nil || pt.moved(ctx) {
				// A view read failed (NATS electing a leader), or it read what
				// another holder is writing: apply again from the checkpoint.
				return got, fmt.Errorf("%w: %w", errFenced, cmp.Or(tx.readErr, err))
			}
			return got, fmt.Errorf("projection %s: apply seq %d: %w", name, seq, err)
		}
		r.metrics.applySeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
		tx.checkpoint = seq
		n++
		if len(tx.writes) >= maxBatchKeys {
			// One atomic write holds at most so many keys: flush now.
			if err := pt.flush(ctx, tx); err != nil {
				return got, err
			}
			pt.seq.Store(tx.checkpoint)
			r.advanced()
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, nats.ErrTimeout) {
		if got == 0 {
			// The consumer may be gone (dropped for a rebuild): the fetch
			// says so here, not when it is made.
			return 0, fmt.Errorf("%w: %w", errFetch, err)
		}
		r.log.Debug("fetch ended early", "err", err)
	}
	if last == nil {
		r.metrics.lagEvents.WithLabelValues(name, pt.label()).Set(0)
		r.metrics.lagSeconds.WithLabelValues(name, pt.label()).Set(0)
		pt.markCaughtUp(0)
		return 0, nil
	}
	if tx.checkpoint > pt.seq.Load() {
		if err := pt.flush(ctx, tx); err != nil {
			return got, err
		}
		pt.seq.Store(tx.checkpoint)
		r.advanced()
	}
	if err := last.Ack(); err != nil {
		r.log.Warn("ack failed; the batch will be re-delivered and skipped", "err", err)
	}
	r.metrics.applied.WithLabelValues(name).Add(float64(n))
	r.metrics.lagEvents.WithLabelValues(name, pt.label()).Set(float64(lastMeta.NumPending))
	lag := 0.0
	if lastMeta.NumPending > 0 {
		lag = time.Since(lastMeta.Timestamp).Seconds()
	}
	r.metrics.lagSeconds.WithLabelValues(name, pt.label()).Set(lag)
	pt.markCaughtUp(lastMeta.NumPending)
	return got, nil
}

// moved reports whether another holder has written the checkpoint since
// this one read it.
func (pt *partition) moved(ctx context.Context) bool {
	_, rev, err := readCheckpoint(ctx, pt.r.kv, pt.checkpointKey())
	return err == nil && rev != pt.cpRev
}

// decode reads an event, retrying while its personal data cannot be opened
// (the keys' bucket unavailable); only an unreadable message is an error.
func (pt *partition) decode(ctx context.Context, data []byte) (*eventsv1.Envelope, error) {
	for attempt := 0; ; attempt++ {
		env, err := pt.r.cfg.Decode(ctx, data)
		if err == nil || errors.Is(err, journal.ErrUndecodable) {
			return env, err
		}
		pt.r.metrics.errors.WithLabelValues(pt.r.p.Name()).Inc()
		pt.r.log.Warn("opening an event failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, time.Duration(min(attempt+1, 10))*200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

func (pt *partition) markCaughtUp(pending uint64) {
	if !pt.ready.Load() && (pt.seq.Load() >= pt.readyAt.Load() || pending == 0) {
		pt.ready.Store(true)
		pt.r.log.Debug("view caught up with the log", "consumer", pt.name(), "seq", pt.seq.Load())
		pt.r.advanced()
	}
}

// flush writes the batch's views and its checkpoint in one atomic write,
// retrying while NATS is unavailable: the batch is never dropped, re-ordered
// or half written, so no event is ever applied twice to the view. The write
// expects the checkpoint to be the one this holder last saw: a holder that
// lost its lease while a write was in flight (fencing) cannot overwrite
// the next holder's progress, and whoever loses starts again from the
// checkpoint (errFenced).
func (pt *partition) flush(ctx context.Context, tx *Tx) error {
	r := pt.r
	if r.cfg.Local {
		if len(tx.writes) > 0 {
			return fmt.Errorf("projection %s: a local projection keeps its view in memory; it wrote %d keys", r.p.Name(), len(tx.writes))
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		rev, err := tx.flush(ctx, pt.checkpointKey(), pt.cpRev)
		if err == nil {
			pt.cpRev = rev
			return nil
		}
		if errors.Is(err, errFenced) {
			return err
		}
		r.metrics.errors.WithLabelValues(r.p.Name()).Inc()
		r.log.Warn("writing the view failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, time.Duration(min(attempt+1, 10))*200*time.Millisecond) {
			return ctx.Err()
		}
	}
}
