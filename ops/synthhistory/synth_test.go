package synthhistory_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
