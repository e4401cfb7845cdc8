package referrals

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/feeds"
	"linkway/services/platform/views"
)

// ProjectionName names the referrers' view in the view store.
const ProjectionName = "referrals"

// View is what a referrer (a practice, or an agency of kind referrer) sees
// of one of its referrals (API.md). It holds no personal data: the referrer
// has that already. It holds nothing another organisation typed: no VCS
// decline details, no link worker notes, no risk details.
type View struct {
	JourneyID    string `json:"journey_id"`
	SourceID     string `json:"source_id"`
	Status       string `json:"status"`
	Urgency      string `json:"urgency"`
	LinkWorkTeam string `json:"link_work_team"`
	// Source is who referred: gp, or the referring agency's sector.
	Source        string           `json:"source"`
	Reasons       []events.Concept `json:"reasons"`
	LinkWorker    *LinkWorker      `json:"link_worker"`
	Timeline      []Step           `json:"timeline"`
	Connections   []Connection     `json:"connections"`
	Measures      []Measure        `json:"measures"`
	ClosureReason string           `json:"closure_reason,omitempty"`
	Codes         []WriteBack      `json:"codes"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
}

// LinkWorker is the named worker who holds the case.
type LinkWorker struct {
	Name string `json:"name"`
}

// Step is one entry of the timeline.
type Step struct {
	Type    string    `json:"type"`
	At      time.Time `json:"at"`
	Summary string    `json:"summary"`
}

// Connection is one onward referral to a community service, or one
// signposting (status signposted).
type Connection struct {
	ID         string `json:"onward_referral_id,omitempty"`
	SignpostID string `json:"signpost_id,omitempty"`
	// ServiceID is empty for a signposting to something not in the directory.
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	Status      string `json:"status"`
}

// Signposted is a connection's status for a signposting.
const Signposted = "signposted"

// Measure is one scored wellbeing questionnaire.
type Measure struct {
	Instrument string    `json:"instrument"`
	Timepoint  string    `json:"timepoint"`
	Score      float64   `json:"score"`
	RawScore   int32     `json:"raw_score"`
	At         time.Time `json:"at"`
}

// WriteBack is a SNOMED CT code for the practice to file in the GP record.
type WriteBack struct {
	System  string    `json:"system"`
	Code    string    `json:"code"`
	Display string    `json:"display"`
	At      time.Time `json:"at"`
}

// record is a view as stored: the View, and what FHIR answers need that
// the View does not show. Statuses are copied from the folded state
// (events.State), never worked out here.
type record struct {
	View
	Org      string          `json:"org"`
	Workflow events.Workflow `json:"workflow"`
	Erased   bool            `json:"erased,omitempty"`
	// RecordedAt is when the log recorded the last change the referrer
	// sees (FHIR meta.lastUpdated).
	RecordedAt time.Time `json:"recorded_at"`
}

// personal is the person's data that FHIR answers give back to the
// referrer who sent it. It is kept under a key of its own, written once,
// so that erasure removes it from the store's files (views.Batch.Erase)
// while the record (no personal data) stays.
type personal struct {
	NHSNumber  string `json:"nhs_number,omitempty"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Notes      string `json:"notes,omitempty"`
}

func personalOf(r *eventsv1.ReferralReceived) personal {
	p := r.GetPerson()
	return personal{NHSNumber: p.GetNhsNumber(), GivenName: p.GetGivenName(), FamilyName: p.GetFamilyName(),
		Notes: r.GetNotes().GetText()}
}

func (p personal) empty() bool { return p == personal{} }

// Keys of the view. Every key starts with its kind and the referrer's
// code, so a referrer's reads can only ever name its own entries:
//
//	r.<org>.<journey>                      the record (JSON)
//	p.<org>.<journey>                      the person's data (JSON), erased with them
//	c.<org>.<created>.<journey>            the list, oldest first by creation
//	s.<org>.<status>.<created>.<journey>   the list by status
//	u.<org>.<updated>.<journey>            the list by last change (value: the status)
//	q., t, x.                              the GP feed's outbox (feed.go, services/platform/feeds)
//
// Times are fixed-width UTC, so keys sort in time order.
func recordKey(org, id string) string    { return "r." + org + "." + id }
func personKey(org, id string) string    { return "p." + org + "." + id }
func createdPrefix(org string) string    { return "c." + org + "." }
func statusPrefix(org, st string) string { return "s." + org + "." + st + "." }
func updatedPrefix(org string) string    { return "u." + org + "." }

func createdKey(rec *record) string {
	return createdPrefix(rec.Org) + stamp(rec.CreatedAt) + "." + rec.JourneyID
}

func statusKey(rec *record) string {
	return statusPrefix(rec.Org, rec.Status) + stamp(rec.CreatedAt) + "." + rec.JourneyID
}

func updatedKey(rec *record) string {
	return updatedPrefix(rec.Org) + stamp(rec.UpdatedAt) + "." + rec.JourneyID
}

const stampLayout = "2006-01-02T15:04:05.000000000Z"

func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// journeyOfKey is the journey id at the end of an index key.
func journeyOfKey(key string) string { return key[strings.LastIndexByte(key, '.')+1:] }

// owner is the organisation whose view a journey is in: its referrer (a
// practice or an agency). Self-referrals are in no referrer's view.
func owner(s events.State) (string, bool) {
	r := s.Referral
	if r == nil || s.Source() == events.SourceSelf {
		return "", false
	}
	org := r.GetReferrerOrganisationId()
	return org, validKeyToken(org)
}

// projection renders the referrers' view on the process's one reader.
type projection struct {
	terms *events.Terminology
	// feed is the practices' feed whose outbox the projection writes
	// (feed.go); nil when the service keeps no feed.
	feed *feeds.Feed
	// records are the referrers' records as the reader applies the log.
	records *views.Records[record]
}

func (p *projection) Name() string { return ProjectionName }

// Apply implements views.Projection: the referrer's record of the journey,
// its list entries moved when its status or last change moves, and the
// person's data kept for FHIR answers until the person is erased.
func (p *projection) Apply(b *views.Batch, c views.Change) error {
	org, ok := owner(c.After)
	if !ok || events.ParseID(c.JourneyID) != nil {
		return nil // no referrer's view, or not a journey id Linkway issues
	}
	rec, found, err := p.records.LoadJourney(b, c, recordKey(org, c.JourneyID))
	if err != nil {
		return err
	}
	if !found {
		*rec = p.start(c.JourneyID, c.After)
	}
	before := *rec // its fields that the lists' keys are made of
	ch := change{Envelope: c.Envelope, Before: c.Before, After: c.After}
	if !p.render(rec, ch) {
		if found {
			return nil // nothing the referrer sees changed
		}
		// A journey whose referral this view never rendered (not expected:
		// views replay from the start): its record, from the state.
		rec.UpdatedAt, rec.RecordedAt = occurred(c.Envelope), recorded(c.Envelope)
		p.settle(rec, ch)
	}
	if !found {
		b.Set(createdKey(rec), nil)
		if pd := personalOf(c.After.Referral); !pd.empty() && !c.After.Erased {
			if err := b.SetJSON(personKey(org, c.JourneyID), pd); err != nil {
				return err
			}
		}
	}
	if !found || before.Status != rec.Status {
		if found {
			b.Delete(statusKey(&before))
		}
		b.Set(statusKey(rec), nil)
	}
	if !found || !before.UpdatedAt.Equal(rec.UpdatedAt) {
		if found {
			b.Delete(updatedKey(&before))
		}
		b.Set(updatedKey(rec), []byte(rec.Status))
	} else if before.Status != rec.Status {
		b.Set(updatedKey(rec), []byte(rec.Status))
	}
	if c.Envelope.GetPersonalDataErased() != nil {
		b.Erase(personKey(org, c.JourneyID))
	}
	return p.toFeed(b, c, org, rec)
}

// change is one event of a journey with the state before and after it,
// folded by events.Evolve: what the view is rendered from, in the reader
// (views.Change) and in answers folded from a command's result.
type change struct {
	Envelope      *eventsv1.Envelope
	Before, After events.State
}

// replay renders a journey's history as the view would hold it, folding it
// with events.Evolve: for answers built from a command's result (no second
// read) and, when the view is behind, from the log. ok is false when the
// journey is in no view of org.
func (p *projection) replay(org string, history []*eventsv1.Envelope) (rec record, pd personal, ok bool) {
	var st events.State
	for _, env := range history {
		after := events.Evolve(st, env)
		if o, in := owner(after); in && o == org {
			if !ok {
				rec, pd, ok = p.start(after.JourneyID, after), personalOf(after.Referral), true
			}
			p.render(&rec, change{Envelope: env, Before: st, After: after})
			if after.Erased {
				pd = personal{}
			}
		}
		st = after
	}
	return rec, pd, ok
}

// start is the record of a journey just referred, before any event is
// rendered into it.
func (p *projection) start(id string, s events.State) record {
	rr := s.Referral
	rec := record{Org: rr.GetReferrerOrganisationId(), View: View{
		JourneyID: id, SourceID: rr.GetSourceId(), Urgency: rr.GetUrgency(), LinkWorkTeam: rr.GetLinkWorkTeam(),
		Source: s.Source(), CreatedAt: s.ReferredAt, Reasons: []events.Concept{}, Timeline: []Step{},
		Connections: []Connection{}, Measures: []Measure{}, Codes: []WriteBack{},
	}}
	if rec.Urgency == "" {
		rec.Urgency = events.UrgencyRoutine
	}
	for _, r := range rr.GetReasons() {
		c, ok := p.terms.Reasons.Get(r)
		if !ok {
			c = events.Concept{ID: r}
		}
		rec.Reasons = append(rec.Reasons, c)
	}
	return rec
}

// render applies one change to a record: a timeline step saying what
// happened, and the status, worker, closure, onward statuses, workflow
// status and write-back codes as events decides them from the folded
// state. It reports whether the referrer sees anything of the change:
// what only the team sees (case notes, risks not escalated, feedback) is
// not shown, not even as a step.
func (p *projection) render(rec *record, c change) bool {
	env := c.Envelope
	at := occurred(env)
	step := Step{Type: eventType(env), At: at}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		if c.Before.Exists() {
			return false // a second referral event changes nothing (Evolve agrees)
		}
		step.Summary = "Referral received by link-worker team " + rec.LinkWorkTeam + " (" + rec.Urgency + ")"
	case *eventsv1.Envelope_LinkWorkerAssigned:
		a := e.LinkWorkerAssigned
		step.Summary = "Link worker " + a.GetWorkerName() + " assigned"
		if prev := a.GetPreviousWorkerName(); prev != "" {
			step.Summary = "Link worker " + a.GetWorkerName() + " took over from " + prev + " (handover)"
		}
	case *eventsv1.Envelope_ContactAttempted:
		step.Summary = "Tried to reach the person: " + humanise(e.ContactAttempted.GetOutcome())
	case *eventsv1.Envelope_ContactMade:
		step.Summary = "The person was reached and is being supported"
	case *eventsv1.Envelope_NeedsAssessed:
		step.Summary = fmt.Sprintf("What matters conversation held: %d goal(s) agreed", len(e.NeedsAssessed.GetGoals()))
	case *eventsv1.Envelope_GoalUpdated:
		step.Summary = "A goal was updated: " + humanise(e.GoalUpdated.GetStatus())
	case *eventsv1.Envelope_WellbeingMeasured:
		m := e.WellbeingMeasured
		rec.Measures = append(rec.Measures, Measure{Instrument: m.GetInstrument(), Timepoint: m.GetTimepoint(),
			Score: m.GetScore(), RawScore: m.GetRawScore(), At: at})
		step.Summary = fmt.Sprintf("%s %s score %s", m.GetInstrument(), humanise(m.GetTimepoint()), strconv.FormatFloat(m.GetScore(), 'f', -1, 64))
	case *eventsv1.Envelope_OnwardReferralMade:
		m := e.OnwardReferralMade
		rec.Connections = append(rec.Connections, Connection{ID: m.GetOnwardReferralId(), ServiceID: m.GetServiceId(),
			ServiceName: m.GetServiceName()})
		step.Summary = "Referred on to " + m.GetServiceName()
	case *eventsv1.Envelope_OnwardReferralAccepted:
		step.Summary = rec.serviceName(e.OnwardReferralAccepted.GetOnwardReferralId()) + " accepted the referral"
	case *eventsv1.Envelope_OnwardReferralDeclined:
		// The reason code only: the organisation's free-text detail is theirs.
		step.Summary = rec.serviceName(e.OnwardReferralDeclined.GetOnwardReferralId()) +
			" could not take the referral: " + humanise(e.OnwardReferralDeclined.GetReason())
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		step.Summary = "The referral to " + rec.serviceName(e.OnwardReferralWithdrawn.GetOnwardReferralId()) + " was withdrawn"
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		if a.GetAttended() {
			step.Summary = "The person attended " + rec.serviceName(a.GetOnwardReferralId()) + " on " + a.GetDate()
		} else {
			step.Summary = "The person did not attend " + rec.serviceName(a.GetOnwardReferralId()) + " on " + a.GetDate()
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		step.Summary = "The person completed " + rec.serviceName(e.OnwardReferralCompleted.GetOnwardReferralId())
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		step.Summary = "The person stopped going to " + rec.serviceName(e.OnwardReferralDroppedOut.GetOnwardReferralId())
	case *eventsv1.Envelope_Signposted:
		s := e.Signposted
		name := s.GetServiceName()
		if s.GetServiceId() == "" || name == "" {
			// Described in the link worker's words, which stay with the team.
			name = "a community activity the link worker described"
		}
		rec.Connections = append(rec.Connections, Connection{SignpostID: s.GetSignpostId(), ServiceID: s.GetServiceId(),
			ServiceName: name, Status: Signposted})
		step.Summary = "Signposted to " + name
	case *eventsv1.Envelope_ConsentRecorded:
		cr := e.ConsentRecorded
		what := "did not agree"
		if cr.GetShareWithVcs() {
			what = "agreed"
		}
		step.Summary = "The person " + what + " to share their details with community organisations"
		if m := cr.GetMethod(); m != "" {
			step.Summary += " (" + m + ")"
		}
	case *eventsv1.Envelope_RiskRecorded:
		r := e.RiskRecorded
		if !r.GetEscalateToGp() {
			return false // the team's own: never shown outside it
		}
		// The kind only: the detail stays with the team, who will call.
		step.Summary = "A " + humanise(r.GetKind()) + " concern was escalated to the practice by the link-worker team: please contact the team"
	case *eventsv1.Envelope_FollowUpScheduled:
		if e.FollowUpScheduled.GetAfterClosure() {
			step.Summary = "Check-in after closure scheduled for " + e.FollowUpScheduled.GetDue()
		} else {
			step.Summary = "Follow-up scheduled for " + e.FollowUpScheduled.GetDue()
		}
	case *eventsv1.Envelope_FollowUpCompleted:
		step.Summary = "Follow-up held"
	case *eventsv1.Envelope_PatientDeclined:
		step.Summary = "The person declined social prescribing"
	case *eventsv1.Envelope_JourneyClosed:
		step.Summary = "Closed: " + humanise(e.JourneyClosed.GetReason())
	case *eventsv1.Envelope_JourneyReopened:
		step.Summary = "Reopened"
	case *eventsv1.Envelope_PersonalDataErased:
		rec.Erased = true
		step.Summary = "The person's personal data was erased"
	case *eventsv1.Envelope_CaseNoteAdded, *eventsv1.Envelope_FeedbackGiven, *eventsv1.Envelope_SupervisionRecorded:
		return false // the team's and the services' own
	default:
		step.Summary = "Updated"
	}
	rec.Timeline = append(rec.Timeline, step)
	rec.UpdatedAt = at
	rec.RecordedAt = recorded(env)
	p.settle(rec, c)
	return true
}

// settle copies into the record what events decides from the folded
// state: status, FHIR workflow status, closure, worker, each onward
// referral's status, and the write-back code the change calls for.
func (p *projection) settle(rec *record, c change) {
	s := c.After
	rec.Status = string(s.Status())
	rec.Workflow = s.Workflow()
	rec.ClosureReason = ""
	if s.Closed {
		rec.ClosureReason = s.ClosedReason
	}
	rec.LinkWorker = nil
	if s.WorkerID != "" {
		rec.LinkWorker = &LinkWorker{Name: s.WorkerName}
	}
	for i := range rec.Connections {
		if id := rec.Connections[i].ID; id != "" {
			if o, ok := s.OnwardByID(id); ok {
				rec.Connections[i].Status = string(o.Status)
			}
		}
	}
	if wb, ok := events.WriteBackFor(c.Before, c.Envelope); ok {
		p.addCode(rec, wb.Code, occurred(c.Envelope))
	}
}

// serviceName is the name of the service an onward referral went to.
func (rec *record) serviceName(onwardID string) string {
	for _, c := range rec.Connections {
		if c.ID == onwardID && c.ServiceName != "" {
			return c.ServiceName
		}
	}
	return "the community service"
}

// addCode adds a write-back code once: the GP record needs the fact, not
// every repetition of it.
func (p *projection) addCode(rec *record, code string, at time.Time) {
	if slices.ContainsFunc(rec.Codes, func(w WriteBack) bool { return w.Code == code }) {
		return
	}
	c, _ := p.terms.WriteBack.Get(code)
	rec.Codes = append(rec.Codes, WriteBack{System: events.SNOMEDSystem, Code: code, Display: c.Term, At: at})
}

func occurred(env *eventsv1.Envelope) time.Time {
	if env.GetOccurredAt() == nil {
		return time.Time{}
	}
	return env.GetOccurredAt().AsTime()
}

func recorded(env *eventsv1.Envelope) time.Time {
	if env.GetRecordedAt() == nil {
		return occurred(env)
	}
	return env.GetRecordedAt().AsTime()
}

// eventType is the event's name in snake case (referral_received), like
// every other name in the JSON API.
func eventType(env *eventsv1.Envelope) string {
	name := events.ShortName(env)
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func humanise(code string) string { return strings.ReplaceAll(code, "_", " ") }

// validKeyToken reports whether s can be one dot-separated part of a view
// key (an organisation code).
func validKeyToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '=' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
