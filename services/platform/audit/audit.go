// Package audit records every read of identifiable data: who (key,
// organisation, kind), which journeys, when, and through which route, on
// the AUDIT stream. It records that a read happened, never what was read.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
)

// Stream and subjects: a read of one journey goes on
// lw.audit.journey.<journey-id>, a read of a list (caseload, inbox) on
// lw.audit.list.<org> with the journeys it showed.
const (
	Stream        = "AUDIT"
	journeyPrefix = "lw.audit.journey."
	listPrefix    = "lw.audit.list."
)

// Record is one audited read.
type Record struct {
	At       time.Time   `json:"at"`
	OrgID    string      `json:"org_id"`
	Kind     events.Kind `json:"kind"`
	KeyID    string      `json:"key_id"`
	Route    string      `json:"route"`
	Journeys []string    `json:"journeys"`
}

// Log appends audit records.
type Log struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	now    func() time.Time
}

// Open creates or updates the AUDIT stream: file storage, kept for eight
// years (NHS records retention for audit trails), never edited.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Log, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "Linkway read audit: who read which journey, when, through which route",
		Subjects:    []string{"lw.audit.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		MaxAge:      8 * 365 * 24 * time.Hour,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil {
		return nil, fmt.Errorf("audit stream: %w", err)
	}
	return &Log{js: js, stream: s, now: time.Now}, nil
}

// ErrUnavailable is returned when a read cannot be audited; the read must
// then not be served.
var ErrUnavailable = &events.Error{Code: events.CodeUnavailable, Message: "reads cannot be audited now; retry"}

// Journey records a read of one journey's identifiable data.
func (l *Log) Journey(ctx context.Context, p api.Principal, route, journeyID string) error {
	if events.ParseID(journeyID) != nil {
		return nil // nothing was shown
	}
	return l.append(ctx, journeyPrefix+journeyID, p, route, []string{journeyID})
}

// List records a read of a list of journeys (a caseload page, an inbox).
func (l *Log) List(ctx context.Context, p api.Principal, route string, journeyIDs []string) error {
	if len(journeyIDs) == 0 {
		return nil
	}
	return l.append(ctx, listPrefix+subjectToken(p.OrgID), p, route, journeyIDs)
}

func (l *Log) append(ctx context.Context, subject string, p api.Principal, route string, ids []string) error {
	b, err := json.Marshal(Record{At: l.now().UTC(), OrgID: p.OrgID, Kind: p.Kind, KeyID: p.KeyID, Route: route, Journeys: ids})
	if err != nil {
		return err
	}
	if _, err := l.js.Publish(ctx, subject, b); err != nil {
		return ErrUnavailable
	}
	return nil
}

// subjectToken keeps an organisation code safe in a subject.
func subjectToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' || c == '*' || c == '>' || c <= ' ' {
			b[i] = '_'
		}
	}
	return string(b)
}

// ForJourney returns the audited reads of a journey since a time: reads
// of the journey itself and list reads that showed it.
func (l *Log) ForJourney(ctx context.Context, journeyID string, since time.Time) ([]Record, error) {
	if err := events.ParseID(journeyID); err != nil {
		return nil, events.Invalid("journey", "must be a journey id")
	}
	var out []Record
	for _, filter := range []string{journeyPrefix + journeyID, listPrefix + "*"} {
		recs, err := l.scan(ctx, filter, since)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if slices.Contains(r.Journeys, journeyID) {
				if len(r.Journeys) > 1 {
					r.Journeys = []string{journeyID}
				}
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return a.At.Compare(b.At) })
	return out, nil
}

// scan reads every record on filter since a time with an ordered consumer.
func (l *Log) scan(ctx context.Context, filter string, since time.Time) ([]Record, error) {
	c, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []Record
	for pending := info.NumPending; pending > 0; {
		batch, err := c.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var r Record
			if json.Unmarshal(m.Data(), &r) == nil {
				out = append(out, r)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		if got == 0 {
			break
		}
		pending -= uint64(got)
	}
	return out, nil
}
