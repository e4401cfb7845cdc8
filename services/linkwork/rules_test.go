package linkwork

import (
	"testing"
	"time"

	"linkway/events"
)

func TestFollowUpState(t *testing.T) {
	today := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		due  string
		done bool
		want string
	}{
		{"2026-11-21", false, "overdue"},
		{"2026-01-01", false, "overdue"},
		{"2026-11-22", false, "due"},
		{"2026-11-29", false, "due"}, // a week ahead is still due
		{"2026-11-30", false, "scheduled"},
		{"2026-11-21", true, "done"},
		{"not a date", false, "scheduled"},
	} {
		if got := followUpState(c.due, c.done, today); got != c.want {
			t.Errorf("followUpState(%s, done %v) = %s, want %s", c.due, c.done, got, c.want)
		}
	}
}

func TestDirectionOfChange(t *testing.T) {
	for _, c := range []struct {
		change      float64
		lowerBetter bool
		want        string
	}{
		{3.1, false, "better"}, {-1, false, "worse"}, {0, false, "same"},
		{-2, true, "better"}, {2, true, "worse"}, {0, true, "same"},
	} {
		if got := direction(c.change, c.lowerBetter); got != c.want {
			t.Errorf("direction(%v, lower better %v) = %s, want %s", c.change, c.lowerBetter, got, c.want)
		}
	}
}

func TestPairMeasures(t *testing.T) {
	m := func(id, instrument, timepoint string, score float64, answers ...int32) MeasureResult {
		return MeasureResult{MeasureID: id, Instrument: instrument, Timepoint: timepoint, Score: score, RawScore: int32(score), Answers: answers}
	}
	got := pairMeasures([]MeasureResult{
		m("f0", "UCLA3", "follow_up", 5),           // before any baseline: nothing to compare with
		m("b1", "UCLA3", "baseline", 8),            // first baseline
		m("b2", "UCLA3", "baseline", 7),            // a second baseline does not replace the first
		m("f1", "UCLA3", "follow_up", 6),           // ...
		m("f2", "UCLA3", "follow_up", 4),           // the latest follow-up counts
		m("s1", "SWEMWBS", "baseline", 19.25),      // baseline only: no change yet
		m("o1", "ONS4", "baseline", 0, 4, 6, 8, 7), //
		m("o2", "ONS4", "follow_up", 0, 6, 6, 7, 3),
	})
	if len(got) != 3 {
		t.Fatalf("pairs: %+v", got)
	}
	byName := map[string]MeasureChange{}
	for _, c := range got {
		byName[c.Instrument] = c
	}
	u := byName["UCLA3"]
	if u.BaselineID != "b1" || u.FollowUpID != "f2" || *u.Baseline != 8 || *u.FollowUp != 4 || *u.Change != -4 || u.Direction != "better" {
		t.Errorf("UCLA3 (lower is better): %+v", u)
	}
	s := byName["SWEMWBS"]
	if s.FollowUpID != "" || s.Change != nil || *s.Baseline != 19.25 {
		t.Errorf("SWEMWBS baseline only: %+v", s)
	}
	o := byName["ONS4"]
	want := []ItemChange{{"life_satisfaction", 4, 6, 2, "better"}, {"worthwhile", 6, 6, 0, "same"},
		{"happiness", 8, 7, -1, "worse"}, {"anxiety", 7, 3, -4, "better"}}
	if o.Baseline != nil || len(o.Items) != 4 {
		t.Fatalf("ONS4: %+v", o)
	}
	for i := range want {
		if o.Items[i] != want[i] {
			t.Errorf("ONS4 item %d: %+v, want %+v", i, o.Items[i], want[i])
		}
	}
}

func TestBuildCaseloadRules(t *testing.T) {
	now := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return now.AddDate(0, 0, d) }
	ptr := func(t time.Time) *time.Time { return &t }
	policy := events.UncontactablePolicy{Attempts: 3, Within: 7 * 24 * time.Hour}
	entries := []caseEntry{
		// Routine, referred 10 days ago, never reached, three failed attempts within a week: flagged.
		{JourneyID: "a", Team: "T", Urgency: "routine", ReferredAt: day(-10), OpenedAt: day(-10), WorkerID: "w1", WorkerName: "Ann",
			AssignedAt: ptr(day(-9)), FailedAttempts: []time.Time{day(-8), day(-5), day(-2)}},
		// Three attempts spread over more than the window: not flagged.
		{JourneyID: "b", Team: "T", Urgency: "routine", ReferredAt: day(-30), OpenedAt: day(-30), WorkerID: "w1", WorkerName: "Ann",
			AssignedAt: ptr(day(-29)), FailedAttempts: []time.Time{day(-28), day(-15), day(-1)}},
		// Urgent, referred last month, reached after 4 days, follow-up overdue, one referral taken up.
		{JourneyID: "c", Team: "T", Urgency: "urgent", ReferredAt: day(-40), OpenedAt: day(-40), WorkerID: "w2", WorkerName: "Bo",
			AssignedAt: ptr(day(-39)), Contacted: true, FirstContactAt: ptr(day(-36)), LastContactAt: ptr(day(-6)),
			Onward:    []events.Onward{{ID: "o1", Status: events.OnwardAttending}, {ID: "o2", Status: events.OnwardSent}},
			FollowUps: []caseFollowUp{{ID: "f1", Due: day(-3).Format(time.DateOnly)}, {ID: "f2", Due: day(40).Format(time.DateOnly)}}},
		// Closed this month: counted as closed, its overdue follow-up is not due.
		{JourneyID: "d", Team: "T", ReferredAt: day(-50), OpenedAt: day(-50), WorkerID: "w2", WorkerName: "Bo", AssignedAt: ptr(day(-49)),
			Closed: true, ClosedReason: "goals_met", ClosedAt: ptr(day(-1)), FollowUps: []caseFollowUp{{ID: "f3", Due: day(-2).Format(time.DateOnly)}}},
	}
	cl := buildCaseload("T", entries, "", "", now, policy)
	if len(cl.Journeys) != 3 || cl.Journeys[0].JourneyID != "c" || cl.Journeys[1].JourneyID != "b" || cl.Journeys[2].JourneyID != "a" {
		t.Fatalf("open journeys, urgent then oldest first: %+v", cl.Journeys)
	}
	a, b, c := cl.Journeys[2], cl.Journeys[1], cl.Journeys[0]
	if !a.FlaggedUncontactable || b.FlaggedUncontactable || c.FlaggedUncontactable {
		t.Errorf("flags: a %v b %v c %v", a.FlaggedUncontactable, b.FlaggedUncontactable, c.FlaggedUncontactable)
	}
	if !a.Waiting || a.WaitingDays != 10 || c.Waiting || c.WaitingDays != 4 || *c.DaysSinceLastContact != 6 || a.DaysSinceLastContact != nil {
		t.Errorf("waiting: a %+v c %+v", a, c)
	}
	if c.Status != events.StatusConnected || c.OnwardOpen != 1 || c.OnwardTaken != 1 || c.FollowUpsOverdue != 1 || c.NextFollowUp != day(-3).Format(time.DateOnly) {
		t.Errorf("c: %+v", c)
	}
	if cl.Totals.Open != 3 || cl.Totals.Waiting != 2 || cl.Totals.MeanWaitingDays != 20 || cl.Totals.FlaggedUncontactable != 1 ||
		cl.Totals.ClosedThisMonth != 1 || cl.Totals.FollowUpsOverdue != 1 || cl.Totals.NewThisMonth != 1 {
		t.Errorf("totals: %+v", cl.Totals)
	}
	if len(cl.Due) != 1 || cl.Due[0].FollowUpID != "f1" || cl.Due[0].State != "overdue" || cl.Due[0].Days != -3 {
		t.Errorf("due: %+v", cl.Due)
	}
	if len(cl.Workload) != 2 || cl.Workload[0].WorkerID != "w1" || cl.Workload[0].OpenCases != 2 || cl.Workload[0].Flagged != 1 ||
		cl.Workload[1].OpenCases != 1 || cl.Workload[1].FollowUpsOverdue != 1 || cl.Workload[0].NewThisMonth != 1 {
		t.Errorf("workload: %+v", cl.Workload)
	}
	for _, f := range []struct{ worker, status string }{{"w2", ""}, {"", "connected"}} {
		got := buildCaseload("T", entries, f.worker, f.status, now, policy)
		if len(got.Journeys) != 1 || got.Journeys[0].JourneyID != "c" || got.Totals.Open != 3 {
			t.Errorf("filter %+v: %+v", f, got.Journeys)
		}
	}
}
