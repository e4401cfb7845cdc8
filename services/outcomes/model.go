package outcomes

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// journey is what the outcomes view keeps of one journey: pseudonymised
// and coarsened facts only. No name, NHS number, birth date, postcode,
// contact detail or free text is ever stored here, so nothing built from
// it can leak one.
type journey struct {
	// pseudo is the journey's pseudonym (keyed HMAC of its id): the journey
	// id itself is never shown to commissioners.
	pseudo   string
	person   string // keyed HMAC of the NHS number; "" once erased
	practice string
	team     string
	ageBand  string
	sex      string
	decile   int // 1-10; 0 when unknown
	reasons  []string
	// needs are the need categories of the latest assessment (or, until
	// one, those the referral reasons name).
	needs    []string
	referred time.Time

	firstContact time.Time
	firstSession time.Time // date of the first attended VCS session
	declined     bool      // the person said no to social prescribing

	onward []*onwardFacts
	// baseline is the first baseline score of each of Measures, followUp
	// the latest follow-up; hasBaseline and hasFollowUp say which are set.
	// Arrays, not maps: summaries walk every journey on each request.
	baseline, followUp       [numMeasures]float64
	hasBaseline, hasFollowUp uint8

	// Precomputed for summaries: group labels and re-referral.
	month, decileLabel string
	reReferral         bool
}

const numMeasures = 7

func (j *journey) change(i int) (float64, bool) {
	bit := uint8(1) << i
	if j.hasBaseline&bit == 0 || j.hasFollowUp&bit == 0 {
		return 0, false
	}
	return j.followUp[i] - j.baseline[i], true
}

type onwardFacts struct {
	id            string
	accepted      bool
	declineReason string
	attended      bool
	completed     bool
}

func (j *journey) onwardByID(id string) *onwardFacts {
	for _, o := range j.onward {
		if o.id == id {
			return o
		}
	}
	return nil
}

// contacted, connected and attended are the uptake funnel's stages.
func (j *journey) contacted() bool { return !j.firstContact.IsZero() }

func (j *journey) connected() bool {
	return slices.ContainsFunc(j.onward, func(o *onwardFacts) bool { return o.accepted })
}

func (j *journey) attended() bool {
	return slices.ContainsFunc(j.onward, func(o *onwardFacts) bool { return o.attended })
}

// model is the in-memory outcomes view: every journey's facts, and each
// person's journeys (for re-referrals). It is rebuilt from the log at
// start-up and kept current by the projection.
type model struct {
	mu       sync.RWMutex
	journeys map[string]*journey // by journey id
	byPerson map[string][]*journey
	byTeam   map[string][]*journey // what a commissioner's summary walks
	pseudo   *pseudonymiser
	dep      *deprivation
	// applied is the last JOURNEYS sequence folded in.
	applied uint64
}

func newModel(p *pseudonymiser, dep *deprivation) *model {
	return &model{journeys: map[string]*journey{}, byPerson: map[string][]*journey{}, byTeam: map[string][]*journey{},
		pseudo: p, dep: dep}
}

// Value sets the feed copies through. Anything else a caller typed into
// these fields is replaced, so free text cannot reach the feed by way of a
// field that is usually a code.
var (
	sexes         = []string{"female", "male", "other", "unknown"}
	sources       = []string{"gp", "self", "hospital", "council", "other"}
	urgencies     = []string{"routine", "urgent"}
	methods       = []string{"phone", "text", "email", "letter", "visit", "video", "in_person", "other"}
	barriers      = []string{"transport", "confidence", "cost", "caring_duties", "health", "language", "digital_access", "other"}
	codePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	snomedPattern = regexp.MustCompile(`^[0-9]{6,18}$`)
)

func oneOf(v string, set []string, otherwise string) string {
	if slices.Contains(set, v) {
		return v
	}
	return otherwise
}

func code(v string) string {
	if codePattern.MatchString(v) {
		return v
	}
	return ""
}

func filter(vs []string, keep func(string) bool) []string {
	var out []string
	for _, v := range vs {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// ageBands are the bands commissioners see instead of a birth date.
var ageBands = []struct {
	upTo int // inclusive
	name string
}{{17, "0-17"}, {24, "18-24"}, {34, "25-34"}, {44, "35-44"}, {54, "45-54"}, {64, "55-64"}, {74, "65-74"}, {84, "75-84"}, {1 << 30, "85+"}}

// AgeBands lists the age bands in order.
var AgeBands = func() []string {
	var out []string
	for _, b := range ageBands {
		out = append(out, b.name)
	}
	return out
}()

// ageBand is the band of someone born on birth (YYYY-MM-DD) at time at.
func ageBand(birth string, at time.Time) string {
	b, err := time.Parse(time.DateOnly, birth)
	if err != nil || b.After(at) {
		return "unknown"
	}
	age := at.Year() - b.Year()
	if at.Month() < b.Month() || (at.Month() == b.Month() && at.Day() < b.Day()) {
		age--
	}
	for _, band := range ageBands {
		if age <= band.upTo {
			return band.name
		}
	}
	return "unknown"
}

// applySeq folds the event at a JOURNEYS sequence into the view, once: a
// runner whose consumer is recreated under it replays from its checkpoint,
// and the in-memory view must not count those events twice.
func (m *model) applySeq(seq uint64, env *eventsv1.Envelope) *FeedEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.applied {
		return nil
	}
	m.applied = seq
	return m.applyLocked(env)
}

// apply folds one event into the view and returns its feed line, or nil
// for an event of a journey the view has never seen referred.
func (m *model) apply(env *eventsv1.Envelope) *FeedEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(env)
}

func (m *model) applyLocked(env *eventsv1.Envelope) *FeedEvent {
	id := env.GetJourneyId()
	at := env.GetOccurredAt().AsTime().UTC()
	j := m.journeys[id]
	if r, ok := env.GetEvent().(*eventsv1.Envelope_ReferralReceived); ok && j == nil {
		j = m.refer(id, r.ReferralReceived, at)
	}
	if j == nil {
		return nil
	}
	f := j.line(events.ShortName(env), at)
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		r := e.ReferralReceived
		f.Reasons = j.reasons
		f.Source = oneOf(r.GetSource(), sources, "other")
		f.Urgency = oneOf(r.GetUrgency(), urgencies, "")
	case *eventsv1.Envelope_LinkWorkerAssigned:
		// Who the worker is stays with the team.
	case *eventsv1.Envelope_ContactAttempted:
		f.Outcome = oneOf(e.ContactAttempted.GetOutcome(), events.ContactOutcomes, "other")
		f.Method = oneOf(e.ContactAttempted.GetMethod(), methods, "other")
	case *eventsv1.Envelope_ContactMade:
		f.Outcome = "reached"
		f.Method = oneOf(e.ContactMade.GetMethod(), methods, "other")
		if j.firstContact.IsZero() {
			j.firstContact = at
		}
		f.DaysFromReferral = days(j.referred, at)
	case *eventsv1.Envelope_NeedsAssessed:
		f.Needs = needCategories(e.NeedsAssessed.GetNeeds())
		if len(f.Needs) > 0 {
			j.needs = f.Needs
		}
		f.Barriers = filter(e.NeedsAssessed.GetBarriers(), func(b string) bool { return slices.Contains(barriers, b) })
		f.Goals = len(e.NeedsAssessed.GetGoals())
	case *eventsv1.Envelope_GoalUpdated:
		f.Status = oneOf(e.GoalUpdated.GetStatus(), events.GoalStatuses, "")
	case *eventsv1.Envelope_WellbeingMeasured:
		m.measure(j, e.WellbeingMeasured, f)
	case *eventsv1.Envelope_OnwardReferralMade:
		o := e.OnwardReferralMade
		j.onward = append(j.onward, &onwardFacts{id: o.GetOnwardReferralId()})
		f.Service, f.Organisation = code(o.GetServiceId()), code(o.GetOrganisationId())
		f.WaitingList = o.GetWaitingList()
	case *eventsv1.Envelope_OnwardReferralAccepted:
		if o := j.onwardByID(e.OnwardReferralAccepted.GetOnwardReferralId()); o != nil {
			o.accepted = true
		}
	case *eventsv1.Envelope_OnwardReferralDeclined:
		f.Reason = oneOf(e.OnwardReferralDeclined.GetReason(), events.DeclineReasons, "other")
		if o := j.onwardByID(e.OnwardReferralDeclined.GetOnwardReferralId()); o != nil {
			o.declineReason = f.Reason
		}
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		attended := a.GetAttended()
		f.Attended = &attended
		if d, err := time.Parse(time.DateOnly, a.GetDate()); err == nil {
			f.SessionDate = a.GetDate()
			if attended && (j.firstSession.IsZero() || d.Before(j.firstSession)) {
				j.firstSession = d
			}
			if attended {
				f.DaysFromReferral = days(j.referred, d)
			}
		}
		if o := j.onwardByID(a.GetOnwardReferralId()); o != nil && attended {
			o.attended = true
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		if o := j.onwardByID(e.OnwardReferralCompleted.GetOnwardReferralId()); o != nil {
			o.completed = true
		}
	case *eventsv1.Envelope_FollowUpScheduled:
		if _, err := time.Parse(time.DateOnly, e.FollowUpScheduled.GetDue()); err == nil {
			f.Due = e.FollowUpScheduled.GetDue()
		}
	case *eventsv1.Envelope_PatientDeclined:
		j.declined = true
	case *eventsv1.Envelope_JourneyClosed:
		f.Reason = oneOf(e.JourneyClosed.GetReason(), events.CloseReasons, "other")
		if f.Reason == "declined" {
			j.declined = true
		}
	case *eventsv1.Envelope_JourneyReopened:
		// The reason is free text: only the fact of reopening is shown.
	case *eventsv1.Envelope_PersonalDataErased:
		// From now on the person is not linked across journeys.
		m.unlinkPerson(j)
		f.Person = ""
	}
	return f
}

func (m *model) refer(id string, r *eventsv1.ReferralReceived, at time.Time) *journey {
	p := r.GetPerson()
	j := &journey{
		pseudo:   m.pseudo.journey(id),
		person:   m.pseudo.person(p.GetNhsNumber()),
		practice: code(r.GetReferrerOrganisationId()),
		team:     code(r.GetLinkWorkTeam()),
		ageBand:  ageBand(p.GetBirthDate(), at),
		sex:      oneOf(r.GetSex(), sexes, "unknown"),
		decile:   m.dep.decile(p.GetPostcode()),
		reasons:  filter(r.GetReasons(), snomedPattern.MatchString),
		referred: at,
		month:    at.Format("2006-01"),
	}
	for _, r := range j.reasons {
		if c, ok := events.ReasonNeed(r); ok && !slices.Contains(j.needs, c) {
			j.needs = append(j.needs, c)
		}
	}
	j.decileLabel = "unknown"
	if j.decile > 0 {
		j.decileLabel = strconv.Itoa(j.decile)
	}
	m.journeys[id] = j
	m.byTeam[j.team] = append(m.byTeam[j.team], j)
	if j.person != "" {
		m.byPerson[j.person] = append(m.byPerson[j.person], j)
		m.markReReferrals(j.person)
	}
	return j
}

// markReReferrals marks each of a person's journeys that began within 12
// months after another of theirs. All are re-marked, since the log may
// bring an earlier referral after a later one.
func (m *model) markReReferrals(person string) {
	js := m.byPerson[person]
	for _, j := range js {
		j.reReferral = false
		from := j.referred.AddDate(-1, 0, 0)
		for _, o := range js {
			if o == j || o.referred.After(j.referred) || o.referred.Before(from) {
				continue
			}
			if o.referred.Equal(j.referred) && o.pseudo > j.pseudo {
				continue // same instant: only one of the pair is the re-referral
			}
			j.reReferral = true
			break
		}
	}
}

func (m *model) unlinkPerson(j *journey) {
	if j.person == "" {
		return
	}
	person := j.person
	m.byPerson[person] = slices.DeleteFunc(m.byPerson[person], func(x *journey) bool { return x == j })
	j.person, j.reReferral = "", false
	if len(m.byPerson[person]) == 0 {
		delete(m.byPerson, person)
	} else {
		m.markReReferrals(person)
	}
}

// measure records a wellbeing score and its change from the baseline.
func (m *model) measure(j *journey, w *eventsv1.WellbeingMeasured, f *FeedEvent) {
	inst := w.GetInstrument()
	if !slices.Contains(events.Instruments, inst) {
		return
	}
	f.Instrument = inst
	f.Timepoint = oneOf(w.GetTimepoint(), events.Timepoints, "")
	scores := map[string]float64{}
	if inst == "ONS4" {
		f.Items = map[string]int32{}
		for i, a := range w.GetAnswers() {
			if i < len(events.ONS4Items) {
				f.Items[events.ONS4Items[i]] = a
				scores["ONS4."+events.ONS4Items[i]] = float64(a)
			}
		}
	} else {
		s := w.GetScore()
		f.Score = &s
		scores[inst] = s
	}
	for k, s := range scores {
		i := slices.Index(Measures[:], k)
		if i < 0 {
			continue
		}
		bit := uint8(1) << i
		switch f.Timepoint {
		case "baseline":
			if j.hasBaseline&bit == 0 {
				j.baseline[i], j.hasBaseline = s, j.hasBaseline|bit
			}
		case "follow_up":
			j.followUp[i], j.hasFollowUp = s, j.hasFollowUp|bit
			if c, ok := j.change(i); ok {
				c = round2(c)
				if inst == "ONS4" {
					if f.ItemChanges == nil {
						f.ItemChanges = map[string]float64{}
					}
					f.ItemChanges[strings.TrimPrefix(k, "ONS4.")] = c
				} else {
					f.Change = &c
				}
			}
		}
	}
}

// line starts a feed line with the journey's pseudonymised context.
func (j *journey) line(eventName string, at time.Time) *FeedEvent {
	f := &FeedEvent{
		Type: snake(eventName), At: at, Journey: j.pseudo, Person: j.person,
		AgeBand: j.ageBand, Sex: j.sex, Practice: j.practice, Team: j.team,
	}
	if j.decile > 0 {
		d := j.decile
		f.DeprivationDecile = &d
	}
	return f
}

// snake turns ReferralReceived into referral_received.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func days(from, to time.Time) *float64 {
	if from.IsZero() || to.IsZero() {
		return nil
	}
	d := round2(to.Sub(from).Hours() / 24)
	if d < 0 {
		d = 0
	}
	return &d
}

func round2(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v*100+0.5)) / 100
	}
	return float64(int64(v*100+0.5)) / 100
}
