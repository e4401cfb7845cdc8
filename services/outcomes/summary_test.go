package outcomes

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestCountSuppression(t *testing.T) {
	for _, tc := range []struct {
		raw  int
		want string
	}{
		{0, "0"}, {1, "*"}, {2, "*"}, {7, "*"}, {8, "10"}, {10, "10"}, {12, "10"}, {13, "15"},
		{17, "15"}, {18, "20"}, {22, "20"}, {23, "25"}, {102, "100"}, {103, "105"}, {40000, "40000"},
	} {
		c := Count{tc.raw}
		if got := c.String(); got != tc.want {
			t.Errorf("Count{%d} = %q, want %q", tc.raw, got, tc.want)
		}
		b, _ := json.Marshal(c)
		want := tc.want
		if want == "*" {
			want = `"*"`
		}
		if string(b) != want {
			t.Errorf("Count{%d} JSON = %s, want %s", tc.raw, b, want)
		}
	}
}

func TestRateFromRoundedCounts(t *testing.T) {
	for _, tc := range []struct {
		num, den int
		want     string // JSON
	}{
		{0, 0, "null"},     // nothing to divide by
		{0, 20, "0"},       // a true zero is shown
		{12, 23, "0.4"},    // 10/25, not 12/23 = 0.52
		{8, 8, "1"},        // 10/10
		{13, 102, "0.15"},  // 15/100
		{3, 40, `"*"`},     // suppressed numerator
		{0, 5, `"*"`},      // suppressed denominator
		{9, 13, "0.667"},   // 10/15 to 3 places
		{40, 1000, "0.04"}, // 40/1000
	} {
		b, _ := json.Marshal(Rate{Count{tc.num}, Count{tc.den}})
		if string(b) != tc.want {
			t.Errorf("Rate(%d/%d) = %s, want %s", tc.num, tc.den, b, tc.want)
		}
	}
}

func TestFiguresHiddenBelowEight(t *testing.T) {
	seven := []float64{1, 2, 3, 4, 5, 6, 7}
	if d := duration(seven); d.Median.ok || d.P90.ok || d.N.String() != "*" {
		t.Errorf("7 waits: %+v, want median and p90 hidden and n *", d)
	}
	eight := []float64{8, 1, 2, 3, 4, 5, 6, 7}
	d := duration(eight)
	if d.Median.String() != "4.5" || d.P90.String() != "7.3" || d.N.String() != "10" {
		t.Errorf("8 waits: median %s p90 %s n %s, want 4.5 7.3 10", d.Median, d.P90, d.N)
	}
	if w := wellbeing("SWEMWBS", []float64{3, 3, 3, 3, 3, 3, 3}); w.MeanChange.ok || w.CILow.ok {
		t.Errorf("7 changes: mean shown: %+v", w)
	}
}

// scenario is a small commissioned area with figures worked out by hand:
// A81001 has 13 referrals, A81002 has 5 (two of them people A81001 referred
// a month before), and a team QYG does not commission has one.
func scenario(t testing.TB) *View {
	v := NewView(t)
	var evs []*eventsv1.Envelope
	jan := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	feb := time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)
	changes := []float64{4, 4, 4, 3, 3, 0, -1, 2, 5}
	apply := func(e *eventsv1.Envelope) { evs = append(evs, e) }
	for i := range 13 {
		jid := events.NewID()
		apply(env(jid, jan, referral(fmt.Sprintf("90000000%02d", i), "A81001", "U12345")))
		if i < 10 {
			apply(env(jid, jan.Add(time.Duration(i+1)*24*time.Hour), &eventsv1.ContactMade{Method: "phone"}))
		} else {
			apply(env(jid, jan.Add(time.Hour), &eventsv1.PatientDeclined{Detail: &eventsv1.FreeText{Text: "not for me"}}))
		}
		if i < 9 {
			apply(env(jid, jan, &eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "baseline", Score: 20}))
			apply(env(jid, jan, &eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "follow_up", Score: 20 + changes[i]}))
			oid := events.NewID()
			apply(env(jid, jan, &eventsv1.OnwardReferralMade{OnwardReferralId: oid, ServiceId: "VCS001-walk", OrganisationId: "VCS001"}))
			if i < 8 {
				apply(env(jid, jan, &eventsv1.OnwardReferralAccepted{OnwardReferralId: oid}))
				apply(env(jid, jan, &eventsv1.AttendanceRecorded{OnwardReferralId: oid, Date: "2026-01-25", Attended: true}))
			} else {
				apply(env(jid, jan, &eventsv1.OnwardReferralDeclined{OnwardReferralId: oid, Reason: "no_capacity"}))
			}
		}
	}
	for i := range 5 {
		jid := events.NewID()
		nhs := fmt.Sprintf("90000001%02d", i)
		if i < 2 {
			nhs = fmt.Sprintf("90000000%02d", i) // referred by A81001 last month
		}
		apply(env(jid, feb, referral(nhs, "A81002", "U12345")))
		apply(env(jid, feb.Add(48*time.Hour), &eventsv1.ContactMade{Method: "phone"}))
	}
	apply(env(events.NewID(), feb, referral("9000000099", "A81002", "U99999")))
	v.Apply(evs...)
	return v
}

// columns picks named columns of a CSV summary, by group.
func columns(t *testing.T, s Summary, names ...string) map[string][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := s.writeCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	out := map[string][]string{}
	for _, r := range recs[1:] {
		for _, n := range names {
			i, ok := idx[n]
			if !ok {
				t.Fatalf("no column %s", n)
			}
			out[r[0]] = append(out[r[0]], r[i])
		}
	}
	return out
}

func TestSummaryByPracticeExactTable(t *testing.T) {
	m := scenario(t)
	s := m.Summarise("QYG", []string{"U12345"}, Query{By: "practice"})
	cols := []string{"referrals", "declined_by_person", "declined_by_person_rate", "contacted", "connected", "attended",
		"first_contact_n", "first_contact_median_days", "first_contact_p90_days",
		"first_vcs_session_n", "first_vcs_session_median_days", "first_vcs_session_p90_days",
		"onward_made", "onward_accepted", "onward_declined", "onward_declined_no_capacity", "onward_declined_not_eligible",
		"onward_declined_need_befriending_and_social_groups", "onward_declined_need_food", "onward_declined_need_unassessed",
		"onward_attended", "attendance_rate", "onward_completed", "completion_rate", "re_referrals_12m", "re_referral_rate",
		"SWEMWBS_n", "SWEMWBS_mean_change", "SWEMWBS_ci95_low", "SWEMWBS_ci95_high", "SWEMWBS_meaningful_change", "SWEMWBS_meaningful_change_rate",
		"UCLA3_n", "UCLA3_mean_change"}
	want := map[string][]string{
		"A81001": {"15", "*", "*", "10", "10", "10", "10", "5.5", "9.1", "10", "20", "20",
			"10", "10", "*", "*", "0", "*", "0", "0", "10", "1", "0", "0", "0", "0",
			"10", "2.67", "1.13", "4.2", "*", "*", "0", ""},
		"A81002": {"*", "0", "*", "*", "0", "0", "*", "", "", "0", "", "",
			"0", "0", "0", "0", "0", "0", "0", "0", "0", "", "0", "", "*", "*",
			"0", "", "", "", "0", "", "0", ""},
		"total": {"20", "*", "*", "15", "10", "10", "15", "3", "8.6", "10", "20", "20",
			"10", "10", "*", "*", "0", "*", "0", "0", "10", "1", "0", "0", "*", "*",
			"10", "2.67", "1.13", "4.2", "*", "*", "0", ""},
	}
	got := columns(t, s, cols...)
	if len(got) != len(want) {
		t.Errorf("groups %v, want A81001, A81002 and total (the uncommissioned team left out)", keys(got))
	}
	for g, w := range want {
		for i, c := range cols {
			if got[g][i] != w[i] {
				t.Errorf("%s %s = %q, want %q", g, c, got[g][i], w[i])
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSummaryGroupingsAndDates(t *testing.T) {
	m := scenario(t)
	for _, tc := range []struct {
		q    Query
		want map[string]string // group -> referrals
	}{
		{Query{By: "month"}, map[string]string{"2026-01": "15", "2026-02": "*", "total": "20"}},
		{Query{By: "sex"}, map[string]string{"female": "20", "total": "20"}},
		{Query{By: "age_band"}, map[string]string{"65-74": "20", "total": "20"}},
		{Query{By: "reason"}, map[string]string{"422650009": "20", "total": "20"}},
		{Query{By: "deprivation_decile"}, map[string]string{"3": "20", "total": "20"}},
		{Query{By: "month", From: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}, map[string]string{"2026-02": "*", "total": "*"}},
		{Query{By: "month", To: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}, map[string]string{"2026-01": "15", "total": "15"}},
		{Query{By: "month", To: time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)}, map[string]string{"total": "0"}},
	} {
		got := columns(t, m.Summarise("QYG", []string{"U12345"}, tc.q), "referrals")
		if len(got) != len(tc.want) {
			t.Errorf("%+v: groups %v, want %v", tc.q, got, tc.want)
			continue
		}
		for g, w := range tc.want {
			if len(got[g]) == 0 || got[g][0] != w {
				t.Errorf("%+v: %s referrals %v, want %s", tc.q, g, got[g], w)
			}
		}
	}
	if s := m.Summarise("QXX", nil, Query{By: "month"}); len(s.Groups) != 0 || s.Total.Referrals.raw != 0 {
		t.Errorf("a commissioner of no team sees %+v", s)
	}
}

// countPattern is the acceptance check's scan of summary JSON.
var countPattern = regexp.MustCompile(`"(?:count|referrals|n)"\s*:\s*(\d+)`)

func TestSummaryJSONHasOnlySuppressedOrRoundedCounts(t *testing.T) {
	m := scenario(t)
	for _, by := range Groupings {
		b, err := json.Marshal(m.Summarise("QYG", []string{"U12345"}, Query{By: by}))
		if err != nil {
			t.Fatal(err)
		}
		found := countPattern.FindAllSubmatch(b, -1)
		if len(found) == 0 {
			t.Fatalf("by %s: no counts found in %s", by, b)
		}
		for _, f := range found {
			n, _ := strconv.Atoi(string(f[1]))
			if n != 0 && (n < 8 || n%5 != 0) {
				t.Errorf("by %s: published count %d is neither 0 nor a rounded figure of 8 or more", by, n)
			}
		}
		if bytes.Contains(b, []byte(`"referrals":"*"`)) != (by == "month" || by == "practice") {
			t.Errorf("by %s: suppressed referrals present = %v", by, !(by == "month" || by == "practice"))
		}
	}
}

func TestAgeBand(t *testing.T) {
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ birth, want string }{
		{"1956-03-14", "65-74"}, // 70 today
		{"2008-03-14", "18-24"}, // 18 today
		{"2008-03-15", "0-17"},  // 18 tomorrow
		{"1941-03-15", "75-84"}, // 84
		{"1941-03-14", "85+"},   // 85
		{"2030-01-01", "unknown"},
		{"14/03/1956", "unknown"},
		{"", "unknown"},
	} {
		if got := ageBand(tc.birth, at); got != tc.want {
			t.Errorf("ageBand(%s) = %s, want %s", tc.birth, got, tc.want)
		}
	}
}

func TestPseudonyms(t *testing.T) {
	p, _ := newPseudonymiser("k2", []byte("0123456789abcdef0123456789abcdef"))
	q, _ := newPseudonymiser("k2", []byte("another key, another deployment"))
	a, b := p.person("9434765919"), p.person("943 476 5919")
	if a != b {
		t.Errorf("the same NHS number written two ways gives %s and %s", a, b)
	}
	if !regexp.MustCompile(`^k2:[0-9a-f]{64}$`).MatchString(a) {
		t.Errorf("pseudonym %q is not k2:<64 hex>", a)
	}
	if a == q.person("9434765919") {
		t.Error("two deployments' keys give the same pseudonym")
	}
	if a == p.person("9000000009") || a == p.journey("9434765919") {
		t.Error("different inputs give the same pseudonym")
	}
	if p.person("") != "" {
		t.Error("no NHS number should give no pseudonym")
	}
	if _, err := newPseudonymiser("k1", []byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestParseDeprivation(t *testing.T) {
	d, err := parseDeprivation(strings.NewReader("\ufeffPostcode,LSOA11CD,IMD_Decile\nm33 7xx,E01006090,3\n\"SK1  1AA\",E01005900,10\n"))
	if err != nil {
		t.Fatal(err)
	}
	for pc, want := range map[string]int{"M33 7XX": 3, "m337xx": 3, "SK1 1AA": 10, "ZZ9 9ZZ": 0, "": 0} {
		if got := d.decile(pc); got != want {
			t.Errorf("decile(%q) = %d, want %d", pc, got, want)
		}
	}
	for _, bad := range []string{"postcode,decile\nM1 1AA,3\n", "postcode,lsoa,decile\nM1 1AA,E0,11\n", "postcode,lsoa,decile\nM1 1AA\n"} {
		if _, err := parseDeprivation(strings.NewReader(bad)); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func TestFeedLineCarriesNoPersonalData(t *testing.T) {
	v := NewView(t)
	jid := events.NewID()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	r := referral("9434765919", "A81001", "U12345")
	r.Person.Ethnicity = "H"
	v.Apply(
		env(jid, at, r),
		env(jid, at, &eventsv1.NeedsAssessed{WhatMatters: &eventsv1.FreeText{Text: "my garden"},
			Needs: []string{"befriending", "Call Jane Doe"}, Barriers: []string{"transport", "Jane's dog", "Digital access"},
			Goals: []*eventsv1.Goal{{GoalId: "g1", Text: &eventsv1.FreeText{Text: "walk to the shop"}}}}),
		env(jid, at, &eventsv1.ContactAttempted{Outcome: "no_answer", Method: "rang 07700 900123"}),
		env(jid, at, &eventsv1.WellbeingMeasured{Instrument: "ONS4", Timepoint: "baseline", Answers: []int32{4, 5, 4, 7}}),
		env(jid, at, &eventsv1.WellbeingMeasured{Instrument: "ONS4", Timepoint: "follow_up", Answers: []int32{6, 5, 7, 3}}),
		env(jid, at, &eventsv1.RiskRecorded{RiskId: "r1", Kind: "safeguarding_adult", Detail: &eventsv1.FreeText{Text: "Jane's neighbour"}, EscalateToGp: true}),
		env(jid, at, &eventsv1.CaseNoteAdded{NoteId: "n1", Text: &eventsv1.FreeText{Text: "Jane is worried"}}),
		env(jid, at, &eventsv1.Signposted{SignpostId: "s1", Description: &eventsv1.FreeText{Text: "Jane's library"}}),
		env(jid, at, &eventsv1.JourneyReopened{Reason: &eventsv1.FreeText{Text: "Jane rang back"}}),
		env(jid, at, &eventsv1.PersonalDataErased{}),
	)
	lines := v.Outbox()
	b, _ := json.Marshal(lines)
	for _, leak := range []string{"9434765919", "Jane", "Doe", "1956-03-14", "M33", "07700", "jane@", "bereaved", "garden", "shop", "dog",
		"neighbour", "worried", "library", "safeguarding"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Errorf("feed holds %q: %s", leak, b)
		}
	}
	var types []string
	for _, l := range lines {
		types = append(types, l.Type)
	}
	if want := "referral_received needs_assessed contact_attempted wellbeing_measured wellbeing_measured signposted journey_reopened personal_data_erased"; strings.Join(types, " ") != want {
		t.Errorf("feed types %v, want %s (no risk or case note line)", types, want)
	}
	if l := lines[0]; l.AgeBand != "65-74" || l.Sex != "female" || l.DeprivationDecile == nil || *l.DeprivationDecile != 3 ||
		l.Practice != "A81001" || l.Team != "U12345" || l.Type != "referral_received" || !strings.HasPrefix(l.Person, "k1:") ||
		l.Ethnicity != "H" || l.Source != "gp" {
		t.Errorf("referral line %+v", l)
	}
	if got := lines[1].Needs; len(got) != 1 || got[0] != "befriending_and_social_groups" {
		t.Errorf("needs %v, want the one category (words that fit none are not passed on)", got)
	}
	if got := lines[1].Barriers; strings.Join(got, ",") != "transport,digital_access" {
		t.Errorf("barriers %v, want transport and digital_access", got)
	}
	if got := lines[4].ItemChanges; got["life_satisfaction"] != 2 || got["anxiety"] != -4 {
		t.Errorf("ONS4 item changes %v", got)
	}
	if l := lines[len(lines)-1]; l.Person != "" || l.Type != "personal_data_erased" || l.Ethnicity != "H" {
		t.Errorf("after erasure the line still links the person: %+v", l)
	}
	for _, l := range lines[:len(lines)-1] {
		if l.Person != lines[0].Person || l.Journey != lines[0].Journey {
			t.Errorf("line %s: person %s journey %s, want those of the referral", l.Type, l.Person, l.Journey)
		}
	}
	s := v.Summarise("QYG", []string{"U12345"}, Query{By: "ethnicity"})
	if k := s.Total.Risks; k.Recorded.raw != 1 || k.Escalated.raw != 1 || k.ByKind["safeguarding_adult"].raw != 1 || k.People.raw != 1 {
		t.Errorf("risks %+v, want one safeguarding_adult escalated", k)
	}
	if s.Total.Signposted.raw != 1 || len(s.Groups) != 1 || s.Groups[0].Group != "H" {
		t.Errorf("signposted %v, groups %+v", s.Total.Signposted.raw, s.Groups)
	}
}

// TestRebuildGivesTheSameView: the view rebuilt from the log holds what it
// held, and its outbox holds no line again (they are before the feed's
// mark once published).
func TestRebuildGivesTheSameView(t *testing.T) {
	evs := SyntheticYear(300, 5)
	v := NewView(t)
	v.Apply(evs...)
	cols := []string{"referrals", "onward_made", "SWEMWBS_n", "signposted", "re_referrals_12m", "same_worker"}
	want := columns(t, v.Summarise("QYG", []string{"U12345"}, Query{By: "month"}), cols...)
	if want["total"][0] != "300" {
		t.Fatalf("total referrals %v, want 300", want["total"])
	}
	v.svc.feed.advance(&v.svc.feed.hwm, v.last) // as if the publisher had sent every line
	if err := v.Reader.Rebuild(ProjectionName); err != nil {
		t.Fatal(err)
	}
	v.Wait()
	got := columns(t, v.Summarise("QYG", []string{"U12345"}, Query{By: "month"}), cols...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after a rebuild %v, want %v", got, want)
	}
	if lines := v.Outbox(); len(lines) > 1 {
		t.Errorf("the rebuilt view's outbox holds %d lines, want at most the one at the mark", len(lines))
	}
}

func TestRecordRoundTrip(t *testing.T) {
	if numRiskKinds != len(events.RiskKinds) {
		t.Fatalf("numRiskKinds %d, events.RiskKinds %d", numRiskKinds, len(events.RiskKinds))
	}
	if len(needColumns) > 32 || len(events.DeclineReasons) > 16 {
		t.Fatal("needs no longer fit the record's mask, or decline reasons its tally")
	}
	r := record{Practice: "A81001", Source: "housing", AgeBand: "65-74", Sex: "female", Ethnicity: "99", Decile: 7,
		Reasons: []string{"422650009", "105529008"}, Needs: 0b101, Referred: 1767225600, FirstContact: 1767312000,
		FirstSession: -5, Flags: flagContacted | flagSameWorker, Onward: []onwardFact{{Flags: onwardAccepted, Decline: 0}, {Decline: 2}},
		HasBaseline: 0b11, HasFollowUp: 0b1, Risks: [numRiskKinds]uint8{1, 0, 2, 0, 0}, Escalated: 1, Worker: "U12345/lw-7"}
	r.Baseline[0], r.Baseline[1], r.FollowUp[0] = 19.25, 40, 23.21
	got, err := unmarshalRecord(r.marshal())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(r) {
		t.Errorf("round trip: %+v %v, want %+v", got, err, r)
	}
	if _, err := unmarshalRecord(r.marshal()[:20]); err == nil {
		t.Error("a cut record was read")
	}
	es := []personEntry{{Journey: "j1", Key: "r.U1.2026-01-01.j1", Referred: 5}, {Journey: "j2", Key: "k"}}
	if got, err := unmarshalPerson(marshalPerson(es)); err != nil || fmt.Sprint(got) != fmt.Sprint(es) {
		t.Errorf("person round trip: %v %v", got, err)
	}
}

// TestContinuity: re-referrals within 12 months, and whether the same
// worker saw the person again.
func TestContinuity(t *testing.T) {
	day := func(s string) int64 {
		d, _ := time.Parse(time.DateOnly, s)
		return d.Unix()
	}
	es := []personEntry{
		{Journey: "a", Referred: day("2025-01-10"), Worker: "U1/w1"},
		{Journey: "b", Referred: day("2025-06-10"), Worker: "U1/w1"},
		{Journey: "c", Referred: day("2026-05-01"), Worker: "U1/w2"},
		{Journey: "d", Referred: day("2027-06-01")},
		{Journey: "e", Referred: day("2027-06-01"), Worker: "U1/w2"},
	}
	for _, tc := range []struct {
		j               string
		re, known, same bool
	}{
		{"a", false, false, false}, // the first
		{"b", true, true, true},    // a's worker again
		{"c", true, true, false},   // within 12 months of b, another worker
		{"d", false, false, false}, // more than 12 months after c; e is at the same instant but after d by id
		{"e", true, false, false},  // d at the same instant comes first; d has no worker
	} {
		i := slices.IndexFunc(es, func(e personEntry) bool { return e.Journey == tc.j })
		re, known, same := continuity(es, es[i])
		if re != tc.re || known != tc.known || same != tc.same {
			t.Errorf("%s: re %v known %v same %v, want %v %v %v", tc.j, re, known, same, tc.re, tc.known, tc.same)
		}
	}
}

func TestCode(t *testing.T) {
	for v, want := range map[string]string{"A81001": "A81001", "VCS001-walk": "VCS001-walk", "-x": "", "": "",
		"a b": "", "x.y": "", strings.Repeat("a", 64): strings.Repeat("a", 64), strings.Repeat("a", 65): "", "é": ""} {
		if got := code(v); got != want {
			t.Errorf("code(%q) = %q, want %q", v, got, want)
		}
	}
}

// TestErasureUnlinksThePerson: an erased journey leaves the person index
// (and a person with no journey left, the index), is no longer a
// re-referral, and its feed lines from then on name no person.
func TestErasureUnlinksThePerson(t *testing.T) {
	v := NewView(t)
	j1, j2 := events.NewID(), events.NewID()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	v.Apply(env(j1, at, referral("9434765919", "A81001", "U12345")),
		env(j2, at.AddDate(0, 2, 0), referral("9434765919", "A81001", "U12345")),
		env(j2, at.AddDate(0, 2, 0), &eventsv1.LinkWorkerAssigned{WorkerId: "w1"}))
	persons := func() int {
		n := 0
		if err := v.Store.View(ProjectionName).ForEach(personPrefix, func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	re := func() int {
		return v.Summarise("QYG", []string{"U12345"}, Query{By: "month"}).Total.ReReferrals.raw
	}
	if persons() != 1 || re() != 1 {
		t.Fatalf("%d people indexed, %d re-referrals; want 1 and 1", persons(), re())
	}
	v.Apply(env(j2, at.AddDate(0, 3, 0), &eventsv1.PersonalDataErased{}))
	if persons() != 1 || re() != 0 {
		t.Errorf("after erasing the second journey: %d people indexed, %d re-referrals; want 1 and 0", persons(), re())
	}
	v.Apply(env(j1, at.AddDate(0, 3, 0), &eventsv1.PersonalDataErased{}),
		env(j1, at.AddDate(0, 3, 1), &eventsv1.JourneyClosed{Reason: "other"}))
	if persons() != 0 {
		t.Errorf("after erasing both journeys %d people indexed, want none", persons())
	}
	lines := v.Outbox()
	if l := lines[len(lines)-1]; l.Type != "journey_closed" || l.Person != "" {
		t.Errorf("a line after the erasure: %+v, want no person", l)
	}
	if s := v.Summarise("QYG", []string{"U12345"}, Query{By: "month"}); s.Total.Referrals.raw != 2 {
		t.Errorf("the erased journeys still count as referrals: %d, want 2", s.Total.Referrals.raw)
	}
}

// TestSessionBeforeItsReferralIsNoWait: a session written up as before its
// onward referral was made counts as attended, but not as a wait of 0 days
// in "referral to first session" (issue 16).
func TestSessionBeforeItsReferralIsNoWait(t *testing.T) {
	v := NewView(t)
	jan := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	var evs []*eventsv1.Envelope
	for i := range 20 {
		jid := events.NewID()
		oid := events.NewID()
		made := jan.AddDate(0, 0, 10)
		evs = append(evs,
			env(jid, jan, referral(fmt.Sprintf("90000002%02d", i), "A81001", "U12345")),
			env(jid, jan.Add(24*time.Hour), &eventsv1.ContactMade{Method: "phone"}),
			env(jid, made, &eventsv1.OnwardReferralMade{OnwardReferralId: oid, ServiceId: "VCS001-walk", OrganisationId: "VCS001"}),
			env(jid, made, &eventsv1.OnwardReferralAccepted{OnwardReferralId: oid}))
		date := "2026-01-25" // 20 days after the referral, 10 after the onward referral
		if i%2 == 0 {
			date = "2026-01-12" // before the onward referral was made (2026-01-15)
		}
		evs = append(evs, env(jid, made.Add(time.Hour), &eventsv1.AttendanceRecorded{OnwardReferralId: oid, Date: date, Attended: true}))
	}
	v.Apply(evs...)
	s := v.Summarise("QYG", []string{"U12345"}, Query{By: "practice"})
	got := columns(t, s, "onward_attended", "first_vcs_session_n", "first_vcs_session_median_days")["A81001"]
	if want := []string{"20", "10", "20"}; !slices.Equal(got, want) {
		// 10 sessions before their referral: attended, but no wait; the
		// other 10 waited 20 days.
		t.Errorf("onward_attended, first_vcs_session_n, median = %v, want %v", got, want)
	}
}
