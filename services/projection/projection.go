// Package projection runs read models over the JOURNEYS stream: a durable
// pull consumer per projection feeds an Apply function whose writes land in
// the projection's own JetStream KV bucket. Writes of a fetched batch are
// buffered and each touched key is written once; the checkpoint (last
// applied stream sequence) is written after the views it covers, so a crash
// only ever re-applies, and re-applied events are skipped.
package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/eventlog"
)

// CheckpointKey holds the last applied stream sequence in every view bucket.
const CheckpointKey = "_checkpoint"

// Event is one journey event as delivered to a projector.
type Event struct {
	Seq      uint64
	Envelope *eventsv1.Envelope
}

// Projector folds journey events into a view.
type Projector interface {
	// Name names the projection: its consumer, its bucket and its metrics.
	Name() string
	// Apply folds one event into the view through tx. An error stops the
	// projection: it is a bug or an outage, never bad input.
	Apply(tx *Tx, ev Event) error
}

// Config of a runner.
type Config struct {
	// Stream the projection reads; JOURNEYS unless set.
	Stream string
	// Batch is the most events applied before their writes are flushed.
	Batch int
	// Replicas of the view bucket.
	Replicas int
	// CacheSize bounds the view entries the runner keeps in memory.
	CacheSize int
	// Storage of the view bucket. Views are derived data: memory storage
	// is allowed, at the price of a replay after a restart.
	Storage jetstream.StorageType
}

// DefaultConfig is right for one embedded server.
func DefaultConfig() Config {
	return Config{Stream: events.JourneyStream, Batch: 500, Replicas: 1, CacheSize: 200_000, Storage: jetstream.FileStorage}
}

// BucketName is the KV bucket of a projection's view.
func BucketName(projection string) string { return "view_" + projection }

// ConsumerName is the durable consumer of a projection.
func ConsumerName(projection string) string { return "proj_" + projection }

// Runner applies one projection.
type Runner struct {
	js      jetstream.JetStream
	p       Projector
	cfg     Config
	kv      jetstream.KeyValue
	metrics *Metrics
	log     *slog.Logger

	cache   *viewCache
	applied atomic.Uint64 // last applied stream sequence
	readyAt uint64        // stream's last sequence when the runner started
	ready   atomic.Bool
	mu      sync.Mutex
	waiters map[chan struct{}]uint64
}

// New creates the view bucket and the consumer if they do not exist.
func New(ctx context.Context, js jetstream.JetStream, p Projector, cfg Config, m *Metrics, log *slog.Logger) (*Runner, error) {
	if cfg.Stream == "" {
		cfg.Stream = events.JourneyStream
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 200_000
	}
	r := &Runner{js: js, p: p, cfg: cfg, metrics: m, log: log.With("projection", p.Name()), waiters: map[chan struct{}]uint64{}}
	if err := r.init(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) init(ctx context.Context) error {
	kv, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketName(r.p.Name()),
		Description: "Linkway view " + r.p.Name() + " (derived: rebuildable from the log)",
		Storage:     r.cfg.Storage,
		Replicas:    max(r.cfg.Replicas, 1),
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("view bucket %s: %w", r.p.Name(), err)
	}
	r.kv = kv
	cp, err := readCheckpoint(ctx, kv)
	if err != nil {
		return err
	}
	r.applied.Store(cp)
	r.cache = newViewCache(r.cfg.CacheSize, cp == 0 && empty(ctx, kv))
	stream, err := r.js.Stream(ctx, r.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.cfg.Stream, err)
	}
	r.readyAt = info.State.LastSeq
	r.ready.Store(cp >= r.readyAt)
	// An existing consumer resumes at its ack floor; a new one starts
	// after the checkpoint (a view kept while its consumer was lost).
	if _, err := stream.Consumer(ctx, ConsumerName(r.p.Name())); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s: %w", ConsumerName(r.p.Name()), err)
	}
	_, err = stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       ConsumerName(r.p.Name()),
		Description:   "Linkway projection " + r.p.Name(),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       time.Minute,
		MaxAckPending: r.cfg.Batch * 2,
	})
	if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return fmt.Errorf("consumer %s: %w", ConsumerName(r.p.Name()), err)
	}
	return nil
}

// empty reports whether a view bucket holds no keys at all.
func empty(ctx context.Context, kv jetstream.KeyValue) bool {
	st, err := kv.Status(ctx)
	return err == nil && st.Values() == 0
}

func readCheckpoint(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	e, err := kv.Get(ctx, CheckpointKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return strconv.ParseUint(string(e.Value()), 10, 64)
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.p.Name() }

// KV is the view bucket.
func (r *Runner) KV() jetstream.KeyValue { return r.kv }

// Applied is the last stream sequence applied to the view.
func (r *Runner) Applied() uint64 { return r.applied.Load() }

// Ready reports whether the view had caught up, at least once, with the
// log as it was when the runner started.
func (r *Runner) Ready() bool { return r.ready.Load() }

// WaitFor blocks until the view has applied stream sequence seq, or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	if r.applied.Load() >= seq {
		return nil
	}
	ch := make(chan struct{})
	r.mu.Lock()
	r.waiters[ch] = seq
	r.mu.Unlock()
	if r.applied.Load() >= seq { // applied between the check and the registration
		r.release(seq)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		delete(r.waiters, ch)
		r.mu.Unlock()
		return ctx.Err()
	}
}

func (r *Runner) release(applied uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch, seq := range r.waiters {
		if applied >= seq {
			close(ch)
			delete(r.waiters, ch)
		}
	}
}

// Run applies events until ctx ends or the view cannot be written.
func (r *Runner) Run(ctx context.Context) error {
	cons, err := r.js.Consumer(ctx, r.cfg.Stream, ConsumerName(r.p.Name()))
	if err != nil {
		return fmt.Errorf("projection %s: %w", r.p.Name(), err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(r.cfg.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				// Dropped for a rebuild: start again from the log's beginning.
				r.log.Warn("projection consumer gone; rebuilding the view")
				if err := r.init(ctx); err != nil {
					return err
				}
				if cons, err = r.js.Consumer(ctx, r.cfg.Stream, ConsumerName(r.p.Name())); err != nil {
					return err
				}
				continue
			}
			r.log.Warn("fetch failed; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		if err := r.applyBatch(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// applyBatch folds every message of one fetch into one Tx, flushes it, then
// writes the checkpoint and acknowledges the last message.
func (r *Runner) applyBatch(ctx context.Context, batch jetstream.MessageBatch) error {
	tx := newTx(ctx, r.kv, r.cache)
	var last jetstream.Msg
	var lastMeta *jetstream.MsgMetadata
	n := 0
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("projection %s: message metadata: %w", r.p.Name(), err)
		}
		last, lastMeta = msg, meta
		seq := meta.Sequence.Stream
		if seq <= r.applied.Load() {
			continue // re-delivered after a crash: already in the view
		}
		env, err := eventlog.Decode(msg.Data())
		if err != nil {
			// A message this version cannot read: counted and skipped, so one
			// bad message cannot stop every view.
			r.metrics.errors.WithLabelValues(r.p.Name()).Inc()
			r.log.Error("skipping undecodable event", "seq", seq, "err", err)
			tx.checkpoint = seq
			continue
		}
		start := time.Now()
		if err := r.p.Apply(tx, Event{Seq: seq, Envelope: env}); err != nil {
			return fmt.Errorf("projection %s: apply seq %d: %w", r.p.Name(), seq, err)
		}
		r.metrics.applySeconds.WithLabelValues(r.p.Name()).Observe(time.Since(start).Seconds())
		tx.checkpoint = seq
		n++
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		r.log.Debug("fetch ended early", "err", err)
	}
	if last == nil {
		r.markCaughtUp(0)
		return nil
	}
	if tx.checkpoint > r.applied.Load() {
		if err := r.flush(ctx, tx); err != nil {
			return err
		}
		r.applied.Store(tx.checkpoint)
		r.release(tx.checkpoint)
	}
	if err := last.Ack(); err != nil {
		r.log.Warn("ack failed; the batch will be re-delivered and skipped", "err", err)
	}
	r.metrics.applied.WithLabelValues(r.p.Name()).Add(float64(n))
	r.metrics.lagEvents.WithLabelValues(r.p.Name()).Set(float64(lastMeta.NumPending))
	lag := 0.0
	if lastMeta.NumPending > 0 {
		lag = time.Since(lastMeta.Timestamp).Seconds()
	}
	r.metrics.lagSeconds.WithLabelValues(r.p.Name()).Set(lag)
	r.markCaughtUp(lastMeta.NumPending)
	return nil
}

func (r *Runner) markCaughtUp(pending uint64) {
	if !r.ready.Load() && (r.applied.Load() >= r.readyAt || pending == 0) {
		r.ready.Store(true)
		r.log.Info("view caught up with the log", "seq", r.applied.Load())
	}
}

// flush writes the batch's views, then the checkpoint, retrying while NATS
// is unavailable: the batch is never dropped or re-ordered.
func (r *Runner) flush(ctx context.Context, tx *Tx) error {
	for attempt := 0; ; attempt++ {
		err := tx.flush(ctx)
		if err == nil {
			_, err = r.kv.Put(ctx, CheckpointKey, []byte(strconv.FormatUint(tx.checkpoint, 10)))
		}
		if err == nil {
			return nil
		}
		r.metrics.errors.WithLabelValues(r.p.Name()).Inc()
		r.log.Warn("writing the view failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, time.Duration(min(attempt+1, 10))*200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Drop deletes a projection's consumer and view, so that the next runner
// replays the whole log into a fresh view.
func Drop(ctx context.Context, js jetstream.JetStream, stream, name string) error {
	if err := js.DeleteConsumer(ctx, stream, ConsumerName(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", ConsumerName(name), err)
	}
	if err := js.DeleteKeyValue(ctx, BucketName(name)); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete view %s: %w", BucketName(name), err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
