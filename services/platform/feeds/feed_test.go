package feeds

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/natsserver"
)

// TestAPublisherBehindTheFeedIsRefused: two publishers that both read the
// feed empty (a lease changing hands, or one publisher's publish that
// timed out and landed after all) send the same outbox entries. The
// stream takes them once; the publisher behind is refused, nothing of its
// publish is stored, and once it has read where the feed stands it goes on
// from there.
func TestAPublisherBehindTheFeedIsRefused(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx := context.Background()
	spec := Spec{Stream: "FEED_TEST", Prefix: "lw.feed.test.", Lease: "feed_test", Title: "the test feed"}
	f, err := Open(ctx, js, spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	entries := []Message{
		{Subject: "lw.feed.test.O1.j1.made", MsgID: "e1", EventID: "e1", Event: "made", Body: []byte(`{"n":1}`)},
		{Subject: "lw.feed.test.O1.j1.accepted", MsgID: "e2", EventID: "e2", Event: "accepted", Body: []byte(`{"n":2}`)},
		{Subject: "lw.feed.test.O1.j2.made", MsgID: "e3", EventID: "e3", Event: "made", Body: []byte(`{"n":3}`)},
	}
	pos := []Position{{Seq: 4}, {Seq: 7}, {Seq: 9}}
	// The same messages as b sends them: with other Nats-Msg-Ids, so that
	// the server's 100 ms duplicate window, which a quick test would be
	// inside, does not refuse them in place of the expected sequence.
	again := make([]Message, len(entries))
	for i, e := range entries {
		e.MsgID = "again-" + e.MsgID
		again[i] = e
	}
	a := &publisher{feed: f, nc: js.Conn()}
	b := &publisher{feed: f, nc: js.Conn()}
	for _, p := range []*publisher{a, b} {
		at, last, err := f.position(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at != (Position{}) || last != 0 {
			t.Fatalf("an empty feed stands at %+v, last sequence %d", at, last)
		}
		p.last = last
	}
	msgs := func() uint64 {
		t.Helper()
		s, err := js.Stream(ctx, spec.Stream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}
	refused := func(err error) bool {
		var apiErr *jetstream.APIError
		return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
	}

	// a publishes the first two as an atomic batch; b's same batch is refused.
	if err := a.send(ctx, entries[:2], pos[:2]); err != nil {
		t.Fatal(err)
	}
	if a.last != 2 {
		t.Errorf("after a batch of 2 the publisher knows the last sequence as %d, want 2", a.last)
	}
	if err := b.send(ctx, again[:2], pos[:2]); !refused(err) {
		t.Fatalf("a batch behind the feed: %v, want wrong last sequence", err)
	}
	if n := msgs(); n != 2 {
		t.Fatalf("the stream holds %d messages, want 2", n)
	}

	// b reads where the feed stands and goes on with the third, alone.
	at, last, err := f.position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at != pos[1] || last != 2 {
		t.Fatalf("the feed stands at %+v, last sequence %d; want %+v, 2", at, last, pos[1])
	}
	b.last = last
	if err := b.send(ctx, entries[2:], pos[2:]); err != nil {
		t.Fatal(err)
	}
	// a, now behind, cannot publish the third again, alone or in a batch.
	if err := a.send(ctx, again[2:], pos[2:]); !refused(err) {
		t.Fatalf("a lone publish behind the feed: %v, want wrong last sequence", err)
	}
	if err := a.send(ctx, again[1:], pos[1:]); !refused(err) {
		t.Fatalf("a batch behind the feed: %v, want wrong last sequence", err)
	}
	if n := msgs(); n != 3 {
		t.Fatalf("the stream holds %d messages, want 3", n)
	}
	if at, err := f.Mark(ctx); err != nil || at != pos[2] {
		t.Fatalf("the feed's mark: %+v, %v; want %+v", at, err, pos[2])
	}
}
