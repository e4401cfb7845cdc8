package outcomes

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/views"
)

// ProjectionName names the outcomes view in the view store.
const ProjectionName = "outcomes"

// projection renders the commissioners' view from the folded journeys
// (views.Change): a record per journey (record.go) that summaries read by
// team and month, a person index for re-referrals and continuity, and the
// outbox of feed lines the feed's publisher sends on (feed.go).
type projection struct {
	pseudo *pseudonymiser
	dep    *deprivation
	// feed says from which JOURNEYS sequence lines are still to be
	// published: older ones are in the feed already, so a rebuild of the
	// view writes none of them again.
	feed *feed
	// months is told which team-months changed, so cached summaries of
	// them are read again.
	months *monthCache
}

func (p *projection) Name() string { return ProjectionName }

// Value sets the view copies through. Anything else a caller typed into
// these fields is replaced, so free text cannot reach the feed by way of a
// field that is usually a code.
var (
	sexes         = []string{"female", "male", "other", "unknown"}
	urgencies     = []string{"routine", "urgent"}
	methods       = []string{"phone", "text", "email", "letter", "visit", "video", "in_person", "other"}
	snomedPattern = regexp.MustCompile(`^[0-9]{6,18}$`)
)

func oneOf(v string, set []string, otherwise string) string {
	if slices.Contains(set, v) {
		return v
	}
	return otherwise
}

// code is v when it is an organisation or service code (codePattern),
// else "". Checked by hand: it runs for every event.
func code(v string) string {
	if len(v) == 0 || len(v) > 64 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return ""
		}
	}
	return v
}

// skipped are the events that change nothing a commissioner sees: neither
// a record nor a feed line.
func skipped(env *eventsv1.Envelope) bool {
	switch env.GetEvent().(type) {
	case *eventsv1.Envelope_CaseNoteAdded, *eventsv1.Envelope_FeedbackGiven, *eventsv1.Envelope_ConsentRecorded,
		*eventsv1.Envelope_SupervisionRecorded:
		return true
	}
	return false
}

// touchesRecord reports whether an event may change a journey's record
// (the others only make feed lines).
func touchesRecord(env *eventsv1.Envelope) bool {
	switch env.GetEvent().(type) {
	case *eventsv1.Envelope_ContactAttempted, *eventsv1.Envelope_GoalUpdated, *eventsv1.Envelope_FollowUpScheduled,
		*eventsv1.Envelope_FollowUpCompleted:
		return false
	}
	return !skipped(env)
}

// inFeed reports whether an event makes a feed line. Case notes, risks,
// feedback and consent never do: commissioners see risks as counts only,
// and the others are about the person, not the service.
func inFeed(env *eventsv1.Envelope) bool {
	switch env.GetEvent().(type) {
	case *eventsv1.Envelope_RiskRecorded:
		return false
	}
	return !skipped(env)
}

// Apply renders one change of a journey.
func (p *projection) Apply(b *views.Batch, c views.Change) error {
	p.months.seen(c.Seq)
	ref := c.After.Referral
	team := code(ref.GetLinkWorkTeam())
	if ref == nil || team == "" || skipped(c.Envelope) {
		return nil // not (yet) a journey of a commissioned team
	}
	fresh := c.Before.Referral == nil
	line := inFeed(c.Envelope) && c.Seq >= p.feed.from()
	if !fresh && !line && !touchesRecord(c.Envelope) {
		return nil
	}
	day := events.UKDate(c.After.ReferredAt).Format(time.DateOnly)
	key := recordKey(team, day, c.JourneyID)
	var rec record
	var old []byte
	if !fresh {
		raw, ok, err := b.Get(key)
		if err != nil {
			return err
		}
		if ok {
			old = raw
			if rec, err = unmarshalRecord(raw); err != nil {
				ok = false
			}
		}
		if !ok {
			fresh = true // written by another version: start it again from the state
		}
	}
	if fresh {
		rec = p.newRecord(ref, c.After)
		b.Set(monthPrefix+team+"."+day[:7], nil)
	}
	if err := p.update(b, &rec, c, key, fresh); err != nil {
		return err
	}
	if enc := rec.marshal(); !bytes.Equal(enc, old) {
		b.Set(key, enc)
		p.months.touch(team, day[:7], c.Seq)
	}
	if line {
		return p.writeLine(b, c, &rec, team)
	}
	return nil
}

// newRecord starts a journey's record from its referral: the person is
// kept only as bands and categories.
func (p *projection) newRecord(ref *eventsv1.ReferralReceived, s events.State) record {
	person := ref.GetPerson()
	rec := record{
		Practice:  code(ref.GetReferrerOrganisationId()),
		Source:    oneOf(s.Source(), events.ReferralSources, "unknown"),
		AgeBand:   ageBand(person.GetBirthDate(), s.ReferredAt),
		Sex:       oneOf(ref.GetSex(), sexes, "unknown"),
		Decile:    uint8(p.dep.decile(person.GetPostcode())),
		Reasons:   filter(ref.GetReasons(), snomedPattern.MatchString),
		Referred:  s.ReferredAt.Unix(),
		Ethnicity: "",
	}
	if _, ok := events.EthnicCategoryByCode(person.GetEthnicity()); ok {
		rec.Ethnicity = person.GetEthnicity()
	}
	for _, s := range append([]string{rec.Practice, rec.Source, rec.AgeBand, rec.Sex, rec.Ethnicity}, rec.Reasons...) {
		intern(s)
	}
	return rec
}

// update brings a record up to date with a change: the state's flags,
// needs and risks, and the facts of the event itself.
func (p *projection) update(b *views.Batch, rec *record, c views.Change, key string, fresh bool) error {
	s := c.After
	rec.set(flagDeclined, s.Declined)
	rec.set(flagContacted, s.Contacted)
	conn := s.Connection()
	rec.set(flagConnected, conn == events.ConnectionConnected)
	rec.set(flagSignposted, conn == events.ConnectionSignposted)
	rec.Needs = needMask(s)
	rec.Risks, rec.Escalated = [numRiskKinds]uint8{}, uint8(min(s.Escalations(), 255))
	for _, r := range s.Risks {
		if i := slices.Index(events.RiskKinds, r.Kind); i >= 0 && rec.Risks[i] < 255 {
			rec.Risks[i]++
		}
	}
	for len(rec.Onward) < len(s.Onward) {
		rec.Onward = append(rec.Onward, onwardFact{})
	}
	onward := func(id string) *onwardFact {
		i := slices.IndexFunc(s.Onward, func(o events.Onward) bool { return o.ID == id })
		if i < 0 || i >= len(rec.Onward) {
			return &onwardFact{} // not in the state: nothing to keep
		}
		return &rec.Onward[i]
	}
	at := c.Envelope.GetOccurredAt().AsTime()
	switch e := c.Envelope.GetEvent().(type) {
	case *eventsv1.Envelope_ContactMade:
		if rec.FirstContact == 0 || at.Unix() < rec.FirstContact {
			rec.FirstContact = at.Unix()
		}
	case *eventsv1.Envelope_WellbeingMeasured:
		measure(rec, e.WellbeingMeasured)
	case *eventsv1.Envelope_OnwardReferralAccepted:
		onward(e.OnwardReferralAccepted.GetOnwardReferralId()).Flags |= onwardAccepted
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		onward(d.GetOnwardReferralId()).Decline = uint8(declineIndex(d.GetReason()) + 1)
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		if d, err := time.Parse(time.DateOnly, a.GetDate()); err == nil && a.GetAttended() {
			onward(a.GetOnwardReferralId()).Flags |= onwardAttended
			// A session written up as before its referral was made is not
			// one the referral led to: no wait, not a wait of 0 days.
			o, _ := s.OnwardByID(a.GetOnwardReferralId())
			if _, before := events.SessionBeforeReferral(o, a.GetDate()); before {
				break
			}
			if rec.FirstSession == 0 || d.Unix() < rec.FirstSession {
				rec.FirstSession = d.Unix()
			}
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		onward(e.OnwardReferralCompleted.GetOnwardReferralId()).Flags |= onwardCompleted
	}
	return p.link(b, rec, c, key, fresh)
}

// declineIndex places a decline reason in events.DeclineReasons, "other"
// for anything else.
func declineIndex(reason string) int {
	if i := slices.Index(events.DeclineReasons, reason); i >= 0 {
		return i
	}
	return slices.Index(events.DeclineReasons, "other")
}

// needMask is the journey's need categories: those last assessed
// (State.Needs, the one taxonomy), or until an assessment names one,
// those its referral reasons name.
func needMask(s events.State) uint32 {
	needs := s.Needs
	if len(needs) == 0 {
		for _, r := range s.Referral.GetReasons() {
			if c, ok := events.ReasonNeed(r); ok {
				needs = append(needs, c)
			}
		}
	}
	var m uint32
	for _, n := range needs {
		if i := slices.Index(needColumns, n); i >= 0 {
			m |= 1 << i
		}
	}
	return m
}

// measure records a wellbeing score: the first baseline, the latest
// follow-up.
func measure(rec *record, w *eventsv1.WellbeingMeasured) {
	scores := scoresOf(w)
	for k, v := range scores {
		i := slices.Index(Measures[:], k)
		if i < 0 {
			continue
		}
		bit := uint8(1) << i
		switch w.GetTimepoint() {
		case "baseline":
			if rec.HasBaseline&bit == 0 {
				rec.Baseline[i], rec.HasBaseline = v, rec.HasBaseline|bit
			}
		case "follow_up":
			rec.FollowUp[i], rec.HasFollowUp = v, rec.HasFollowUp|bit
		}
	}
}

// scoresOf names the scores of a measurement by Measures: each ONS4 item
// on its own, the score of the others.
func scoresOf(w *eventsv1.WellbeingMeasured) map[string]float64 {
	inst := w.GetInstrument()
	if !slices.Contains(events.Instruments, inst) {
		return nil
	}
	if inst != "ONS4" {
		return map[string]float64{inst: w.GetScore()}
	}
	out := map[string]float64{}
	for i, a := range w.GetAnswers() {
		if i < len(events.ONS4Items) {
			out["ONS4."+events.ONS4Items[i]] = float64(a)
		}
	}
	return out
}

// link keeps the person index and the re-referral and continuity flags of
// the person's journeys: a referral adds the journey, an assignment
// changes its worker (which matters only when the person has other
// journeys), an erasure takes it out (the person is no longer linked
// across journeys, and their entry is erased from the store).
func (p *projection) link(b *views.Batch, rec *record, c views.Change, key string, fresh bool) error {
	rec.Worker = ""
	if c.After.WorkerID != "" {
		rec.Worker = c.After.Referral.GetLinkWorkTeam() + "/" + c.After.WorkerID
	}
	var nhs string
	switch c.Envelope.GetEvent().(type) {
	case *eventsv1.Envelope_LinkWorkerAssigned:
		if !rec.has(flagSiblings) {
			return nil
		}
		nhs = c.After.Referral.GetPerson().GetNhsNumber()
	case *eventsv1.Envelope_PersonalDataErased:
		nhs = c.Before.Referral.GetPerson().GetNhsNumber()
	default:
		if !fresh || c.After.Erased {
			return nil
		}
		nhs = c.After.Referral.GetPerson().GetNhsNumber()
	}
	person := p.pseudo.person(nhs)
	if person == "" {
		return nil
	}
	pkey := personPrefix + person
	var entries []personEntry
	// Most people a referral names are new: Lookup, not Get.
	if raw, ok, err := b.Lookup(pkey); err != nil {
		return err
	} else if ok {
		entries, _ = unmarshalPerson(raw) // unreadable: start the person again
	}
	i := slices.IndexFunc(entries, func(e personEntry) bool { return e.Journey == c.JourneyID })
	switch {
	case c.After.Erased:
		if i >= 0 {
			entries = slices.Delete(entries, i, i+1)
		}
		rec.Flags &^= flagReReferral | flagSameKnown | flagSameWorker | flagSiblings
		// Older versions named the erased journey beside the pseudonym:
		// compacted away, so no bytes of them stay in the store's files.
		b.Erase(pkey)
		if len(entries) > 0 {
			b.Set(pkey, marshalPerson(entries))
		}
	case i < 0:
		entries = append(entries, personEntry{Journey: c.JourneyID, Key: key, Referred: rec.Referred})
		b.Set(pkey, marshalPerson(entries))
	}
	return p.relink(b, entries, c.JourneyID, rec, c.Seq)
}

// relink works out each of a person's journeys' re-referral and
// continuity flags from their records, and writes those of the other
// journeys that changed. All are worked out again, since the log may
// bring an earlier referral after a later one.
func (p *projection) relink(b *views.Batch, entries []personEntry, current string, rec *record, seq uint64) error {
	others := make([]*record, len(entries))
	for i, e := range entries {
		if e.Journey == current {
			entries[i].Worker = rec.Worker
			continue
		}
		raw, ok, err := b.Get(e.Key)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if r, err := unmarshalRecord(raw); err == nil {
			others[i], entries[i].Worker = &r, r.Worker
		}
	}
	for i, e := range entries {
		re, known, same := continuity(entries, e)
		r := others[i]
		if e.Journey == current {
			r = rec
		}
		if r == nil {
			continue
		}
		before := r.Flags
		r.set(flagReReferral, re)
		r.set(flagSameKnown, known)
		r.set(flagSameWorker, same)
		r.set(flagSiblings, len(entries) > 1)
		if e.Journey != current && r.Flags != before {
			b.Set(e.Key, r.marshal())
			if team, day, ok := keyParts(e.Key); ok {
				p.months.touch(team, day[:7], seq)
			}
		}
	}
	return nil
}

// continuity says whether journey e is a re-referral (the person was
// referred within the 12 months before it), and whether the worker who
// holds it is the one who held the person's latest earlier journey (known
// when both have a worker). Of two referrals at the same instant, the one
// with the greater id is the re-referral.
func continuity(entries []personEntry, e personEntry) (re, known, same bool) {
	at := time.Unix(e.Referred, 0).UTC()
	from := at.AddDate(-1, 0, 0).Unix()
	var prior *personEntry
	for i := range entries {
		o := &entries[i]
		if o.Journey == e.Journey || o.Referred > e.Referred || o.Referred < from {
			continue
		}
		if o.Referred == e.Referred && o.Journey > e.Journey {
			continue
		}
		if prior == nil || o.Referred > prior.Referred || (o.Referred == prior.Referred && o.Journey > prior.Journey) {
			prior = o
		}
	}
	if prior == nil {
		return false, false, false
	}
	known = e.Worker != "" && prior.Worker != ""
	return true, known, known && e.Worker == prior.Worker
}

// Outbox keys group lines in blocks of sequences, so that the lines the
// feed holds already go a block at a time.
const outboxBlock = 1024

func outboxKey(seq uint64) string {
	return fmt.Sprintf("%s%010d.%020d", outboxPrefix, seq/outboxBlock, seq)
}

func outboxBlockPrefix(block uint64) string {
	return fmt.Sprintf("%s%010d.", outboxPrefix, block)
}

// writeLine puts the change's feed line in the outbox, in the same batch
// as the view's checkpoint, and drops the blocks the feed holds already.
func (p *projection) writeLine(b *views.Batch, c views.Change, rec *record, team string) error {
	f := p.line(c, rec, team)
	if err := b.SetJSON(outboxKey(c.Seq), f); err != nil {
		return err
	}
	done := p.feed.from() / outboxBlock // blocks below hold only published lines
	// Unset until the view's first line: no block below this one holds any.
	pruned := c.Seq / outboxBlock
	raw, ok, err := b.Get(prunedKey)
	if err != nil {
		return err
	}
	if ok {
		pruned, _ = strconv.ParseUint(string(raw), 10, 64)
	}
	// A bounded number at once: after a long stop, the next lines go on.
	for n := 0; pruned < done && n < 64; n++ {
		b.DeletePrefix(outboxBlockPrefix(pruned))
		pruned++
	}
	// Set even when unchanged: the slice's next lines then read it from the
	// batch, not the store.
	b.Set(prunedKey, []byte(strconv.FormatUint(pruned, 10)))
	return nil
}

// line is the feed line of a change: the journey's pseudonymised context
// and what the event says, each field restricted to its value set.
func (p *projection) line(c views.Change, rec *record, team string) *FeedEvent {
	env := c.Envelope
	at := env.GetOccurredAt().AsTime().UTC()
	f := &FeedEvent{
		Type: snake(events.ShortName(env)), At: at, Journey: p.pseudo.journey(c.JourneyID),
		AgeBand: rec.AgeBand, Sex: rec.Sex, Ethnicity: rec.Ethnicity, Practice: rec.Practice, Team: team, Source: rec.Source,
	}
	if !c.After.Erased {
		f.Person = p.pseudo.person(c.After.Referral.GetPerson().GetNhsNumber())
	}
	if rec.Decile > 0 {
		d := int(rec.Decile)
		f.DeprivationDecile = &d
	}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		f.Reasons = rec.Reasons
		f.Urgency = oneOf(e.ReferralReceived.GetUrgency(), urgencies, "")
	case *eventsv1.Envelope_ContactAttempted:
		f.Outcome = oneOf(e.ContactAttempted.GetOutcome(), events.ContactOutcomes, "other")
		f.Method = oneOf(e.ContactAttempted.GetMethod(), methods, "other")
	case *eventsv1.Envelope_ContactMade:
		f.Outcome = "reached"
		f.Method = oneOf(e.ContactMade.GetMethod(), methods, "other")
		f.DaysFromReferral = days(rec.referredAt(), at)
	case *eventsv1.Envelope_NeedsAssessed:
		f.Needs = c.After.Needs
		for _, b := range e.NeedsAssessed.GetBarriers() {
			if cat, ok := events.PlaceBarrier(b); ok && !slices.Contains(f.Barriers, cat) {
				f.Barriers = append(f.Barriers, cat)
			}
		}
		f.Goals = len(e.NeedsAssessed.GetGoals())
	case *eventsv1.Envelope_GoalUpdated:
		f.Status = oneOf(e.GoalUpdated.GetStatus(), events.GoalStatuses, "")
	case *eventsv1.Envelope_WellbeingMeasured:
		measureLine(f, rec, e.WellbeingMeasured)
	case *eventsv1.Envelope_OnwardReferralMade:
		o := e.OnwardReferralMade
		f.Service, f.Organisation = code(o.GetServiceId()), code(o.GetOrganisationId())
		f.WaitingList = o.GetWaitingList()
	case *eventsv1.Envelope_OnwardReferralDeclined:
		f.Reason = events.DeclineReasons[declineIndex(e.OnwardReferralDeclined.GetReason())]
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		attended := a.GetAttended()
		f.Attended = &attended
		if d, err := time.Parse(time.DateOnly, a.GetDate()); err == nil {
			f.SessionDate = a.GetDate()
			if attended {
				f.DaysFromReferral = days(events.UKDate(rec.referredAt()), d)
			}
		}
	case *eventsv1.Envelope_Signposted:
		f.Service, f.Organisation = code(e.Signposted.GetServiceId()), code(e.Signposted.GetOrganisationId())
	case *eventsv1.Envelope_FollowUpScheduled:
		if _, err := time.Parse(time.DateOnly, e.FollowUpScheduled.GetDue()); err == nil {
			f.Due = e.FollowUpScheduled.GetDue()
		}
	case *eventsv1.Envelope_JourneyClosed:
		f.Reason = oneOf(e.JourneyClosed.GetReason(), events.CloseReasons, "other")
		// LinkWorkerAssigned: who the worker is stays with the team.
		// JourneyReopened: its reason is free text; only the fact is shown.
	}
	return f
}

// measureLine fills a wellbeing line: the score (ONS4: each item) and, at
// a follow-up, the change from the baseline.
func measureLine(f *FeedEvent, rec *record, w *eventsv1.WellbeingMeasured) {
	inst := w.GetInstrument()
	if !slices.Contains(events.Instruments, inst) {
		return
	}
	f.Instrument = inst
	f.Timepoint = oneOf(w.GetTimepoint(), events.Timepoints, "")
	if inst == "ONS4" {
		f.Items = map[string]int32{}
		for i, a := range w.GetAnswers() {
			if i < len(events.ONS4Items) {
				f.Items[events.ONS4Items[i]] = a
			}
		}
	} else {
		s := w.GetScore()
		f.Score = &s
	}
	if f.Timepoint != "follow_up" {
		return
	}
	for k := range scoresOf(w) {
		i := slices.Index(Measures[:], k)
		c, ok := rec.change(i)
		if i < 0 || !ok {
			continue
		}
		c = round2(c)
		if inst == "ONS4" {
			if f.ItemChanges == nil {
				f.ItemChanges = map[string]float64{}
			}
			f.ItemChanges[k[len("ONS4."):]] = c
		} else {
			f.Change = &c
		}
	}
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

// snake turns ReferralReceived into referral_received.
func snake(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		r := s[i]
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b = append(b, '_')
			}
			r += 'a' - 'A'
		}
		b = append(b, r)
	}
	return string(b)
}

func days(from, to time.Time) *float64 {
	if from.IsZero() || to.IsZero() {
		return nil
	}
	d := round2(to.Sub(from).Hours() / 24)
	return &d
}

func round2(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v*100+0.5)) / 100
	}
	return float64(int64(v*100+0.5)) / 100
}
