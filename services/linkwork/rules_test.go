package linkwork

import (
	"slices"
	"strings"
	"testing"
	"time"
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

func TestKeyParts(t *testing.T) {
	for _, v := range []string{"lw-7", "a/b", "x%2F", "Sam Link", "é", ""} {
		p := part(v)
		if strings.ContainsAny(p, "/ ") || unpart(p) != v {
			t.Errorf("part(%q) = %q, unpart %q", v, p, unpart(p))
		}
	}
	// A worker whose id ends like another's list cannot reach into it.
	if strings.HasPrefix(workerListPrefix("T", "a/open", "all"), workerListPrefix("T", "a", "open")) {
		t.Error("worker list prefixes overlap")
	}
	ref := time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)
	keys := []string{order(false, ref, "c"), order(true, ref.AddDate(0, 0, 1), "b"), order(false, ref.AddDate(0, 0, -1), "a")}
	slices.Sort(keys)
	if lastPart(keys[0]) != "b" || lastPart(keys[1]) != "a" || lastPart(keys[2]) != "c" {
		t.Errorf("list order, urgent first then oldest referral: %v", keys)
	}
	days := []string{newestFirst("2026-01-31"), newestFirst("2026-11-22"), newestFirst("2025-12-31")}
	slices.Sort(days)
	if dayOfNewestFirst(days[0]) != "2026-11-22" || dayOfNewestFirst(days[2]) != "2025-12-31" {
		t.Errorf("newest first: %v", days)
	}
}
