package outcomes_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/outcomes"
	"linkway/services/platform/journal"
)

// exec runs one command on a journey as the link-worker team at a time.
func exec(t *testing.T, h *hubtest.Hub, jid string, at time.Time, cmd events.Command) {
	t.Helper()
	_, err := h.Journal().Execute(context.Background(), jid, journal.Meta{OccurredAt: at,
		Actor: &eventsv1.Actor{OrganisationId: "U12345", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK}}, cmd)
	if err != nil {
		t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
}

// feedMessages counts the messages of the outcome feed stream.
func feedMessages(t *testing.T, h *hubtest.Hub) uint64 {
	t.Helper()
	s, err := h.JS().Stream(context.Background(), outcomes.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestVersion2Figures: ethnicity and source in the feed and as summary
// groupings, signposted against connected, continuity of the worker across
// re-referrals, risks as counts only, and the meaningful change threshold
// of each instrument; every figure suppressed.
func TestVersion2Figures(t *testing.T) {
	h := hubtest.Start(t, alone)
	base := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	walk := events.ServiceFacts{ID: "VCS001-walk", Name: "Sale Walking Group", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}
	// 10 people of ethnic category H referred by the practice, each twice
	// (the second within 12 months); 6 of the second journeys are held by
	// the worker of the first. 3 people of category A referred by housing.
	journey := func(i, round int, ethnicity, source, worker string) string {
		jid := events.NewID()
		at := base.Add(time.Duration(round*90*24+i) * time.Hour)
		ref := &eventsv1.ReferralReceived{Source: source, ReferrerOrganisationId: "A81001", SourceId: fmt.Sprintf("s-%d-%d-%s", i, round, source),
			Person: &eventsv1.PersonalData{NhsNumber: fmt.Sprintf("90000%05d", i), GivenName: "Gx", FamilyName: "Wy",
				BirthDate: "1950-01-01", Postcode: "M33 7XX", Ethnicity: ethnicity},
			Sex: "female", Reasons: []string{"422650009"}, Consent: &eventsv1.Consent{ShareWithVcs: true},
			LinkWorkTeam: "U12345", Urgency: "routine"}
		if source == "housing" {
			ref.ReferrerOrganisationId = "HSG01"
		}
		exec(t, h, jid, at, events.Refer{Referral: ref})
		exec(t, h, jid, at.Add(time.Hour), events.Assign{WorkerID: worker, WorkerName: "Sam"})
		exec(t, h, jid, at.Add(2*time.Hour), events.RecordContact{Outcome: "reached", Method: "phone"})
		return jid
	}
	var firsts, seconds []string
	for i := range 10 {
		firsts = append(firsts, journey(i, 0, "H", "gp", "lw-a"))
	}
	for i := range 10 {
		w := "lw-a"
		if i >= 6 {
			w = "lw-b"
		}
		seconds = append(seconds, journey(i, 1, "H", "gp", w))
	}
	for i := range 3 {
		journey(100+i, 0, "A", "housing", "lw-c")
	}
	// Connected: 9 of the first journeys; signposted only: the other and
	// all 10 second journeys.
	for i, jid := range firsts {
		at := base.Add(24 * time.Hour)
		if i < 9 {
			oid := events.NewID()
			exec(t, h, jid, at, events.ReferOnward{OnwardReferralID: oid, Service: walk, Share: []string{"name"}})
			exec(t, h, jid, at.Add(time.Hour), events.AcceptOnward{OnwardReferralID: oid})
		} else {
			exec(t, h, jid, at, events.SignpostTo{SignpostID: events.NewID(), Service: &walk})
		}
		exec(t, h, jid, at.Add(2*time.Hour), events.RecordRisk{RiskID: events.NewID(), Kind: "self_harm", Detail: "Zqdetail", EscalateToGP: i < 8})
		score := func(s int32) []int32 { return []int32{s, s, s, s, s, s, s} }
		exec(t, h, jid, at.Add(3*time.Hour), events.RecordMeasure{MeasureID: events.NewID(), Instrument: "SWEMWBS", Timepoint: "baseline", Answers: score(3)})
		exec(t, h, jid, at.Add(4*time.Hour), events.RecordMeasure{MeasureID: events.NewID(), Instrument: "SWEMWBS", Timepoint: "follow_up", Answers: score(4)})
	}
	for _, jid := range seconds {
		exec(t, h, jid, base.Add(100*24*time.Hour), events.SignpostTo{SignpostID: events.NewID(), Description: "Zqlibrary"})
	}

	var raw map[string]any
	h.JSON("GET", "/v1/outcomes/summary?by=ethnicity", icbKey, nil, http.StatusOK, &raw)
	_, body := h.Do("GET", "/v1/outcomes/summary?by=ethnicity", icbKey, nil)
	groups := raw["groups"].([]any)
	if len(groups) != 2 || groups[0].(map[string]any)["group"] != "A" || groups[1].(map[string]any)["group"] != "H" {
		t.Fatalf("ethnicity groups %v, want A then H", groups)
	}
	a, hh := groups[0].(map[string]any), groups[1].(map[string]any)
	if a["referrals"] != "*" || hh["referrals"] != 20.0 {
		t.Errorf("referrals A %v H %v, want * (3) and 20", a["referrals"], hh["referrals"])
	}
	total := raw["total"].(map[string]any)
	checks := map[string]any{"connected": 10.0, "signposted": 10.0, "re_referrals_12m": 10.0}
	for k, want := range checks {
		if total[k] != want {
			t.Errorf("total %s = %v, want %v", k, total[k], want)
		}
	}
	cont := total["continuity"].(map[string]any)
	if cont["re_referrals_with_worker"] != 10.0 || cont["same_worker"] != "*" || cont["same_worker_rate"] != "*" {
		t.Errorf("continuity %v, want 10 re-referrals, 6 (*) with the same worker", cont)
	}
	risks := total["risks"].(map[string]any)
	if risks["recorded"] != 10.0 || risks["escalated_to_gp"] != 10.0 || risks["people"] != 10.0 ||
		risks["by_kind"].(map[string]any)["self_harm"] != 10.0 || risks["by_kind"].(map[string]any)["other"] != 0.0 {
		t.Errorf("risks %v, want 10 self_harm, 8 (rounded 10) escalated", risks)
	}
	for _, w := range total["wellbeing"].([]any) {
		w := w.(map[string]any)
		if w["measure"] == "SWEMWBS" && (w["n"] != 10.0 || w["meaningful_change"] != 10.0 || w["meaningful_change_threshold"] != 3.0) {
			t.Errorf("SWEMWBS %v: 10 people from 19.25 to 25.03 (+5.78), all meaningful at 3 points", w)
		}
		if w["measure"] == "WEMWBS" && w["meaningful_change_threshold"] != 3.0 {
			t.Errorf("WEMWBS threshold %v, want 3", w["meaningful_change_threshold"])
		}
	}
	for _, leak := range []string{"Zqdetail", "Zqlibrary", "lw-a", "lw-b"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("the summary holds %q", leak)
		}
	}
	var src summary
	h.JSON("GET", "/v1/outcomes/summary?by=source", icbKey, nil, http.StatusOK, &src)
	if len(src.Groups) != 2 || src.Groups[0]["group"] != "gp" || src.Groups[1]["group"] != "housing" || src.Groups[1]["referrals"] != "*" {
		t.Errorf("source groups %v, want gp and housing (*)", src.Groups)
	}

	lines, feedText := readFeed(t, h, icbKey, 1000)
	seen := map[string]int{}
	for _, l := range lines {
		seen[l["type"].(string)]++
		if l["source"] == nil || l["ethnicity"] == nil {
			t.Errorf("line without source or ethnicity: %v", l)
		}
	}
	if seen["signposted"] != 11 || seen["risk_recorded"] != 0 || seen["referral_received"] != 23 {
		t.Errorf("feed line types %v, want 11 signposted, 23 referrals, no risk line", seen)
	}
	for _, leak := range []string{"Zqdetail", "Zqlibrary", "self_harm"} {
		if strings.Contains(feedText, leak) {
			t.Errorf("the feed holds %q", leak)
		}
	}
}

// TestRebuildPublishesNothingAgain: rebuilding the outcomes view replays
// the log into it, but the feed (its own high-water mark) gets no line
// twice, and goes on with new events after.
func TestRebuildPublishesNothingAgain(t *testing.T) {
	h := hubtest.Start(t, alone)
	g := &journeyGen{t: t, store: h.Journal(), r: newRand(21)}
	for range 5 {
		g.generate(newPerson(g.r), "A81001", "U12345")
	}
	before, _ := readFeed(t, h, icbKey, 1000)
	n := feedMessages(t, h)
	if n == 0 || int(n) != len(before) {
		t.Fatalf("feed stream %d messages, HTTP feed %d lines", n, len(before))
	}
	if err := h.Reader().Rebuild(outcomes.ProjectionName); err != nil {
		t.Fatal(err)
	}
	info, err := h.Journal().Stream().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Views().WaitFor(ctx, info.State.LastSeq, outcomes.ProjectionName); err != nil {
		t.Fatal(err)
	}
	var sum summary
	h.JSON("GET", "/v1/outcomes/summary", icbKey, nil, http.StatusOK, &sum)
	if sum.Total["referrals"] != "*" {
		t.Errorf("after the rebuild the summary has %v referrals, want * (5)", sum.Total["referrals"])
	}
	if after := feedMessages(t, h); after != n {
		t.Errorf("after the rebuild the feed has %d messages, before %d", after, n)
	}
	g.generate(newPerson(g.r), "A81002", "U12345")
	all, _ := readFeed(t, h, icbKey, 1000)
	if len(all) <= len(before) || all[len(before)]["type"] != "referral_received" || all[len(before)]["practice"] != "A81002" {
		t.Errorf("after the rebuild a new journey's lines: %d lines, before %d", len(all), len(before))
	}
	seen := map[string]bool{}
	for _, l := range all {
		key := fmt.Sprint(l["journey"], l["type"], l["at"], l["timepoint"], l["service"])
		if seen[key] && l["type"] != "contact_attempted" {
			t.Errorf("line %s twice", key)
		}
		seen[key] = true
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
