// Package projection runs read models over the JOURNEYS stream: durable
// pull consumers feed an Apply function whose writes land in the
// projection's own JetStream KV bucket. Writes of a fetched batch are
// buffered and each touched key is written once; the checkpoint (last
// applied stream sequence) is written after the views it covers, so a crash
// only ever re-applies, and re-applied events are skipped.
//
// A projection whose view keys each belong to one journey can be
// partitioned: the JOURNEYS stream stores each journey under one of
// events.JourneyPartitions partition tokens, and the runner has one
// consumer per partition. With leases (several replicas of a service), each
// partition, or an unpartitioned projection as a whole, is applied by one
// replica at a time, and taken over when that replica stops renewing.
package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// CheckpointKey holds the last applied stream sequence of an unpartitioned
// view; a partitioned view has one per partition (CheckpointKey.<k>).
const CheckpointKey = "_checkpoint"

// Event is one journey event as delivered to a projector.
type Event struct {
	Seq      uint64
	Envelope *eventsv1.Envelope
}

// Projector folds journey events into a view.
type Projector interface {
	// Name names the projection: its consumers, its bucket and its metrics.
	Name() string
	// Apply folds one event into the view through tx. An error stops the
	// projection: it is a bug or an outage, never bad input.
	Apply(tx *Tx, ev Event) error
}

// Partitioned is implemented by projectors whose every view key belongs to
// one journey, so that journeys can be applied by several consumers in
// parallel. A projector that keeps totals across journeys must not be.
type Partitioned interface {
	Partitioned() bool
}

// Config of a runner.
type Config struct {
	// Stream the projection reads; JOURNEYS unless set.
	Stream string
	// Batch is the most events applied before their writes are flushed.
	Batch int
	// Replicas of the view bucket.
	Replicas int
	// CacheSize bounds the view entries each consumer keeps in memory.
	CacheSize int
	// Storage of the view bucket. Views are derived data: memory storage
	// is allowed, at the price of a replay after a restart.
	Storage jetstream.StorageType
	// Leases, when set, share the projection's partitions with the other
	// replicas of the service; nil means this process applies them all.
	Leases *Leases
	// Local makes a projection whose view is this process's memory: the
	// runner applies every event here, from the log's beginning at each
	// start, through a consumer of this process's own (removed by the
	// server once idle), with no lease and no checkpoint. Any number of
	// replicas each keep their own copy.
	Local bool
	// Decode reads a stored event, opening its sealed personal data
	// (journal.Store.Decode); nil reads it as stored.
	Decode func(ctx context.Context, data []byte) (*eventsv1.Envelope, error)
}

// DefaultConfig is right for one embedded server.
func DefaultConfig() Config {
	return Config{Stream: events.JourneyStream, Batch: 500, Replicas: 1, CacheSize: 200_000, Storage: jetstream.FileStorage}
}

// BucketName is the KV bucket of a projection's view.
func BucketName(projection string) string { return "view_" + projection }

// ConsumerName is the durable consumer of an unpartitioned projection.
func ConsumerName(projection string) string { return "proj_" + projection }

// Runner applies one projection.
type Runner struct {
	js       jetstream.JetStream
	p        Projector
	cfg      Config
	kv       jetstream.KeyValue
	metrics  *Metrics
	log      *slog.Logger
	parts    []*partition
	stream   jetstream.Stream
	instance string // names a Local runner's consumer

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a partition advances
}

// New creates the view bucket and the consumers if they do not exist.
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
	if cfg.Decode == nil {
		cfg.Decode = func(_ context.Context, data []byte) (*eventsv1.Envelope, error) { return journal.Decode(data) }
	}
	r := &Runner{js: js, p: p, cfg: cfg, metrics: m, log: log.With("projection", p.Name()), changed: make(chan struct{}),
		instance: strings.ReplaceAll(events.NewID(), "-", "")}
	if cfg.Local {
		r.cfg.Leases = nil
	}
	if pp, ok := p.(Partitioned); ok && pp.Partitioned() && cfg.Stream == events.JourneyStream && !cfg.Local {
		for k := range events.JourneyPartitions {
			r.parts = append(r.parts, &partition{r: r, k: k})
		}
	} else {
		r.parts = []*partition{{r: r, k: -1}}
	}
	if err := r.openBucket(ctx); err != nil {
		return nil, err
	}
	var err error
	if r.stream, err = js.Stream(ctx, cfg.Stream); err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	for _, pt := range r.parts {
		if err := pt.init(ctx, false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Runner) openBucket(ctx context.Context) error {
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
	// A batch's view writes and its checkpoint go in one atomic batch.
	s, err := r.js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return fmt.Errorf("view bucket %s: %w", r.p.Name(), err)
	}
	// On a cluster, reads go through the stream leader: a follower answers
	// a direct get with what it has applied so far, and a replica taking a
	// partition over must read what the last holder wrote.
	if sc := s.CachedInfo().Config; !sc.AllowAtomicPublish || (sc.Replicas > 1 && sc.AllowDirect) {
		sc.AllowAtomicPublish = true
		sc.AllowDirect = sc.AllowDirect && sc.Replicas <= 1
		if _, err := r.js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("view bucket %s: allow atomic writes: %w", r.p.Name(), err)
		}
		if kv, err = r.js.KeyValue(ctx, kv.Bucket()); err != nil {
			return fmt.Errorf("view bucket %s: %w", r.p.Name(), err)
		}
	}
	r.kv = kv
	return nil
}

// Name is the projection's name.
func (r *Runner) Name() string { return r.p.Name() }

// KV is the view bucket.
func (r *Runner) KV() jetstream.KeyValue { return r.kv }

// Applied is the highest stream sequence this runner has applied.
func (r *Runner) Applied() uint64 {
	var hi uint64
	for _, pt := range r.parts {
		hi = max(hi, pt.applied())
	}
	return hi
}

// Ready reports whether every partition this replica applies had caught
// up, at least once, with the log as it was when the runner started, and
// (with leases) every partition is applied by some replica.
func (r *Runner) Ready() bool {
	for _, pt := range r.parts {
		if !pt.readyNow() {
			return false
		}
	}
	return r.cfg.Leases == nil || r.cfg.Leases.allHeld(r.leaseNames())
}

func (r *Runner) leaseNames() []string {
	var out []string
	for _, pt := range r.parts {
		out = append(out, pt.leaseName())
	}
	return out
}

// WaitFor blocks until the view has applied stream sequence seq (in the
// partition that holds it), or ctx ends. It is how a command's answer can
// read its own write.
func (r *Runner) WaitFor(ctx context.Context, seq uint64) error {
	pt := r.parts[0]
	if len(r.parts) > 1 {
		raw, err := r.stream.GetMsg(ctx, seq)
		if err != nil {
			return fmt.Errorf("find seq %d: %w", seq, err)
		}
		k, ok := events.PartitionOfSubject(raw.Subject)
		if !ok {
			return fmt.Errorf("seq %d is not a partitioned journey event", seq)
		}
		pt = r.parts[k]
	}
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		done, err := pt.reached(ctx, seq)
		if err != nil || done {
			return err
		}
		// Woken by our own progress, or every 20 ms to read the checkpoint
		// of a partition another replica applies.
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// CatchUpJourney blocks until the view has applied everything the log
// holds for a journey, whoever wrote it, or ctx ends. A read of one
// journey's view calls it (with a short deadline) to see writes made
// through other services a moment before: one direct get per read.
func (r *Runner) CatchUpJourney(ctx context.Context, journeyID string) error {
	if events.ParseID(journeyID) != nil {
		return nil // no such journey: nothing to wait for
	}
	last, err := r.stream.GetLastMsgForSubject(ctx, events.JourneyFilter(journeyID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.WaitFor(ctx, last.Sequence)
}

func (r *Runner) advanced() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Run applies events until ctx ends or the view cannot be written.
func (r *Runner) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, pt := range r.parts {
		g.Go(func() error {
			if r.cfg.Leases == nil {
				return pt.run(ctx)
			}
			return r.cfg.Leases.Hold(ctx, pt.leaseName(), len(r.parts), pt.run)
		})
	}
	return g.Wait()
}

// Drop deletes a projection's consumers and view, so that the next runner
// replays the whole log into a fresh view.
func Drop(ctx context.Context, js jetstream.JetStream, stream, name string) error {
	// The view goes first: a runner still running notices its consumer
	// gone next and starts again on a fresh, empty view.
	if err := js.DeleteKeyValue(ctx, BucketName(name)); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete view %s: %w", BucketName(name), err)
	}
	names := []string{ConsumerName(name)}
	for k := range events.JourneyPartitions {
		names = append(names, partitionConsumer(name, k))
	}
	for _, c := range names {
		if err := js.DeleteConsumer(ctx, stream, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", c, err)
		}
	}
	return nil
}

func partitionConsumer(name string, k int) string { return ConsumerName(name) + "_p" + strconv.Itoa(k) }

// readCheckpoint returns a checkpoint and its KV revision (0, 0 when
// there is none yet).
func readCheckpoint(ctx context.Context, kv jetstream.KeyValue, key string) (seq, rev uint64, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read checkpoint: %w", err)
	}
	seq, err = strconv.ParseUint(string(e.Value()), 10, 64)
	return seq, e.Revision(), err
}

// empty reports whether a view bucket holds no keys at all.
func empty(ctx context.Context, kv jetstream.KeyValue) bool {
	st, err := kv.Status(ctx)
	return err == nil && st.Values() == 0
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
