package outcomes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/ctxwait"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// FeedEvent is one line of a commissioner's pseudonymised feed. It holds
// codes, bands, counts, dates of service events and scores, and nothing a
// person typed or that identifies them: see projection.line for how each
// field is restricted to its value set.
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
	// Ethnicity is the NHS Data Dictionary ethnic category code (a
	// category, never more), when the referral gave one.
	Ethnicity string `json:"ethnicity,omitempty"`
	Practice  string `json:"practice,omitempty"`
	Team      string `json:"team"`
	// Source is who referred: gp, self or the referring agency's sector.
	Source string `json:"source,omitempty"`

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
	// from: the feed's own high-water mark.
	headerSourceSeq = "Lw-Source-Seq"
)

// FeedSubject is the subject of one commissioner's events of one type.
func FeedSubject(commissioner, eventType string) string {
	return FeedSubjectPrefix + commissioner + "." + eventType
}

// feed publishes the outcome feed from the view's outbox and reads it
// back for the HTTP feed.
//
// Every replica's projection writes the lines of new events to its own
// outbox, in the same batch as the view's checkpoint, so a crash loses
// none. One replica at a time (the holder of the lease) publishes them,
// pipelined in batches, from the feed's high-water mark: the Lw-Source-Seq
// of the feed's last message. Lines at or below it are never written to
// an outbox again, so a rebuild of the view publishes nothing twice.
type feed struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	views   Views
	commish func(team string) []string
	log     *slog.Logger
	metrics *metrics
	leases  Leases // nil: this process runs alone

	// hwm is the highest JOURNEYS sequence whose lines the feed holds (as
	// far as this replica knows); processed the highest up to which this
	// replica, publishing, has sent every line of the committed view.
	hwm, processed atomic.Uint64
	leader         atomic.Bool
	// next is the first sequence the publisher reads from the outbox, and
	// boundary the mark it started from (whose line some commissioners
	// may hold already). Used by run's goroutine only.
	next, boundary uint64

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when hwm or processed moves
}

// feedBatch is the most messages published before waiting for their acks.
const feedBatch = 512

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
	f := &feed{js: js, stream: s, changed: make(chan struct{})}
	if err := f.refresh(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// from is the first JOURNEYS sequence whose lines may still need
// publishing. The boundary itself is included: a stop can fall between
// two commissioners' copies of one event's line.
func (f *feed) from() uint64 { return f.hwm.Load() }

// refresh reads the high-water mark from the feed's last message.
func (f *feed) refresh(ctx context.Context) error {
	info, err := f.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("feed stream: %w", err)
	}
	if info.State.LastSeq == 0 {
		return nil
	}
	msg, err := f.stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		return fmt.Errorf("feed stream last message: %w", err)
	}
	seq, _ := strconv.ParseUint(msg.Header.Get(headerSourceSeq), 10, 64)
	f.advance(&f.hwm, seq)
	return nil
}

// advance moves a mark forward (never back) and wakes the waiters.
func (f *feed) advance(mark *atomic.Uint64, to uint64) {
	for {
		cur := mark.Load()
		if to <= cur {
			return
		}
		if mark.CompareAndSwap(cur, to) {
			break
		}
	}
	if mark == &f.hwm && f.metrics != nil {
		f.metrics.feedSeq.Set(float64(to))
	}
	if mark == &f.processed && f.metrics != nil {
		f.metrics.feedThrough.Set(float64(to))
	}
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *feed) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *feed) view() *viewstore.View { return f.views.View(ProjectionName) }

// feedLease names the lease of the feed's publisher.
const feedLease = "outcomes_feed"

// run publishes while this replica holds the feed's lease, and otherwise
// follows the feed's high-water mark (so its outbox stays small), until
// ctx ends. It waits for the process's reader first: a tool that builds
// the parties without one (rebuild, snapshot) publishes nothing.
func (f *feed) run(ctx context.Context) error {
	for {
		err := f.views.WaitFor(ctx, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, views.ErrNotStarted) || !ctxwait.Sleep(ctx, time.Second) {
			return nil
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for ctxwait.Sleep(ctx, 2*time.Second) {
			if !f.leader.Load() {
				if err := f.refresh(ctx); err != nil && ctx.Err() == nil {
					f.log.Warn("outcome feed: reading its high-water mark failed", "err", err)
				}
			}
		}
	})
	if f.leases == nil {
		return f.lead(ctx) // alone: nobody else publishes
	}
	return f.leases.Hold(ctx, feedLease, f.lead)
}

// lead publishes until ctx ends (the lease is lost, or the process stops).
func (f *feed) lead(ctx context.Context) error {
	f.leader.Store(true)
	defer f.leader.Store(false)
	// Newly the publisher: the feed's own mark is the truth.
	for failures := 1; ; failures++ {
		err := f.refresh(ctx)
		if err == nil {
			break
		}
		if !ctxwait.Sleep(ctx, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)) {
			return nil
		}
	}
	f.boundary = f.hwm.Load()
	f.next = max(f.boundary, 1)
	f.log.Info("outcome feed: publishing from this replica", "from_seq", f.boundary)
	failures := 0
	for ctx.Err() == nil {
		if err := f.drain(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			if f.metrics != nil {
				f.metrics.publishRetries.Inc()
			}
			pause := min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)
			f.log.Warn("outcome feed: publishing failed; trying again", "err", err, "pause", pause)
			ctxwait.Sleep(ctx, pause)
			continue
		}
		failures = 0
		// Until the view moves on.
		_ = f.views.WaitFor(ctx, f.processed.Load()+1, ProjectionName)
	}
	return nil
}

// drain publishes every outbox line of the committed view above the
// high-water mark, in pipelined batches.
func (f *feed) drain(ctx context.Context) error {
	cp, err := f.view().Checkpoint()
	if err != nil {
		return err
	}
	for {
		lines, err := f.pending(f.next, cp, feedBatch)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			break
		}
		if err := f.publish(ctx, lines); err != nil {
			return err
		}
		f.next = lines[len(lines)-1].seq + 1
		if ctx.Err() != nil {
			return ctx.Err() // the lease was lost, or the process stops
		}
	}
	f.advance(&f.processed, cp)
	return nil
}

// outboxLine is a line of the outbox.
type outboxLine struct {
	seq  uint64
	line FeedEvent
	raw  []byte
}

// pending reads up to about n outbox lines with from <= seq <= upTo.
func (f *feed) pending(from, upTo uint64, n int) ([]outboxLine, error) {
	var out []outboxLine
	errEnough := errors.New("enough")
	for block := from / outboxBlock; block <= upTo/outboxBlock && len(out) < n; block++ {
		err := f.view().ForEach(outboxBlockPrefix(block), func(key string, value []byte) error {
			seq, err := strconv.ParseUint(key[len(outboxBlockPrefix(block)):], 10, 64)
			if err != nil || seq < from {
				return nil
			}
			if seq > upTo || len(out) >= n {
				return errEnough
			}
			var l outboxLine
			if err := json.Unmarshal(value, &l.line); err != nil {
				return fmt.Errorf("outbox line %d: %w", seq, err)
			}
			l.seq, l.raw = seq, append([]byte(nil), value...)
			out = append(out, l)
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
	}
	return out, nil
}

// publish sends lines to each commissioner's feed, asynchronously, then
// waits for every ack before moving the high-water mark. A line's message
// id is the commissioner and its JOURNEYS sequence, so sending it again
// after a failure (or by two replicas while a lease changes hands) stores
// it once within the stream's duplicate window. For the line at the mark
// the publisher started from, the copies already in the feed are looked
// up and skipped.
func (f *feed) publish(ctx context.Context, lines []outboxLine) error {
	mark := f.boundary
	var futures []jetstream.PubAckFuture
	var types []string
	for _, l := range lines {
		for _, c := range f.commish(l.line.Team) {
			if l.seq == mark && mark > 0 {
				last, err := f.stream.GetLastMsgForSubject(ctx, FeedSubject(c, l.line.Type))
				if err == nil && last.Header.Get(headerSourceSeq) == strconv.FormatUint(l.seq, 10) {
					continue
				}
				if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					return fmt.Errorf("outcome feed: %w", err)
				}
			}
			msg := nats.NewMsg(FeedSubject(c, l.line.Type))
			msg.Data = l.raw
			msg.Header.Set(headerSourceSeq, strconv.FormatUint(l.seq, 10))
			msg.Header.Set(nats.MsgIdHdr, c+":"+strconv.FormatUint(l.seq, 10))
			fut, err := f.js.PublishMsgAsync(msg)
			if err != nil {
				return fmt.Errorf("publish to the outcome feed: %w", err)
			}
			futures, types = append(futures, fut), append(types, l.line.Type)
		}
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i, fut := range futures {
		select {
		case <-fut.Ok():
			if f.metrics != nil {
				f.metrics.published.WithLabelValues(types[i]).Inc()
			}
		case err := <-fut.Err():
			return fmt.Errorf("publish to the outcome feed: %w", err)
		case <-timeout.C:
			return errors.New("publish to the outcome feed: no acknowledgement in 30s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.advance(&f.hwm, lines[len(lines)-1].seq)
	return nil
}

// waitPublished waits, bounded by ctx, until every line of the committed
// view up to JOURNEYS sequence seq is in the feed: at once on the
// publishing replica when it has drained that far; elsewhere when the
// feed's mark passes the last such line in this replica's outbox.
func (f *feed) waitPublished(ctx context.Context, seq uint64) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := f.changes()
		if f.processed.Load() >= seq {
			return nil
		}
		if !f.leader.Load() {
			if err := f.refresh(ctx); err != nil {
				return err
			}
			hwm := f.hwm.Load()
			lines, err := f.pending(hwm+1, seq, 1)
			if err != nil {
				return err
			}
			if len(lines) == 0 {
				return nil
			}
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
