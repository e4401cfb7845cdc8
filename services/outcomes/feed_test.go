package outcomes_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/outcomes"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
)

const (
	icbKey   = "demo-icb-qyg"
	gpKey    = "demo-gp-a81001"
	otherICB = "test-icb-qxx"
)

// summary is the JSON summary as a client reads it.
type summary struct {
	Groups []map[string]any
	Total  map[string]any
}

// alone runs the outcomes service without the other services: these
// tests write journeys straight to the event store.
func alone(c *hub.Config) { c.Services = []string{"outcomes"} }

// person is one generated person's identifiers: everything that must never
// reach a commissioner.
type person struct {
	nhs, given, family, birth, postcode, phone, email string
}

// letters avoids a-f, so no generated name can turn up inside hex.
const letters = "ghijklmnopqrstuvwxyz"

func word(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func newPerson(r *rand.Rand) person {
	return person{
		nhs:      fmt.Sprintf("9%09d", r.IntN(1_000_000_000)),
		given:    "Gx" + word(r, 7),
		family:   "Wy" + word(r, 8),
		birth:    fmt.Sprintf("%d-%02d-%02d", 1930+r.IntN(75), 1+r.IntN(12), 1+r.IntN(28)),
		postcode: fmt.Sprintf("Q%d%d %d%s", r.IntN(10), r.IntN(10), r.IntN(10), strings.ToUpper(word(r, 2))),
		phone:    fmt.Sprintf("07700 9%05d", r.IntN(100000)),
		email:    word(r, 9) + "@example.org",
	}
}

// secrets lists the strings that must not appear anywhere a commissioner
// can read: identifiers in the forms people write them, and free text.
func (p person) secrets() []string {
	return []string{p.nhs, p.nhs[:3] + " " + p.nhs[3:6] + " " + p.nhs[6:], p.given, p.family, p.birth,
		p.postcode, strings.ReplaceAll(p.postcode, " ", ""), p.phone, strings.ReplaceAll(p.phone, " ", ""), p.email}
}

type journeyGen struct {
	t       *testing.T
	store   *journal.Store
	r       *rand.Rand
	free    []string // every free text written
	at      time.Time
	journey string
	erased  bool // the last journey generated ended with erasure
}

func (g *journeyGen) text() string {
	s := "Zq" + word(g.r, 10) + " " + word(g.r, 6)
	g.free = append(g.free, s)
	return s
}

// do executes a command; a refusal by the rules is fine (the generator
// does not track state closely), anything else fails the test.
func (g *journeyGen) do(cmd events.Command) bool {
	g.t.Helper()
	g.at = g.at.Add(time.Duration(1+g.r.IntN(72)) * time.Hour)
	_, err := g.store.Execute(context.Background(), g.journey, journal.Meta{OccurredAt: g.at,
		Actor: &eventsv1.Actor{OrganisationId: "U12345", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK}}, cmd)
	if err != nil && events.ErrorCode(err) != events.CodeFailedPrecondition && events.ErrorCode(err) != events.CodeNotFound {
		g.t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
	return err == nil
}

var walk = events.ServiceFacts{ID: "VCS001-walk", Name: "Sale Walking Group", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}

// generate records one random but rule-abiding journey for p.
func (g *journeyGen) generate(p person, practice, team string) string {
	g.journey, g.erased = events.NewID(), false
	g.at = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(g.r.IntN(300*24)) * time.Hour)
	ref := &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: practice, SourceId: "SRC-" + word(g.r, 8),
		Person: &eventsv1.PersonalData{NhsNumber: p.nhs, GivenName: p.given, FamilyName: p.family, BirthDate: p.birth,
			Postcode: p.postcode, Phone: p.phone, Email: p.email},
		Sex: []string{"female", "male", "other", "unknown"}[g.r.IntN(4)], Reasons: []string{"422650009"},
		Notes: &eventsv1.FreeText{Text: g.text()}, Consent: &eventsv1.Consent{ShareWithVcs: true},
		LinkWorkTeam: team, Urgency: "routine",
	}
	ref.Person.Ethnicity = events.EthnicCategories[g.r.IntN(len(events.EthnicCategories))].Code
	g.do(events.Refer{Referral: ref})
	g.do(events.Assign{WorkerID: "lw-" + word(g.r, 3), WorkerName: g.text()})
	for range g.r.IntN(3) {
		g.do(events.RecordContact{Outcome: "no_answer", Method: g.text()})
	}
	if g.r.IntN(6) == 0 {
		g.do(events.DeclineReferral{Detail: g.text()})
		return g.journey
	}
	g.do(events.RecordContact{Outcome: "reached", Method: "phone"})
	goal := events.NewID()
	g.do(events.AssessNeeds{WhatMatters: g.text(), Needs: []string{"befriending", g.text()},
		Goals: []events.GoalInput{{GoalID: goal, Text: g.text()}}, Barriers: []string{"transport", g.text()}})
	g.do(events.UpdateGoal{GoalID: goal, Status: events.GoalStatuses[g.r.IntN(len(events.GoalStatuses))]})
	if g.r.IntN(3) == 0 {
		g.do(events.SignpostTo{SignpostID: events.NewID(), Description: g.text()})
	}
	if g.r.IntN(4) == 0 {
		g.do(events.RecordRisk{RiskID: events.NewID(), Kind: events.RiskKinds[g.r.IntN(len(events.RiskKinds))], Detail: g.text(),
			EscalateToGP: g.r.IntN(2) == 0})
	}
	g.do(events.AddCaseNote{NoteID: events.NewID(), Text: g.text()})
	answers := func() []int32 {
		a := make([]int32, 7)
		for i := range a {
			a[i] = int32(1 + g.r.IntN(5))
		}
		return a
	}
	g.do(events.RecordMeasure{MeasureID: events.NewID(), Instrument: "SWEMWBS", Timepoint: "baseline", Answers: answers()})
	oid := events.NewID()
	g.do(events.ReferOnward{OnwardReferralID: oid, Service: walk, Share: []string{"name", "phone", "email", "needs", "notes"},
		LinkWorkerContact: g.text()})
	if g.r.IntN(3) == 0 {
		g.do(events.DeclineOnward{OnwardReferralID: oid, Reason: events.DeclineReasons[g.r.IntN(len(events.DeclineReasons))], Detail: g.text()})
	} else {
		g.do(events.AcceptOnward{OnwardReferralID: oid})
		g.do(events.RecordAttendance{OnwardReferralID: oid, Date: g.at.Format(time.DateOnly), Attended: g.r.IntN(4) > 0})
		switch g.r.IntN(3) {
		case 0:
			g.do(events.DropOutOnward{OnwardReferralID: oid, Detail: g.text()})
		case 1:
			g.do(events.CompleteOnward{OnwardReferralID: oid})
		default:
			g.do(events.WithdrawOnward{OnwardReferralID: oid, Reason: g.text()})
		}
	}
	fid := events.NewID()
	g.do(events.ScheduleFollowUp{FollowUpID: fid, Due: g.at.AddDate(0, 3, 0).Format(time.DateOnly)})
	g.do(events.RecordMeasure{MeasureID: events.NewID(), Instrument: "SWEMWBS", Timepoint: "follow_up", Answers: answers(), FollowUpID: fid})
	g.do(events.Close{Reason: events.CloseReasons[g.r.IntN(len(events.CloseReasons))]})
	if g.r.IntN(4) == 0 {
		g.do(events.Reopen{Reason: g.text()})
	}
	if g.r.IntN(10) == 0 {
		g.erased = g.do(events.ErasePersonalData{})
	}
	return g.journey
}

// readFeed reads a commissioner's whole feed, page by page.
func readFeed(t *testing.T, h *hubtest.Hub, key string, page int) ([]map[string]any, string) {
	t.Helper()
	var all []map[string]any
	var raw strings.Builder
	after := ""
	for {
		st, body := h.Do("GET", fmt.Sprintf("/v1/outcomes/events?limit=%d&after=%s", page, after), key, nil)
		if st != http.StatusOK {
			t.Fatalf("feed: %d %s", st, body)
		}
		raw.Write(body)
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("feed line is not JSON: %v: %s", err, sc.Text())
			}
			all = append(all, line)
			after, _ = line["cursor"].(string)
			n++
		}
		if n < page {
			return all, raw.String()
		}
	}
}

// deprivationFile writes a small made-up postcode lookup.
func deprivationFile(t *testing.T, rows map[string]int) string {
	var b strings.Builder
	b.WriteString("postcode,lsoa_code,imd_decile\n")
	i := 0
	for pc, d := range rows {
		fmt.Fprintf(&b, "%s,E0100%04d,%d\n", pc, i, d)
		i++
	}
	path := filepath.Join(t.TempDir(), "deprivation.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFeedCarriesNoIdentifiers is the property: over many generated
// journeys, with names, NHS numbers, birth dates, postcodes, phones, emails
// and free text everywhere the events allow, nothing a commissioner can
// read (the HTTP feed, the NATS feed, summaries as JSON and CSV) holds any
// of them, while the feed still links each person across journeys.
func TestFeedCarriesNoIdentifiers(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	people := make([]person, 30)
	rows := map[string]int{}
	for i := range people {
		people[i] = newPerson(r)
		if i%2 == 0 {
			rows[people[i].postcode] = 1 + i%10
		}
	}
	h := hubtest.Start(t, alone, func(c *hub.Config) { c.Outcomes.DeprivationFile = deprivationFile(t, rows) })
	g := &journeyGen{t: t, store: h.Journal(), r: r}
	erased := map[string]bool{}
	for i := range 60 {
		p := people[i%len(people)] // everyone twice: re-referrals
		g.generate(p, []string{"A81001", "A81002"}[r.IntN(2)], "U12345")
		erased[p.nhs] = erased[p.nhs] || g.erased
	}
	// Erasure unlinks a person's journeys; everyone else's second journey
	// is a re-referral within 12 months.
	linked := 0
	for _, p := range people {
		if !erased[p.nhs] {
			linked++
		}
	}
	if linked == len(people) || linked < 8 {
		t.Fatalf("%d of %d people never erased: the generator should erase some, not most", linked, len(people))
	}
	lines, feedText := readFeed(t, h, icbKey, 97)
	var secrets []string
	for _, p := range people {
		secrets = append(secrets, p.secrets()...)
	}
	secrets = append(secrets, g.free...)

	// Everything a commissioner can read.
	readable := map[string]string{"HTTP feed": feedText}
	readable["NATS feed"] = natsFeed(t, h)
	for _, by := range outcomes.Groupings {
		_, b := h.Do("GET", "/v1/outcomes/summary?by="+by, icbKey, nil)
		readable["summary by "+by] = string(b)
	}
	for where, text := range readable {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds %q", where, s)
			}
		}
		for _, field := range []string{"nhs_number", "given_name", "family_name", "birth_date", "postcode", "phone", "email", "notes", "detail", "what_matters", "text"} {
			if strings.Contains(text, `"`+field+`":`) {
				t.Errorf("%s has a %s field", where, field)
			}
		}
	}

	for _, l := range lines {
		if ty, _ := l["type"].(string); strings.Contains(ty, "risk") || strings.Contains(ty, "note") || strings.Contains(ty, "consent") {
			t.Errorf("a %s line: risks are counts only, notes and consent never leave the team", ty)
		}
	}

	// And it is still useful: every journey is there, linked by person.
	refs := map[string]map[string]bool{} // person -> journeys
	pseudonym := regexp.MustCompile(`^k1:[0-9a-f]{64}$`)
	deciles := 0
	for _, l := range lines {
		if l["type"] != "referral_received" {
			continue
		}
		p, _ := l["person"].(string)
		if !pseudonym.MatchString(p) {
			t.Fatalf("person %q is not a k1 pseudonym", p)
		}
		if refs[p] == nil {
			refs[p] = map[string]bool{}
		}
		refs[p][l["journey"].(string)] = true
		if _, ok := l["deprivation_decile"]; ok {
			deciles++
		}
		if l["age_band"] == nil || l["team"] != "U12345" {
			t.Errorf("referral line without age band or team: %v", l)
		}
	}
	if len(refs) != len(people) {
		t.Errorf("%d distinct people in the feed, want %d", len(refs), len(people))
	}
	for p, js := range refs {
		if len(js) != 2 {
			t.Errorf("person %s has %d journeys in the feed, want 2", p, len(js))
		}
	}
	if deciles != 30 { // the 15 people with a known postcode, twice each
		t.Errorf("%d referral lines with a deprivation decile, want 30", deciles)
	}
	var sum summary
	h.JSON("GET", "/v1/outcomes/summary?by=deprivation_decile", icbKey, nil, http.StatusOK, &sum)
	if last := sum.Groups[len(sum.Groups)-1]; last["group"] != "unknown" || last["referrals"] != 30.0 {
		t.Errorf("unknown postcodes: group %v referrals %v, want unknown 30", last["group"], last["referrals"])
	}
	if want := float64((linked + 2) / 5 * 5); sum.Total["re_referrals_12m"] != want {
		t.Errorf("re-referrals %v, want %v (%d people never erased, rounded)", sum.Total["re_referrals_12m"], want, linked)
	}
}

// natsFeed reads every message on the commissioner's NATS subjects.
func natsFeed(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	ctx := context.Background()
	cons, err := h.JS().OrderedConsumer(ctx, outcomes.FeedStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{outcomes.FeedSubjectPrefix + ">"}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if !strings.HasPrefix(m.Subject(), outcomes.FeedSubjectPrefix+"QYG.") {
				t.Errorf("feed message on %s", m.Subject())
			}
			b.WriteString(m.Subject() + " ")
			b.Write(m.Data())
			b.WriteByte('\n')
			n++
		}
		if n == 0 {
			return b.String()
		}
	}
}

func TestFeedScopingCursorsAndErrors(t *testing.T) {
	h := hubtest.Start(t, alone)
	h.AddOrg(otherICB, orgs.Organisation{ID: "QXX", Name: "Another ICB", Kind: events.KindCommissioner, Commissions: []string{"U99999"}})
	// Follow the NATS subject as a commissioner's own system would.
	sub, err := h.NC().SubscribeSync(outcomes.FeedSubjectPrefix + "QYG.>")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	g := &journeyGen{t: t, store: h.Journal(), r: r}
	for range 3 {
		g.generate(newPerson(r), "A81001", "U12345")
	}
	lines, _ := readFeed(t, h, icbKey, 1000)
	if len(lines) < 3*4 {
		t.Fatalf("%d feed lines for 3 journeys", len(lines))
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("nothing on the NATS feed subject: %v", err)
	}
	if msg.Subject != outcomes.FeedSubject("QYG", "referral_received") {
		t.Errorf("first NATS feed message on %s", msg.Subject)
	}

	// Paging by cursor gives the same lines, each once.
	paged, _ := readFeed(t, h, icbKey, 4)
	if len(paged) != len(lines) {
		t.Errorf("paged feed has %d lines, whole feed %d", len(paged), len(lines))
	}
	seen := map[string]bool{}
	for _, l := range paged {
		c := l["cursor"].(string)
		if c == "" || seen[c] {
			t.Errorf("cursor %q empty or repeated", c)
		}
		seen[c] = true
	}
	last := lines[len(lines)-1]["cursor"].(string)
	st, body := h.Do("GET", "/v1/outcomes/events?after="+last, icbKey, nil)
	if st != http.StatusOK || len(bytes.TrimSpace(body)) != 0 {
		t.Errorf("after the last cursor: %d %q, want 200 and nothing", st, body)
	}
	g.generate(newPerson(r), "A81002", "U12345")
	st, body = h.Do("GET", "/v1/outcomes/events?after="+last, icbKey, nil)
	if st != http.StatusOK || !bytes.Contains(body, []byte(`"type":"referral_received"`)) || bytes.Contains(body, []byte(`"cursor":"`+last+`"`)) {
		t.Errorf("after a new referral: %d %s", st, body)
	}

	// Another commissioner sees none of it, in the feed or the summary.
	other, _ := readFeed(t, h, otherICB, 1000)
	if len(other) != 0 {
		t.Errorf("another commissioner reads %d lines of QYG's feed", len(other))
	}
	var sum summary
	h.JSON("GET", "/v1/outcomes/summary?by=practice", otherICB, nil, http.StatusOK, &sum)
	if len(sum.Groups) != 0 || sum.Total["referrals"] != 0.0 {
		t.Errorf("another commissioner's summary: %+v", sum)
	}
	// ... until a journey of its own team.
	g.generate(newPerson(r), "A81001", "U99999")
	other, _ = readFeed(t, h, otherICB, 1000)
	if len(other) == 0 || other[0]["team"] != "U99999" {
		t.Errorf("QXX's own journey: %v", other)
	}
	mine, _ := readFeed(t, h, icbKey, 1000)
	for _, l := range mine {
		if l["team"] != "U12345" {
			t.Errorf("QYG reads a line of team %v", l["team"])
		}
	}

	for _, tc := range []struct {
		path, key string
		status    int
		field     string
	}{
		{"/v1/outcomes/events", gpKey, http.StatusForbidden, ""},
		{"/v1/outcomes/summary?by=month", gpKey, http.StatusForbidden, ""},
		{"/v1/outcomes/events", "demo-lw-u12345", http.StatusForbidden, ""},
		{"/v1/outcomes/events", "", http.StatusUnauthorized, ""},
		{"/v1/outcomes/summary", "not-a-key", http.StatusUnauthorized, ""},
		{"/v1/outcomes/events?after=abc", icbKey, http.StatusBadRequest, "after"},
		{"/v1/outcomes/events?limit=0", icbKey, http.StatusBadRequest, "limit"},
		{"/v1/outcomes/summary?by=postcode", icbKey, http.StatusBadRequest, "by"},
		{"/v1/outcomes/summary?from=2026-13-01", icbKey, http.StatusBadRequest, "from"},
		{"/v1/outcomes/summary?from=2026-05-01&to=2026-04-01", icbKey, http.StatusBadRequest, "to"},
	} {
		st, body := h.Do("GET", tc.path, tc.key, nil)
		var e struct {
			Error struct{ Code, Field string }
		}
		_ = json.Unmarshal(body, &e)
		if st != tc.status || e.Error.Field != tc.field {
			t.Errorf("GET %s as %q: %d field %q, want %d field %q", tc.path, tc.key, st, e.Error.Field, tc.status, tc.field)
		}
	}

	req, _ := http.NewRequest("GET", h.Base+"/v1/outcomes/summary?by=month&from=2026-01-01&to=2026-12-31", nil)
	req.Header.Set("Authorization", "Bearer "+icbKey)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var csvBody bytes.Buffer
	_, _ = csvBody.ReadFrom(resp.Body)
	first, _, _ := strings.Cut(csvBody.String(), "\n")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(first, "group,referrals,") || !strings.Contains(csvBody.String(), "\ntotal,") {
		t.Errorf("CSV summary: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), csvBody.String())
	}
}

func TestPseudonymKeyRequiredOutsideDemo(t *testing.T) {
	cfg := hubtest.Config(t, alone, func(c *hub.Config) {
		c.Demo, c.MasterKey, c.Outcomes.PseudonymKey = false, bytes.Repeat([]byte{7}, 32), ""
	})
	h, err := hub.Start(context.Background(), cfg)
	if err == nil {
		h.Stop()
		_ = h.Wait()
	}
	if err == nil || !strings.Contains(err.Error(), "pseudonym key") {
		t.Errorf("no key outside demo: %v, want a refusal naming the pseudonym key", err)
	}
}

// TestRestartKeepsPseudonymsAndFeed: a demo hub's generated key is kept,
// so a person keeps their pseudonym across restarts, and the replay of
// the log at start-up adds nothing to the feed.
func TestRestartKeepsPseudonymsAndFeed(t *testing.T) {
	dir := t.TempDir()
	data := func(c *hub.Config) { c.Data = dir; c.Services = []string{"outcomes"} }
	r := rand.New(rand.NewPCG(3, 4))
	p := newPerson(r)

	h1 := hubtest.Start(t, data)
	(&journeyGen{t: t, store: h1.Journal(), r: r}).generate(p, "A81001", "U12345")
	before, _ := readFeed(t, h1, icbKey, 1000)
	h1.Stop()
	if err := h1.Wait(); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.Start(t, data)
	after, _ := readFeed(t, h2, icbKey, 1000)
	if len(after) != len(before) {
		t.Fatalf("after a restart the feed has %d lines, before %d", len(after), len(before))
	}
	(&journeyGen{t: t, store: h2.Journal(), r: r}).generate(p, "A81002", "U12345")
	all, _ := readFeed(t, h2, icbKey, 1000)
	var persons []string
	for _, l := range all {
		if l["type"] == "referral_received" {
			persons = append(persons, l["person"].(string))
		}
	}
	if len(persons) != 2 || persons[0] != persons[1] {
		t.Errorf("the person's pseudonyms across a restart: %v, want two equal", persons)
	}
}

// TestConfiguredPseudonymKey: with the operator's key, a person's pseudonym
// is the key id and HMAC-SHA256 of the NHS number's digits, which anyone
// holding the key (and no one else) can recompute.
func TestConfiguredPseudonymKey(t *testing.T) {
	const secret = "operator-secret-0123456789abcdef"
	h := hubtest.Start(t, alone, func(c *hub.Config) {
		c.Outcomes.PseudonymKey, c.Outcomes.PseudonymKeyID = secret, "k7"
	})
	r := rand.New(rand.NewPCG(9, 9))
	p := newPerson(r)
	p.nhs = "943 476 5919"
	(&journeyGen{t: t, store: h.Journal(), r: r}).generate(p, "A81001", "U12345")
	lines, _ := readFeed(t, h, icbKey, 1000)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("9434765919"))
	want := "k7:" + hex.EncodeToString(mac.Sum(nil))
	if len(lines) == 0 || lines[0]["person"] != want {
		t.Fatalf("person %v, want %s", lines[0]["person"], want)
	}
}

// TestRebuildOpensADemoDataFolder: `linkway rebuild` opens the data folder
// without --demo; the key generated in demo mode is found and used, so
// rebuilding any view works, and the outcomes view replays the log.
func TestRebuildOpensADemoDataFolder(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(8, 8))
	h := hubtest.Start(t, alone, func(c *hub.Config) { c.Data = dir })
	(&journeyGen{t: t, store: h.Journal(), r: r}).generate(newPerson(r), "A81001", "U12345")
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	cfg := hub.DefaultConfig()
	cfg.Data, cfg.HTTP, cfg.NATSListen, cfg.Services = dir, "127.0.0.1:0", "off", []string{"outcomes"}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := hub.Rebuild(ctx, cfg, outcomes.ProjectionName, nil)
	if err != nil || n == 0 {
		t.Fatalf("rebuild outcomes: %d events, %v", n, err)
	}
}
