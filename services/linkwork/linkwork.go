// Package linkwork is the link-worker service: a team's caseload and the
// commands a link worker carries out on a journey (assign, contact, assess,
// measure, refer on, follow up, close, reopen), as JSON routes for the
// team's systems and a plain server-rendered web page at /linkwork/.
//
// Every write is a command through the journey rules (events.Decide) in the
// event store, answered with the journey's view right after the change. A
// team sees only journeys referred to it: anything else is not found.
//
// Routes (kind linkwork; the team is the caller's organisation):
//
//	GET  /v1/caseload?worker=&status=        open journeys, due follow-ups, workload
//	GET  /v1/journeys/{id}                   the team's full record of a journey
//	POST /v1/journeys/{id}/assign            {"worker_id","worker_name"}
//	POST /v1/journeys/{id}/contacts          {"outcome","method"}
//	POST /v1/journeys/{id}/assessment        {"what_matters","needs","goals":[{"text"}],"barriers"}
//	POST /v1/journeys/{id}/goals/{goal_id}   {"status"}
//	POST /v1/journeys/{id}/measures          {"instrument","timepoint","answers"} -> "result"
//	POST /v1/journeys/{id}/onward-referrals  {"service_id","share","waiting_list"} -> "onward_referral_id"
//	POST /v1/journeys/{id}/onward-referrals/{oid}/withdraw  {"reason"}
//	POST /v1/journeys/{id}/follow-ups        {"due"} -> "follow_up_id"
//	POST /v1/journeys/{id}/follow-ups/{fid}/complete  {"measure": {...}} (optional)
//	POST /v1/journeys/{id}/decline           {"detail"}
//	POST /v1/journeys/{id}/close             {"reason"}
//	POST /v1/journeys/{id}/reopen            {"reason"}
//
// Writes honour an Idempotency-Key header: a retry returns the first
// answer and records nothing more.
package linkwork

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/websession"
)

// Settings are the operator's settings for the linkwork service, read once
// at start-up from flags and environment.
type Settings struct {
	// Uncontactable says when failed contact attempts flag a journey for
	// closure as uncontactable.
	Uncontactable events.UncontactablePolicy
}

// DefaultSettings are the settings of `linkway hub` with no flags: three
// failed attempts within 21 days.
func DefaultSettings() Settings {
	return Settings{Uncontactable: events.UncontactablePolicy{Attempts: 3, Within: 21 * 24 * time.Hour}}
}

// Journal is the event store the link workers' commands are executed on
// (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
	// Load returns a journey's state and history.
	Load(ctx context.Context, journeyID string) (events.State, []journal.Recorded, error)
}

// Projections starts a projection (the caseload view): the hub runs it
// until the process stops and counts it for readiness.
type Projections interface {
	Project(ctx context.Context, p views.Projector) (*views.Runner, error)
}

// Auditor records every read of identifiable data (audit.Log).
type Auditor interface {
	Journey(ctx context.Context, p api.Principal, route, journeyID string) error
	List(ctx context.Context, p api.Principal, route string, journeyIDs []string) error
}

// Organisations is the organisation register (orgs.Registry): the team's
// name and duty contact.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
}

// Directory finds the community services people are referred on to.
type Directory interface {
	// Service returns what the journey rules need to know of a service;
	// found is false when there is no such service.
	Service(ctx context.Context, id string) (facts events.ServiceFacts, found bool, err error)
}

// Routes is the route table the service adds its handlers to
// (api.Server); the web page signs in with the keys it knows.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	websession.KeyLookup
}

// Config is what the linkwork service is given by the process that runs it.
type Config struct {
	// JS holds the web page's sessions.
	JS jetstream.JetStream
	// Journal executes the link workers' commands and loads journeys.
	Journal Journal
	// Projections starts the caseload view.
	Projections Projections
	// Audit records the reads of the caseload and of journeys.
	Audit Auditor
	// Orgs is the organisation register.
	Orgs Organisations
	// Directory finds the services of onward referrals; without it an
	// onward referral is refused as unavailable.
	Directory Directory
	// HTTP is the route table the service adds its routes to.
	HTTP Routes
	// Log receives what the service did (never personal data); slog.Default when nil.
	Log *slog.Logger
	// Metrics registers the service's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// Replicas of the buckets the service creates.
	Replicas int
	// Settings are the operator's settings.
	Settings Settings
}

// Service is the running linkwork service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	runner   *views.Runner
	mirror   *views.Mirror
	now      func() time.Time
	policy   events.UncontactablePolicy
	sessions *websession.Sessions
	commands *prometheus.CounterVec
}

// New adds the service's routes and starts its caseload projection (tests
// reach its clock through the Service).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Projections == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("linkwork: JS, Journal, Projections, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Log.With("service", "linkwork"), now: time.Now, policy: cfg.Settings.Uncontactable}
	s.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "linkway_linkwork_commands_total",
		Help: "Link-worker commands by command and result (ok, replayed, refused, error).",
	}, []string{"command", "result"})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s.commands); err != nil {
			return nil, fmt.Errorf("linkwork metrics: %w", err)
		}
	}
	r, err := cfg.Projections.Project(ctx, caseload{})
	if err != nil {
		return nil, fmt.Errorf("caseload projection: %w", err)
	}
	s.runner = r
	if s.mirror, err = views.NewMirror(ctx, r.KV()); err != nil {
		return nil, fmt.Errorf("caseload mirror: %w", err)
	}
	if s.sessions, err = openSessions(ctx, cfg); err != nil {
		return nil, err
	}
	s.routes()
	s.webRoutes()
	return s, nil
}

// SetClock replaces the service's clock (tests of due and waiting figures).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

var team = []events.Kind{events.KindLinkwork}

func (s *Service) routes() {
	h := s.cfg.HTTP
	h.Handle("GET /v1/caseload", team, s.getCaseload)
	h.Handle("GET /v1/journeys/{id}", team, s.getJourney)
	h.Handle("POST /v1/journeys/{id}/assign", team, s.postAssign)
	h.Handle("POST /v1/journeys/{id}/contacts", team, s.postContact)
	h.Handle("POST /v1/journeys/{id}/assessment", team, s.postAssessment)
	h.Handle("POST /v1/journeys/{id}/goals/{goal_id}", team, s.postGoal)
	h.Handle("POST /v1/journeys/{id}/measures", team, s.postMeasure)
	h.Handle("POST /v1/journeys/{id}/onward-referrals", team, s.postOnward)
	h.Handle("POST /v1/journeys/{id}/onward-referrals/{oid}/withdraw", team, s.postWithdraw)
	h.Handle("POST /v1/journeys/{id}/follow-ups", team, s.postFollowUp)
	h.Handle("POST /v1/journeys/{id}/follow-ups/{fid}/complete", team, s.postCompleteFollowUp)
	h.Handle("POST /v1/journeys/{id}/decline", team, s.postDecline)
	h.Handle("POST /v1/journeys/{id}/close", team, s.postClose)
	h.Handle("POST /v1/journeys/{id}/reopen", team, s.postReopen)
}

// ---- reads ------------------------------------------------------------------

func (s *Service) getCaseload(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	if err := onlyParams(r, "worker", "status"); err != nil {
		return err
	}
	cl, err := s.caseload(p.OrgID, r.URL.Query().Get("worker"), r.URL.Query().Get("status"))
	if err != nil {
		return err
	}
	if err := s.auditCaseload(r.Context(), p, r.Pattern, cl); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, cl)
	return nil
}

// auditCaseload records that a caseload was read, with the journeys it showed.
func (s *Service) auditCaseload(ctx context.Context, p api.Principal, route string, cl Caseload) error {
	ids := make([]string, 0, len(cl.Journeys))
	for _, j := range cl.Journeys {
		ids = append(ids, j.JourneyID)
	}
	return s.cfg.Audit.List(ctx, p, route, ids)
}

func (s *Service) caseload(team, worker, status string) (Caseload, error) {
	if status != "" && !slices.Contains(statusFilters, status) {
		return Caseload{}, events.Invalid("status", "must be one of %v", statusFilters)
	}
	if len(worker) > maxShort {
		return Caseload{}, events.Invalid("worker", "is too long")
	}
	if !s.runner.Ready() {
		return Caseload{}, &events.Error{Code: events.CodeUnavailable, Message: "the caseload is still being built"}
	}
	return buildCaseload(team, entriesOf(s.mirror, team), worker, status, s.now(), s.policy), nil
}

func onlyParams(r *http.Request, names ...string) error {
	for k := range r.URL.Query() {
		if !slices.Contains(names, k) {
			return events.Invalid(k, "unknown query parameter; known: %v", names)
		}
	}
	return nil
}

func (s *Service) getJourney(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	v, err := s.journey(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, r.PathValue("id")); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

// journey loads a journey of the caller's team; any other is not found.
func (s *Service) journey(ctx context.Context, p api.Principal, id string) (*JourneyView, error) {
	st, hist, err := s.load(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return buildView(st, hist, s.now(), s.policy), nil
}

func (s *Service) load(ctx context.Context, p api.Principal, id string) (events.State, []journal.Recorded, error) {
	if events.ParseID(id) != nil {
		return events.State{}, nil, events.ErrNotFound
	}
	st, hist, err := s.cfg.Journal.Load(ctx, id)
	if err != nil {
		return events.State{}, nil, fmt.Errorf("load journey: %w", err)
	}
	if !st.Exists() || st.Referral.GetLinkWorkTeam() != p.OrgID {
		return events.State{}, nil, events.ErrNotFound
	}
	return st, hist, nil
}

// ---- writes -----------------------------------------------------------------

// writeAnswer is a write's answer: the journey's view after the change, and
// what the write created.
type writeAnswer struct {
	*JourneyView
	OnwardReferralID string         `json:"onward_referral_id,omitempty"`
	FollowUpID       string         `json:"follow_up_id,omitempty"`
	Result           *MeasureResult `json:"result,omitempty"`
	// Replayed: the Idempotency-Key had been seen; nothing new was recorded.
	Replayed bool `json:"replayed,omitempty"`
}

// execute checks that the journey is the caller's, carries out cmd and
// returns the answer. The scoping check comes first, so another team's
// journey is not found whatever the command.
func (s *Service) execute(ctx context.Context, p api.Principal, id, key string, cmd events.Command) (*writeAnswer, error) {
	if _, _, err := s.load(ctx, p, id); err != nil {
		return nil, err
	}
	if len(key) > 200 {
		return nil, events.Invalid("Idempotency-Key", "is over 200 characters")
	}
	name := events.CommandName(cmd)
	meta := journal.Meta{Actor: p.Actor(), IdempotencyKey: key}
	res, err := s.cfg.Journal.Execute(ctx, id, meta, cmd)
	if err != nil {
		result := "refused"
		if c := events.ErrorCode(err); c == events.CodeUnavailable || c == events.CodeInternal {
			result = "error"
		}
		s.commands.WithLabelValues(name, result).Inc()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.commands.WithLabelValues(name, map[bool]string{true: "replayed", false: "ok"}[res.Replayed]).Inc()
	// Read-your-writes in the caseload: once a write answers, the team's
	// list shows it. The answer itself is built from the log, so if the view
	// is slow the write still stands and the list catches up on its own.
	wctx, cancel := context.WithTimeout(ctx, readYourWrites)
	if err := s.awaitView(wctx, res.LastSeq); err != nil && ctx.Err() == nil {
		s.log.Warn("caseload view lagging behind a write", "command", name)
	}
	cancel()
	v, err := s.journey(ctx, p, id)
	if err != nil {
		return nil, err
	}
	ans := &writeAnswer{JourneyView: v, Replayed: res.Replayed}
	for _, rec := range res.Events {
		switch e := rec.Event.GetEvent().(type) {
		case *eventsv1.Envelope_OnwardReferralMade:
			ans.OnwardReferralID = e.OnwardReferralMade.GetOnwardReferralId()
		case *eventsv1.Envelope_FollowUpScheduled:
			ans.FollowUpID = e.FollowUpScheduled.GetFollowUpId()
		case *eventsv1.Envelope_WellbeingMeasured:
			m := scoredResult(e.WellbeingMeasured, rec.Event.GetOccurredAt().AsTime().UTC())
			ans.Result = &m
		}
	}
	return ans, nil
}

// awaitView waits until the caseload as this process lists it (the
// mirror, which trails the bucket by the watch's delivery) holds stream
// sequence seq. The runner writes its checkpoint after the views it covers,
// and the watch delivers the bucket's writes in order, so a mirrored
// checkpoint at or past seq means every entry up to seq is mirrored too.
func (s *Service) awaitView(ctx context.Context, seq uint64) error {
	for {
		changed := s.mirror.Changed()
		if b, ok := s.mirror.Get(views.CheckpointKey); ok {
			if cp, err := strconv.ParseUint(string(b), 10, 64); err == nil && cp >= seq {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (s *Service) respond(w http.ResponseWriter, r *http.Request, p api.Principal, cmd events.Command) error {
	ans, err := s.execute(r.Context(), p, r.PathValue("id"), r.Header.Get("Idempotency-Key"), cmd)
	if err != nil {
		return err
	}
	// The answer is the journey's view, the person's name and phone with
	// it: audited as a read. Should the audit fail, the write stands and
	// the view is not shown (a retry with the Idempotency-Key replays it).
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, r.PathValue("id")); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// readYourWrites bounds how long a write waits for the caseload view.
const readYourWrites = 2 * time.Second

// Input limits: free text is bounded so one journey cannot grow without end.
const (
	maxShort = 100
	maxText  = 2000
	maxList  = 30
)

var tokenPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ContactMethods are the ways a link worker reaches a person.
var ContactMethods = []string{"phone", "text", "email", "letter", "video", "in_person", "home_visit"}

// NeedCategories and BarrierCategories are the categories offered on the
// web page; the API takes any lower-case token so a team can add its own.
var (
	NeedCategories = []string{"company", "loneliness", "low_mood", "physical_activity", "financial", "debt", "housing",
		"employment", "benefits", "carer_support", "long_term_condition", "food", "learning", "bereavement", "other"}
	BarrierCategories = []string{"transport", "confidence", "cost", "caring_duties", "health", "language",
		"digital_access", "mobility", "anxiety", "time", "other"}
)

func text(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return events.Invalid(field, "is required")
	case len(v) > max:
		return events.Invalid(field, "is over %d characters", max)
	}
	return nil
}

func tokens(field string, vs []string) error {
	if len(vs) > maxList {
		return events.Invalid(field, "has more than %d entries", maxList)
	}
	for i, v := range vs {
		if !tokenPattern.MatchString(v) {
			return events.Invalid(fmt.Sprintf("%s[%d]", field, i), "must be a lower-case category (letters, digits, '_'), such as %s", example[field])
		}
	}
	return nil
}

var example = map[string]string{"needs": "company", "barriers": "transport"}

type assignBody struct {
	WorkerID   string `json:"worker_id"`
	WorkerName string `json:"worker_name"`
}

func (s *Service) postAssign(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b assignBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := validateAssign(b); err != nil {
		return err
	}
	return s.respond(w, r, p, events.Assign{WorkerID: b.WorkerID, WorkerName: strings.TrimSpace(b.WorkerName)})
}

var workerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func validateAssign(b assignBody) error {
	if b.WorkerID == "" {
		return events.Invalid("worker_id", "is required")
	}
	if !workerIDPattern.MatchString(b.WorkerID) {
		return events.Invalid("worker_id", "must be letters, digits, '.', '_', '@' or '-', at most 64")
	}
	return text("worker_name", b.WorkerName, maxShort, true)
}

type contactBody struct {
	Outcome string `json:"outcome"`
	Method  string `json:"method"`
}

func (s *Service) postContact(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b contactBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := validateContact(b); err != nil {
		return err
	}
	return s.respond(w, r, p, events.RecordContact{Outcome: b.Outcome, Method: b.Method})
}

func validateContact(b contactBody) error {
	if !slices.Contains(events.ContactOutcomes, b.Outcome) {
		return events.Invalid("outcome", "must be one of %v", events.ContactOutcomes)
	}
	if !slices.Contains(ContactMethods, b.Method) {
		return events.Invalid("method", "must be one of %v", ContactMethods)
	}
	return nil
}

type goalBody struct {
	Text string `json:"text"`
}

type assessmentBody struct {
	WhatMatters string     `json:"what_matters"`
	Needs       []string   `json:"needs"`
	Goals       []goalBody `json:"goals"`
	Barriers    []string   `json:"barriers"`
}

func (s *Service) postAssessment(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b assessmentBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	cmd, err := assessCommand(b)
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

func assessCommand(b assessmentBody) (events.AssessNeeds, error) {
	if err := text("what_matters", b.WhatMatters, maxText, false); err != nil {
		return events.AssessNeeds{}, err
	}
	if err := tokens("needs", b.Needs); err != nil {
		return events.AssessNeeds{}, err
	}
	if err := tokens("barriers", b.Barriers); err != nil {
		return events.AssessNeeds{}, err
	}
	if len(b.Goals) > maxList {
		return events.AssessNeeds{}, events.Invalid("goals", "has more than %d entries", maxList)
	}
	cmd := events.AssessNeeds{WhatMatters: strings.TrimSpace(b.WhatMatters), Needs: dedupe(b.Needs), Barriers: dedupe(b.Barriers)}
	for i, g := range b.Goals {
		if err := text(fmt.Sprintf("goals[%d].text", i), g.Text, maxText/4, true); err != nil {
			return events.AssessNeeds{}, err
		}
		cmd.Goals = append(cmd.Goals, events.GoalInput{GoalID: events.NewID(), Text: strings.TrimSpace(g.Text)})
	}
	return cmd, nil
}

func dedupe(vs []string) []string {
	var out []string
	for _, v := range vs {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

type goalStatusBody struct {
	Status string `json:"status"`
}

func (s *Service) postGoal(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b goalStatusBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if !slices.Contains(events.GoalStatuses, b.Status) {
		return events.Invalid("status", "must be one of %v", events.GoalStatuses)
	}
	return s.respond(w, r, p, events.UpdateGoal{GoalID: r.PathValue("goal_id"), Status: b.Status})
}

type measureBody struct {
	Instrument string  `json:"instrument"`
	Timepoint  string  `json:"timepoint"`
	Answers    []int32 `json:"answers"`
}

func (s *Service) postMeasure(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b measureBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	cmd, err := measureCommand(b, "")
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

// measureCommand checks a questionnaire at the edge, so a bad one is a 400
// naming the answer whatever the journey's state.
func measureCommand(b measureBody, followUpID string) (events.RecordMeasure, error) {
	if followUpID != "" && b.Timepoint == "" {
		b.Timepoint = "follow_up"
	}
	if !slices.Contains(events.Instruments, b.Instrument) {
		return events.RecordMeasure{}, events.Invalid("instrument", "must be one of %v", events.Instruments)
	}
	if !slices.Contains(events.Timepoints, b.Timepoint) {
		return events.RecordMeasure{}, events.Invalid("timepoint", "must be one of %v", events.Timepoints)
	}
	if _, err := events.Score(b.Instrument, b.Answers); err != nil {
		return events.RecordMeasure{}, err
	}
	return events.RecordMeasure{MeasureID: events.NewID(), Instrument: b.Instrument, Timepoint: b.Timepoint,
		Answers: b.Answers, FollowUpID: followUpID}, nil
}

type onwardBody struct {
	ServiceID   string   `json:"service_id"`
	Share       []string `json:"share"`
	WaitingList bool     `json:"waiting_list"`
}

func (s *Service) postOnward(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b onwardBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	// The journey is checked first so another team's id is not found
	// before anything about the service is said.
	st, _, err := s.load(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	cmd, err := s.onwardCommand(r.Context(), p, st, b)
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

func (s *Service) onwardCommand(ctx context.Context, p api.Principal, st events.State, b onwardBody) (events.ReferOnward, error) {
	if b.ServiceID == "" {
		return events.ReferOnward{}, events.Invalid("service_id", "is required")
	}
	if len(b.ServiceID) > maxShort {
		return events.ReferOnward{}, events.Invalid("service_id", "is too long")
	}
	if len(b.Share) == 0 {
		return events.ReferOnward{}, events.Invalid("share", "name at least one of %v", events.ShareableFields)
	}
	for i, f := range b.Share {
		if !slices.Contains(events.ShareableFields, f) {
			return events.ReferOnward{}, events.Invalid(fmt.Sprintf("share[%d]", i), "must be one of %v", events.ShareableFields)
		}
	}
	if s.cfg.Directory == nil {
		return events.ReferOnward{}, &events.Error{Code: events.CodeUnavailable, Message: "the directory is not available"}
	}
	facts, found, err := s.cfg.Directory.Service(ctx, b.ServiceID)
	if err != nil {
		return events.ReferOnward{}, fmt.Errorf("directory lookup: %w", err)
	}
	if !found {
		return events.ReferOnward{}, events.Invalid("service_id", "no such service in the directory")
	}
	return events.ReferOnward{OnwardReferralID: events.NewID(), Service: facts, Share: dedupe(b.Share),
		WaitingList: b.WaitingList, LinkWorkerContact: s.contactLine(p, st)}, nil
}

// contactLine is how the VCS organisation reaches the link worker: the
// named worker and the team's duty contact from the register.
func (s *Service) contactLine(p api.Principal, st events.State) string {
	var parts []string
	if st.WorkerName != "" {
		parts = append(parts, st.WorkerName)
	}
	if o, ok := s.cfg.Orgs.Get(p.OrgID); ok {
		parts = append(parts, o.Name)
		if o.Contact != "" {
			parts = append(parts, o.Contact)
		}
	}
	return strings.Join(parts, ", ")
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (s *Service) postWithdraw(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b reasonBody
	if err := decodeOptional(w, r, &b); err != nil {
		return err
	}
	if err := text("reason", b.Reason, maxText, false); err != nil {
		return err
	}
	return s.respond(w, r, p, events.WithdrawOnward{OnwardReferralID: r.PathValue("oid"), Reason: strings.TrimSpace(b.Reason)})
}

// decodeOptional decodes a body that may be left out altogether.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return api.DecodeJSON(w, r, api.DefaultBodyLimit, v)
}

type followUpBody struct {
	Due string `json:"due"`
}

func (s *Service) postFollowUp(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b followUpBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := s.validateDue(b.Due); err != nil {
		return err
	}
	return s.respond(w, r, p, events.ScheduleFollowUp{FollowUpID: events.NewID(), Due: b.Due})
}

// validateDue: a follow-up is for today or later, and within five years.
func (s *Service) validateDue(due string) error {
	d, err := events.ParseDate("due", due)
	if err != nil {
		return err
	}
	today := dateOf(s.now())
	if d.Before(today) {
		return events.Invalid("due", "must be today or later")
	}
	if d.After(today.AddDate(5, 0, 0)) {
		return events.Invalid("due", "must be within five years")
	}
	return nil
}

type completeBody struct {
	Measure *measureBody `json:"measure"`
}

func (s *Service) postCompleteFollowUp(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b completeBody
	if err := decodeOptional(w, r, &b); err != nil {
		return err
	}
	fid := r.PathValue("fid")
	if b.Measure == nil {
		return s.respond(w, r, p, events.CompleteFollowUp{FollowUpID: fid})
	}
	cmd, err := measureCommand(*b.Measure, fid)
	if err != nil {
		var e *events.Error
		if errors.As(err, &e) && e.Field != "" {
			e2 := *e
			e2.Field = "measure." + e.Field
			return &e2
		}
		return err
	}
	return s.respond(w, r, p, cmd)
}

type declineBody struct {
	Detail string `json:"detail"`
}

func (s *Service) postDecline(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b declineBody
	if err := decodeOptional(w, r, &b); err != nil {
		return err
	}
	if err := text("detail", b.Detail, maxText, false); err != nil {
		return err
	}
	return s.respond(w, r, p, events.DeclineReferral{Detail: strings.TrimSpace(b.Detail)})
}

func (s *Service) postClose(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b reasonBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if !slices.Contains(events.CloseReasons, b.Reason) {
		return events.Invalid("reason", "must be one of %v", events.CloseReasons)
	}
	return s.respond(w, r, p, events.Close{Reason: b.Reason})
}

func (s *Service) postReopen(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b reasonBody
	if err := decodeOptional(w, r, &b); err != nil {
		return err
	}
	if err := text("reason", b.Reason, maxText, false); err != nil {
		return err
	}
	return s.respond(w, r, p, events.Reopen{Reason: strings.TrimSpace(b.Reason)})
}
