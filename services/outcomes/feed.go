package outcomes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FeedEvent is one line of a commissioner's pseudonymised feed. It holds
// codes, bands, counts, dates of service events and scores, and nothing a
// person typed or that identifies them: see model.apply for how each field
// is restricted to its value set.
type FeedEvent struct {
	// Cursor is the line's position in the feed: pass it as after= to
	// read on from it. Set when the line is read, not stored.
	Cursor string    `json:"cursor,omitempty"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`
	// Journey and Person are keyed pseudonyms: one person links across
	// journeys within the deployment, and nowhere else.
	Journey           string `json:"journey"`
	Person            string `json:"person,omitempty"`
	AgeBand           string `json:"age_band,omitempty"`
	Sex               string `json:"sex,omitempty"`
	DeprivationDecile *int   `json:"deprivation_decile,omitempty"`
	Practice          string `json:"practice,omitempty"`
	Team              string `json:"team"`

	Source           string             `json:"source,omitempty"`
	Urgency          string             `json:"urgency,omitempty"`
	Reasons          []string           `json:"reasons,omitempty"`
	Outcome          string             `json:"outcome,omitempty"`
	Method           string             `json:"method,omitempty"`
	DaysFromReferral *float64           `json:"days_from_referral,omitempty"`
	Needs            []string           `json:"needs,omitempty"`
	Barriers         []string           `json:"barriers,omitempty"`
	Goals            int                `json:"goals,omitempty"`
	Status           string             `json:"status,omitempty"`
	Instrument       string             `json:"instrument,omitempty"`
	Timepoint        string             `json:"timepoint,omitempty"`
	Score            *float64           `json:"score,omitempty"`
	Change           *float64           `json:"change,omitempty"`
	Items            map[string]int32   `json:"items,omitempty"`
	ItemChanges      map[string]float64 `json:"item_changes,omitempty"`
	Service          string             `json:"service,omitempty"`
	Organisation     string             `json:"organisation,omitempty"`
	WaitingList      bool               `json:"waiting_list,omitempty"`
	Reason           string             `json:"reason,omitempty"`
	Attended         *bool              `json:"attended,omitempty"`
	SessionDate      string             `json:"session_date,omitempty"`
	Due              string             `json:"due,omitempty"`
}

// The feed stream holds every commissioner's feed, one subject per
// commissioner and event type, so a commissioner's own system can follow
// lw.feed.outcomes.<commissioner>.> over NATS with credentials limited to
// it, and the HTTP feed reads the same messages.
const (
	FeedStream        = "OUTCOMES_FEED"
	FeedSubjectPrefix = "lw.feed.outcomes."
	// headerSourceSeq is the JOURNEYS sequence a feed message was made
	// from: a replay of the log skips what the feed already holds.
	headerSourceSeq = "Lw-Source-Seq"
)

// FeedSubject is the subject of one commissioner's events of one type.
func FeedSubject(commissioner, eventType string) string {
	return FeedSubjectPrefix + commissioner + "." + eventType
}

// feed publishes and reads the feed stream.
type feed struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	// published is the JOURNEYS sequence from which lines are to be
	// published: one past the last in the feed, or that last one itself
	// at start-up (when some commissioners' copies may be missing).
	published uint64
	metrics   *metrics
}

func openFeed(ctx context.Context, js jetstream.JetStream, replicas int) (*feed, error) {
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        FeedStream,
		Description: "Linkway commissioners' pseudonymised outcome feeds",
		Subjects:    []string{FeedSubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  10 * time.Minute,
		DenyDelete:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("feed stream: %w", err)
	}
	f := &feed{js: js, stream: s}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("feed stream: %w", err)
	}
	if last := info.State.LastSeq; last > 0 {
		msg, err := s.GetMsg(ctx, last)
		if err != nil {
			return nil, fmt.Errorf("feed stream last message: %w", err)
		}
		f.published, _ = strconv.ParseUint(msg.Header.Get(headerSourceSeq), 10, 64)
	}
	return f, nil
}

// wants reports whether the event at a JOURNEYS sequence may still need
// publishing.
func (f *feed) wants(seq uint64) bool { return seq >= f.published }

// publish appends a line to each commissioner's feed. Lines the feed
// already holds (a replay of the log after a restart) are skipped: those
// before its last message by sequence, and for that last event, each
// commissioner's copy found on its subject, since a stop can fall between
// two commissioners' copies of one event.
func (f *feed) publish(ctx context.Context, seq uint64, commissioners []string, ev *FeedEvent) error {
	if seq < f.published || len(commissioners) == 0 {
		return nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	for _, c := range commissioners {
		if seq == f.published {
			last, err := f.stream.GetLastMsgForSubject(ctx, FeedSubject(c, ev.Type))
			if err == nil && last.Header.Get(headerSourceSeq) == strconv.FormatUint(seq, 10) {
				continue
			}
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("outcome feed: %w", err)
			}
		}
		msg := nats.NewMsg(FeedSubject(c, ev.Type))
		msg.Data = data
		msg.Header.Set(headerSourceSeq, strconv.FormatUint(seq, 10))
		msg.Header.Set(nats.MsgIdHdr, c+":"+strconv.FormatUint(seq, 10))
		if err := f.publishOnce(ctx, msg); err != nil {
			return fmt.Errorf("publish to the outcome feed: %w", err)
		}
		if f.metrics != nil {
			f.metrics.published.WithLabelValues(ev.Type).Inc()
		}
	}
	f.published = seq + 1
	return nil
}

// read returns up to limit lines of a commissioner's feed after cursor.
func (f *feed) read(ctx context.Context, commissioner string, after uint64, limit int) ([]FeedEvent, error) {
	info, err := f.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	if after >= info.State.LastSeq {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{FeedSubjectPrefix + commissioner + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	}
	cons, err := f.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var out []FeedEvent
	for len(out) < limit {
		batch, err := cons.FetchNoWait(limit - len(out))
		if err != nil {
			return nil, err
		}
		var pending uint64
		got := 0
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			var ev FeedEvent
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				return nil, fmt.Errorf("feed message %d: %w", meta.Sequence.Stream, err)
			}
			ev.Cursor = strconv.FormatUint(meta.Sequence.Stream, 10)
			out = append(out, ev)
			pending = meta.NumPending
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if got == 0 || pending == 0 {
			break
		}
	}
	return out, nil
}

// errDuplicateInProcess (10158) answers a publish whose message id another
// replica is storing at that moment: its outcome is not known yet.
const errDuplicateInProcess = 10158

// publishOnce publishes a feed line, trying again until the stream says
// stored or duplicate: every replica publishes every line (the view is
// local to each) under one message id, so another replica's copy may be in
// the middle of being stored (10158), and while NATS elects a leader the
// publish fails (503, timeouts). A slow feed is better than a stopped hub:
// an error from Apply would stop the process.
func (f *feed) publishOnce(ctx context.Context, msg *nats.Msg) error {
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := f.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode != errDuplicateInProcess && apiErr.Code < 500 {
			return err // refused for good (a 4xx other than 10158)
		}
		if f.metrics != nil {
			f.metrics.publishRetries.Inc()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(attempt, 20)) * 50 * time.Millisecond):
		}
	}
}
