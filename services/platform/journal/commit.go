package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// The group committer. A command is decided by its caller (on the journey
// as it will be once this process's earlier commands on it have landed)
// and queued as a pending append; one committer goroutine, started when
// the queue fills and ending when it empties, takes everything queued per
// round. Many waiting messages go as one atomic batch (one fsync for all);
// few go as plain publishes, sent together and acknowledged one by one. A
// failed batch is published again one by one, so that a conflict fails
// only its own command. Commands on one journey form a chain: only the
// first in a batch carries the expected last subject sequence (the batch
// is atomic, so the others need none), and when one fails the ones decided
// on it fail too (errChainBroken) and are decided again.

// Headers of JetStream atomic batch publishing (nats-server 2.12 on).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// outMsg is one event ready for the log.
type outMsg struct {
	env   *eventsv1.Envelope // the plain event, as this process keeps it
	event string             // its full name
	data  []byte             // as stored: personal data sealed
	msgID string
	// keyID is the person key a referral took; headers tie it to the
	// person on the log (from the sealer).
	keyID   string
	headers map[string]string
}

// pending is one command's append, from its decision to its answer.
type pending struct {
	journeyID string
	subject   string
	msgs      []outMsg
	// prev is this process's command before it on the journey, still
	// unresolved when this one was decided on its outcome; base is the
	// landed journey it was decided on when there was none.
	prev *pending
	base *journey
	// after is the journey as it will be once this lands (its own records
	// without sequences yet).
	after *journey

	// Set by the committer before done is closed.
	final *journey
	recs  []Recorded
	err   error
	done  chan struct{}
}

// lane queues the commands of one journey in this process.
type lane struct {
	mu   sync.Mutex // held while a command on the journey is decided and queued
	last *pending   // the last command queued
	refs int        // guarded by Store.mu
}

func (s *Store) acquireLane(id string) *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lanes[id]
	if l == nil {
		l = &lane{}
		s.lanes[id] = l
	}
	l.refs++
	return l
}

func (s *Store) releaseLane(id string, l *lane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(s.lanes, id)
	}
}

// committer is the queue of pending appends and the rounds out.
type committer struct {
	mu       sync.Mutex
	queue    []*pending
	running  bool // a dispatcher goroutine is running
	inflight int  // rounds published and not yet answered
	// wake tells the dispatcher that a command was queued or a round
	// ended.
	wake chan struct{}
	// hold, while set, stops rounds from starting (tests gather a batch).
	hold chan struct{}
}

// enqueue queues p for the committer. When nothing is queued or out it
// queues nothing and returns true: the caller publishes p itself
// (commitInline), sparing a lone command the hand-offs between goroutines.
func (s *Store) enqueue(p *pending) (inline bool) {
	c := &s.commits
	c.mu.Lock()
	if !c.running && c.hold == nil {
		c.running = true
		c.inflight++
		c.mu.Unlock()
		return true
	}
	c.queue = append(c.queue, p)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		go s.dispatch()
	} else {
		c.signal()
	}
	return false
}

// commitInline publishes a command its caller was told to publish itself,
// then hands what queued meanwhile to a dispatcher.
func (s *Store) commitInline(p *pending) {
	s.oneByOne([]*pending{p})
	c := &s.commits
	c.mu.Lock()
	c.inflight--
	if len(c.queue) == 0 {
		c.running = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go s.dispatch()
}

func (c *committer) signal() {
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// dispatch publishes what is queued, round after round, until nothing is
// queued or out. While a round is out, new commands gather for the next:
// the busier it is, the bigger the batches, with no timer. A second round
// goes out beside the first (up to MaxInflight) only when it is big
// enough to be a batch: the server stages one batch while it commits
// another.
func (s *Store) dispatch() {
	c := &s.commits
	for {
		c.mu.Lock()
		hold := c.hold
		c.mu.Unlock()
		if hold != nil {
			<-hold
		}
		c.mu.Lock()
		if len(c.queue) == 0 && c.inflight == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		var round []*pending
		msgs := 0
		if c.inflight < s.cfg.MaxInflight {
			round, msgs = c.take(s.cfg.MaxBatch)
			if c.inflight > 0 && msgs < s.cfg.MinBatch {
				c.queue = append(round, c.queue...) // wait for more
				round = nil
			}
		}
		if len(round) == 0 {
			c.mu.Unlock()
			<-c.wake
			continue
		}
		c.inflight++
		c.mu.Unlock()
		go func() {
			if msgs >= s.cfg.MinBatch {
				s.commitBatch(round)
			} else {
				s.oneByOne(round)
			}
			c.mu.Lock()
			c.inflight--
			c.mu.Unlock()
			c.signal()
		}()
	}
}

// take removes from the queue, in order, the commands that can go out
// now, up to max messages: those whose predecessor on the journey has been
// answered or goes in the same round. A command behind a round still out
// waits, and so do the ones decided on it.
func (c *committer) take(max int) ([]*pending, int) {
	var round, rest []*pending
	in := map[*pending]bool{}
	msgs := 0
	for i, p := range c.queue {
		if len(round) > 0 && msgs+len(p.msgs) > max {
			rest = append(rest, c.queue[i:]...)
			break
		}
		if p.prev != nil && !resolved(p.prev) && !in[p.prev] {
			rest = append(rest, p)
			continue
		}
		round = append(round, p)
		in[p] = true
		msgs += len(p.msgs)
	}
	c.queue = rest
	return round, msgs
}

// commitBatch publishes a round as one atomic batch; if the batch fails
// (a conflict, a duplicate, an incomplete batch), one by one.
func (s *Store) commitBatch(round []*pending) {
	live := make([]*pending, 0, len(round))
	for _, p := range round {
		if p.prev != nil && resolved(p.prev) && p.prev.err != nil {
			s.fail(p, errChainBroken)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	seqs, err := s.publishBatch(live)
	if err == nil {
		s.metrics.batches.WithLabelValues("batch", "ok").Inc()
		for i, p := range live {
			s.succeed(p, seqs[i])
		}
		return
	}
	s.metrics.batches.WithLabelValues("batch", "failed").Inc()
	s.oneByOne(live)
}

// oneByOne publishes a round message by message, in waves: each wave is
// every command whose predecessor has landed, published together; a
// command whose predecessor failed fails too.
func (s *Store) oneByOne(round []*pending) {
	for rest := round; len(rest) > 0; {
		var wave, next []*pending
		for _, p := range rest {
			switch {
			case p.prev == nil:
				wave = append(wave, p)
			case !resolved(p.prev):
				next = append(next, p)
			case p.prev.err != nil:
				s.fail(p, errChainBroken)
			default:
				wave = append(wave, p)
			}
		}
		seqs := make([][]uint64, len(wave))
		errs := make([]error, len(wave))
		publish := func(i int) {
			p := wave[i]
			if len(p.msgs) > 1 {
				// A command of several events lands whole or not at all.
				var ss [][]uint64
				if ss, errs[i] = s.publishBatch([]*pending{p}); errs[i] == nil {
					seqs[i] = ss[0]
				}
				return
			}
			var seq uint64
			if seq, errs[i] = s.publishOne(p); errs[i] == nil {
				seqs[i] = []uint64{seq}
			}
		}
		if len(wave) == 1 {
			publish(0)
		} else {
			var wg sync.WaitGroup
			for i := range wave {
				wg.Go(func() { publish(i) })
			}
			wg.Wait()
		}
		for i, p := range wave {
			if errs[i] != nil {
				s.fail(p, errs[i])
			} else {
				s.succeed(p, seqs[i])
			}
		}
		rest = next
	}
}

func resolved(p *pending) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// expect is the journey's last sequence the command's first message
// expects: its landed predecessor's, or the journey it was decided on.
func (p *pending) expect() uint64 {
	if p.prev != nil {
		return p.prev.final.lastSeq
	}
	return p.base.lastSeq
}

func (m outMsg) natsMsg(subject string) *nats.Msg {
	h := nats.Header{}
	h.Set(HeaderEvent, m.event)
	h.Set(jetstream.MsgIDHeader, m.msgID)
	for k, v := range m.headers {
		h.Set(k, v)
	}
	return &nats.Msg{Subject: subject, Data: m.data, Header: h}
}

// publishOne publishes a command of one message as a plain publish.
func (s *Store) publishOne(p *pending) (uint64, error) {
	msg := p.msgs[0].natsMsg(p.subject)
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.expect(), 10))
	start := time.Now()
	ack, err := s.request(msg)
	s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batches.WithLabelValues("plain", outcome(err)).Inc()
	if err != nil {
		return 0, err
	}
	if ack.Duplicate {
		// Stored before, by an earlier round of this request whose
		// acknowledgement was lost: the reload finds it.
		return 0, errDuplicate
	}
	return ack.Sequence, nil
}

// publishBatch publishes the messages of ps as one atomic batch and
// returns each command's sequences. Only a journey's first message in the
// batch carries the expected last subject sequence: the batch lands whole
// with nothing between its messages, and the server refuses the check on a
// subject the batch has already written.
func (s *Store) publishBatch(ps []*pending) ([][]uint64, error) {
	var msgs []*nats.Msg
	written := map[string]bool{}
	for _, p := range ps {
		for _, m := range p.msgs {
			msg := m.natsMsg(p.subject)
			if !written[p.journeyID] {
				msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.expect(), 10))
				written[p.journeyID] = true
			}
			msgs = append(msgs, msg)
		}
	}
	id := events.NewID()
	start := time.Now()
	for i, msg := range msgs {
		msg.Header.Set(headerBatchID, id)
		msg.Header.Set(headerBatchSeq, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			break
		}
		// Staged without an acknowledgement: a message the server could
		// not stage leaves a gap, and the commit then fails whole.
		if err := s.nc.PublishMsg(msg); err != nil {
			return nil, err
		}
	}
	last := msgs[len(msgs)-1]
	last.Header.Set(headerBatchCommit, "1")
	ack, err := s.request(last)
	s.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(len(msgs)))
	if err != nil {
		return nil, err
	}
	if ack.Count != 0 && ack.Count != len(msgs) {
		return nil, fmt.Errorf("atomic batch %s: %d messages acknowledged, %d sent", id, ack.Count, len(msgs))
	}
	seq := ack.Sequence - uint64(len(msgs)) + 1
	out := make([][]uint64, len(ps))
	for i, p := range ps {
		for range p.msgs {
			out[i] = append(out[i], seq)
			seq++
		}
	}
	return out, nil
}

// pubAck is the server's answer to a publish or a batch commit.
type pubAck struct {
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Sequence  uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
	Batch     string              `json:"batch,omitempty"`
	Count     int                 `json:"count,omitempty"`
}

// request publishes msg and waits for its acknowledgement. It does not
// take a caller's context: a round carries many callers' commands, and
// one giving up must not cut the others off.
func (s *Store) request(msg *nats.Msg) (pubAck, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	resp, err := s.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return pubAck{}, fmt.Errorf("%w: %w", jetstream.ErrNoStreamResponse, err)
		case errors.Is(err, context.DeadlineExceeded):
			// Our own bound, not a caller's: the log did not answer.
			return pubAck{}, fmt.Errorf("no acknowledgement within %s: %w", s.cfg.PublishTimeout, nats.ErrTimeout)
		}
		return pubAck{}, err
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return pubAck{}, fmt.Errorf("%w: %w", jetstream.ErrInvalidJSAck, err)
	}
	if ack.Error != nil {
		return pubAck{}, ack.Error
	}
	if ack.Stream == "" || ack.Sequence == 0 {
		return pubAck{}, jetstream.ErrInvalidJSAck
	}
	return ack, nil
}

// succeed resolves a command whose messages landed at seqs.
func (s *Store) succeed(p *pending, seqs []uint64) {
	base := p.base
	if p.prev != nil {
		base = p.prev.final
	}
	recs := make([]Recorded, len(p.msgs))
	for i, m := range p.msgs {
		recs[i] = Recorded{Seq: seqs[i], MsgID: m.msgID, Event: m.env}
		s.metrics.appends.WithLabelValues(m.event, "ok").Inc()
	}
	p.recs = recs
	p.final = &journey{id: p.journeyID, state: p.after.state, history: append(base.history[:len(base.history):len(base.history)], recs...),
		lastSeq: seqs[len(seqs)-1], keyID: p.after.keyID}
	p.prev, p.base = nil, nil
	s.remember(p.final)
	if s.cfg.Sealer != nil {
		for i, m := range p.msgs {
			h := nats.Header{}
			h.Set(HeaderEvent, m.event)
			for k, v := range m.headers {
				h.Set(k, v)
			}
			s.cfg.Sealer.Appended(seqs[i], p.journeyID, h)
		}
	}
	close(p.done)
}

// fail resolves a command that did not land.
func (s *Store) fail(p *pending, err error) {
	for _, m := range p.msgs {
		s.metrics.appends.WithLabelValues(m.event, outcome(err)).Inc()
	}
	if IsConflict(err) || errors.Is(err, errDuplicate) {
		s.forget(p.journeyID) // the journey moved on: reload it
	}
	p.err = err
	p.prev, p.base = nil, nil
	close(p.done)
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case IsConflict(err), errors.Is(err, errDuplicate), errors.Is(err, errChainBroken):
		return "conflict"
	}
	return "error"
}
