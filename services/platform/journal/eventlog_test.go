package journal_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
)

func openStore(t testing.TB) (*journal.Store, jetstream.JetStream) {
	t.Helper()
	_, js := natsserver.Test(t)
	s, err := journal.Open(context.Background(), js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func refer(sourceID string) events.Refer {
	return events.Refer{Referral: &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: "A81001", SourceId: sourceID, LinkWorkTeam: "U12345",
		Person:  &eventsv1.PersonalData{NhsNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe"},
		Reasons: []string{"422650009"}, Consent: &eventsv1.Consent{ShareWithVcs: true},
	}}
}

// started returns a journey that has been referred, assigned and reached.
func started(t testing.TB, s *journal.Store) string {
	t.Helper()
	ctx := context.Background()
	id := events.NewID()
	for _, c := range []events.Command{refer(id), events.Assign{WorkerID: "w", WorkerName: "W"},
		events.RecordContact{Outcome: "reached"}} {
		if _, err := s.Execute(ctx, id, journal.Meta{}, c); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// rawHistory reads a journey's subject straight from the stream, bypassing
// the store and its cache.
func rawHistory(t *testing.T, js jetstream.JetStream, id string) []*eventsv1.Envelope {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, events.JourneyStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.JourneyFilter(id)}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.Envelope
	for n := info.NumPending; n > 0; {
		batch, err := c.Fetch(int(n))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			env, err := journal.Decode(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
			n--
		}
	}
	return out
}

func TestConcurrentCommandsLoseNoUpdate(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	id := started(t, s)
	const writers = 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			_, err := s.Execute(context.Background(), id, journal.Meta{}, events.ScheduleFollowUp{
				FollowUpID: fmt.Sprintf("f%02d", i), Due: "2027-01-01"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a writer failed: %v", err)
		}
	}
	hist := rawHistory(t, js, id)
	state := events.Fold(hist)
	if len(state.FollowUps) != writers {
		t.Fatalf("%d follow-ups recorded, want %d (lost or doubled updates)", len(state.FollowUps), writers)
	}
	seen := map[string]bool{}
	for _, f := range state.FollowUps {
		if seen[f.ID] {
			t.Errorf("follow-up %s recorded twice", f.ID)
		}
		seen[f.ID] = true
	}
	if len(hist) != 3+writers {
		t.Errorf("history has %d events, want %d", len(hist), 3+writers)
	}
}

func TestSameIdempotencyKeyAppendsOnce(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := context.Background()
	id := started(t, s)
	meta := journal.Meta{IdempotencyKey: "req-1"}
	first, err := s.Execute(ctx, id, meta, events.ScheduleFollowUp{FollowUpID: "f1", Due: "2027-01-01"})
	if err != nil || len(first.Events) != 1 || first.Replayed {
		t.Fatalf("first: %+v, %v", first, err)
	}
	// The retry carries another follow-up id, as a client that built its
	// command again would: the key, not the body, makes it the same request.
	again, err := s.Execute(ctx, id, meta, events.ScheduleFollowUp{FollowUpID: "f2", Due: "2027-01-01"})
	if err != nil || !again.Replayed || len(again.Events) != 1 {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if again.Events[0].Event.GetEventId() != first.Events[0].Event.GetEventId() {
		t.Error("the retry did not return the original event")
	}
	// A store with an empty cache (another replica, or after a restart)
	// finds the key in the journey's history.
	other, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	third, err := other.Execute(ctx, id, meta, events.ScheduleFollowUp{FollowUpID: "f3", Due: "2027-01-01"})
	if err != nil || !third.Replayed {
		t.Fatalf("from another store: %+v, %v", third, err)
	}
	if n := len(events.Fold(rawHistory(t, js, id)).FollowUps); n != 1 {
		t.Errorf("%d follow-ups, want 1", n)
	}
}

func TestConcurrentReferralsCreateOneJourney(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	id := events.ReferralJourneyID("A81001", "EMIS-42")
	var wg sync.WaitGroup
	var mu sync.Mutex
	appended := 0
	for range 20 {
		wg.Go(func() {
			res, err := s.Execute(context.Background(), id, journal.Meta{}, refer("EMIS-42"))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			appended += len(res.Events)
			mu.Unlock()
		})
	}
	wg.Wait()
	if appended != 1 {
		t.Errorf("%d appends reported, want 1", appended)
	}
	if n := len(rawHistory(t, js, id)); n != 1 {
		t.Errorf("%d events on the journey, want 1", n)
	}
}

// TestRetriedAppendWithStaleSequence is the trap of DESIGN.md: a retry that
// carries the same Nats-Msg-Id and the now stale expected sequence is
// answered "wrong last sequence", not as a duplicate. The store must see
// that its own message is the journey's last and report success.
func TestRetriedAppendWithStaleSequence(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := context.Background()
	id := started(t, s)
	_, hist, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1].Seq

	// The first try reaches the server, but its acknowledgement is "lost":
	// it is published here by hand with the id the store would use.
	data, err := proto.Marshal(events.Wrap(&eventsv1.FollowUpScheduled{FollowUpId: "f1", Due: "2027-01-01"}))
	if err != nil {
		t.Fatal(err)
	}
	msgID := journal.MsgIDBase(id, "req-7") + "/0"
	msg := &nats.Msg{Subject: events.JourneySubject(id), Data: data}
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(last)); err != nil {
		t.Fatal(err)
	}
	// The raw retry shows the trap itself.
	_, err = js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequencePerSubject(last))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("raw retry: %v, want wrong last sequence (10071)", err)
	}
	// The store's retry of the same request recognises its own append.
	res, err := s.Execute(ctx, id, journal.Meta{IdempotencyKey: "req-7"}, events.ScheduleFollowUp{FollowUpID: "f1", Due: "2027-01-01"})
	if err != nil || !res.Replayed {
		t.Fatalf("store retry: %+v, %v", res, err)
	}
	if n := len(events.Fold(rawHistory(t, js, id)).FollowUps); n != 1 {
		t.Errorf("%d follow-ups, want 1", n)
	}
}

func TestRefusedCommandAppendsNothing(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := context.Background()
	id := started(t, s)
	if _, err := s.Execute(ctx, id, journal.Meta{}, events.Close{Reason: "goals_met"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Execute(ctx, id, journal.Meta{}, events.Close{Reason: "goals_met"})
	if events.ErrorCode(err) != events.CodeFailedPrecondition {
		t.Fatalf("second close: %v, want failed_precondition", err)
	}
	if n := len(rawHistory(t, js, id)); n != 4 {
		t.Errorf("%d events, want 4", n)
	}
	if _, err := s.Execute(ctx, "lw.journey.>", journal.Meta{}, events.Close{Reason: "goals_met"}); events.ErrorCode(err) != events.CodeNotFound {
		t.Errorf("a wildcard id: %v, want not_found", err)
	}
	if _, err := s.Execute(ctx, events.NewID(), journal.Meta{}, events.Close{Reason: "goals_met"}); events.ErrorCode(err) != events.CodeNotFound {
		t.Errorf("an unknown journey: %v, want not_found", err)
	}
}

func TestLoadSeesOtherWriters(t *testing.T) {
	t.Parallel()
	a, js := openStore(t)
	b, err := journal.Open(context.Background(), js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := started(t, a)
	if _, err := b.Execute(ctx, id, journal.Meta{}, events.Close{Reason: "moved_away"}); err != nil {
		t.Fatal(err)
	}
	st, hist, err := a.Load(ctx, id) // a has the journey cached before the close
	if err != nil || st.Status() != events.StatusClosed || len(hist) != 4 {
		t.Errorf("a sees %s with %d events (%v), want closed with 4", st.Status(), len(hist), err)
	}
}
