// Package referrals is the GP-facing service: GP practice systems post
// social-prescribing referrals (JSON, or FHIR R4 UK Core / BaRS shaped)
// and read back what became of them, with SNOMED CT codes to file in the
// GP record. It owns the `referrals` view: each practice's own journeys.
//
// Routes (kind gp unless said): POST /v1/referrals, GET /v1/referrals and
// /v1/referrals/{id}; FHIR R4: POST /fhir/R4/ServiceRequest, GET
// /fhir/R4/ServiceRequest/{id}, GET /fhir/R4/Task?focus=ServiceRequest/{id}
// and /fhir/R4/Task/{id}, POST /fhir/R4/$process-message, GET
// /fhir/R4/metadata (public); GET /openapi.yaml (public).
//
// The view lives in the KV bucket view_referrals, one key per practice and
// journey (r.<ODS>.<journey>), so a practice with its own system can also
// follow its referrals over NATS with credentials limited to
// $KV.view_referrals.r.<ODS>.> .
package referrals

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	lwproto "linkway/proto"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

// Settings of the service.
type Settings struct {
	// ReadYourWrites bounds how long a read waits for the view to show
	// it, so that a GET straight after a POST finds the referral.
	ReadYourWrites time.Duration
	// PageSize is the default and MaxPageSize the largest list page.
	PageSize, MaxPageSize int
}

// DefaultSettings are right for one hub.
func DefaultSettings() Settings {
	return Settings{ReadYourWrites: time.Second, PageSize: 50, MaxPageSize: 200}
}

// Journal is the event store referrals are recorded in (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
	// Load returns a journey's state and history.
	Load(ctx context.Context, journeyID string) (events.State, []journal.Recorded, error)
}

// Projections starts a projection (the practices' view): the hub runs it
// until the process stops and counts it for readiness.
type Projections interface {
	Project(ctx context.Context, p views.Projector) (*views.Runner, error)
}

// Auditor records every read of identifiable data (audit.Log).
type Auditor interface {
	Journey(ctx context.Context, p api.Principal, route, journeyID string) error
	List(ctx context.Context, p api.Principal, route string, journeyIDs []string) error
}

// Organisations is the organisation register (orgs.Registry): the
// link-worker team a referral names, and the organisations FHIR answers
// name.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
	Is(id string, k events.Kind) bool
}

// Routes is the route table the service adds its handlers to
// (api.Server). The FHIR routes authenticate, rate-limit and answer errors
// themselves, in FHIR's shape, through Authenticate, Admit and Fail.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	Authenticate(r *http.Request) (api.Principal, error)
	Admit(w http.ResponseWriter, p api.Principal) error
	Fail(w http.ResponseWriter, r *http.Request, err error) api.Failure
}

// Config is what the referrals service is given by the process that runs it.
type Config struct {
	// Journal records referrals and loads journeys.
	Journal Journal
	// Projections starts the practices' view.
	Projections Projections
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
}

// Service is the referrals service.
type Service struct {
	cfg     Config
	terms   *events.Terminology
	runner  *views.Runner
	mirror  *views.Mirror
	metrics *metrics
	// isTeam reports whether a code is a registered link-worker team.
	isTeam func(string) bool
	log    *slog.Logger
	now    func() time.Time
}

// New adds the service's routes and starts its projection.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Journal == nil || cfg.Projections == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("referrals: Journal, Projections, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	terms, err := events.LoadTerminology()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, terms: terms, log: cfg.Log.With("service", "referrals"), now: time.Now}
	s.isTeam = func(id string) bool { return cfg.Orgs.Is(id, events.KindLinkwork) }
	if s.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if s.runner, err = cfg.Projections.Project(ctx, &projector{terms: terms}); err != nil {
		return nil, fmt.Errorf("referrals projection: %w", err)
	}
	// The list is served from memory: a practice's page is a prefix scan
	// of the mirrored view, with no round trip per referral.
	if s.mirror, err = views.NewMirror(ctx, s.runner.KV()); err != nil {
		return nil, fmt.Errorf("referrals view mirror: %w", err)
	}
	gp := []events.Kind{events.KindGP}
	cfg.HTTP.Handle("POST /v1/referrals", gp, s.postReferral)
	cfg.HTTP.Handle("GET /v1/referrals/{id}", gp, s.getReferral)
	cfg.HTTP.Handle("GET /v1/referrals", gp, s.listReferrals)
	cfg.HTTP.HandlePublic("GET /openapi.yaml", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(lwproto.OpenAPI)
	}))
	s.routesFHIR()
	return s, nil
}

// ReferralResponse answers a POST: the journey id and the practice's view.
type ReferralResponse struct {
	View
	// Created is false when the referral had been received before.
	Created bool `json:"created"`
}

func (s *Service) postReferral(w http.ResponseWriter, r *http.Request, p api.Principal) (err error) {
	created := false
	defer func() { s.metrics.count("json", created, err) }()
	var req ReferralRequest
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &req); err != nil {
		return err
	}
	if errs := s.checker(true).check(&req); len(errs) > 0 {
		return errs[0]
	}
	v, created, err := s.refer(r.Context(), p, &req, "gp")
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	api.WriteJSON(w, status, ReferralResponse{View: v, Created: created})
	return nil
}

func (s *Service) checker(requireDemographics bool) checker {
	return checker{terms: s.terms, now: s.now, requireDemographics: requireDemographics, isTeam: s.isTeam}
}

// refer records a checked referral and returns the practice's view of it.
//
// Idempotency for ever, with no second write: the journey id is a UUIDv5 of
// the practice and its own referral id (events.ReferralJourneyID), so a
// resend, a week or a year later, names the same journey. The first append
// to a journey expects its subject to be empty; Decide answers Refer on an
// existing journey with no events. So of two identical posts, concurrent or
// not, exactly one appends (201) and the other finds the journey (200). No
// idempotency key is passed: each request's Nats-Msg-Id is its own, so the
// answer never depends on the order in which JetStream checks duplicate ids
// and expected sequences; the expected-sequence check is what decides.
func (s *Service) refer(ctx context.Context, p api.Principal, req *ReferralRequest, source string) (View, bool, error) {
	id := events.ReferralJourneyID(p.OrgID, req.SourceID)
	res, err := s.cfg.Journal.Execute(ctx, id, journal.Meta{Actor: p.Actor()}, events.Refer{Referral: req.event(source, p.OrgID)})
	if err != nil {
		return View{}, false, err
	}
	// Events are returned only to the call that appended them (Replayed is
	// set only when this same call's append had landed before a retry).
	created := len(res.Events) > 0
	if !created && res.State.Referral.GetReferrerOrganisationId() != p.OrgID {
		// Not possible for a name-based id unless UUIDv5 collides; never
		// show another practice's journey.
		return View{}, false, fmt.Errorf("journey %s exists for another referrer", id)
	}
	if created {
		s.log.Info("referral received", "journey_id", id, "practice", p.OrgID, "source", source)
	}
	// The answer is folded from the log (the store holds the journey it
	// has just written), as the view will have it: a POST never waits for
	// the view, and a GET that follows waits for the view to catch up with
	// the journey (getReferral).
	v, ok, err := s.viewFromLog(ctx, p.OrgID, id)
	if err != nil || !ok {
		return View{}, false, cmp.Or(err, error(events.ErrNotFound))
	}
	return v, created, nil
}

// viewFromLog folds the journey's history as the projection does: the
// practice's view of it whatever state the view is in. ok is false when the
// journey is not the practice's.
func (s *Service) viewFromLog(ctx context.Context, practice, id string) (View, bool, error) {
	st, hist, err := s.cfg.Journal.Load(ctx, id)
	if err != nil || !st.Exists() || st.Referral.GetReferrerOrganisationId() != practice {
		return View{}, false, err
	}
	history := make([]*eventsv1.Envelope, 0, len(hist))
	for _, r := range hist {
		history = append(history, r.Event)
	}
	rec, ok := (&projector{terms: s.terms}).replay(history)
	return rec.View, ok, nil
}

func (s *Service) readView(ctx context.Context, practice, id string) (View, bool, error) {
	e, err := s.runner.KV().Get(ctx, viewKey(practice, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return View{}, false, nil
	}
	if err != nil {
		return View{}, false, &events.Error{Code: events.CodeUnavailable, Message: "the referrals view is unavailable"}
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return View{}, false, fmt.Errorf("referrals view %s: %w", id, err)
	}
	return rec.View, true, nil
}

func (s *Service) getReferral(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	id := r.PathValue("id")
	if err := events.ParseID(id); err != nil {
		return err
	}
	// See what other services wrote a moment ago (a link worker's
	// assignment, a VCS acceptance); a view still behind after that answers
	// all the same.
	cctx, cancel := context.WithTimeout(r.Context(), s.cfg.Settings.ReadYourWrites)
	_ = s.runner.CatchUpJourney(cctx, id)
	cancel()
	v, ok, err := s.readView(r.Context(), p.OrgID, id)
	if err != nil {
		return err
	}
	if !ok {
		// Another replica may have taken the write and this view not caught
		// up yet: if the log says the journey is this practice's, answer
		// from the log, folded as the view will be.
		if v, ok, err = s.viewFromLog(r.Context(), p.OrgID, id); err != nil {
			return err
		}
		if !ok {
			return events.ErrNotFound
		}
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, id); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

// ListResponse is a page of a practice's referrals.
type ListResponse struct {
	Referrals     []View `json:"referrals"`
	NextPageToken string `json:"next_page_token"`
}

// Practice statuses a list can filter on.
var statuses = []string{"referred", "assigned", "in_progress", "connected", "closed", "declined"}

// listReferrals pages through a practice's referrals oldest first, by
// (created_at, journey_id): an order that never changes, so a page token
// stays good while referrals are updated. A GP system polling for changes
// passes updated_since.
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
	var since time.Time
	if v := q.Get("updated_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return events.Invalid("updated_since", "must be an RFC 3339 time such as 2026-11-20T10:00:00Z")
		}
		since = t
	}
	size := s.cfg.Settings.PageSize
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.Settings.MaxPageSize {
			return events.Invalid("page_size", "must be a number from 1 to %d", s.cfg.Settings.MaxPageSize)
		}
		size = n
	}
	after, err := parsePageToken(q.Get("page_token"))
	if err != nil {
		return err
	}

	var all []View
	for _, kv := range s.mirror.Scan(practicePrefix(p.OrgID)) {
		var rec record
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return fmt.Errorf("referrals view %s: %w", kv.Key, err)
		}
		if rec.Practice != p.OrgID ||
			status != "" && rec.Status != status ||
			!since.IsZero() && !rec.UpdatedAt.After(since) {
			continue
		}
		all = append(all, rec.View)
	}
	slices.SortFunc(all, func(a, b View) int { return pageKey(a).compare(pageKey(b)) })
	start := 0
	if after != nil {
		start = len(all)
		for i, v := range all {
			if pageKey(v).compare(*after) > 0 {
				start = i
				break
			}
		}
	}
	resp := ListResponse{Referrals: []View{}}
	end := min(start+size, len(all))
	resp.Referrals = append(resp.Referrals, all[start:end]...)
	if end < len(all) {
		resp.NextPageToken = pageKey(all[end-1]).token()
	}
	ids := make([]string, 0, len(resp.Referrals))
	for _, v := range resp.Referrals {
		ids = append(ids, v.JourneyID)
	}
	if err := s.cfg.Audit.List(r.Context(), p, r.Pattern, ids); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, resp)
	return nil
}

type position struct {
	created time.Time
	id      string
}

func pageKey(v View) position { return position{v.CreatedAt, v.JourneyID} }

func (a position) compare(b position) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

func (a position) token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(a.created.UnixNano(), 10) + "|" + a.id))
}

func parsePageToken(t string) (*position, error) {
	if t == "" {
		return nil, nil
	}
	bad := events.Invalid("page_token", "is not a page token this server issued")
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return nil, bad
	}
	ns, id, ok := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || events.ParseID(id) != nil {
		return nil, bad
	}
	return &position{time.Unix(0, n).UTC(), id}, nil
}

// Runner is the referrals view's projection runner.
func (s *Service) Runner() *views.Runner { return s.runner }
