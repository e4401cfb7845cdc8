package vcs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

// InboxProjection names the inbox view (bucket view_inbox).
const InboxProjection = "inbox"

// Key layout of the inbox bucket. Items are keyed by organisation first so
// that one organisation's inbox is one prefix scan of the mirror; the
// journey index lets an event that only names a journey (an erasure) find
// the journey's items.
const (
	itemPrefix    = "o."
	journeyPrefix = "j."
	onwardPrefix  = "r."
)

// itemKey is the key of one onward referral in one organisation's inbox.
// Organisation codes are [A-Za-z0-9-] (orgs.ValidCode) and ids are UUIDs,
// so the key always fits the KV key alphabet.
func itemKey(orgID, onwardID string) string { return itemPrefix + orgID + "." + onwardID }

// orgPrefix is the prefix of every item of an organisation.
func orgPrefix(orgID string) string { return itemPrefix + orgID + "." }

// record is an inbox item as stored. It holds the journey id, which the
// service needs to carry out the organisation's commands; the journey id is
// never shown to the organisation (Item leaves it out).
type record struct {
	ID                string       `json:"id"`
	JourneyID         string       `json:"journey_id"`
	OrganisationID    string       `json:"organisation_id"`
	ServiceID         string       `json:"service_id"`
	ServiceName       string       `json:"service_name"`
	Status            string       `json:"status"`
	WaitingList       bool         `json:"waiting_list,omitempty"`
	SentAt            time.Time    `json:"sent_at"`
	RespondedAt       *time.Time   `json:"responded_at,omitempty"`
	UpdatedAt         time.Time    `json:"updated_at"`
	Person            Person       `json:"person"`
	Needs             []string     `json:"needs,omitempty"`
	Notes             string       `json:"notes,omitempty"`
	Shared            []string     `json:"shared"`
	LinkWorkerContact string       `json:"link_worker_contact,omitempty"`
	DeclineReason     string       `json:"decline_reason,omitempty"`
	Detail            string       `json:"detail,omitempty"`
	Attendance        []Attendance `json:"attendance,omitempty"`
	Erased            bool         `json:"erased,omitempty"`
	// Seq is the stream sequence of the last event folded in.
	Seq uint64 `json:"seq"`
}

// Person is what the person agreed to share: only the fields named in
// Item.Shared are ever set. There is deliberately no NHS number, birth date
// or postcode field: they cannot reach a VCS organisation through this type.
type Person struct {
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Email      string `json:"email,omitempty"`
}

// Name is the person's shared name, or "" when the name was not shared.
func (p Person) Name() string { return strings.TrimSpace(p.GivenName + " " + p.FamilyName) }

// Attendance is one recorded session.
type Attendance struct {
	Date     string `json:"date"`
	Attended bool   `json:"attended"`
}

// Item is an inbox item as the organisation sees it (API and web page).
type Item struct {
	OnwardReferralID  string       `json:"onward_referral_id"`
	ServiceID         string       `json:"service_id"`
	ServiceName       string       `json:"service_name"`
	Status            string       `json:"status"`
	WaitingList       bool         `json:"waiting_list"`
	SentAt            time.Time    `json:"sent_at"`
	RespondedAt       *time.Time   `json:"responded_at,omitempty"`
	UpdatedAt         time.Time    `json:"updated_at"`
	WaitingSeconds    int64        `json:"waiting_seconds"`
	Person            Person       `json:"person"`
	Needs             []string     `json:"needs"`
	Notes             string       `json:"notes,omitempty"`
	Shared            []string     `json:"shared"`
	LinkWorkerContact string       `json:"link_worker_contact,omitempty"`
	DeclineReason     string       `json:"decline_reason,omitempty"`
	Detail            string       `json:"detail,omitempty"`
	Attendance        []Attendance `json:"attendance"`
	Erased            bool         `json:"erased,omitempty"`
}

// item is the organisation's view of a record at now. Waiting time runs
// from sending until the organisation answered (or until now while it has
// not): how long the person waited for a yes or no.
func (r record) item(now time.Time) Item {
	end := now
	switch {
	case r.RespondedAt != nil:
		end = *r.RespondedAt
	case r.Status != string(events.OnwardSent):
		end = r.UpdatedAt // withdrawn (or erased) before any answer: no longer waiting
	}
	it := Item{
		OnwardReferralID: r.ID, ServiceID: r.ServiceID, ServiceName: r.ServiceName, Status: r.Status,
		WaitingList: r.WaitingList, SentAt: r.SentAt, RespondedAt: r.RespondedAt, UpdatedAt: r.UpdatedAt,
		WaitingSeconds: int64(max(end.Sub(r.SentAt), 0) / time.Second),
		Person:         r.Person, Needs: r.Needs, Notes: r.Notes, Shared: r.Shared,
		LinkWorkerContact: r.LinkWorkerContact, DeclineReason: r.DeclineReason, Detail: r.Detail,
		Attendance: r.Attendance, Erased: r.Erased,
	}
	if it.Needs == nil {
		it.Needs = []string{}
	}
	if it.Shared == nil {
		it.Shared = []string{}
	}
	if it.Attendance == nil {
		it.Attendance = []Attendance{}
	}
	return it
}

// onwardRef finds the organisation of an onward referral from events that
// carry only its id.
type onwardRef struct {
	OrganisationID string `json:"organisation_id"`
}

// change is what one event did to the inbox: the record after it and the
// short event name used in feed subjects.
type change struct {
	Event   string
	EventID string
	At      time.Time
	Record  record
}

// fold applies one journey event to the inbox records held in tx and
// returns the records it changed. Events that do not concern VCS
// organisations change nothing. It is shared by the inbox view and the
// NATS feed so that both say exactly the same thing.
func fold(tx *views.Tx, ev views.Event) ([]change, error) {
	env := ev.Envelope
	at := env.GetOccurredAt().AsTime().UTC()
	jid := env.GetJourneyId()
	if m, ok := env.GetEvent().(*eventsv1.Envelope_OnwardReferralMade); ok {
		return made(tx, ev.Seq, env, m.OnwardReferralMade)
	}
	if _, ok := env.GetEvent().(*eventsv1.Envelope_PersonalDataErased); ok {
		return erase(tx, ev.Seq, env)
	}
	id, name, step := onwardStep(env)
	if step == nil {
		return nil, nil
	}
	var ref onwardRef
	ok, err := tx.GetJSON(onwardPrefix+id, &ref)
	if err != nil || !ok {
		// An event about an onward referral this view never saw made:
		// nothing of it can be shown, so nothing to do.
		return nil, err
	}
	key := itemKey(ref.OrganisationID, id)
	var r record
	if ok, err := tx.GetJSON(key, &r); err != nil || !ok || r.JourneyID != jid {
		return nil, err
	}
	step(&r, at)
	r.UpdatedAt, r.Seq = at, ev.Seq
	if err := tx.PutJSON(key, r); err != nil {
		return nil, fmt.Errorf("inbox %s: %w", name, err)
	}
	return []change{{Event: name, EventID: env.GetEventId(), At: at, Record: r}}, nil
}

// onwardStep returns the onward referral id an event changes, the event's
// feed name, and how it changes the record; step is nil for other events.
func onwardStep(env *eventsv1.Envelope) (id, name string, step func(*record, time.Time)) {
	responded := func(r *record, at time.Time) {
		if r.RespondedAt == nil {
			r.RespondedAt = &at
		}
	}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_OnwardReferralAccepted:
		return e.OnwardReferralAccepted.GetOnwardReferralId(), "accepted", func(r *record, at time.Time) {
			r.Status = string(events.OnwardAccepted)
			responded(r, at)
		}
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		return d.GetOnwardReferralId(), "declined", func(r *record, at time.Time) {
			r.Status, r.DeclineReason, r.Detail = string(events.OnwardDeclined), d.GetReason(), d.GetDetail().GetText()
			responded(r, at)
		}
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		return e.OnwardReferralWithdrawn.GetOnwardReferralId(), "withdrawn", func(r *record, _ time.Time) {
			// The link worker's reason is theirs: free text about the person
			// that the organisation does not need.
			r.Status = string(events.OnwardWithdrawn)
		}
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		return a.GetOnwardReferralId(), "attendance", func(r *record, _ time.Time) {
			r.Attendance = append(r.Attendance, Attendance{Date: a.GetDate(), Attended: a.GetAttended()})
			// Mirrors events.Evolve: only a session attended moves the status.
			if a.GetAttended() {
				r.Status = string(events.OnwardAttending)
			}
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		return e.OnwardReferralCompleted.GetOnwardReferralId(), "completed", func(r *record, _ time.Time) {
			r.Status = string(events.OnwardCompleted)
		}
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		d := e.OnwardReferralDroppedOut
		return d.GetOnwardReferralId(), "dropped_out", func(r *record, _ time.Time) {
			r.Status, r.Detail = string(events.OnwardDroppedOut), d.GetDetail().GetText()
		}
	}
	return "", "", nil
}

// made adds an onward referral to its organisation's inbox, copying only
// what SharedWithVcs holds, and only the fields it says were shared.
func made(tx *views.Tx, seq uint64, env *eventsv1.Envelope, m *eventsv1.OnwardReferralMade) ([]change, error) {
	org, id, jid := m.GetOrganisationId(), m.GetOnwardReferralId(), env.GetJourneyId()
	if !orgs.ValidCode(org) || events.ParseID(id) != nil || events.ParseID(jid) != nil {
		return nil, nil // not addressable: the rules never make one
	}
	key := itemKey(org, id)
	if ok, err := tx.GetJSON(key, &record{}); err != nil || ok {
		return nil, err // already there: one id, one referral
	}
	at := env.GetOccurredAt().AsTime().UTC()
	// Whatever the event holds, only the fields it says were shared.
	sh := events.ShareWithVCS(m.GetShared(), m.GetShared().GetFields())
	r := record{
		ID: id, JourneyID: jid, OrganisationID: org, ServiceID: m.GetServiceId(), ServiceName: m.GetServiceName(),
		Status: string(events.OnwardSent), WaitingList: m.GetWaitingList(), SentAt: at, UpdatedAt: at,
		LinkWorkerContact: m.GetLinkWorkerContact(), Seq: seq,
	}
	p := sh.GetPerson()
	r.Person = Person{GivenName: p.GetGivenName(), FamilyName: p.GetFamilyName(), Phone: p.GetPhone(), Email: p.GetEmail()}
	r.Needs, r.Notes, r.Shared = slices.Clone(sh.GetNeeds()), sh.GetNotes().GetText(), sh.GetFields()
	if err := tx.PutJSON(key, r); err != nil {
		return nil, err
	}
	if err := tx.PutJSON(onwardPrefix+id, onwardRef{OrganisationID: org}); err != nil {
		return nil, err
	}
	var keys []string
	if _, err := tx.GetJSON(journeyPrefix+jid, &keys); err != nil {
		return nil, err
	}
	if err := tx.PutJSON(journeyPrefix+jid, append(keys, key)); err != nil {
		return nil, err
	}
	return []change{{Event: "made", EventID: env.GetEventId(), At: at, Record: r}}, nil
}

// erase blanks everything personal in the journey's items once the
// person's data has been erased: the view must not outlive the log's
// crypto-shredding.
func erase(tx *views.Tx, seq uint64, env *eventsv1.Envelope) ([]change, error) {
	var keys []string
	if ok, err := tx.GetJSON(journeyPrefix+env.GetJourneyId(), &keys); err != nil || !ok {
		return nil, err
	}
	at := env.GetOccurredAt().AsTime().UTC()
	var out []change
	for _, key := range keys {
		var r record
		if ok, err := tx.GetJSON(key, &r); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		r.Person, r.Needs, r.Notes, r.Detail, r.Shared = Person{}, nil, "", "", nil
		r.Erased, r.UpdatedAt, r.Seq = true, at, seq
		if err := tx.PutJSON(key, r); err != nil {
			return nil, err
		}
		out = append(out, change{Event: "erased", EventID: env.GetEventId(), At: at, Record: r})
	}
	return out, nil
}

// inboxProjector keeps the inbox view.
type inboxProjector struct{}

func (inboxProjector) Name() string { return InboxProjection }

// Partitioned: every key of the inbox belongs to one journey (an item, its
// onward referral's organisation, the journey's index), so journeys can be
// applied in parallel where the runtime supports it.
func (inboxProjector) Partitioned() bool { return true }

func (inboxProjector) Apply(tx *views.Tx, ev views.Event) error {
	_, err := fold(tx, ev)
	return err
}

// decodeRecord reads a stored record.
func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("inbox record: %w", err)
	}
	return r, nil
}
