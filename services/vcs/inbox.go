package vcs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/feeds"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

// InboxProjection names the inbox view in the view store.
const InboxProjection = "inbox"

// Key layout of the inbox view. An organisation's items, and each of its
// lists, are one prefix each, so a list is one paged prefix scan (never a
// read of the whole inbox):
//
//	i.<org>.<onward id>                       the item (the only key with personal data)
//	a.<org>.<newest>.<seq>                    every item, newest first           -> onward id
//	s.<org>.<status>.<newest>.<seq>           by status, newest first            -> onward id
//	w.<org>.<section>.<order>.<seq>           the web page's sections            -> onward id
//	n.<org>.<section>                         how many items a section holds
//	u.<org>                                   the sequence that last changed the organisation's items
//	j.<journey id>                            the journey's items (for erasure)
//	q., t, x.                                 the feed's outbox (services/platform/feeds)
//
// Index keys end in the stream sequence of the onward referral's making:
// items sent at the same moment keep the log's order, and a key is unique.
const (
	itemPrefix    = "i."
	allPrefix     = "a."
	statusPrefix  = "s."
	sectionPrefix = "w."
	countPrefix   = "n."
	changedPrefix = "u."
	journeyPrefix = "j."
)

// itemKey is the key of one onward referral in one organisation's inbox.
// Organisation codes are [A-Za-z0-9-] (orgs.ValidCode) and ids are UUIDs,
// so the dots always separate the parts.
func itemKey(orgID, onwardID string) string { return itemPrefix + orgID + "." + onwardID }

// allListPrefix lists every item of an organisation, newest first.
func allListPrefix(orgID string) string { return allPrefix + orgID + "." }

// statusListPrefix lists an organisation's items of one status, newest first.
func statusListPrefix(orgID, status string) string { return statusPrefix + orgID + "." + status + "." }

// sectionListPrefix lists one section of the web page.
func sectionListPrefix(orgID, section string) string {
	return sectionPrefix + orgID + "." + section + "."
}

// Sections of the web inbox: what needs an answer, who has been taken on,
// and what is over.
const (
	sectionNew  = "new"
	sectionOpen = "open"
	sectionDone = "done"
)

var sections = []string{sectionNew, sectionOpen, sectionDone}

// sectionOf is where the web page lists an onward referral of a status
// (how the page groups statuses, not what a status is: events says that).
func sectionOf(st events.OnwardStatus) string {
	switch st {
	case events.OnwardSent:
		return sectionNew
	case events.OnwardAccepted, events.OnwardAttending:
		return sectionOpen
	}
	return sectionDone
}

// newestFirst and oldestFirst are sort keys: fixed-width hex of the time
// the onward referral was sent (inverted for newest first) and of the
// sequence of its making (inverted likewise), so key order is list order.
func newestFirst(sent time.Time, seq uint64) string {
	return fmt.Sprintf("%016x.%016x", ^uint64(sent.UnixNano()), ^seq)
}

func oldestFirst(sent time.Time, seq uint64) string {
	return fmt.Sprintf("%016x.%016x", uint64(sent.UnixNano()), seq)
}

// sectionOrder is a section's order: the longest waiting first among new
// referrals (they need an answer), the newest first elsewhere.
func sectionOrder(section string, sent time.Time, seq uint64) string {
	if section == sectionNew {
		return oldestFirst(sent, seq)
	}
	return newestFirst(sent, seq)
}

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
	// MadeSeq is the stream sequence of the onward referral's making (its
	// index keys end in it); Seq that of the last event folded in.
	MadeSeq uint64 `json:"made_seq"`
	Seq     uint64 `json:"seq"`
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
	// Warnings are set on the answer to a command only: what the
	// organisation should know of how it was recorded.
	Warnings []string `json:"warnings,omitempty"`
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

// onwardEvent is the onward referral an event is about and the event's
// name in the feed; id is "" for events that are not about one (the
// making, and erasure, are handled on their own).
func onwardEvent(env *eventsv1.Envelope) (id, name string) {
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_OnwardReferralAccepted:
		return e.OnwardReferralAccepted.GetOnwardReferralId(), "accepted"
	case *eventsv1.Envelope_OnwardReferralDeclined:
		return e.OnwardReferralDeclined.GetOnwardReferralId(), "declined"
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		return e.OnwardReferralWithdrawn.GetOnwardReferralId(), "withdrawn"
	case *eventsv1.Envelope_AttendanceRecorded:
		return e.AttendanceRecorded.GetOnwardReferralId(), "attendance"
	case *eventsv1.Envelope_OnwardReferralCompleted:
		return e.OnwardReferralCompleted.GetOnwardReferralId(), "completed"
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		return e.OnwardReferralDroppedOut.GetOnwardReferralId(), "dropped_out"
	}
	return "", ""
}

// render folds one event about the record's onward referral into it: its
// status as the folded journey after the event holds it (events says what
// a status is), and what the event itself tells the organisation (the
// answer's time, a decline's reason, a session). The projection and a
// command's answer both render with it, so they say the same.
func (r *record) render(env *eventsv1.Envelope, after events.State) {
	at := env.GetOccurredAt().AsTime().UTC()
	if o, ok := after.OnwardByID(r.ID); ok {
		r.Status = string(o.Status)
	}
	answered := func() {
		if r.RespondedAt == nil {
			r.RespondedAt = &at
		}
	}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_OnwardReferralAccepted:
		answered()
	case *eventsv1.Envelope_OnwardReferralDeclined:
		d := e.OnwardReferralDeclined
		r.DeclineReason, r.Detail = d.GetReason(), d.GetDetail().GetText()
		answered()
	case *eventsv1.Envelope_AttendanceRecorded:
		a := e.AttendanceRecorded
		r.Attendance = append(r.Attendance, Attendance{Date: a.GetDate(), Attended: a.GetAttended()})
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		r.Detail = e.OnwardReferralDroppedOut.GetDetail().GetText()
	}
	// A withdrawal's reason is the link worker's: free text about the
	// person that the organisation does not need, so it is not copied.
	r.UpdatedAt = at
}

// madeRecord is the record an onward referral starts as: of the person,
// only the fields the event says were shared; as needs, only needs of the
// taxonomy (the needs the link worker assessed), never a reason code.
func madeRecord(seq uint64, env *eventsv1.Envelope, m *eventsv1.OnwardReferralMade, after events.State) record {
	at := env.GetOccurredAt().AsTime().UTC()
	sh := events.ShareWithVCS(m.GetShared(), m.GetShared().GetFields())
	r := record{
		ID: m.GetOnwardReferralId(), JourneyID: env.GetJourneyId(), OrganisationID: m.GetOrganisationId(),
		ServiceID: m.GetServiceId(), ServiceName: m.GetServiceName(), Status: string(events.OnwardSent),
		WaitingList: m.GetWaitingList(), SentAt: at, UpdatedAt: at, LinkWorkerContact: m.GetLinkWorkerContact(),
		MadeSeq: seq, Seq: seq,
	}
	if o, ok := after.OnwardByID(r.ID); ok {
		r.Status = string(o.Status)
	}
	p := sh.GetPerson()
	r.Person = Person{GivenName: p.GetGivenName(), FamilyName: p.GetFamilyName(), Phone: p.GetPhone(), Email: p.GetEmail()}
	r.Needs, r.Notes, r.Shared = events.PlaceNeeds(sh.GetNeeds()), sh.GetNotes().GetText(), sh.GetFields()
	return r
}

// journeyIndex is what the view keeps of a journey: its items (erasure
// erases them).
type journeyIndex struct {
	Items []string `json:"items"`
}

// inboxProjection keeps the inbox view from the reader's changes, and
// writes each change's feed message into the view's outbox (feed.go).
type inboxProjection struct {
	feed *feeds.Feed
	// items are the inbox's records as the reader applies the log.
	items *views.Records[record]
}

func (p *inboxProjection) Name() string { return InboxProjection }

func (p *inboxProjection) Apply(b *views.Batch, c views.Change) error {
	switch e := c.Envelope.GetEvent().(type) {
	case *eventsv1.Envelope_OnwardReferralMade:
		return p.made(b, c, e.OnwardReferralMade)
	case *eventsv1.Envelope_PersonalDataErased:
		return p.erase(b, c)
	}
	id, name := onwardEvent(c.Envelope)
	if id == "" {
		return nil
	}
	// The organisation comes from the folded journey: events that answer
	// an onward referral carry only its id.
	o, ok := c.After.OnwardByID(id)
	if !ok || !orgs.ValidCode(o.OrganisationID) {
		return nil // never made on this journey: nothing to show
	}
	key := itemKey(o.OrganisationID, id)
	if r, ok, err := p.items.Get(b, key); err != nil || !ok || r.JourneyID != c.JourneyID {
		return err
	}
	r, _, err := p.items.Load(b, key)
	if err != nil {
		return err
	}
	before := events.OnwardStatus(r.Status)
	r.render(c.Envelope, c.After)
	r.Seq = c.Seq
	if err := moveIndexes(b, *r, before); err != nil {
		return err
	}
	touch(b, r.OrganisationID, c.Seq)
	return p.outbox(b, c, 0, name, *r)
}

// made adds an onward referral to its organisation's inbox and lists.
func (p *inboxProjection) made(b *views.Batch, c views.Change, m *eventsv1.OnwardReferralMade) error {
	org, id := m.GetOrganisationId(), m.GetOnwardReferralId()
	if !orgs.ValidCode(org) || events.ParseID(id) != nil || events.ParseID(c.JourneyID) != nil {
		return nil // not addressable: the rules never make one
	}
	key := itemKey(org, id)
	if _, ok, err := p.items.Get(b, key); err != nil || ok {
		return err // already there: one id, one referral
	}
	r := madeRecord(c.Seq, c.Envelope, m, c.After)
	p.items.Put(b, key, &r)
	st := events.OnwardStatus(r.Status)
	b.Set(allListPrefix(org)+newestFirst(r.SentAt, r.MadeSeq), []byte(id))
	b.Set(statusListPrefix(org, string(st))+newestFirst(r.SentAt, r.MadeSeq), []byte(id))
	sec := sectionOf(st)
	b.Set(sectionListPrefix(org, sec)+sectionOrder(sec, r.SentAt, r.MadeSeq), []byte(id))
	if err := count(b, org, sec, 1); err != nil {
		return err
	}
	var ji journeyIndex
	// Most journeys are referred on once: Lookup, not Get.
	if _, err := b.LookupJSON(journeyPrefix+c.JourneyID, &ji); err != nil {
		return err
	}
	ji.Items = append(ji.Items, key)
	if err := b.SetJSON(journeyPrefix+c.JourneyID, ji); err != nil {
		return err
	}
	touch(b, org, c.Seq)
	return p.outbox(b, c, 0, "made", r)
}

// moveIndexes moves an item's status and section keys when its status
// changed from before.
func moveIndexes(b *views.Batch, r record, before events.OnwardStatus) error {
	after := events.OnwardStatus(r.Status)
	if after == before {
		return nil
	}
	org, id := r.OrganisationID, []byte(r.ID)
	b.Delete(statusListPrefix(org, string(before)) + newestFirst(r.SentAt, r.MadeSeq))
	b.Set(statusListPrefix(org, string(after))+newestFirst(r.SentAt, r.MadeSeq), id)
	from, to := sectionOf(before), sectionOf(after)
	if from == to {
		return nil
	}
	b.Delete(sectionListPrefix(org, from) + sectionOrder(from, r.SentAt, r.MadeSeq))
	b.Set(sectionListPrefix(org, to)+sectionOrder(to, r.SentAt, r.MadeSeq), id)
	if err := count(b, org, from, -1); err != nil {
		return err
	}
	return count(b, org, to, 1)
}

// count adds delta to a section's count.
func count(b *views.Batch, org, section string, delta int) error {
	key := countPrefix + org + "." + section
	n, err := readCount(b.Get(key))
	if err != nil {
		return err
	}
	b.Set(key, []byte(strconv.Itoa(max(n+delta, 0))))
	return nil
}

func readCount(raw []byte, ok bool, err error) (int, error) {
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("inbox count %q: %w", raw, err)
	}
	return n, nil
}

// touch records that an organisation's items changed at seq: the web
// page's live list re-renders only then.
func touch(b *views.Batch, org string, seq uint64) {
	b.Set(changedPrefix+org, []byte(strconv.FormatUint(seq, 10)))
}

// erase removes everything personal the view holds of the journey once
// the person's data has been erased: the view must not outlive the log's
// crypto-shredding. Each item's key is erased (deleted and compacted out
// of the store's files) and written again blank, marked erased, so the
// organisation still sees that there was a referral; the feed messages
// the outbox holds of the person are erased too.
func (p *inboxProjection) erase(b *views.Batch, c views.Change) error {
	var ji journeyIndex
	if ok, err := b.GetJSON(journeyPrefix+c.JourneyID, &ji); err != nil || !ok {
		return err
	}
	at := c.Envelope.GetOccurredAt().AsTime().UTC()
	if err := p.feed.EraseJourney(b, c.JourneyID); err != nil {
		return err
	}
	for part, key := range ji.Items {
		r, ok, err := p.items.Edit(b, key)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		r.Person, r.Needs, r.Notes, r.Detail, r.Shared = Person{}, nil, "", "", nil
		r.Erased, r.UpdatedAt, r.Seq = true, at, c.Seq
		p.items.Erase(b, key, r)
		touch(b, r.OrganisationID, c.Seq)
		if err := p.outbox(b, c, part, "erased", *r); err != nil {
			return err
		}
	}
	return nil
}

// decodeRecord reads a stored record.
func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("inbox record: %w", err)
	}
	return r, nil
}
