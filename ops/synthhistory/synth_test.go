package synthhistory_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/ops/synthhistory"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
)

// TestGenerate writes a small history on a real server: every journey
// follows the rules (Execute refuses anything else), the proportions are
// there, and a rerun with the same seed appends nothing.
func TestGenerate(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx := context.Background()
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := synthhistory.DefaultConfig()
	cfg.Journeys, cfg.Concurrency = 400, 16
	var progressed uint64
	cfg.Progress = func(j, _ uint64) { progressed = max(progressed, j) }
	st, err := synthhistory.Generate(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Journeys != 400 || progressed != 400 {
		t.Fatalf("%d journeys, progress to %d: want 400", st.Journeys, progressed)
	}
	if per := float64(st.Events) / float64(st.Journeys); per < 7 || per > 20 {
		t.Errorf("%.1f events a journey: want roughly ten", per)
	}
	for _, k := range []string{"declined_before_contact", "declined_after_contact", "closed_uncontactable", "closed_goals_met",
		"onward_accepted", "onward_completed", "onward_dropped_out", "onward_declined_no_capacity", "reopened"} {
		if st.Outcomes[k] == 0 {
			t.Errorf("no %s in 400 journeys: %v", k, st.Outcomes)
		}
	}
	again, err := synthhistory.Generate(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.Events != 0 {
		t.Errorf("a rerun with the same seed appended %d events", again.Events)
	}
}

// recorder passes every command to the real store and notes what the
// history said: when each step was dated, who referred, to which team.
type recorder struct {
	store *journal.Store
	mu    sync.Mutex
	last  time.Time
	refs  map[string]int // referrer -> journeys
	teams map[string]int
	ids   []string
}

func (r *recorder) Execute(ctx context.Context, id string, meta journal.Meta, cmd events.Command) (journal.Result, error) {
	r.mu.Lock()
	if meta.OccurredAt.After(r.last) {
		r.last = meta.OccurredAt
	}
	if ref, ok := cmd.(events.Refer); ok {
		r.refs[ref.Referral.ReferrerOrganisationId]++
		r.teams[ref.Referral.LinkWorkTeam]++
		r.ids = append(r.ids, id)
	}
	r.mu.Unlock()
	return r.store.Execute(ctx, id, meta, cmd)
}

// TestDemo writes the --demo history on a real server: a year to now from
// the demo referrers to the demo team, nothing dated after now, and only
// the last few days' journeys still open (so the caseload's first page has
// room for a visitor's referrals).
func TestDemo(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx := context.Background()
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	cfg := synthhistory.Demo(600, now)
	rec := &recorder{store: store, refs: map[string]int{}, teams: map[string]int{}}
	st, err := synthhistory.Generate(ctx, rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Journeys != 600 || len(rec.ids) != 600 {
		t.Fatalf("%d journeys written, %d referred: want 600", st.Journeys, len(rec.ids))
	}
	if rec.last.After(now) {
		t.Errorf("a step dated %s, after now (%s)", rec.last, now)
	}
	if len(rec.teams) != 1 || rec.teams["U12345"] != 600 {
		t.Errorf("teams %v: want every journey with U12345", rec.teams)
	}
	for ref := range rec.refs {
		if !slices.Contains(synthhistory.DemoReferrers, ref) {
			t.Errorf("referred by %s, not one of %v", ref, synthhistory.DemoReferrers)
		}
	}
	if rec.refs["A81001"] != 0 || rec.refs["A81002"] == 0 {
		t.Errorf("referrers %v: want Hillside (A81002) among them and Riverside (A81001) left for the visitor", rec.refs)
	}
	var open, earliest int
	for _, id := range rec.ids {
		s, _, err := store.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.ReferredAt.Before(now.AddDate(-1, 0, -1)) {
			earliest++
		}
		if s.Closed || s.Declined {
			continue
		}
		open++
		if now.Sub(s.ReferredAt) > cfg.Recent {
			t.Errorf("journey referred %s ago still open: only the last %s's should be", now.Sub(s.ReferredAt), cfg.Recent)
		}
	}
	if open == 0 || open > 600/20 || uint64(open) != st.Outcomes["still_open"] {
		t.Errorf("%d journeys open (stats say %d): want a few, under 5%%", open, st.Outcomes["still_open"])
	}
	if earliest != 0 {
		t.Errorf("%d journeys referred more than a year ago", earliest)
	}
}
