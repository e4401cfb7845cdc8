package journal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
)

// A team's supervision log shares the JOURNEYS stream under a subject of
// its own (events.SupervisionSubject), so the one reader of the log
// delivers it in order with the journeys. It holds no personal data (a
// worker, a date, a kind) and is appended rarely: Supervise decides on the
// log read from the stream each time, appends with the subject's last
// sequence expected, and decides again on a conflict.

// TeamResult is what a command on a team's log answers with.
type TeamResult struct {
	// Log is the team's supervision log after the command (for a refused
	// or repeated command, the log it was decided on).
	Log events.TeamSupervision
	// Events are the events this command recorded, or for a repeated
	// idempotency key those the first request recorded.
	Events []Recorded
	// Replayed is true when the idempotency key had been seen before.
	Replayed bool
	// LastSeq is the stream sequence of the log's last event: a read that
	// must see the command waits until its view reaches it.
	LastSeq uint64
}

// Supervise records a supervision session in its team's log.
func (s *Store) Supervise(ctx context.Context, meta Meta, cmd events.RecordSupervision) (TeamResult, error) {
	subject, err := events.SupervisionSubject(cmd.Team)
	if err != nil {
		return TeamResult{}, err
	}
	key := meta.IdempotencyKey
	if key == "" {
		key = events.NewID() // one key for every round of this call
	}
	base := msgIDBase("team."+cmd.Team, key)
	for attempt := 0; ; attempt++ {
		log, recs, last, err := s.loadTeam(ctx, subject)
		if err != nil {
			return TeamResult{}, err
		}
		var mine []Recorded
		for _, r := range recs {
			if len(r.MsgID) > len(base) && r.MsgID[:len(base)+1] == base+"/" {
				mine = append(mine, r)
			}
		}
		if len(mine) > 0 {
			return TeamResult{Log: log, Events: mine, Replayed: true, LastSeq: last}, nil
		}
		evs, err := events.DecideSupervision(log, cmd)
		if err != nil || len(evs) == 0 {
			return TeamResult{Log: log, LastSeq: last}, err
		}
		now := s.now().UTC()
		occurred := meta.OccurredAt
		if occurred.IsZero() {
			occurred = now
		}
		e := evs[0]
		e.EventId, e.OccurredAt, e.RecordedAt = events.NewID(), timestamppb.New(occurred), timestamppb.New(now)
		e.Actor, e.CausationId, e.CorrelationId = meta.Actor, meta.CausationID, meta.CorrelationID
		data, err := proto.Marshal(e)
		if err != nil {
			return TeamResult{}, fmt.Errorf("marshal supervision: %w", err)
		}
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		msg.Header.Set(HeaderEvent, events.EventName(e))
		msg.Header.Set(jetstream.MsgIDHeader, base+"/0")
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
		ack, err := s.request(msg)
		switch {
		case err == nil && !ack.Duplicate:
			rec := Recorded{Seq: ack.Sequence, MsgID: base + "/0", Event: e}
			return TeamResult{Log: log.Evolve(e), Events: []Recorded{rec}, LastSeq: ack.Sequence}, nil
		case err == nil, retryable(err):
			// A duplicate (a lost acknowledgement of an earlier round) or a
			// conflict: the next round reads what landed.
		default:
			return TeamResult{}, explain("team "+cmd.Team, err)
		}
		if attempt >= s.cfg.MaxRetries {
			return TeamResult{}, ErrConflict
		}
		select {
		case <-ctx.Done():
			return TeamResult{}, ctx.Err()
		case <-time.After(time.Duration(1+rand.IntN(1+attempt*2)) * time.Millisecond):
		}
	}
}

// loadTeam reads a team's log: its folded sessions, its messages and the
// subject's last sequence (0 when empty).
func (s *Store) loadTeam(ctx context.Context, subject string) (events.TeamSupervision, []Recorded, uint64, error) {
	var log events.TeamSupervision
	last, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return log, nil, 0, nil
	}
	if err != nil {
		return log, nil, 0, explain(subject, err)
	}
	var recs []Recorded
	for seq := uint64(1); seq <= last.Sequence; {
		raw, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return log, nil, 0, explain(subject, err)
		}
		env, err := Decode(raw.Data)
		if err != nil {
			return log, nil, 0, fmt.Errorf("%s seq %d: %w", subject, raw.Sequence, err)
		}
		recs = append(recs, Recorded{Seq: raw.Sequence, MsgID: raw.Header.Get(jetstream.MsgIDHeader), Event: env})
		log = log.Evolve(env)
		seq = raw.Sequence + 1
	}
	return log, recs, last.Sequence, nil
}
