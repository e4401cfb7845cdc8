// Package eventlog is the journey event store on NATS JetStream: one
// subject per journey on the JOURNEYS stream, appends guarded by the
// subject's last sequence (optimistic concurrency) and deduplicated by
// Nats-Msg-Id, with a bounded reload-decide-retry loop on conflict.
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
}

// Sealer seals personal data for the log with the person's own key and
// opens it again (see package sealing).
type Sealer interface {
	// PersonKeyID names the key of the person with an NHS number.
	PersonKeyID(nhsNumber string) string
	// Enrol makes sure the person has a key and records the journey.
	Enrol(ctx context.Context, keyID, journeyID string) error
	// Seal encrypts every personal part of m in place; with keyID empty
	// it clears them.
	Seal(ctx context.Context, m proto.Message, keyID string) error
	// Unseal decrypts in place; what an erased key sealed stays empty.
	Unseal(ctx context.Context, m proto.Message) error
}

// DefaultConfig is right for one embedded server.
func DefaultConfig() Config {
	return Config{Replicas: 1, MaxRetries: 25, DuplicateWindow: 2 * time.Minute, CacheSize: 4096}
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

// Result of Execute.
type Result struct {
	State events.State
	// Events are the events this command recorded: just appended, or, for a
	// repeated idempotency key, the ones the first request appended.
	Events []Recorded
	// Replayed is true when the idempotency key had been seen before.
	Replayed bool
	// LastSeq is the stream sequence of the journey's last event.
	LastSeq uint64
}

// Store appends and loads journeys.
type Store struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	cfg     Config
	metrics *metrics
	now     func() time.Time

	mu    sync.Mutex
	cache map[string]*journey
}

// journey is a loaded journey. It is never changed once built, so it can
// be handed out while the cache moves on.
type journey struct {
	id      string
	state   events.State
	history []Recorded
	lastSeq uint64
}

// Open creates or updates the JOURNEYS stream and returns a store on it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, reg prometheus.Registerer) (*Store, error) {
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.MaxRetries < 1 {
		cfg.MaxRetries = 1
	}
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", events.JourneyStream, err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Store{js: js, stream: stream, cfg: cfg, metrics: m, now: time.Now, cache: map[string]*journey{}}, nil
}

// StreamConfig is the JOURNEYS stream: file storage, kept for ever, never
// edited (deletes and purges denied).
func StreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        events.JourneyStream,
		Description: "Linkway journey events, one subject per journey",
		Subjects:    []string{events.JourneySubjects},
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
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source: events.JourneyPartitionTransform[0], Destination: events.JourneyPartitionTransform[1]},
	}
}

// Stream is the JOURNEYS stream.
func (s *Store) Stream() jetstream.Stream { return s.stream }

// ErrConflict is returned by Execute when the journey kept changing under
// it for MaxRetries rounds. It is an unavailable error: the caller may
// retry the request with the same idempotency key.
var ErrConflict = &events.Error{Code: events.CodeUnavailable, Message: "the journey is being changed by others; retry"}

// Execute carries out cmd on a journey: load, decide, append with the
// journey's last sequence as the expected one; on a conflict, reload and
// decide again, up to MaxRetries times.
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
	for attempt := 0; ; attempt++ {
		j, err := s.current(ctx, journeyID, cmd, attempt)
		if err != nil {
			return Result{}, err
		}
		if recs := j.byMsgIDBase(base); len(recs) > 0 {
			return Result{State: j.state, Events: recs, Replayed: true, LastSeq: j.lastSeq}, nil
		}
		evs, err := events.Decide(j.state, cmd)
		if err != nil {
			s.metrics.commands.WithLabelValues(name, "refused").Inc()
			return Result{State: j.state, LastSeq: j.lastSeq}, err
		}
		if len(evs) == 0 {
			s.metrics.commands.WithLabelValues(name, "unchanged").Inc()
			return Result{State: j.state, LastSeq: j.lastSeq}, nil
		}
		nj, recs, err := s.append(ctx, j, base, meta, evs)
		switch {
		case err == nil:
			s.metrics.commands.WithLabelValues(name, "ok").Inc()
			return Result{State: nj.state, Events: recs, LastSeq: nj.lastSeq}, nil
		case !IsConflict(err):
			s.metrics.commands.WithLabelValues(name, "error").Inc()
			return Result{}, &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable"}
		}
		s.metrics.conflicts.Inc()
		s.forget(journeyID)
		if attempt >= s.cfg.MaxRetries {
			s.metrics.commands.WithLabelValues(name, "conflict").Inc()
			return Result{}, ErrConflict
		}
		// Jittered, growing back-off so that contenders spread out.
		wait := time.Duration(1+rand.IntN(1+attempt*2)) * time.Millisecond
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// append publishes evs after the journey's last event. On success it
// returns the journey as it now is.
func (s *Store) append(ctx context.Context, j *journey, base string, meta Meta, evs []*eventsv1.Envelope) (*journey, []Recorded, error) {
	now := s.now().UTC()
	occurred := meta.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	expect := j.lastSeq
	nj := &journey{id: j.id, state: j.state, history: j.history[:len(j.history):len(j.history)], lastSeq: j.lastSeq}
	var recs []Recorded
	for i, e := range evs {
		e.EventId = events.NewID()
		e.JourneyId = j.id
		e.OccurredAt = timestamppb.New(occurred)
		e.RecordedAt = timestamppb.New(now)
		e.Actor = meta.Actor
		e.CausationId = meta.CausationID
		e.CorrelationId = meta.CorrelationID
		data, err := s.marshal(ctx, nj.state, e)
		if err != nil {
			return nil, nil, err
		}
		msgID := fmt.Sprintf("%s/%d", base, i)
		msg := &nats.Msg{Subject: events.JourneySubject(j.id), Data: data, Header: nats.Header{}}
		msg.Header.Set(HeaderEvent, events.EventName(e))
		start := time.Now()
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(expect))
		s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			result := "error"
			if IsConflict(err) {
				result = "conflict"
			}
			s.metrics.appends.WithLabelValues(events.EventName(e), result).Inc()
			return nil, nil, err
		}
		s.metrics.appends.WithLabelValues(events.EventName(e), "ok").Inc()
		expect = ack.Sequence
		rec := Recorded{Seq: ack.Sequence, MsgID: msgID, Event: e}
		recs = append(recs, rec)
		nj.history = append(nj.history, rec)
		nj.state = events.Evolve(nj.state, e)
		nj.lastSeq = ack.Sequence
	}
	s.remember(nj)
	return nj, recs, nil
}

// current is the journey to decide on. The first round trusts the cache
// (or, for a referral, assumes a new journey) and so costs no read: the
// append's expected-sequence check catches a stale view, and the rounds
// after a conflict load from the stream.
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
func (s *Store) marshal(ctx context.Context, st events.State, e *eventsv1.Envelope) ([]byte, error) {
	wire := e
	if s.cfg.Sealer != nil {
		wire = proto.Clone(e).(*eventsv1.Envelope)
		nhs := st.Referral.GetPerson().GetNhsNumber()
		if r := e.GetReferralReceived(); r != nil {
			nhs = r.GetPerson().GetNhsNumber()
		}
		keyID := ""
		if nhs != "" && !st.Erased {
			keyID = s.cfg.Sealer.PersonKeyID(nhs)
			if e.GetReferralReceived() != nil {
				if err := s.cfg.Sealer.Enrol(ctx, keyID, e.GetJourneyId()); err != nil {
					return nil, &events.Error{Code: events.CodeUnavailable, Message: "personal data cannot be protected now"}
				}
			}
		}
		if err := s.cfg.Sealer.Seal(ctx, wire, keyID); err != nil {
			return nil, &events.Error{Code: events.CodeUnavailable, Message: "personal data cannot be protected now"}
		}
	}
	data, err := proto.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", events.EventName(e), err)
	}
	return data, nil
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
		return nil, &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable"}
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
	nj := &journey{id: id, state: j.state, history: j.history[:len(j.history):len(j.history)], lastSeq: j.lastSeq}
	for seq := j.lastSeq + 1; nj.lastSeq < last.Sequence; {
		raw, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return nil, &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable"}
		}
		env, err := s.Decode(ctx, raw.Data)
		if err != nil {
			return nil, fmt.Errorf("journey %s seq %d: %w", id, raw.Sequence, err)
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

// IsConflict reports a failed expected-last-subject-sequence check: 10071
// on one server, 10164 on replicated streams.
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}
