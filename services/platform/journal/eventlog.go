// Package journal is the journey event store on NATS JetStream: one
// subject per journey on the JOURNEYS stream, appends guarded by the
// subject's last sequence (optimistic concurrency) and deduplicated by
// Nats-Msg-Id, with a bounded reload-decide-retry loop on conflict.
//
// Appends go through a group committer (commit.go): concurrent commands
// are published together as one JetStream atomic batch, commands on one
// journey queue in memory behind each other, and each command answers from
// the state it folded, with the stream sequence of its append.
package journal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// Headers set on every journey message besides Nats-Msg-Id.
const (
	// HeaderEvent holds the event's full protobuf name, so consumers and
	// tools can filter without decoding.
	HeaderEvent = "Lw-Event"
)

// Config of the event store.
type Config struct {
	// Replicas of the JOURNEYS stream: 1 for one server, 3 on a cluster.
	Replicas int
	// MaxRetries bounds reload-decide-append rounds after a conflict.
	MaxRetries int
	// DuplicateWindow is the stream's Nats-Msg-Id window. Longer-lived
	// duplicates are caught from the journey's own history.
	DuplicateWindow time.Duration
	// CacheSize bounds the journeys whose state is kept in memory.
	CacheSize int
	// Sealer, when set, encrypts personal data on the log per person.
	Sealer Sealer
	// MinBatch is the fewest waiting messages the committer publishes as
	// one atomic batch; fewer go as plain publishes, since a batch costs
	// the server more than one publish (about 6 ms against 0.5 ms here).
	MinBatch int
	// MaxBatch bounds the messages of one atomic batch (the server allows
	// 1000).
	MaxBatch int
	// MaxInflight bounds the rounds of appends out at once. One is best on
	// one server: a second round out halves the batches, and the server
	// commits them one after the other all the same (measured: 1 round
	// 840-1000 commands/s at concurrency 64, 2 rounds 400-600).
	MaxInflight int
	// PublishTimeout bounds the wait for one acknowledgement.
	PublishTimeout time.Duration
}

// Sealer seals personal data for the log with the person's own key and
// opens it again (see package sealing).
type Sealer interface {
	// Enrol returns the key that seals a new journey of the person with an
	// NHS number (the person's current key, or a new one) and the headers
	// that tie the journey's first message to the person on the log.
	Enrol(ctx context.Context, nhsNumber string) (keyID string, headers map[string]string, err error)
	// Seal encrypts every personal part of m in place; with keyID empty,
	// or a key since erased, it clears them.
	Seal(ctx context.Context, m proto.Message, keyID string) error
	// Unseal decrypts in place; what an erased key sealed stays empty.
	Unseal(ctx context.Context, m proto.Message) error
	// Appended tells the sealer of a message this store has appended, so
	// that what it keeps of the log (the person index) knows at once.
	Appended(seq uint64, journeyID string, h nats.Header)
}

// DefaultConfig is right for one embedded server.
func DefaultConfig() Config {
	return Config{Replicas: 1, MaxRetries: 25, DuplicateWindow: 2 * time.Minute, CacheSize: 4096,
		MinBatch: 8, MaxBatch: 500, MaxInflight: 1, PublishTimeout: 10 * time.Second}
}

// Recorded is one event as stored: its stream sequence and message id.
type Recorded struct {
	Seq   uint64
	MsgID string
	Event *eventsv1.Envelope
}

// Meta is what an append knows besides the command.
type Meta struct {
	Actor *eventsv1.Actor
	// IdempotencyKey makes a retried request return the original result
	// instead of appending again, however much later it comes.
	IdempotencyKey string
	CausationID    string
	CorrelationID  string
	// OccurredAt is when it happened in the world; zero means now.
	OccurredAt time.Time
}

// Result of Execute: what the command's answer is made from, with no
// second read of the log.
type Result struct {
	// State is the journey folded up to and including this command's events
	// (for a refused or repeated command, the state it was decided on).
	State events.State
	// History is the journey's whole history as State folds it. It is
	// shared: do not change it.
	History []Recorded
	// Events are the events this command recorded: just appended, or, for a
	// repeated idempotency key, the ones the first request appended.
	Events []Recorded
	// Replayed is true when the idempotency key had been seen before.
	Replayed bool
	// LastSeq is the stream sequence of the journey's last event in
	// History: for an append, the sequence of this command's last event. A
	// read that must see the command waits until its view reaches it.
	LastSeq uint64
}

// Store appends and loads journeys.
type Store struct {
	js      jetstream.JetStream
	nc      *nats.Conn
	stream  jetstream.Stream
	cfg     Config
	metrics *metrics
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]*journey
	lanes map[string]*lane

	commits committer
}

// journey is a loaded journey. It is never changed once built, so it can
// be handed out while the cache moves on.
type journey struct {
	id      string
	state   events.State
	history []Recorded
	lastSeq uint64
	// keyID is the person key that seals the journey's personal data.
	keyID string
}

// Open creates or updates the JOURNEYS stream and returns a store on it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, reg prometheus.Registerer) (*Store, error) {
	def := DefaultConfig()
	cfg.Replicas = max(cfg.Replicas, 1)
	cfg.MaxRetries = max(cfg.MaxRetries, 1)
	if cfg.CacheSize < 1 {
		cfg.CacheSize = def.CacheSize
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > 1000 {
		cfg.MaxBatch = def.MaxBatch
	}
	if cfg.MinBatch < 2 {
		cfg.MinBatch = def.MinBatch
	}
	if cfg.MaxInflight < 1 {
		cfg.MaxInflight = def.MaxInflight
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = def.PublishTimeout
	}
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", events.JourneyStream, err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Store{js: js, nc: js.Conn(), stream: stream, cfg: cfg, metrics: m, now: time.Now,
		cache: map[string]*journey{}, lanes: map[string]*lane{}, commits: committer{wake: make(chan struct{}, 1)}}, nil
}

// StreamConfig is the JOURNEYS stream: file storage, kept for ever, never
// edited (deletes and purges denied), open to atomic batch publishes.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        events.JourneyStream,
		Description: "Linkway journey events, one subject per journey",
		Subjects:    events.JourneyStreamSubjects, // the journeys, and the teams' supervision logs (team.go)
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Duplicates:  cfg.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		// Direct gets are answered by any replica, and a follower answers
		// with what it has applied (from 90% synchronised on): on a cluster
		// a read after an append could miss it (a referral just appended
		// answered 404). Reads go through the stream leader there.
		AllowDirect: cfg.Replicas <= 1,
		// Group commit publishes many commands as one atomic batch.
		AllowAtomicPublish: true,
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: events.JourneyPartitionTransform[0], Destination: events.JourneyPartitionTransform[1]},
	}
}

// Stream is the JOURNEYS stream.
func (s *Store) Stream() jetstream.Stream { return s.stream }

// ErrConflict is returned by Execute when the journey kept changing under
// it (written by another process) for MaxRetries rounds: a conflict on
// the journey's state (409); the caller may retry with the same
// idempotency key.
var ErrConflict = &events.Error{Code: events.CodeFailedPrecondition, Message: "the journey is being changed by others at the same time; retry"}

// Execute carries out cmd on a journey: decide on the journey as this
// process knows it (after any command of its own still being appended),
// append through the group committer with the journey's last sequence as
// the expected one; on a conflict, reload and decide again, up to
// MaxRetries times.
func (s *Store) Execute(ctx context.Context, journeyID string, meta Meta, cmd events.Command) (Result, error) {
	if err := events.ParseID(journeyID); err != nil {
		return Result{}, err
	}
	key := meta.IdempotencyKey
	if key == "" {
		// Still one key for all rounds of this call, so an append whose
		// acknowledgement was lost is recognised on the next round.
		key = events.NewID()
	}
	base := msgIDBase(journeyID, key)
	name := events.CommandName(cmd)
	l := s.acquireLane(journeyID)
	defer s.releaseLane(journeyID, l)
	for attempt := 0; ; {
		d, err := s.prepare(ctx, l, journeyID, base, meta, cmd, attempt)
		if err != nil {
			s.metrics.commands.WithLabelValues(name, "error").Inc()
			return Result{}, err
		}
		if d.wait != nil {
			// Decided on commands of this process still being appended:
			// the answer stands only if they land.
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-d.wait.done:
			}
			if d.wait.err == nil && d.result != nil {
				// What was decided on is now what landed.
				f := d.wait.final
				d.result.State, d.result.History, d.result.LastSeq = f.state, f.history, f.lastSeq
				s.metrics.commands.WithLabelValues(name, d.outcome).Inc()
				return *d.result, d.err
			}
			continue // decide again on what landed
		}
		if d.result != nil {
			s.metrics.commands.WithLabelValues(name, d.outcome).Inc()
			return *d.result, d.err
		}
		p := d.pending
		if d.inline {
			s.commitInline(p)
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-p.done:
		}
		if p.err == nil {
			s.metrics.commands.WithLabelValues(name, "ok").Inc()
			f := p.final
			return Result{State: f.state, History: f.history, Events: p.recs, LastSeq: f.lastSeq}, nil
		}
		if !retryable(p.err) {
			s.metrics.commands.WithLabelValues(name, "error").Inc()
			return Result{}, explain(journeyID, p.err)
		}
		attempt++
		if errors.Is(p.err, errChainBroken) {
			continue // a command before it failed; no one else wrote
		}
		s.metrics.conflicts.Inc()
		if attempt > s.cfg.MaxRetries {
			s.metrics.commands.WithLabelValues(name, "conflict").Inc()
			return Result{}, ErrConflict
		}
		// Jittered, growing back-off so that contenders (other processes:
		// this one queues its own commands) spread out.
		wait := time.Duration(1+rand.IntN(1+attempt*2)) * time.Millisecond
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// decision is what prepare made of a command: a pending append to wait
// for, or an answer (result, err) that needs no append. With wait set,
// the answer was decided on commands not yet landed: it stands once wait
// lands, and is decided again if it fails.
type decision struct {
	pending *pending
	result  *Result
	err     error
	outcome string // metric label of an answer
	wait    *pending
	// inline: nothing else was queued or out, so the caller publishes the
	// pending append itself.
	inline bool
}

// prepare decides cmd on the journey as it will be once this process's
// commands before it have landed, and queues its events for the committer.
// It holds the journey's lane, so commands on one journey are decided in
// the order they are queued.
func (s *Store) prepare(ctx context.Context, l *lane, id, base string, meta Meta, cmd events.Command, attempt int) (decision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var j *journey
	var prev *pending
	if q := l.last; q != nil {
		select {
		case <-q.done:
			if q.err == nil {
				j = q.final
			}
		default:
			j, prev = q.after, q
		}
	}
	if j == nil {
		var err error
		if j, err = s.current(ctx, id, cmd, attempt); err != nil {
			return decision{}, err
		}
	}
	answer := func(res Result, err error, outcome string) decision {
		return decision{result: &res, err: err, outcome: outcome, wait: prev}
	}
	if recs := j.byMsgIDBase(base); len(recs) > 0 {
		for _, r := range recs {
			if r.Seq == 0 && prev != nil { // this very request, still being appended
				return decision{wait: prev}, nil
			}
		}
		return answer(Result{State: j.state, History: j.history, Events: recs, Replayed: true, LastSeq: j.lastSeq}, nil, "replayed"), nil
	}
	evs, err := events.Decide(j.state, cmd)
	if err != nil {
		return answer(Result{State: j.state, History: j.history, LastSeq: j.lastSeq}, err, "refused"), nil
	}
	if len(evs) == 0 {
		return answer(Result{State: j.state, History: j.history, LastSeq: j.lastSeq}, nil, "unchanged"), nil
	}
	p, err := s.build(ctx, j, base, meta, evs)
	if err != nil {
		return decision{}, err
	}
	p.prev = prev
	if prev == nil {
		p.base = j
	}
	l.last = p
	// Under the lane's lock, so a journey's commands queue in order.
	return decision{pending: p, inline: s.enqueue(p)}, nil
}

// build makes the messages of evs, appended after journey j, and the
// journey as it will be once they land.
func (s *Store) build(ctx context.Context, j *journey, base string, meta Meta, evs []*eventsv1.Envelope) (*pending, error) {
	now := s.now().UTC()
	occurred := meta.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	after := &journey{id: j.id, state: j.state, history: j.history[:len(j.history):len(j.history)], lastSeq: j.lastSeq, keyID: j.keyID}
	p := &pending{journeyID: j.id, subject: events.JourneySubject(j.id), done: make(chan struct{})}
	for i, e := range evs {
		e.EventId = events.NewID()
		e.JourneyId = j.id
		e.OccurredAt = timestamppb.New(occurred)
		e.RecordedAt = timestamppb.New(now)
		e.Actor = meta.Actor
		e.CausationId = meta.CausationID
		e.CorrelationId = meta.CorrelationID
		m, err := s.marshal(ctx, after, e)
		if err != nil {
			return nil, err
		}
		m.msgID = fmt.Sprintf("%s/%d", base, i)
		p.msgs = append(p.msgs, m)
		after.history = append(after.history, Recorded{MsgID: m.msgID, Event: e})
		after.state = events.Evolve(after.state, e)
		if m.keyID != "" {
			after.keyID = m.keyID
		}
	}
	p.after = after
	return p, nil
}

// current is the journey to decide on when this process has no command
// of its own in flight on it. The first round trusts the cache (or, for a
// referral, assumes a new journey) and so costs no read: the append's
// expected-sequence check catches a stale view, and the rounds after a
// conflict load from the stream.
func (s *Store) current(ctx context.Context, id string, cmd events.Command, attempt int) (*journey, error) {
	if attempt == 0 {
		s.mu.Lock()
		cached := s.cache[id]
		s.mu.Unlock()
		if cached != nil {
			return cached, nil
		}
		if _, ok := cmd.(events.Refer); ok {
			return &journey{id: id}, nil
		}
	}
	return s.load(ctx, id)
}

// marshal encodes an event for the log, its personal data sealed with the
// key of the journey's person (the event stays plain for this process).
// A referral takes the person's key from the sealer.
func (s *Store) marshal(ctx context.Context, j *journey, e *eventsv1.Envelope) (outMsg, error) {
	m := outMsg{env: e, event: events.EventName(e)}
	wire := e
	if s.cfg.Sealer != nil {
		wire = proto.Clone(e).(*eventsv1.Envelope)
		keyID := j.keyID
		if rr := e.GetReferralReceived(); rr != nil && rr.GetPerson() != nil {
			// A person known by no NHS number (a self-referral may give
			// none) takes a key of their own journey, so that their details
			// are sealed, not dropped, and erased with the journey.
			who := rr.GetPerson().GetNhsNumber()
			if who == "" {
				who = "journey:" + j.id
			}
			var err error
			if keyID, m.headers, err = s.cfg.Sealer.Enrol(ctx, who); err != nil {
				return outMsg{}, unavailable("personal data cannot be protected now", err)
			}
			m.keyID = keyID
		}
		if j.state.Erased {
			keyID = "" // an erased journey takes no new personal data
		} else if keyID == "" && j.state.Exists() {
			return outMsg{}, fmt.Errorf("journey %s has no person key", j.id)
		}
		if err := s.cfg.Sealer.Seal(ctx, wire, keyID); err != nil {
			return outMsg{}, unavailable("personal data cannot be protected now", err)
		}
	}
	data, err := proto.Marshal(wire)
	if err != nil {
		return outMsg{}, fmt.Errorf("marshal %s: %w", m.event, err)
	}
	m.data = data
	return m, nil
}

// Decode reads one stored journey event and opens its personal data.
func (s *Store) Decode(ctx context.Context, data []byte) (*eventsv1.Envelope, error) {
	env, err := Decode(data)
	if err != nil || s.cfg.Sealer == nil {
		return env, err
	}
	if err := s.cfg.Sealer.Unseal(ctx, env); err != nil {
		return nil, fmt.Errorf("open personal data: %w", err)
	}
	return env, nil
}

// Load returns a journey's state and history. A journey that was never
// referred loads as the zero state with no history.
func (s *Store) Load(ctx context.Context, journeyID string) (events.State, []Recorded, error) {
	if err := events.ParseID(journeyID); err != nil {
		return events.State{}, nil, err
	}
	j, err := s.load(ctx, journeyID)
	if err != nil {
		return events.State{}, nil, err
	}
	return j.state, j.history, nil
}

func (s *Store) load(ctx context.Context, id string) (*journey, error) {
	subject := events.JourneyFilter(id)
	last, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return &journey{id: id}, nil
	}
	if err != nil {
		return nil, explain(id, err)
	}
	s.mu.Lock()
	cached := s.cache[id]
	s.mu.Unlock()
	if cached != nil && cached.lastSeq == last.Sequence {
		return cached, nil
	}
	j := &journey{id: id}
	if cached != nil && cached.lastSeq < last.Sequence {
		j = cached
	}
	nj := &journey{id: id, state: j.state, history: j.history[:len(j.history):len(j.history)], lastSeq: j.lastSeq, keyID: j.keyID}
	for seq := j.lastSeq + 1; nj.lastSeq < last.Sequence; {
		raw, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return nil, explain(id, err)
		}
		env, err := Decode(raw.Data)
		if err != nil {
			return nil, fmt.Errorf("journey %s seq %d: %w", id, raw.Sequence, err)
		}
		if sealed := env.GetReferralReceived().GetPerson().GetSealed(); sealed != nil && nj.keyID == "" {
			nj.keyID = sealed.GetKeyId()
		}
		if s.cfg.Sealer != nil {
			if err := s.cfg.Sealer.Unseal(ctx, env); err != nil {
				return nil, unavailable("personal data cannot be opened now", fmt.Errorf("journey %s seq %d: %w", id, raw.Sequence, err))
			}
		}
		nj.history = append(nj.history, Recorded{Seq: raw.Sequence, MsgID: raw.Header.Get(jetstream.MsgIDHeader), Event: env})
		nj.state = events.Evolve(nj.state, env)
		nj.lastSeq = raw.Sequence
		seq = raw.Sequence + 1
	}
	s.remember(nj)
	return nj, nil
}

// ErrUndecodable is returned by Decode for a message that is not a journey
// event this version can read.
var ErrUndecodable = errors.New("not a readable journey event")

// Decode reads one stored journey event.
func Decode(data []byte) (*eventsv1.Envelope, error) {
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if env.GetEvent() == nil {
		return nil, fmt.Errorf("%w: the envelope holds no event", ErrUndecodable)
	}
	return env, nil
}

func (s *Store) remember(j *journey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.state.Erased {
		// An erased person's history may still be plain in memory: never
		// keep it; reloads find only what the destroyed key cannot open.
		delete(s.cache, j.id)
		return
	}
	if old := s.cache[j.id]; old != nil && old.lastSeq >= j.lastSeq {
		return
	}
	if len(s.cache) >= s.cfg.CacheSize && s.cache[j.id] == nil {
		for k := range s.cache { // random eviction: map order is random
			delete(s.cache, k)
			break
		}
	}
	s.cache[j.id] = j
}

func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

func (j *journey) byMsgIDBase(base string) []Recorded {
	var out []Recorded
	for _, r := range j.history {
		if strings.HasPrefix(r.MsgID, base+"/") {
			out = append(out, r)
		}
	}
	return out
}

// msgIDBase derives the Nats-Msg-Id stem of a request: the journey and the
// caller's key, hashed so that any key makes a short, safe header value.
func msgIDBase(journeyID, key string) string {
	sum := sha256.Sum256([]byte(key))
	return journeyID + "/" + hex.EncodeToString(sum[:12])
}
