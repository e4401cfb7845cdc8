package journal_test

import (
	"sync"
	"testing"

	"linkway/events"
	"linkway/services/platform/journal"
)

func TestSuperviseAppendsToTheTeamsLog(t *testing.T) {
	s, js := openStore(t)
	ctx := t.Context()
	rec := func(worker, date, kind, key string) (journal.TeamResult, error) {
		return s.Supervise(ctx, journal.Meta{IdempotencyKey: key}, events.RecordSupervision{SupervisionID: events.NewID(),
			Team: "U12345", WorkerID: worker, Date: date, Kind: kind, Today: "2026-12-01"})
	}
	first, err := rec("lw-1", "2026-11-01", "clinical", "k1")
	if err != nil || len(first.Events) != 1 || first.Replayed || first.LastSeq == 0 || first.Log.LastSupervision("lw-1") != "2026-11-01" {
		t.Fatalf("first session: %+v %v", first, err)
	}
	again, err := rec("lw-1", "2026-11-01", "clinical", "k1")
	if err != nil || !again.Replayed || again.Events[0].Seq != first.LastSeq {
		t.Fatalf("the same key replays: %+v %v", again, err)
	}
	same, err := rec("lw-1", "2026-11-01", "clinical", "k2")
	if err != nil || len(same.Events) != 0 || same.LastSeq != first.LastSeq {
		t.Fatalf("the same session under a new key records nothing: %+v %v", same, err)
	}
	if _, err := rec("lw-1", "2026-12-05", "clinical", "k3"); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("a session after today: %v", err)
	}
	// Sessions recorded at once by several callers all land, in one log.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := rec("lw-2", "2026-11-0"+string(rune('1'+i)), "peer", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	last, err := rec("lw-3", "2026-11-30", "managerial", "")
	if err != nil || len(last.Log.Sessions) != 10 || last.Log.LastSupervision("lw-2") != "2026-11-08" {
		t.Fatalf("the log after concurrent sessions: %d sessions, %v", len(last.Log.Sessions), err)
	}
	// On the JOURNEYS stream, under the team's own subject.
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := events.SupervisionSubject("U12345")
	m, err := stream.GetLastMsgForSubject(ctx, subj)
	if err != nil || m.Sequence != last.LastSeq {
		t.Fatalf("last message on %s: %v %v", subj, m, err)
	}
	if _, err := s.Supervise(ctx, journal.Meta{}, events.RecordSupervision{Team: "U1.>", WorkerID: "x", Date: "2026-11-01", Kind: "peer"}); events.ErrorCode(err) != events.CodeInvalid {
		t.Fatalf("a team that is no organisation code: %v", err)
	}
}
