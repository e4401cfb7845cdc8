// Package vcs is the service for voluntary, community and social enterprise
// (VCS) organisations: the inbox of onward referrals sent to each one
// (only what the person agreed to share), the organisation's answers
// (accept, decline with a reason, attendance, completion, drop-out), a
// plain server-rendered web inbox for groups with no IT of their own, and a
// NATS feed per organisation for those with their own system.
package vcs

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/websession"
)

// Limits of what an organisation may send.
const (
	bodyLimit       = 8 << 10
	maxDetail       = 1000
	readYourWrites  = 5 * time.Second
	idempotencyHdr  = "Idempotency-Key"
	maxIdempotency  = 200
	attendanceSlack = 36 * time.Hour // a session "today" anywhere in the UK, whatever the server's clock zone
)

// Journal is the event store the organisations' answers are executed on
// (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
}

// Projections starts a projection (the inbox view, the NATS feed): the
// hub runs it until the process stops and counts it for readiness.
type Projections interface {
	Project(ctx context.Context, p views.Projector) (*views.Runner, error)
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
	// Projections starts the inbox view and the feed.
	Projections Projections
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
	inbox   *views.Runner
	mirror  *views.Mirror
	metrics *metrics
	web     *web
	now     func() time.Time
}

// New adds the service's routes and starts its projections: the inbox
// view and the NATS feed.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Projections == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("vcs: JS, Journal, Projections, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, ctx: ctx, log: cfg.Log.With("service", "vcs"), metrics: m, now: time.Now}
	if s.inbox, err = cfg.Projections.Project(ctx, inboxProjector{}); err != nil {
		return nil, fmt.Errorf("inbox projection: %w", err)
	}
	if s.mirror, err = views.NewMirror(ctx, s.inbox.KV()); err != nil {
		return nil, fmt.Errorf("inbox mirror: %w", err)
	}
	if _, err := cfg.JS.CreateOrUpdateStream(ctx, FeedStreamConfig(cfg.Replicas)); err != nil {
		return nil, fmt.Errorf("stream %s: %w", FeedStream, err)
	}
	if _, err := cfg.Projections.Project(ctx, &feedProjector{ctx: ctx, js: cfg.JS, metrics: m}); err != nil {
		return nil, fmt.Errorf("feed projection: %w", err)
	}
	if s.web, err = newWeb(s); err != nil {
		return nil, err
	}
	vcs := []events.Kind{events.KindVCS}
	cfg.HTTP.Handle("GET /v1/inbox", vcs, s.listInbox)
	cfg.HTTP.Handle("GET /v1/onward-referrals/{id}", vcs, s.getItem)
	for _, a := range actions {
		cfg.HTTP.Handle("POST /v1/onward-referrals/{id}/"+a.path, vcs, s.apiAction(a))
	}
	s.web.routes(cfg.HTTP)
	return s, nil
}

// onwardStatuses are the statuses an inbox can be filtered by.
var onwardStatuses = []string{
	string(events.OnwardSent), string(events.OnwardAccepted), string(events.OnwardDeclined),
	string(events.OnwardAttending), string(events.OnwardWithdrawn), string(events.OnwardCompleted),
	string(events.OnwardDroppedOut),
}

// inboxPage is the answer of GET /v1/inbox.
type inboxPage struct {
	OnwardReferrals []Item `json:"onward_referrals"`
}

func (s *Service) listInbox(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains(onwardStatuses, status) {
		return events.Invalid("status", "must be one of %v", onwardStatuses)
	}
	items, journeys, err := s.items(p.OrgID, status)
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.List(r.Context(), p, r.Pattern, journeys); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, inboxPage{OnwardReferrals: items})
	return nil
}

// items lists an organisation's inbox from the mirror, newest first, with
// the journeys they belong to (for the read audit; never shown).
func (s *Service) items(orgID, status string) ([]Item, []string, error) {
	now := s.now()
	out := []Item{}
	var journeys []string
	for _, kv := range s.mirror.Scan(orgPrefix(orgID)) {
		rec, err := decodeRecord(kv.Value)
		if err != nil {
			return nil, nil, err
		}
		if rec.OrganisationID != orgID || (status != "" && rec.Status != status) {
			continue
		}
		out = append(out, rec.item(now))
		journeys = append(journeys, rec.JourneyID)
	}
	slices.SortFunc(out, func(a, b Item) int {
		return cmp.Or(b.SentAt.Compare(a.SentAt), cmp.Compare(b.OnwardReferralID, a.OnwardReferralID))
	})
	return out, journeys, nil
}

func (s *Service) getItem(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	rec, err := s.lookup(r.Context(), p.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, rec.JourneyID); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, rec.item(s.now()))
	return nil
}

// lookup finds an onward referral in the organisation's own inbox. It reads
// the bucket, not the mirror, so that an answer after a command shows the
// command. Any id that is not in this organisation's inbox is not found,
// whether or not another organisation has it.
func (s *Service) lookup(ctx context.Context, orgID, id string) (record, error) {
	rec, _, err := s.lookupRaw(ctx, orgID, id)
	return rec, err
}

// lookupRaw is lookup that also returns the stored bytes.
func (s *Service) lookupRaw(ctx context.Context, orgID, id string) (record, []byte, error) {
	if err := events.ParseID(id); err != nil {
		return record{}, nil, events.ErrNotFound
	}
	e, err := s.inbox.KV().Get(ctx, itemKey(orgID, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, nil, events.ErrNotFound
	}
	if err != nil {
		return record{}, nil, &events.Error{Code: events.CodeUnavailable, Message: "the inbox cannot be read now"}
	}
	rec, err := decodeRecord(e.Value())
	if err != nil {
		return record{}, nil, err
	}
	if rec.OrganisationID != orgID {
		return record{}, nil, events.ErrNotFound
	}
	return rec, e.Value(), nil
}

// awaitMirror waits (bounded by ctx) until the mirror that lists the inbox
// holds value for key, so that a list read after a command shows it too.
func (s *Service) awaitMirror(ctx context.Context, key string, value []byte) {
	for {
		changed := s.mirror.Changed()
		if v, ok := s.mirror.Get(key); ok && bytes.Equal(v, value) {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
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
		key := r.Header.Get(idempotencyHdr)
		if len(key) > maxIdempotency {
			return events.Invalid(idempotencyHdr, "must be at most %d characters", maxIdempotency)
		}
		it, err := s.act(r.Context(), p, r.PathValue("id"), a, body, key, "api")
		if err != nil {
			return err
		}
		// The answer shows the person as shared with the organisation:
		// audited as a read of the journey.
		rec, err := s.lookup(r.Context(), p.OrgID, r.PathValue("id"))
		if err == nil {
			err = s.cfg.Audit.Journey(r.Context(), p, r.Pattern, rec.JourneyID)
		}
		if err != nil {
			return err
		}
		api.WriteJSON(w, http.StatusOK, it)
		return nil
	}
}

// act carries out an action on an onward referral in the caller's inbox and
// returns the inbox item after it. The lookup comes first, so that another
// organisation's id is not found before anything about it is checked.
func (s *Service) act(ctx context.Context, p api.Principal, id string, a action, body []byte, idemKey, channel string) (Item, error) {
	rec, err := s.lookup(ctx, p.OrgID, id)
	if err != nil {
		return Item{}, err
	}
	cmd, err := a.command(s, id, body)
	if err != nil {
		s.metrics.commands.WithLabelValues(a.name, channel, "invalid").Inc()
		return Item{}, err
	}
	meta := journal.Meta{
		Actor: p.Actor(),
	}
	if idemKey != "" {
		// Scoped to the organisation, the referral and the action, so one
		// client's key can never replay another request's result.
		meta.IdempotencyKey = "vcs/" + p.OrgID + "/" + id + "/" + a.path + "/" + idemKey
	}
	res, err := s.cfg.Journal.Execute(ctx, rec.JourneyID, meta, cmd)
	if err != nil {
		s.metrics.commands.WithLabelValues(a.name, channel, string(events.ErrorCode(err))).Inc()
		return Item{}, err
	}
	s.metrics.commands.WithLabelValues(a.name, channel, "ok").Inc()
	wctx, cancel := context.WithTimeout(ctx, readYourWrites)
	defer cancel()
	if err := s.inbox.WaitFor(wctx, res.LastSeq); err != nil {
		// Recorded, but the view is slow: answer with what it shows, which
		// a client can read again.
		s.log.Warn("inbox view behind after a command", "action", a.name, "err", err)
	}
	rec, raw, err := s.lookupRaw(ctx, p.OrgID, id)
	if err != nil {
		return Item{}, err
	}
	s.awaitMirror(wctx, itemKey(p.OrgID, id), raw)
	return rec.item(s.now()), nil
}
