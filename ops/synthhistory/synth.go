// Package synthhistory writes synthetic journey history through the event
// store: GP referrals and what follows them, in proportions like those
// reported for social prescribing in England (people who decline, people
// who cannot be reached, several onward referrals, VCS declines by reason,
// attendance, completion, follow-ups with wellbeing measures, reopenings
// after a setback), across many practices and link-worker teams, dated over
// a year. It is for benchmarks, rebuild timings and demos: every event goes
// through journal.Store.Execute, so the rules, sealing and idempotency are
// the real ones, and a second run with the same seed appends nothing.
package synthhistory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// Config of a generation run.
type Config struct {
	// Journeys to write.
	Journeys int
	// Seed makes the history reproducible: the same seed names the same
	// journeys, so a rerun appends nothing.
	Seed uint64
	// Concurrency is how many journeys are written at once.
	Concurrency int
	// Practices and Teams spread the referrals; the demo organisations
	// (A81001, A81002, U12345) are always among them.
	Practices, Teams int
	// Start is the first day referrals are dated; they spread over a year.
	Start time.Time
	// Until, when set, is now as the history sees it: nothing is dated
	// after it. A journey referred within Recent of it is written as far as
	// Until and stays open where it is (counted as "still_open"), as new
	// referrals are in a living service; an earlier one that would run past
	// Until is told faster (its steps closer together) so that it has ended
	// by then. Zero writes every journey to its end, however late.
	Until  time.Time
	Recent time.Duration
	// Referrers, when set, are the practices that refer (the first ones
	// most); otherwise the first Practices of Practice(i).
	Referrers []string
	// Progress, when set, is called after each journey with the journeys
	// and events written so far, never by two goroutines at once.
	Progress func(journeys, events uint64)
}

// DefaultConfig is a year of a mid-sized ICB's referrals, dated so that
// the year's last journeys have had time to close by now.
func DefaultConfig() Config {
	return Config{Journeys: 1000, Seed: 1, Concurrency: 64, Practices: 200, Teams: 30,
		Start: time.Now().UTC().AddDate(-1, -6, 0).Truncate(24 * time.Hour)}
}

// Stats are what a run wrote.
type Stats struct {
	Journeys, Events uint64
	// Outcomes counts journeys by how they ended, and onward referrals by
	// the VCS organisation's answer.
	Outcomes map[string]uint64
}

// Service is a VCS service onward referrals go to: the --demo directory's.
type Service struct {
	ID, Name, OrganisationID string
	Weight                   int
}

// Services are the --demo directory's services that take referrals.
var Services = []Service{
	{"VCS001-walk", "Sale health walks", "VCS001", 20},
	{"VCS002-debt", "Debt and benefits advice", "VCS002", 18},
	{"VCS003-shed", "Men's Shed workshop", "VCS003", 10},
	{"VCS004-art", "Art for wellbeing", "VCS004", 10},
	{"VCS005-carers", "Carers drop-in", "VCS005", 8},
	{"VCS006-garden", "Park gardening volunteers", "VCS006", 8},
	{"VCS007-pantry", "Community pantry", "VCS007", 12},
	{"VCS008-talk", "Talking cafe", "VCS008", 14},
}

// Reasons are SNOMED CT concepts of the referral value set.
var reasons = []string{"422650009", "423315002", "267076002", "73595000", "366979004", "48694002", "423656007", "105531004", "415510005"}

var (
	givenNames  = []string{"Jane", "John", "Amira", "Tom", "Grace", "Wei", "Mohammed", "Sarah", "David", "Priya", "Olu", "Margaret", "Peter", "Aisha", "Gareth", "Niamh"}
	familyNames = []string{"Doe", "Smith", "Khan", "Jones", "Williams", "Taylor", "Brown", "Patel", "Evans", "Nowak", "Okafor", "Murphy", "Chen", "Hughes"}
	needs       = []string{"loneliness", "low_mood", "physical_activity", "financial", "debt", "housing", "carer_support", "long_term_condition", "food", "bereavement"}
	barriers    = []string{"transport", "confidence", "cost", "caring_duties", "health", "anxiety", "digital_access", "mobility"}
	// VCS declines by reason (weights): capacity is the commonest unmet need.
	declineReasons = []weighted{{"no_capacity", 40}, {"not_eligible", 25}, {"person_declined", 20}, {"uncontactable", 10}, {"other", 5}}
)

type weighted struct {
	v string
	w int
}

func pick(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.w
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.w {
			return w.v
		}
		n -= w.w
	}
	return ws[len(ws)-1].v
}

// DemoReferrers are the practices of the demo history: Hillside Surgery
// (A81002, a demo organisation) and three more practices of the same
// primary care network that have no key. Riverside (A81001) is left out so
// that the demo's own referrals are the first a visitor sees of it: the GP
// list is oldest first.
var DemoReferrers = []string{"A81002", "A81007", "A81011", "A81016"}

// Demo is a year of history of the --demo organisations: journeys referred
// by DemoReferrers to the demo team (U12345) over the twelve months to now,
// and on to the demo directory's services. The journeys of the last few
// days are still open (about one in a hundred: new referrals, most not yet
// reached); every earlier one has ended by now. So the caseload, inbox and
// dashboard show a service in use, while the caseload's first page (urgent
// first, then oldest) still has room for a visitor's own referrals.
func Demo(journeys int, now time.Time) Config {
	cfg := DefaultConfig()
	cfg.Journeys, cfg.Teams, cfg.Referrers = journeys, 1, DemoReferrers
	// Each journey's steps wait for the one before (an fsynced append), so
	// many journeys at once is what makes the group commit's batches full.
	cfg.Concurrency = 512
	cfg.Until = now.UTC()
	cfg.Recent = 4 * 24 * time.Hour
	cfg.Start = cfg.Until.AddDate(-1, 0, 0)
	return cfg
}

// Practice is the i-th practice's ODS-shaped code; 0 and 1 are the demo ones.
func Practice(i int) string { return fmt.Sprintf("A%05d", 81001+i) }

// Team is the i-th link-worker team's code; 0 is the demo one.
func Team(i int) string { return fmt.Sprintf("U%05d", 12345+i) }

// Executor is what history is written through: journal.Store.
type Executor interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
}

// errUntil ends a journey at cfg.Until: the rest of it has not happened yet.
var errUntil = errors.New("after the history's end")

// Generate writes cfg.Journeys journeys through store.
func Generate(ctx context.Context, store Executor, cfg Config) (Stats, error) {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Practices < 2 {
		cfg.Practices = 2
	}
	if cfg.Teams < 1 {
		cfg.Teams = 1
	}
	var (
		next, journeys, evs atomic.Uint64
		mu                  sync.Mutex
		outcomes            = map[string]uint64{}
		firstErr            error
		wg                  sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= uint64(cfg.Journeys) {
					return
				}
				w := newWriter(store, cfg, i)
				w.plan(ctx)
				err := w.journey(ctx)
				written := uint64(1)
				if errors.Is(err, errUntil) {
					if w.step == 0 { // referred after Until: not yet
						written = 0
					} else {
						w.out["still_open"]++
					}
					err = nil
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil && !errors.Is(err, context.Canceled) {
						firstErr = fmt.Errorf("journey %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				mu.Lock() // Progress is called one call at a time
				for k, v := range w.out {
					outcomes[k] += v
				}
				j, e := journeys.Add(written), evs.Add(w.events)
				if cfg.Progress != nil {
					cfg.Progress(j, e)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := Stats{Journeys: journeys.Load(), Events: evs.Load(), Outcomes: outcomes}
	if firstErr != nil {
		return st, firstErr
	}
	return st, ctx.Err()
}

// writer writes one journey.
type writer struct {
	// dry runs the journey's script without writing it (plan).
	dry bool
	// scale shortens the waits between steps (1: as scripted).
	scale      float64
	referredAt time.Time

	store  Executor
	cfg    Config
	i      uint64
	r      *rand.Rand
	id     string
	sid    string
	step   int
	now    time.Time
	state  events.State
	events uint64
	out    map[string]uint64
	team   string
	open   map[string]bool // services with a referral the rules count as open
}

func newWriter(store Executor, cfg Config, i uint64) *writer {
	return &writer{store: store, cfg: cfg, i: i, scale: 1,
		r: rand.New(rand.NewPCG(cfg.Seed, i)), out: map[string]uint64{}, open: map[string]bool{}}
}

// plan fits the journey to cfg.Until: its script is run dry (the same seed
// takes the same path) to learn when it would end, and a journey referred
// before Recent that would end after Until is told faster.
func (w *writer) plan(ctx context.Context) {
	if w.cfg.Until.IsZero() {
		return
	}
	d := newWriter(nil, w.cfg, w.i)
	d.dry = true
	_ = d.journey(ctx) // a dry run writes nothing and fails on nothing
	took, left := d.now.Sub(d.referredAt), w.cfg.Until.Sub(d.referredAt)
	if left >= w.cfg.Recent && d.now.After(w.cfg.Until) && took > 0 {
		w.scale = 0.95 * float64(left) / float64(took)
	}
}

// wait is d as this journey is told (scaled).
func (w *writer) wait(d time.Duration) time.Duration {
	return time.Duration(float64(d) * w.scale)
}

func (w *writer) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(w.r.UintN(256))
	}
	u, _ := uuid.FromBytes(b[:])
	u[6] = (u[6] & 0x0f) | 0x40 // version 4 shape
	u[8] = (u[8] & 0x3f) | 0x80
	return u.String()
}

// days moves the journey's clock on by lo to hi days (and some hours).
func (w *writer) days(lo, hi int) {
	w.now = w.now.Add(w.wait(time.Duration(lo+w.r.IntN(hi-lo+1))*24*time.Hour + time.Duration(w.r.IntN(8*60))*time.Minute))
}

func (w *writer) chance(p float64) bool { return w.r.Float64() < p }

// do carries out one command, dated at the journey's clock, with an
// idempotency key of its own so that a rerun appends nothing.
func (w *writer) do(ctx context.Context, actor eventsv1.OrganisationKind, org string, cmd events.Command) error {
	if w.dry {
		return nil
	}
	if !w.cfg.Until.IsZero() && w.now.After(w.cfg.Until) {
		return errUntil
	}
	w.step++
	meta := journal.Meta{
		Actor:          &eventsv1.Actor{OrganisationId: org, OrganisationKind: actor, User: "synth"},
		IdempotencyKey: fmt.Sprintf("%s/%d", w.sid, w.step),
		OccurredAt:     w.now,
	}
	res, err := w.store.Execute(ctx, w.id, meta, cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", events.CommandName(cmd), err)
	}
	w.state = res.State
	if !res.Replayed {
		w.events += uint64(len(res.Events))
	}
	return nil
}

const (
	kindGP  = eventsv1.OrganisationKind_ORGANISATION_KIND_GP
	kindLW  = eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK
	kindVCS = eventsv1.OrganisationKind_ORGANISATION_KIND_VCS
)

// nhsNumber is a valid (modulus-11) NHS number in the 999 range that is
// never issued to real people.
func (w *writer) nhsNumber() string {
	for {
		if s, ok := events.CompleteNHSNumber(fmt.Sprintf("%09d", 999_000_000+w.r.IntN(1_000_000))); ok {
			return s
		}
	}
}

func (w *writer) journey(ctx context.Context) error {
	r := w.r
	// Practices are unequal in size: a few refer much more than most.
	practice := Practice(int(float64(w.cfg.Practices) * r.Float64() * r.Float64()))
	if n := len(w.cfg.Referrers); n > 0 {
		practice = w.cfg.Referrers[int(float64(n)*r.Float64()*r.Float64())]
	}
	w.team = Team(r.IntN(w.cfg.Teams))
	if practice == Practice(0) || practice == Practice(1) {
		w.team = Team(0)
	}
	w.sid = fmt.Sprintf("SYN-%d-%08d", w.cfg.Seed, w.i)
	w.id = events.ReferralJourneyID(practice, w.sid)
	w.now = w.cfg.Start.Add(time.Duration(r.IntN(365*24*60)) * time.Minute)
	w.referredAt = w.now
	consent := w.chance(0.88)
	var rs []string
	for range 1 + r.IntN(2) {
		rs = append(rs, reasons[r.IntN(len(reasons))])
	}
	urgency := "routine"
	if w.chance(0.1) {
		urgency = "urgent"
	}
	sex := pick(r, []weighted{{"female", 58}, {"male", 40}, {"other", 1}, {"unknown", 1}})
	ref := &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: practice, SourceId: w.sid,
		Person: &eventsv1.PersonalData{
			NhsNumber: w.nhsNumber(), GivenName: givenNames[r.IntN(len(givenNames))], FamilyName: familyNames[r.IntN(len(familyNames))],
			BirthDate: time.Date(1935+r.IntN(70), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly),
			Postcode:  fmt.Sprintf("M%d %d%c%c", 1+r.IntN(40), r.IntN(10), 'A'+rune(r.IntN(26)), 'A'+rune(r.IntN(26))),
			Phone:     fmt.Sprintf("07700 9%05d", r.IntN(100000)),
		},
		Sex: sex, Reasons: rs, Consent: &eventsv1.Consent{ShareWithVcs: consent},
		LinkWorkTeam: w.team, Urgency: urgency,
	}
	if w.chance(0.6) {
		ref.Notes = &eventsv1.FreeText{Text: "Synthetic referral: " + needs[r.IntN(len(needs))]}
	}
	if err := w.do(ctx, kindGP, practice, events.Refer{Referral: ref}); err != nil {
		return err
	}
	// About 5% say no before anyone is assigned.
	if w.chance(0.05) {
		w.days(1, 7)
		w.out["declined_before_contact"]++
		return w.do(ctx, kindLW, w.team, events.DeclineReferral{Detail: "Did not want a referral"})
	}
	w.days(1, 10)
	worker := r.IntN(8)
	if err := w.do(ctx, kindLW, w.team, events.Assign{WorkerID: fmt.Sprintf("lw-%s-%d", w.team, worker), WorkerName: fmt.Sprintf("Link worker %d", worker)}); err != nil {
		return err
	}
	// About 12% cannot be reached: three attempts within three weeks.
	if w.chance(0.12) {
		for range 3 {
			w.days(2, 6)
			if err := w.do(ctx, kindLW, w.team, events.RecordContact{Outcome: []string{"no_answer", "left_message"}[r.IntN(2)], Method: "phone"}); err != nil {
				return err
			}
		}
		w.days(1, 3)
		w.out["closed_uncontactable"]++
		return w.do(ctx, kindLW, w.team, events.Close{Reason: "uncontactable"})
	}
	for range r.IntN(3) {
		w.days(1, 4)
		if err := w.do(ctx, kindLW, w.team, events.RecordContact{Outcome: "no_answer", Method: "phone"}); err != nil {
			return err
		}
	}
	w.days(0, 3)
	if err := w.do(ctx, kindLW, w.team, events.RecordContact{Outcome: "reached", Method: []string{"phone", "in_person", "video", "home_visit"}[r.IntN(4)]}); err != nil {
		return err
	}
	// About 6% of those reached decline after talking it through.
	if w.chance(0.06) {
		w.out["declined_after_contact"]++
		return w.do(ctx, kindLW, w.team, events.DeclineReferral{Detail: "Not the right time"})
	}
	return w.support(ctx, consent, 0)
}

// support is the supported part of a journey: assessment, measures,
// onward referrals, follow-up, closure, and now and then a reopening.
func (w *writer) support(ctx context.Context, consent bool, round int) error {
	r := w.r
	w.days(0, 14)
	var ns, bs []string
	for range 1 + r.IntN(3) {
		ns = append(ns, needs[r.IntN(len(needs))])
	}
	for range r.IntN(3) {
		bs = append(bs, barriers[r.IntN(len(barriers))])
	}
	var goals []events.GoalInput
	for g := range 1 + r.IntN(2) {
		goals = append(goals, events.GoalInput{GoalID: w.uuid(), Text: fmt.Sprintf("Goal %d: %s", g+1, ns[0])})
	}
	if err := w.do(ctx, kindLW, w.team, events.AssessNeeds{WhatMatters: "Feeling part of something again", Needs: ns, Goals: goals, Barriers: bs}); err != nil {
		return err
	}
	instrument := "SWEMWBS"
	if w.chance(0.3) {
		instrument = "ONS4"
	}
	if err := w.do(ctx, kindLW, w.team, w.measure(instrument, "baseline", 0, "")); err != nil {
		return err
	}
	// Onward referrals: none, one, two or three, to different services.
	n := 0
	if consent {
		n = int(pick(r, []weighted{{"0", 15}, {"1", 45}, {"2", 30}, {"3", 10}})[0] - '0')
	}
	used := map[string]bool{}
	for range n {
		svc := Services[r.IntN(len(Services))]
		if used[svc.ID] || w.open[svc.ID] {
			// The rules allow one referral to a service unless it was
			// declined or dropped out of, across reopenings too. This is
			// decided from the script, not the loaded state, so that a
			// rerun (where the state is the journey's last) takes the
			// same path.
			continue
		}
		w.open[svc.ID] = true
		used[svc.ID] = true
		w.days(0, 7)
		oid := w.uuid()
		share := []string{"name", "phone", "needs"}
		if err := w.do(ctx, kindLW, w.team, events.ReferOnward{OnwardReferralID: oid, Share: share,
			Service: events.ServiceFacts{ID: svc.ID, Name: svc.Name, OrganisationID: svc.OrganisationID, AcceptsReferrals: true, Capacity: events.CapacityOpen}}); err != nil {
			return err
		}
		w.days(1, 14)
		switch x := r.Float64(); {
		case x < 0.70:
			w.out["onward_accepted"]++
			if err := w.do(ctx, kindVCS, svc.OrganisationID, events.AcceptOnward{OnwardReferralID: oid}); err != nil {
				return err
			}
			sessions := 1 + r.IntN(6)
			for k := range sessions {
				w.days(5, 9)
				attended := k == 0 || w.chance(0.85) // the first session counted is one they came to
				if err := w.do(ctx, kindVCS, svc.OrganisationID, events.RecordAttendance{OnwardReferralID: oid, Date: w.now.Format(time.DateOnly), Attended: attended}); err != nil {
					return err
				}
			}
			switch y := r.Float64(); {
			case y < 0.6:
				w.out["onward_completed"]++
				if err := w.do(ctx, kindVCS, svc.OrganisationID, events.CompleteOnward{OnwardReferralID: oid}); err != nil {
					return err
				}
			case y < 0.8:
				w.out["onward_dropped_out"]++
				w.open[svc.ID] = false
				if err := w.do(ctx, kindVCS, svc.OrganisationID, events.DropOutOnward{OnwardReferralID: oid, Detail: "Stopped coming"}); err != nil {
					return err
				}
			}
		case x < 0.90:
			reason := pick(r, declineReasons)
			w.out["onward_declined_"+reason]++
			w.open[svc.ID] = false
			if err := w.do(ctx, kindVCS, svc.OrganisationID, events.DeclineOnward{OnwardReferralID: oid, Reason: reason}); err != nil {
				return err
			}
		default:
			w.out["onward_unanswered"]++
		}
	}
	// Follow-up with a second measure for about 70%.
	if w.chance(0.7) {
		w.days(1, 5)
		fid := w.uuid()
		due := w.now.Add(w.wait(w.now.AddDate(0, 2, r.IntN(30)).Sub(w.now)))
		if err := w.do(ctx, kindLW, w.team, events.ScheduleFollowUp{FollowUpID: fid, Due: due.Format(time.DateOnly)}); err != nil {
			return err
		}
		w.now = due
		if err := w.do(ctx, kindLW, w.team, w.measure(instrument, "follow_up", 1, fid)); err != nil {
			return err
		}
	}
	w.days(1, 20)
	reason := pick(w.r, []weighted{{"goals_met", 70}, {"moved_away", 5}, {"clinical", 5}, {"other", 20}})
	if err := w.do(ctx, kindLW, w.team, events.Close{Reason: reason}); err != nil {
		return err
	}
	// About 8% come back after a setback (once).
	if round == 0 && w.chance(0.08) {
		w.days(20, 120)
		w.out["reopened"]++
		if err := w.do(ctx, kindLW, w.team, events.Reopen{Reason: "Setback: bereavement"}); err != nil {
			return err
		}
		w.days(1, 7)
		if err := w.do(ctx, kindLW, w.team, events.RecordContact{Outcome: "reached", Method: "phone"}); err != nil {
			return err
		}
		return w.support(ctx, consent, round+1)
	}
	w.out["closed_"+reason]++
	return nil
}

// measure is a wellbeing measure whose follow-up answers are a little
// better on average.
func (w *writer) measure(instrument, timepoint string, lift int, followUp string) events.RecordMeasure {
	var answers []int32
	switch instrument {
	case "ONS4":
		for i := range 4 {
			v := 3 + w.r.IntN(5) + lift*w.r.IntN(3)
			if i == 3 { // anxiety: lower is better
				v = 10 - v
			}
			answers = append(answers, int32(min(max(v, 0), 10)))
		}
	default:
		for range 7 {
			answers = append(answers, int32(min(2+w.r.IntN(3)+lift*w.r.IntN(2), 5)))
		}
	}
	return events.RecordMeasure{MeasureID: w.uuid(), Instrument: instrument, Timepoint: timepoint, Answers: answers, FollowUpID: followUp}
}
