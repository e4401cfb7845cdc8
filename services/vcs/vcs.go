// Package vcs is the service for voluntary, community and social enterprise
// (VCS) organisations: the inbox of onward referrals sent to each one
// (only what the person agreed to share), the organisation's answers
// (accept, decline with a reason, attendance, completion, drop-out) and
// the person's feedback on the service, a
// plain server-rendered web inbox for groups with no IT of their own, and a
// NATS feed per organisation for those with their own system.
package vcs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/feeds"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
	"linkway/services/platform/websession"
)

// Limits of what an organisation may send.
const (
	bodyLimit       = 8 << 10
	maxDetail       = 1000
	readYourWrites  = 2 * time.Second
	attendanceSlack = 36 * time.Hour // a session "today" anywhere in the UK, whatever the server's clock zone
)

// Journal is the event store the organisations' answers are executed on
// (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
}

// Views is the process's read side (views.Registry): the service adds its
// projection (one reader applies every party's), reads its view, and waits
// for the view to reach a command's sequence.
type Views interface {
	Add(views.Projection)
	View(name string) *viewstore.View
	WaitFor(ctx context.Context, seq uint64, views ...string) error
}

// Group runs the long-running parts of the process (the feed's
// publisher), each until the process stops (errgroup.Group is one).
type Group interface {
	Go(func() error)
}

// Auditor records every read of identifiable data (audit.Log).
type Auditor interface {
	Journey(ctx context.Context, p api.Principal, route, journeyID string) error
	List(ctx context.Context, p api.Principal, route string, journeyIDs []string) error
}

// Organisations is the organisation register (orgs.Registry): the web
// inbox names who signed in.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
}

// Directory is what the web inbox needs of the community directory: an
// organisation's services and their capacity, which it keeps.
type Directory interface {
	ServicesOf(ctx context.Context, orgID string) ([]events.ServiceFacts, error)
	// SetCapacity records a service's capacity (open, waiting_list, full,
	// paused), changed by actor (a VCS organisation changing its own).
	SetCapacity(ctx context.Context, actor api.Principal, serviceID, capacity string) error
}

// Routes is the route table the service adds its handlers to
// (api.Server); the web inbox signs in with the keys it knows.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	websession.KeyLookup
}

// Config is what the vcs service is given by the process that runs it.
type Config struct {
	// JS holds the VCS feed stream and the web inbox's sessions.
	JS jetstream.JetStream
	// Journal executes the organisations' answers.
	Journal Journal
	// Views is the read side the inbox view (and the feed's outbox) lives in.
	Views Views
	// Leases decide which replica publishes the feed; nil when this
	// process is alone (it publishes).
	Leases Leases
	// Group runs the feed's publisher; without one it runs on its own
	// goroutines until ctx ends.
	Group Group
	// Audit records the reads of the inbox and its items.
	Audit Auditor
	// Orgs is the organisation register.
	Orgs Organisations
	// Directory shows and changes an organisation's capacity on the web
	// inbox; without it the inbox says the capacity cannot be shown.
	Directory Directory
	// HTTP is the route table the service adds its routes to.
	HTTP Routes
	// Log receives what the service did (never personal data); slog.Default when nil.
	Log *slog.Logger
	// Metrics registers the service's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// Replicas of the stream and buckets the service creates.
	Replicas int
}

// Service is the running vcs service.
type Service struct {
	cfg     Config
	ctx     context.Context
	log     *slog.Logger
	view    *viewstore.View
	metrics *metrics
	web     *web
	now     func() time.Time
}

// New adds the service's routes and its projection (the inbox view, which
// also renders the feed's messages) to the process's read side, and starts
// the feed's publisher.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Views == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("vcs: JS, Journal, Views, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, ctx: ctx, log: cfg.Log.With("service", "vcs"), metrics: m, now: time.Now}
	// Where the feed stands, before the reader applies anything: a view
	// rebuilt from the log writes nothing the feed has published.
	feed, err := feeds.Open(ctx, cfg.JS, feedSpec, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	cfg.Views.Add(&inboxProjection{feed: feed, items: views.NewRecords[record](views.CachedRecords)})
	s.view = cfg.Views.View(InboxProjection)
	pub := feeds.Publishing{View: s.view, Views: cfg.Views, Log: s.log, Published: m.feedPublished, Errors: m.feedErrors, Through: m.feedThrough}
	if cfg.Leases != nil {
		pub.Leases = cfg.Leases
	}
	if cfg.Group != nil {
		pub.Group = cfg.Group
	}
	feed.Start(ctx, pub)
	if s.web, err = newWeb(s); err != nil {
		return nil, err
	}
	vcs := []events.Kind{events.KindVCS}
	cfg.HTTP.Handle("GET /v1/inbox", vcs, s.listInbox)
	cfg.HTTP.Handle("GET /v1/onward-referrals/{id}", vcs, s.getItem)
	for _, a := range actions {
		cfg.HTTP.Handle("POST /v1/onward-referrals/{id}/"+a.path, vcs, s.apiAction(a))
	}
	cfg.HTTP.Handle("POST /v1/onward-referrals/{id}/feedback", vcs, s.apiFeedback)
	s.web.routes(cfg.HTTP)
	return s, nil
}

// onwardStatuses are the statuses an inbox can be filtered by.
var onwardStatuses = []string{
	string(events.OnwardSent), string(events.OnwardAccepted), string(events.OnwardDeclined),
	string(events.OnwardAttending), string(events.OnwardWithdrawn), string(events.OnwardCompleted),
	string(events.OnwardDroppedOut),
}

// inboxPage is the answer of GET /v1/inbox: one page of the inbox.
type inboxPage struct {
	OnwardReferrals []Item `json:"onward_referrals"`
	NextPageToken   string `json:"next_page_token,omitempty"`
}

func (s *Service) listInbox(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"status", "page_size", "page_token"}, k) {
			return events.Invalid(k, "unknown query parameter; known: status, page_size, page_token")
		}
	}
	status := q.Get("status")
	if status != "" && !slices.Contains(onwardStatuses, status) {
		return events.Invalid("status", "must be one of %v", onwardStatuses)
	}
	size, err := pageSize(q.Get("page_size"))
	if err != nil {
		return err
	}
	prefix := allListPrefix(p.OrgID)
	if status != "" {
		prefix = statusListPrefix(p.OrgID, status)
	}
	recs, next, err := s.page(p.OrgID, prefix, size, q.Get("page_token"))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.List(r.Context(), p, r.Pattern, journeysOf(recs)); err != nil {
		return err
	}
	page := inboxPage{OnwardReferrals: make([]Item, 0, len(recs)), NextPageToken: next}
	now := s.now()
	for _, rec := range recs {
		page.OnwardReferrals = append(page.OnwardReferrals, rec.item(now))
	}
	api.WriteJSON(w, http.StatusOK, page)
	return nil
}

// pageSize reads a page_size parameter (API.md "Lists page").
func pageSize(v string) (int, error) {
	if v == "" {
		return viewstore.PageSize(0), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, events.Invalid("page_size", "must be a whole number from 1 to %d", viewstore.MaxPageSize)
	}
	return viewstore.PageSize(n), nil
}

// page reads one page of one of an organisation's lists (a prefix of
// index keys whose values are onward referral ids) and the items it names.
// A page token from another list, or another organisation's, is refused.
func (s *Service) page(orgID, prefix string, size int, token string) ([]record, string, error) {
	if len(token) > 1000 {
		return nil, "", events.Invalid("page_token", "is not a token this list gave")
	}
	pg, err := s.view.Page(prefix, size, token)
	if err != nil {
		return nil, "", viewError(err)
	}
	recs := make([]record, 0, len(pg.Items))
	for _, it := range pg.Items {
		raw, ok, err := s.view.Get(itemKey(orgID, string(it.Value)))
		if err != nil {
			return nil, "", viewError(err)
		}
		if !ok {
			continue // an index key always has its item: committed together
		}
		rec, err := decodeRecord(raw)
		if err != nil {
			return nil, "", err
		}
		recs = append(recs, rec)
	}
	return recs, pg.NextPageToken, nil
}

// viewError is what a caller is told when the view cannot be read: a
// refused page token as it is, anything else as unavailable.
func viewError(err error) error {
	var e *events.Error
	if errors.As(err, &e) {
		return err
	}
	return &events.Error{Code: events.CodeUnavailable, Message: "the inbox cannot be read now"}
}

// journeysOf are the journeys of records, for the read audit (never shown).
func journeysOf(recs []record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.JourneyID)
	}
	return out
}

func (s *Service) getItem(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	rec, err := s.lookup(p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, rec.JourneyID); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, rec.item(s.now()))
	return nil
}

// lookup finds an onward referral in the organisation's own inbox: the key
// is the organisation's, so any id that is not in this organisation's
// inbox is not found, whether or not another organisation has it.
func (s *Service) lookup(orgID, id string) (record, error) {
	if events.ParseID(id) != nil {
		return record{}, events.ErrNotFound
	}
	raw, ok, err := s.view.Get(itemKey(orgID, id))
	if err != nil {
		return record{}, viewError(err)
	}
	if !ok {
		return record{}, events.ErrNotFound
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return record{}, err
	}
	if rec.OrganisationID != orgID {
		return record{}, events.ErrNotFound
	}
	return rec, nil
}

// action is one thing an organisation can do to an onward referral.
type action struct {
	path string // URL segment under /v1/onward-referrals/{id}/
	name string // metrics label
	// command turns the request body into the journey command.
	command func(s *Service, id string, body []byte) (events.Command, error)
}

// Request bodies. Every field is optional in JSON so that a missing one is
// refused by name rather than read as its zero value.
type (
	emptyBody   struct{}
	declineBody struct {
		Reason *string `json:"reason"`
		Detail string  `json:"detail"`
	}
	attendanceBody struct {
		Date     *string `json:"date"`
		Attended *bool   `json:"attended"`
	}
	droppedOutBody struct {
		Detail string `json:"detail"`
	}
)

var actions = []action{
	{"accept", "accept", func(_ *Service, id string, body []byte) (events.Command, error) {
		if err := decodeOptional(body, &emptyBody{}); err != nil {
			return nil, err
		}
		return events.AcceptOnward{OnwardReferralID: id}, nil
	}},
	{"decline", "decline", func(_ *Service, id string, body []byte) (events.Command, error) {
		var b declineBody
		if err := decodeOptional(body, &b); err != nil {
			return nil, err
		}
		return declineCommand(id, b)
	}},
	{"attendance", "attendance", func(s *Service, id string, body []byte) (events.Command, error) {
		var b attendanceBody
		if err := decodeOptional(body, &b); err != nil {
			return nil, err
		}
		return s.attendanceCommand(id, b)
	}},
	{"complete", "complete", func(_ *Service, id string, body []byte) (events.Command, error) {
		if err := decodeOptional(body, &emptyBody{}); err != nil {
			return nil, err
		}
		return events.CompleteOnward{OnwardReferralID: id}, nil
	}},
	{"dropped-out", "dropped_out", func(_ *Service, id string, body []byte) (events.Command, error) {
		var b droppedOutBody
		if err := decodeOptional(body, &b); err != nil {
			return nil, err
		}
		if len(b.Detail) > maxDetail {
			return nil, events.Invalid("detail", "must be at most %d characters", maxDetail)
		}
		return events.DropOutOnward{OnwardReferralID: id, Detail: b.Detail}, nil
	}},
}

func declineCommand(id string, b declineBody) (events.Command, error) {
	if b.Reason == nil || *b.Reason == "" {
		return nil, events.Invalid("reason", "is required: one of %v", events.DeclineReasons)
	}
	if !slices.Contains(events.DeclineReasons, *b.Reason) {
		return nil, events.Invalid("reason", "must be one of %v", events.DeclineReasons)
	}
	if len(b.Detail) > maxDetail {
		return nil, events.Invalid("detail", "must be at most %d characters", maxDetail)
	}
	return events.DeclineOnward{OnwardReferralID: id, Reason: *b.Reason, Detail: b.Detail}, nil
}

func (s *Service) attendanceCommand(id string, b attendanceBody) (events.Command, error) {
	if b.Date == nil || *b.Date == "" {
		return nil, events.Invalid("date", "is required: the session's date, YYYY-MM-DD")
	}
	day, err := events.ParseDate("date", *b.Date)
	if err != nil {
		return nil, err
	}
	if day.After(s.now().Add(attendanceSlack)) {
		return nil, events.Invalid("date", "is in the future: record attendance once the session has happened")
	}
	if b.Attended == nil {
		return nil, events.Invalid("attended", "is required: true or false")
	}
	return events.RecordAttendance{OnwardReferralID: id, Date: *b.Date, Attended: *b.Attended}, nil
}

// decodeOptional strictly decodes a body that may be empty.
func decodeOptional(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return api.Unmarshal(body, v)
}

func (s *Service) apiAction(a action) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p api.Principal) error {
		body, err := api.ReadBody(w, r, bodyLimit)
		if err != nil {
			return err
		}
		key, err := api.IdempotencyKey(r)
		if err != nil {
			return err
		}
		it, journeyID, err := s.act(r.Context(), p, r.PathValue("id"), a, body, key, "api")
		if err != nil {
			return err
		}
		// The answer shows the person as shared with the organisation:
		// audited as a read of the journey.
		if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, journeyID); err != nil {
			return err
		}
		api.WriteJSON(w, http.StatusOK, it)
		return nil
	}
}

// act carries out an action on an onward referral in the caller's inbox and
// returns the inbox item after it, and the journey it belongs to (for the
// read audit; never shown). The lookup comes first, so that another
// organisation's id is not found before anything about it is checked.
func (s *Service) act(ctx context.Context, p api.Principal, id string, a action, body []byte, idemKey, channel string) (Item, string, error) {
	rec, err := s.lookup(p.OrgID, id)
	if err != nil {
		return Item{}, "", err
	}
	cmd, err := a.command(s, id, body)
	if err != nil {
		s.metrics.commands.WithLabelValues(a.name, channel, "invalid").Inc()
		return Item{}, "", err
	}
	meta := journal.Meta{
		Actor: p.Actor(),
	}
	if idemKey != "" {
		// Scoped to the organisation, the referral and the action, so one
		// client's key can never replay another request's result.
		meta.IdempotencyKey = "vcs/" + p.OrgID + "/" + id + "/" + a.path + "/" + idemKey
	}
	res, err := s.cfg.Journal.Execute(ctx, rec.JourneyID, meta, ownOnward(p.OrgID, id, cmd))
	if err != nil {
		s.metrics.commands.WithLabelValues(a.name, channel, string(events.ErrorCode(err))).Inc()
		return Item{}, "", err
	}
	s.metrics.commands.WithLabelValues(a.name, channel, "ok").Inc()
	it := s.answer(ctx, rec, res)
	if at, ok := cmd.(events.RecordAttendance); ok {
		o, _ := res.State.OnwardByID(id)
		if made, before := events.SessionBeforeReferral(o, at.Date); before {
			it.Warnings = append(it.Warnings, events.AttendanceWarning(made))
		}
	}
	return it, rec.JourneyID, nil
}

// ownOnward guards a command so that it is carried out only on an onward
// referral of the organisation's own, judged on the journey the command
// is decided on (the view found the journey; the log has the last word).
func ownOnward(orgID, id string, cmd events.Command) events.Command {
	return events.Guarded{Command: cmd, Check: func(st events.State) error {
		if o, ok := st.OnwardByID(id); !ok || o.OrganisationID != orgID {
			return events.ErrNotFound
		}
		return nil
	}}
}

// answer is the item after a command: the view's, once it has applied the
// command (bounded wait, so that the lists read next show it too), or else
// the item before it with the command's events rendered onto it from the
// state the command was decided into.
func (s *Service) answer(ctx context.Context, before record, res journal.Result) Item {
	wctx, cancel := context.WithTimeout(ctx, readYourWrites)
	defer cancel()
	if err := s.cfg.Views.WaitFor(wctx, res.LastSeq, InboxProjection); err == nil {
		if rec, err := s.lookup(before.OrganisationID, before.ID); err == nil {
			return rec.item(s.now())
		}
	} else {
		s.log.Warn("inbox view behind after a command; answering from the command's state", "err", err)
	}
	r := before
	r.Attendance = slices.Clone(r.Attendance)
	for _, e := range res.Events {
		if id, _ := onwardEvent(e.Event); id == r.ID {
			r.render(e.Event, res.State)
		}
	}
	return r.item(s.now())
}
