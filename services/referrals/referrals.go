// Package referrals is the referrer-facing service: GP practice systems,
// and other agencies that refer (kind referrer: housing, social care,
// hospital discharge, DWP, police, schools), post social-prescribing
// referrals (JSON, or FHIR R4 UK Core / BaRS shaped) and read back what
// became of them, with SNOMED CT codes to file in the GP record. People
// refer themselves through POST /v1/self-referrals or the public form at
// /refer/. It owns the `referrals` view: each referrer's own journeys.
//
// Routes (kinds gp and referrer unless said): POST /v1/referrals, GET
// /v1/referrals and /v1/referrals/{id}; FHIR R4: POST
// /fhir/R4/ServiceRequest, GET /fhir/R4/ServiceRequest/{id}, GET
// /fhir/R4/Task?focus=ServiceRequest/{id} and /fhir/R4/Task/{id}, POST
// /fhir/R4/$process-message, GET /fhir/R4/metadata (public); POST
// /v1/self-referrals and the form at /refer/ (no key). GET /openapi.yaml
// is the hub's, for every process.
//
// The view is a projection on the process's one reader of the journey log
// (views.Registry), rendered from the journey as events folds it; its
// lists are prefix scans of the view store, a page at a time.
package referrals

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// Settings of the service.
type Settings struct {
	// ReadYourWrites bounds how long a read waits for the view to reach
	// the journey's last event, so that a GET straight after a write (this
	// service's or another's) finds it.
	ReadYourWrites time.Duration
	// PageSize is the default and MaxPageSize the largest list page.
	PageSize, MaxPageSize int
	// SelfReferrals is how many self-referrals one client address may
	// send (the API and the form together): Burst at once, then Rate a
	// second.
	SelfReferrals api.RateLimit
}

// DefaultSettings are right for one hub.
func DefaultSettings() Settings {
	return Settings{ReadYourWrites: time.Second, PageSize: 50, MaxPageSize: 200,
		// A person refers themselves once; a shared address (a library, a
		// family) a few times a day. 20 at once, then one every 3 minutes.
		SelfReferrals: api.RateLimit{Rate: 1.0 / 180, Burst: 20}}
}

// Journal is the event store referrals are recorded in (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
	// Load returns a journey's state and history: read only when the view
	// has not caught up with the log within Settings.ReadYourWrites.
	Load(ctx context.Context, journeyID string) (events.State, []journal.Recorded, error)
	// Stream is the JOURNEYS stream: a read finds the journey's last
	// sequence there, and waits for the view to reach it.
	Stream() jetstream.Stream
}

// Views is the process's read side (views.Registry): the service adds its
// projection, reads its view, and waits for the view to reach a sequence.
type Views interface {
	Add(views.Projection)
	View(name string) *viewstore.View
	WaitFor(ctx context.Context, seq uint64, views ...string) error
}

// Auditor records every read of identifiable data (audit.Log).
type Auditor interface {
	Journey(ctx context.Context, p api.Principal, route, journeyID string) error
	List(ctx context.Context, p api.Principal, route string, journeyIDs []string) error
}

// Organisations is the organisation register (orgs.Registry): the
// link-worker team a referral names, a referrer's sector and teams, and the
// organisations FHIR answers name.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
	Is(id string, k events.Kind) bool
	// All lists every organisation: the form offers the link-worker teams.
	All() []orgs.Organisation
}

// Routes is the route table the service adds its handlers to
// (api.Server). The FHIR routes authenticate, rate-limit and answer errors
// themselves, in FHIR's shape, through Authenticate, Admit and Fail; the
// self-referral route answers its errors through WriteError.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	Authenticate(r *http.Request) (api.Principal, error)
	Admit(w http.ResponseWriter, p api.Principal) error
	Fail(w http.ResponseWriter, r *http.Request, err error) api.Failure
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// Config is what the referrals service is given by the process that runs it.
type Config struct {
	// Journal records referrals and reads the log.
	Journal Journal
	// Views is the read side the service's view lives in.
	Views Views
	// Audit records the reads of referrals.
	Audit Auditor
	// Orgs is the organisation register.
	Orgs Organisations
	// HTTP is the route table the service adds its routes to.
	HTTP Routes
	// Log receives what the service did (never personal data); slog.Default when nil.
	Log *slog.Logger
	// Metrics registers the service's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// Settings are the service's settings.
	Settings Settings
	// JS holds the practices' NATS feed (FEED_GP, feed.go); without it the
	// service keeps no feed.
	JS jetstream.JetStream
	// Leases decide which replica publishes the feed; nil when this
	// process is alone (it publishes).
	Leases Leases
	// Group runs the feed's publisher; without one it runs on its own
	// goroutines until ctx ends.
	Group Group
	// Replicas of the feed's stream.
	Replicas int
}

// Service is the referrals service.
type Service struct {
	cfg     Config
	terms   *events.Terminology
	proj    *projection
	view    *viewstore.View
	metrics *metrics
	self    *clientLimits
	form    *formPage
	// isTeam reports whether a code is a registered link-worker team.
	isTeam func(string) bool
	log    *slog.Logger
	now    func() time.Time
}

// Kinds that refer (and read back their own referrals).
var referrers = []events.Kind{events.KindGP, events.KindReferrer}

// New adds the service's projection to the read side and its routes.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Journal == nil || cfg.Views == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("referrals: Journal, Views, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	def := DefaultSettings()
	if cfg.Settings.ReadYourWrites <= 0 {
		cfg.Settings.ReadYourWrites = def.ReadYourWrites
	}
	if cfg.Settings.PageSize <= 0 {
		cfg.Settings.PageSize = def.PageSize
	}
	if cfg.Settings.MaxPageSize <= 0 {
		cfg.Settings.MaxPageSize = def.MaxPageSize
	}
	terms, err := events.LoadTerminology()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, terms: terms, proj: &projection{terms: terms, records: views.NewRecords[record](views.CachedRecords)}, log: cfg.Log.With("service", "referrals"),
		now: time.Now, self: newClientLimits(cfg.Settings.SelfReferrals), isTeam: func(id string) bool { return cfg.Orgs.Is(id, events.KindLinkwork) }}
	if s.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if s.form, err = newFormPage(); err != nil {
		return nil, err
	}
	if cfg.JS != nil {
		if err := s.startFeed(ctx); err != nil {
			return nil, err
		}
	}
	cfg.Views.Add(s.proj)
	s.view = cfg.Views.View(ProjectionName)
	cfg.HTTP.Handle("POST /v1/referrals", referrers, s.postReferral)
	cfg.HTTP.Handle("GET /v1/referrals/{id}", referrers, s.getReferral)
	cfg.HTTP.Handle("GET /v1/referrals", referrers, s.listReferrals)
	s.routesFHIR()
	s.routesSelf()
	return s, nil
}

// ReferralResponse answers a POST: the journey id and the referrer's view.
type ReferralResponse struct {
	View
	// Created is false when the referral had been received before.
	Created bool `json:"created"`
	// Warnings are what the referrer should know of how the referral is
	// taken (an urgent one: link workers are not a crisis service).
	Warnings []string `json:"warnings"`
}

func (s *Service) postReferral(w http.ResponseWriter, r *http.Request, p api.Principal) (err error) {
	created := false
	defer func() { s.metrics.count("json", created, err) }()
	var req ReferralRequest
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &req); err != nil {
		return err
	}
	source, teams, err := s.referrer(p)
	if err != nil {
		return err
	}
	if errs := s.checker(true, teams).check(&req); len(errs) > 0 {
		return errs[0]
	}
	ans, err := s.refer(r.Context(), p, &req, source)
	if err != nil {
		return err
	}
	created = ans.created
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	api.WriteJSON(w, status, ReferralResponse{View: ans.rec.View, Created: created, Warnings: ans.warnings})
	return nil
}

// referrer is the source a principal's referrals carry (gp, or its
// agency's sector) and the link-worker teams it refers to (none listed:
// any registered team).
func (s *Service) referrer(p api.Principal) (string, []string, error) {
	o, _ := s.cfg.Orgs.Get(p.OrgID)
	source, ok := events.SourceOfReferrer(p.Kind, o.Sector)
	if !ok {
		return "", nil, &events.Error{Code: events.CodePermissionDenied,
			Message: "this organisation cannot refer: a referrer needs a sector in the organisation register"}
	}
	return source, o.Teams, nil
}

func (s *Service) checker(requireDemographics bool, teams []string) checker {
	return checker{terms: s.terms, now: s.now, requireDemographics: requireDemographics, isTeam: s.isTeam, teams: teams}
}

// referred is what a referral's answer is built from: the referrer's
// record and the person's data, as the view will hold them.
type referred struct {
	rec      record
	pd       personal
	created  bool
	warnings []string
}

// refer records a checked referral and renders the referrer's view of it
// from the command's own result: no second read, no wait for the view.
//
// Idempotency for ever, with no second write: the journey id is a UUIDv5 of
// the referrer and its own referral id (events.ReferralJourneyID), so a
// resend, a week or a year later, names the same journey. The first append
// to a journey expects its subject to be empty; Decide answers Refer on an
// existing journey with no events. So of two identical posts, concurrent or
// not, exactly one appends (201) and the other finds the journey (200). No
// idempotency key is passed: each request's Nats-Msg-Id is its own, so the
// answer never depends on the order in which JetStream checks duplicate ids
// and expected sequences; the expected-sequence check is what decides.
func (s *Service) refer(ctx context.Context, p api.Principal, req *ReferralRequest, source string) (referred, error) {
	id := events.ReferralJourneyID(p.OrgID, req.SourceID)
	res, err := s.cfg.Journal.Execute(ctx, id, journal.Meta{Actor: p.Actor()}, events.Refer{Referral: req.event(source, p.OrgID)})
	if err != nil {
		return referred{}, err
	}
	// Events are returned only to the call that appended them (Replayed is
	// set only when this same call's append had landed before a retry).
	ans := referred{created: len(res.Events) > 0, warnings: []string{}}
	if !ans.created && res.State.Referral.GetReferrerOrganisationId() != p.OrgID {
		// Not possible for a name-based id unless UUIDv5 collides; never
		// show another referrer's journey.
		return referred{}, fmt.Errorf("journey %s exists for another referrer", id)
	}
	if ans.created {
		s.log.Info("referral received", "journey_id", id, "referrer", p.OrgID, "source", source)
	}
	var ok bool
	if ans.rec, ans.pd, ok = s.proj.replay(p.OrgID, envelopes(res.History)); !ok {
		return referred{}, fmt.Errorf("journey %s: its history renders no view for %s", id, p.OrgID)
	}
	if w, ok := events.ReferralWarning(res.State.Referral); ok {
		ans.warnings = append(ans.warnings, w)
	}
	return ans, nil
}

func envelopes(hist []journal.Recorded) []*eventsv1.Envelope {
	out := make([]*eventsv1.Envelope, len(hist))
	for i, r := range hist {
		out[i] = r.Event
	}
	return out
}

// errLog is the caller's answer when the log cannot be read.
var errLog = &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable; retry"}

// errView is the caller's answer when the view cannot be read.
var errView = &events.Error{Code: events.CodeUnavailable, Message: "the referrals view is unavailable; retry"}

// lookup finds one of org's referrals, with the person's data when
// withPerson is set. It first waits (bounded) for the view to reach the
// journey's last event on the log, so that a read after a write (this
// service's, or a link worker's a moment ago) sees it. A view still
// behind after that is not trusted: the answer is folded from the log, as
// the view will have it.
func (s *Service) lookup(ctx context.Context, org, id string, withPerson bool) (record, personal, error) {
	if err := events.ParseID(id); err != nil {
		return record{}, personal{}, err
	}
	last, err := s.cfg.Journal.Stream().GetLastMsgForSubject(ctx, events.JourneyFilter(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return record{}, personal{}, events.ErrNotFound
	}
	if err != nil {
		return record{}, personal{}, fmt.Errorf("journey %s: %v: %w", id, err, errLog)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Settings.ReadYourWrites)
	caughtUp := s.cfg.Views.WaitFor(wctx, last.Sequence, ProjectionName) == nil
	cancel()
	if caughtUp {
		var rec record
		ok, err := s.getJSON(recordKey(org, id), &rec)
		if err != nil || !ok {
			return record{}, personal{}, cmpErr(err, events.ErrNotFound)
		}
		var pd personal
		if withPerson && !rec.Erased {
			if _, err := s.getJSON(personKey(org, id), &pd); err != nil {
				return record{}, personal{}, err
			}
		}
		return rec, pd, nil
	}
	_, hist, err := s.cfg.Journal.Load(ctx, id)
	if err != nil {
		return record{}, personal{}, err
	}
	rec, pd, ok := s.proj.replay(org, envelopes(hist))
	if !ok {
		return record{}, personal{}, events.ErrNotFound
	}
	return rec, pd, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// getJSON reads one entry of the view.
func (s *Service) getJSON(key string, v any) (bool, error) {
	raw, ok, err := s.view.Get(key)
	if err != nil {
		return false, fmt.Errorf("%v: %w", err, errView)
	}
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("referrals view %s: %w", key, err)
	}
	return true, nil
}

func (s *Service) getReferral(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	id := r.PathValue("id")
	rec, _, err := s.lookup(r.Context(), p.OrgID, id, false)
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, id); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, rec.View)
	return nil
}

// ListResponse is a page of a referrer's referrals.
type ListResponse struct {
	Referrals     []View `json:"referrals"`
	NextPageToken string `json:"next_page_token"`
}

// Statuses a list can filter on.
var statuses = []string{"referred", "assigned", "in_progress", "connected", "closed", "declined"}

// listReferrals pages through a referrer's referrals. Plain, or by status,
// oldest first by creation: an order that never changes, so a page token
// stays good while referrals are updated. With updated_since (a system
// polling for changes), those updated after it, least recently updated
// first: a referral updated again while the pages are read comes again
// later, as it should for a poller. Each is a prefix scan of the view.
func (s *Service) listReferrals(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"status", "updated_since", "page_token", "page_size"}, k) {
			return events.Invalid(k, "unknown query parameter")
		}
	}
	status := q.Get("status")
	if status != "" && !slices.Contains(statuses, status) {
		return events.Invalid("status", "must be one of %v", statuses)
	}
	size := s.cfg.Settings.PageSize
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.Settings.MaxPageSize {
			return events.Invalid("page_size", "must be a number from 1 to %d", s.cfg.Settings.MaxPageSize)
		}
		size = n
	}
	token := q.Get("page_token")
	var prefix string
	var keep func(value []byte) bool
	switch {
	case q.Get("updated_since") != "":
		since, err := time.Parse(time.RFC3339Nano, q.Get("updated_since"))
		if err != nil {
			return events.Invalid("updated_since", "must be an RFC 3339 time such as 2026-11-20T10:00:00Z")
		}
		prefix = updatedPrefix(p.OrgID)
		if token == "" { // from the first change after since
			token = pageToken(prefix + stamp(since.Add(time.Nanosecond)))
		}
		if status != "" {
			keep = func(v []byte) bool { return string(v) == status }
		}
	case status != "":
		prefix = statusPrefix(p.OrgID, status)
	default:
		prefix = createdPrefix(p.OrgID)
	}
	keys, next, err := s.scan(prefix, token, size, keep)
	if err != nil {
		return err
	}
	resp := ListResponse{Referrals: []View{}, NextPageToken: next}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		var rec record
		ok, err := s.getJSON(recordKey(p.OrgID, journeyOfKey(k)), &rec)
		if err != nil {
			return err
		}
		if !ok || status != "" && rec.Status != status {
			continue // changed between the scan and the read
		}
		resp.Referrals = append(resp.Referrals, rec.View)
		ids = append(ids, rec.JourneyID)
	}
	if err := s.cfg.Audit.List(r.Context(), p, r.Pattern, ids); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// scanBudget bounds the entries one filtered page reads: past it, the page
// is answered short, with a token that goes on from there.
const scanBudget = 5000

// scan returns the keys of up to size entries under prefix, from the one
// token names, that keep accepts (all when keep is nil), and the token of
// the next page ("" at the end). Tokens are the view store's (viewstore
// Page), so a token made up, or from another organisation's list, is
// refused naming page_token.
func (s *Service) scan(prefix, token string, size int, keep func([]byte) bool) ([]string, string, error) {
	var keys []string
	read := 0
	for {
		want := size - len(keys)
		if keep != nil {
			want = viewstore.MaxPageSize // most of them may be filtered out
		}
		pg, err := s.view.Page(prefix, min(want, viewstore.MaxPageSize), token)
		if err != nil {
			var e *events.Error
			if errors.As(err, &e) {
				return nil, "", e
			}
			return nil, "", fmt.Errorf("%v: %w", err, errView)
		}
		for i, it := range pg.Items {
			read++
			if keep != nil && !keep(it.Value) {
				continue
			}
			keys = append(keys, it.Key)
			if len(keys) == size {
				if i+1 < len(pg.Items) {
					return keys, pageToken(pg.Items[i+1].Key), nil
				}
				return keys, pg.NextPageToken, nil
			}
		}
		if pg.NextPageToken == "" || read >= scanBudget {
			return keys, pg.NextPageToken, nil
		}
		token = pg.NextPageToken
	}
}

// pageToken is the view store's page token that starts a page at key
// (viewstore's tokens are the key, base64url without padding).
func pageToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }
