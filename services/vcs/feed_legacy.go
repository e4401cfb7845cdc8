package vcs

// The feed's own fold on the old projection runtime, kept only until the
// feed moves onto the reader's changes (feed.go): it keeps its own copy of
// the records in its KV bucket.

import (
	"fmt"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

const (
	legacyOnwardPrefix  = "r."
	legacyJourneyPrefix = "j."
)

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
func legacyFold(tx *views.Tx, ev views.Event) ([]change, error) {
	env := ev.Envelope
	at := env.GetOccurredAt().AsTime().UTC()
	jid := env.GetJourneyId()
	if m, ok := env.GetEvent().(*eventsv1.Envelope_OnwardReferralMade); ok {
		return legacyMade(tx, ev.Seq, env, m.OnwardReferralMade)
	}
	if _, ok := env.GetEvent().(*eventsv1.Envelope_PersonalDataErased); ok {
		return legacyErase(tx, ev.Seq, env)
	}
	id, name, step := legacyOnwardStep(env)
	if step == nil {
		return nil, nil
	}
	var ref onwardRef
	ok, err := tx.GetJSON(legacyOnwardPrefix+id, &ref)
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
func legacyOnwardStep(env *eventsv1.Envelope) (id, name string, step func(*record, time.Time)) {
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
func legacyMade(tx *views.Tx, seq uint64, env *eventsv1.Envelope, m *eventsv1.OnwardReferralMade) ([]change, error) {
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
	r.Needs, r.Notes, r.Shared = events.PlaceNeeds(sh.GetNeeds()), sh.GetNotes().GetText(), sh.GetFields()
	if err := tx.PutJSON(key, r); err != nil {
		return nil, err
	}
	if err := tx.PutJSON(legacyOnwardPrefix+id, onwardRef{OrganisationID: org}); err != nil {
		return nil, err
	}
	var keys []string
	if _, err := tx.GetJSON(legacyJourneyPrefix+jid, &keys); err != nil {
		return nil, err
	}
	if err := tx.PutJSON(legacyJourneyPrefix+jid, append(keys, key)); err != nil {
		return nil, err
	}
	return []change{{Event: "made", EventID: env.GetEventId(), At: at, Record: r}}, nil
}

// erase blanks everything personal in the journey's items once the
// person's data has been erased: the view must not outlive the log's
// crypto-shredding.
func legacyErase(tx *views.Tx, seq uint64, env *eventsv1.Envelope) ([]change, error) {
	var keys []string
	if ok, err := tx.GetJSON(legacyJourneyPrefix+env.GetJourneyId(), &keys); err != nil || !ok {
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
