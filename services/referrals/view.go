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
	"linkway/services/platform/views"
)

// ProjectionName names the practices' view: its consumer and its bucket.
const ProjectionName = "referrals"

// View is what a practice sees of one of its referrals (API.md). It holds
// no personal data: the practice has that already, and a view that holds
// none needs nothing done to it on erasure. It also holds nothing another
// organisation typed: no VCS decline details, no link worker notes.
type View struct {
	JourneyID     string           `json:"journey_id"`
	SourceID      string           `json:"source_id"`
	Status        string           `json:"status"`
	Urgency       string           `json:"urgency"`
	LinkWorkTeam  string           `json:"link_work_team"`
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

// Connection is one onward referral to a community service.
type Connection struct {
	ID          string `json:"onward_referral_id"`
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	Status      string `json:"status"`
}

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

// record is a view as stored: the View and what the projector needs to
// derive the status, which the practice is not shown.
type record struct {
	View
	Practice  string `json:"practice"`
	WorkerID  string `json:"worker_id,omitempty"`
	Contacted bool   `json:"contacted,omitempty"`
	Closed    bool   `json:"closed,omitempty"`
	Declined  bool   `json:"declined,omitempty"`
}

// Keys of the view bucket: one record per practice and journey, so that a
// practice's reads can only ever name its own records, and an index from
// journey to practice for the events after the referral.
func viewKey(practice, journeyID string) string { return "r." + practice + "." + journeyID }
func practicePrefix(practice string) string     { return "r." + practice + "." }
func indexKey(journeyID string) string          { return "j." + journeyID }

// projector folds journey events into the practices' view.
type projector struct {
	terms *events.Terminology
}

func (p *projector) Name() string { return ProjectionName }

// Apply implements views.Projector.
func (p *projector) Apply(tx *views.Tx, ev views.Event) error {
	env := ev.Envelope
	id := env.GetJourneyId()
	if events.ParseID(id) != nil {
		return nil // not a journey id Linkway issues: nothing a practice can ask for
	}
	var rec record
	if rr := env.GetReferralReceived(); rr != nil {
		practice := rr.GetReferrerOrganisationId()
		if practice == "" || !validKeyToken(practice) {
			return nil // not referred by an organisation: no practice's view
		}
		if ok, err := tx.GetJSON(viewKey(practice, id), &rec); err != nil || ok {
			return err // a second ReferralReceived changes nothing (Evolve agrees)
		}
		rec = p.start(env)
		tx.Put(indexKey(id), []byte(practice))
	} else {
		practice, ok, err := tx.Get(indexKey(id))
		if err != nil || !ok {
			return err // a journey no practice referred
		}
		if ok, err := tx.GetJSON(viewKey(string(practice), id), &rec); err != nil || !ok {
			return err
		}
	}
	p.fold(&rec, env)
	return tx.PutJSON(viewKey(rec.Practice, id), rec)
}

// start is the record of a journey whose first event, env, is its referral.
func (p *projector) start(env *eventsv1.Envelope) record {
	rr := env.GetReferralReceived()
	rec := record{Practice: rr.GetReferrerOrganisationId(), View: View{
		JourneyID: env.GetJourneyId(), SourceID: rr.GetSourceId(), Urgency: rr.GetUrgency(), LinkWorkTeam: rr.GetLinkWorkTeam(),
		CreatedAt: env.GetOccurredAt().AsTime(), Reasons: []events.Concept{}, Timeline: []Step{},
		Connections: []Connection{}, Measures: []Measure{}, Codes: []WriteBack{},
	}}
	for _, r := range rr.GetReasons() {
		c, ok := p.terms.Reasons.Get(r)
		if !ok {
			c = events.Concept{ID: r}
		}
		rec.Reasons = append(rec.Reasons, c)
	}
	return rec
}

// replay folds a journey's whole history into a record, as the projection
// would: for answers that must reflect the log itself, not the view.
func (p *projector) replay(history []*eventsv1.Envelope) (record, bool) {
	if len(history) == 0 || history[0].GetReferralReceived() == nil {
		return record{}, false
	}
	rec := p.start(history[0])
	for _, env := range history {
		p.fold(&rec, env)
	}
	return rec, true
}

// fold applies one event to a record. The status rules are those of
// events.State.Status, recomputed here from the facts kept in the record.
func (p *projector) fold(rec *record, env *eventsv1.Envelope) {
	at := env.GetOccurredAt().AsTime()
	step := Step{Type: eventType(env), At: at}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		step.Summary = "Referral received by link-worker team " + rec.LinkWorkTeam + " (" + rec.Urgency + ")"
	case *eventsv1.Envelope_LinkWorkerAssigned:
		rec.WorkerID = e.LinkWorkerAssigned.GetWorkerId()
		rec.LinkWorker = &LinkWorker{Name: e.LinkWorkerAssigned.GetWorkerName()}
		step.Summary = "Link worker " + rec.LinkWorker.Name + " assigned"
	case *eventsv1.Envelope_ContactAttempted:
		step.Summary = "Tried to reach the person: " + humanise(e.ContactAttempted.GetOutcome())
	case *eventsv1.Envelope_ContactMade:
		rec.Contacted = true
		step.Summary = "The person was reached and is being supported"
		p.addCode(rec, events.CodeReferredToSocialPrescribing, at)
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
			ServiceName: m.GetServiceName(), Status: string(events.OnwardSent)})
		step.Summary = "Referred on to " + m.GetServiceName()
	case *eventsv1.Envelope_OnwardReferralAccepted:
		name := rec.setConnection(e.OnwardReferralAccepted.GetOnwardReferralId(), events.OnwardAccepted)
		step.Summary = name + " accepted the referral"
	case *eventsv1.Envelope_OnwardReferralDeclined:
		// The reason code only: the organisation's free-text detail is theirs.
		name := rec.setConnection(e.OnwardReferralDeclined.GetOnwardReferralId(), events.OnwardDeclined)
		step.Summary = name + " could not take the referral: " + humanise(e.OnwardReferralDeclined.GetReason())
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		name := rec.setConnection(e.OnwardReferralWithdrawn.GetOnwardReferralId(), events.OnwardWithdrawn)
		step.Summary = "The referral to " + name + " was withdrawn"
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		name := rec.connectionName(a.GetOnwardReferralId())
		if a.GetAttended() {
			rec.setConnection(a.GetOnwardReferralId(), events.OnwardAttending)
			step.Summary = "The person attended " + name + " on " + a.GetDate()
		} else {
			step.Summary = "The person did not attend " + name + " on " + a.GetDate()
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		name := rec.setConnection(e.OnwardReferralCompleted.GetOnwardReferralId(), events.OnwardCompleted)
		step.Summary = "The person completed " + name
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		name := rec.setConnection(e.OnwardReferralDroppedOut.GetOnwardReferralId(), events.OnwardDroppedOut)
		step.Summary = "The person stopped going to " + name
	case *eventsv1.Envelope_FollowUpScheduled:
		step.Summary = "Follow-up scheduled for " + e.FollowUpScheduled.GetDue()
	case *eventsv1.Envelope_FollowUpCompleted:
		step.Summary = "Follow-up held"
	case *eventsv1.Envelope_PatientDeclined:
		rec.Closed, rec.Declined, rec.ClosureReason = true, true, "declined"
		step.Summary = "The person declined social prescribing"
		p.addCode(rec, events.CodeSocialPrescribingDeclined, at)
	case *eventsv1.Envelope_JourneyClosed:
		rec.Closed, rec.ClosureReason = true, e.JourneyClosed.GetReason()
		rec.Declined = rec.ClosureReason == "declined"
		step.Summary = "Closed: " + humanise(rec.ClosureReason)
		if rec.Declined {
			p.addCode(rec, events.CodeSocialPrescribingDeclined, at)
		}
	case *eventsv1.Envelope_JourneyReopened:
		rec.Closed, rec.Declined, rec.ClosureReason = false, false, ""
		step.Summary = "Reopened"
	case *eventsv1.Envelope_PersonalDataErased:
		step.Summary = "The person's personal data was erased"
	default:
		step.Summary = "Updated"
	}
	rec.Timeline = append(rec.Timeline, step)
	rec.UpdatedAt = at
	rec.Status = string(rec.status())
}

func (rec *record) status() events.Status {
	taken := func(c Connection) bool {
		s := events.OnwardStatus(c.Status)
		return s == events.OnwardAccepted || s == events.OnwardAttending || s == events.OnwardCompleted
	}
	switch {
	case rec.Closed && rec.Declined:
		return events.StatusDeclined
	case rec.Closed:
		return events.StatusClosed
	case slices.ContainsFunc(rec.Connections, taken):
		return events.StatusConnected
	case rec.Contacted:
		return events.StatusInProgress
	case rec.WorkerID != "":
		return events.StatusAssigned
	}
	return events.StatusReferred
}

// setConnection sets an onward referral's status and returns its service name.
func (rec *record) setConnection(id string, st events.OnwardStatus) string {
	for i := range rec.Connections {
		if rec.Connections[i].ID == id {
			rec.Connections[i].Status = string(st)
			return rec.Connections[i].ServiceName
		}
	}
	return "the community service"
}

func (rec *record) connectionName(id string) string {
	for _, c := range rec.Connections {
		if c.ID == id {
			return c.ServiceName
		}
	}
	return "the community service"
}

// addCode adds a write-back code once: the GP record needs the fact, not
// every repetition of it.
func (p *projector) addCode(rec *record, code string, at time.Time) {
	if slices.ContainsFunc(rec.Codes, func(w WriteBack) bool { return w.Code == code }) {
		return
	}
	c, _ := p.terms.WriteBack.Get(code)
	rec.Codes = append(rec.Codes, WriteBack{System: events.SNOMEDSystem, Code: code, Display: c.Term, At: at})
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

// validKeyToken reports whether s can be part of a KV key.
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
