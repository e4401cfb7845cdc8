// Package linkwork is the link-worker service: a team's caseload and the
// commands a link worker carries out on a journey (assign, contact, assess,
// measure, refer on, signpost, follow up, close, reopen, notes, risks), as
// JSON routes for the team's systems and a plain server-rendered web page
// at /linkwork/.
//
// Every write is a command through the journey rules (events.Decide) in the
// event store, scoped to the caller's team by a guard on the state it is
// decided on, and answered with the journey's view right after the change
// (the write waits, bounded, for the caseload view to reach it). Reads come
// from the caseload view (project.go), which the process's one reader
// renders from the folded journeys. A team sees only journeys referred to
// it: anything else is not found.
//
// Routes (kind linkwork; the team is the caller's organisation):
//
//	GET  /v1/caseload?worker=&status=&page_size=&page_token=  journeys, due follow-ups, workload
//	GET  /v1/journeys/{id}                   the team's full record of a journey, with the person's history
//	GET  /v1/journeys/{id}/notes             the team's case notes
//	POST /v1/journeys/{id}/assign            {"worker_id","worker_name","handover_note"}
//	POST /v1/journeys/{id}/contacts          {"outcome","method"}
//	POST /v1/journeys/{id}/assessment        {"what_matters","needs","goals":[{"text"}],"barriers"}
//	POST /v1/journeys/{id}/goals/{goal_id}   {"status"}
//	POST /v1/journeys/{id}/measures          {"instrument","timepoint","answers"} -> "result"
//	POST /v1/journeys/{id}/consent           {"share_with_vcs","method"}
//	POST /v1/journeys/{id}/onward-referrals  {"service_id","share","waiting_list"} -> "onward_referral_id"
//	POST /v1/journeys/{id}/onward-referrals/{oid}/withdraw  {"reason"}
//	POST /v1/journeys/{id}/signposts         {"service_id"} or {"description"} -> "signpost_id"
//	POST /v1/journeys/{id}/follow-ups        {"due","timepoint"} -> "follow_up_id" (a check-in on a closed journey)
//	POST /v1/journeys/{id}/follow-ups/{fid}/complete  {"measure": {...}} (optional)
//	POST /v1/journeys/{id}/notes             {"text"} -> "note_id"
//	POST /v1/journeys/{id}/risks             {"kind","detail","escalate_to_gp"} -> "risk_id"
//	POST /v1/journeys/{id}/feedback          {"service_id","from","rating","comment","share_comment"} (also a VCS, for its own service)
//	POST /v1/journeys/{id}/decline           {"detail"}
//	POST /v1/journeys/{id}/close             {"reason"}
//	POST /v1/journeys/{id}/reopen            {"reason"}
//	POST /v1/supervision                     {"worker_id","date","kind"}
//
// Writes honour an Idempotency-Key header: a retry returns the first
// answer and records nothing more. Case notes and risk details are the
// person's data: sealed on the log, shown to the team only, erased with the
// person, never logged.
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
	"linkway/services/platform/viewstore"
	"linkway/services/platform/websession"
)

// Settings are the operator's settings for the linkwork service, read once
// at start-up from flags and environment.
type Settings struct {
	// Uncontactable says when failed contact attempts flag a journey for
	// closure as uncontactable. The caseload view holds the flag: after a
	// change of policy, rebuild it (linkway rebuild caseload).
	Uncontactable events.UncontactablePolicy
	// ReadYourWrites bounds how long a write waits for the caseload view
	// to show it before answering.
	ReadYourWrites time.Duration
}

// DefaultSettings are the settings of `linkway hub` with no flags: three
// failed attempts within 21 days.
func DefaultSettings() Settings {
	return Settings{Uncontactable: events.UncontactablePolicy{Attempts: 3, Within: 21 * 24 * time.Hour},
		ReadYourWrites: 2 * time.Second}
}

// Journal is the event store the link workers' commands are executed on
// (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
	// Supervise records a supervision session in its team's log.
	Supervise(ctx context.Context, meta journal.Meta, cmd events.RecordSupervision) (journal.TeamResult, error)
}

// Views is the process's read side (views.Registry): the service adds its
// projection, reads its view and waits for its own writes.
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

// Organisations is the organisation register (orgs.Registry): the team's
// name and duty contact.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
}

// Directory finds the community services people are referred or
// signposted to.
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
	// Journal executes the link workers' commands.
	Journal Journal
	// Views is the read side the caseload view is added to.
	Views Views
	// PersonRef names a person by NHS number without revealing it (the
	// keyed hash of sealing.Keyring.PersonRef): the caseload view finds a
	// person's other journeys by it. Nil: no history and no suggested worker.
	PersonRef func(nhsNumber string) string
	// Audit records the reads of the caseload and of journeys.
	Audit Auditor
	// Orgs is the organisation register.
	Orgs Organisations
	// Directory finds the services of onward referrals and signposts;
	// without it those are refused as unavailable.
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
	view     *viewstore.View
	now      func() time.Time
	policy   events.UncontactablePolicy
	sessions *websession.Sessions
	commands *prometheus.CounterVec
}

// New adds the service's projection to the read side and its routes to the
// route table.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Views == nil || cfg.Audit == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("linkwork: JS, Journal, Views, Audit, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Settings.ReadYourWrites <= 0 {
		cfg.Settings.ReadYourWrites = DefaultSettings().ReadYourWrites
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
	cfg.Views.Add(newProjection(s.policy, cfg.PersonRef))
	s.view = cfg.Views.View(ProjectionName)
	var err error
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
	h.Handle("GET /v1/journeys/{id}/notes", team, s.getNotes)
	h.Handle("POST /v1/journeys/{id}/assign", team, s.postAssign)
	h.Handle("POST /v1/journeys/{id}/contacts", team, s.postContact)
	h.Handle("POST /v1/journeys/{id}/assessment", team, s.postAssessment)
	h.Handle("POST /v1/journeys/{id}/goals/{goal_id}", team, s.postGoal)
	h.Handle("POST /v1/journeys/{id}/measures", team, s.postMeasure)
	h.Handle("POST /v1/journeys/{id}/consent", team, s.postConsent)
	h.Handle("POST /v1/journeys/{id}/onward-referrals", team, s.postOnward)
	h.Handle("POST /v1/journeys/{id}/onward-referrals/{oid}/withdraw", team, s.postWithdraw)
	h.Handle("POST /v1/journeys/{id}/signposts", team, s.postSignpost)
	h.Handle("POST /v1/journeys/{id}/follow-ups", team, s.postFollowUp)
	h.Handle("POST /v1/journeys/{id}/follow-ups/{fid}/complete", team, s.postCompleteFollowUp)
	h.Handle("POST /v1/journeys/{id}/notes", team, s.postNote)
	h.Handle("POST /v1/journeys/{id}/risks", team, s.postRisk)
	h.Handle("POST /v1/journeys/{id}/feedback", feedbackKinds, s.postFeedback)
	h.Handle("POST /v1/journeys/{id}/decline", team, s.postDecline)
	h.Handle("POST /v1/journeys/{id}/close", team, s.postClose)
	h.Handle("POST /v1/journeys/{id}/reopen", team, s.postReopen)
	h.Handle("POST /v1/supervision", team, s.postSupervision)
}

// ---- reads ------------------------------------------------------------------

func (s *Service) getCaseload(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q, err := caseloadParams(r)
	if err != nil {
		return err
	}
	cl, err := readCaseload(s.view, p.OrgID, q, s.now())
	if err != nil {
		return err
	}
	if err := s.auditCaseload(r.Context(), p, r.Pattern, cl); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, cl)
	return nil
}

// caseloadParams reads the caseload's query: filters and the page.
func caseloadParams(r *http.Request) (caseloadQuery, error) {
	if err := onlyParams(r, "worker", "status", "page_size", "page_token"); err != nil {
		return caseloadQuery{}, err
	}
	v := r.URL.Query()
	q := caseloadQuery{Worker: v.Get("worker"), Status: v.Get("status"), PageToken: v.Get("page_token")}
	if q.Status != "" && !slices.Contains(statusFilters, q.Status) {
		return q, events.Invalid("status", "must be one of %v", statusFilters)
	}
	if len(q.Worker) > maxShort {
		return q, events.Invalid("worker", "is too long")
	}
	if len(q.PageToken) > 1000 {
		return q, events.Invalid("page_token", "is not a token this list gave")
	}
	if ps := v.Get("page_size"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 {
			return q, events.Invalid("page_size", "must be a whole number from 1 to %d", viewstore.MaxPageSize)
		}
		q.PageSize = viewstore.PageSize(n)
	}
	return q, nil
}

// auditCaseload records that a caseload was read, with the journeys it
// showed (by name: the page's and the due list's).
func (s *Service) auditCaseload(ctx context.Context, p api.Principal, route string, cl Caseload) error {
	ids := make([]string, 0, len(cl.Journeys)+len(cl.Due))
	for _, j := range cl.Journeys {
		ids = append(ids, j.JourneyID)
	}
	for _, d := range cl.Due {
		if !slices.Contains(ids, d.JourneyID) {
			ids = append(ids, d.JourneyID)
		}
	}
	return s.cfg.Audit.List(ctx, p, route, ids)
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
	v, err := s.journey(p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, r.PathValue("id")); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

// ownRow reads a journey's row from the caseload view if it is the
// team's; any other is not found.
func (s *Service) ownRow(p api.Principal, id string) (caseRow, error) {
	if events.ParseID(id) != nil {
		return caseRow{}, events.ErrNotFound
	}
	raw, ok, err := s.view.Get(rowKey(id))
	if err != nil {
		return caseRow{}, fmt.Errorf("caseload: %w", err)
	}
	if !ok {
		return caseRow{}, events.ErrNotFound
	}
	row, err := rowJSON(raw)
	if err != nil {
		return caseRow{}, fmt.Errorf("caseload row: %w", err)
	}
	if row.Team != p.OrgID {
		return caseRow{}, events.ErrNotFound
	}
	return row, nil
}

// journey reads a journey of the caller's team, with the person's history.
func (s *Service) journey(p api.Principal, id string) (*JourneyView, error) {
	row, err := s.ownRow(p, id)
	if err != nil {
		return nil, err
	}
	v, err := readJourney(s.view, row, events.UKDate(s.now()))
	if err != nil {
		return nil, err
	}
	if v.History, err = s.history(row); err != nil {
		return nil, err
	}
	return v, nil
}

// ---- writes -----------------------------------------------------------------

// writeAnswer is a write's answer: the journey's view after the change, and
// what the write created.
type writeAnswer struct {
	*JourneyView
	OnwardReferralID string         `json:"onward_referral_id,omitempty"`
	FollowUpID       string         `json:"follow_up_id,omitempty"`
	SignpostID       string         `json:"signpost_id,omitempty"`
	NoteID           string         `json:"note_id,omitempty"`
	RiskID           string         `json:"risk_id,omitempty"`
	Result           *MeasureResult `json:"result,omitempty"`
	// Replayed: the Idempotency-Key had been seen; nothing new was recorded.
	Replayed bool `json:"replayed,omitempty"`
}

// teamOnly is the guard of every write: the journey must exist and be
// referred to the caller's team; any other is not found, whatever the
// command.
func teamOnly(team string) func(events.State) error {
	return func(st events.State) error {
		if !st.Exists() || st.Referral.GetLinkWorkTeam() != team {
			return events.ErrNotFound
		}
		return nil
	}
}

// execute carries out cmd on a journey of the caller's team and waits,
// bounded, until the caseload view shows it. key is already bounded
// (api.IdempotencyKey, or the web form's nonce).
func (s *Service) execute(ctx context.Context, p api.Principal, id, key string, cmd events.Command) (journal.Result, error) {
	if events.ParseID(id) != nil {
		return journal.Result{}, events.ErrNotFound
	}
	name := events.CommandName(cmd)
	meta := journal.Meta{Actor: p.Actor(), IdempotencyKey: key}
	res, err := s.cfg.Journal.Execute(ctx, id, meta, events.Guarded{Command: cmd, Check: teamOnly(p.OrgID)})
	if err == nil && teamOnly(p.OrgID)(res.State) != nil {
		// A key the caller used before on a journey of another team
		// replays that journey's answer: not theirs to see.
		err = events.ErrNotFound
	}
	if err != nil {
		result := "refused"
		if c := events.ErrorCode(err); c == events.CodeUnavailable || c == events.CodeInternal {
			result = "error"
		}
		s.commands.WithLabelValues(name, result).Inc()
		return journal.Result{}, fmt.Errorf("%s: %w", name, err)
	}
	s.commands.WithLabelValues(name, map[bool]string{true: "replayed", false: "ok"}[res.Replayed]).Inc()
	if err := s.awaitView(ctx, res.LastSeq); err != nil {
		s.log.Warn("caseload view lagging behind a write", "command", name, "err", err)
		return res, &events.Error{Code: events.CodeUnavailable,
			Message: "recorded, but the caseload has not caught up with it yet; read the journey again shortly"}
	}
	return res, nil
}

// awaitView waits, bounded, until the caseload view has applied stream
// sequence seq: read-your-writes for an answer read from the view.
func (s *Service) awaitView(ctx context.Context, seq uint64) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Settings.ReadYourWrites)
	defer cancel()
	return s.cfg.Views.WaitFor(wctx, seq, ProjectionName)
}

// answer is a write's answer: the view as it now is, and what the
// command's events created.
func (s *Service) answer(p api.Principal, id string, res journal.Result) (*writeAnswer, error) {
	v, err := s.journey(p, id)
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
		case *eventsv1.Envelope_Signposted:
			ans.SignpostID = e.Signposted.GetSignpostId()
		case *eventsv1.Envelope_CaseNoteAdded:
			ans.NoteID = e.CaseNoteAdded.GetNoteId()
		case *eventsv1.Envelope_RiskRecorded:
			ans.RiskID = e.RiskRecorded.GetRiskId()
		case *eventsv1.Envelope_WellbeingMeasured:
			m := scoredResult(e.WellbeingMeasured, rec.Event.GetOccurredAt().AsTime().UTC())
			ans.Result = &m
		}
	}
	return ans, nil
}

func (s *Service) respond(w http.ResponseWriter, r *http.Request, p api.Principal, cmd events.Command) error {
	id := r.PathValue("id")
	if events.ParseID(id) != nil {
		return events.ErrNotFound // before the key, as execute would
	}
	key, err := api.IdempotencyKey(r)
	if err != nil {
		return err
	}
	res, err := s.execute(r.Context(), p, id, key, cmd)
	if err != nil {
		return err
	}
	ans, err := s.answer(p, id, res)
	if err != nil {
		return err
	}
	// The answer is the journey's view, the person's name and phone with
	// it: audited as a read. Should the audit fail, the write stands and
	// the view is not shown (a retry with the Idempotency-Key replays it).
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, id); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, ans)
	return nil
}

// Input limits: free text is bounded so one journey cannot grow without end.
const (
	maxShort = 100
	maxText  = 2000
	maxNote  = 8000
	maxList  = 30
)

// ContactMethods are the ways a link worker reaches a person.
var ContactMethods = []string{"phone", "text", "email", "letter", "video", "in_person", "home_visit"}

func text(field, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return events.Invalid(field, "is required")
	case len(v) > max:
		return events.Invalid(field, "is over %d characters", max)
	}
	return nil
}

type assignBody struct {
	WorkerID   string `json:"worker_id"`
	WorkerName string `json:"worker_name"`
	// HandoverNote is for the new worker when the case moves from another.
	HandoverNote string `json:"handover_note"`
}

func (s *Service) postAssign(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b assignBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	cmd, err := assignCommand(b)
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

var workerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func validWorkerID(field, id string) error {
	if id == "" {
		return events.Invalid(field, "is required")
	}
	if !workerIDPattern.MatchString(id) {
		return events.Invalid(field, "must be letters, digits, '.', '_', '@' or '-', at most 64")
	}
	return nil
}

func assignCommand(b assignBody) (events.Assign, error) {
	if err := validWorkerID("worker_id", b.WorkerID); err != nil {
		return events.Assign{}, err
	}
	if err := text("worker_name", b.WorkerName, maxShort, true); err != nil {
		return events.Assign{}, err
	}
	if err := text("handover_note", b.HandoverNote, maxText, false); err != nil {
		return events.Assign{}, err
	}
	return events.Assign{WorkerID: b.WorkerID, WorkerName: strings.TrimSpace(b.WorkerName),
		HandoverNote: strings.TrimSpace(b.HandoverNote)}, nil
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

// assessCommand checks an assessment: needs and barriers are placed in the
// one taxonomy of events (a category id, or a word link workers use for
// one: "company" is befriending and social groups), and recorded as its
// ids, so every view and the feed count the same categories.
func assessCommand(b assessmentBody) (events.AssessNeeds, error) {
	if err := text("what_matters", b.WhatMatters, maxText, false); err != nil {
		return events.AssessNeeds{}, err
	}
	needs, err := placeAll("needs", b.Needs, events.PlaceNeed, events.NeedIDs())
	if err != nil {
		return events.AssessNeeds{}, err
	}
	barriers, err := placeAll("barriers", b.Barriers, events.PlaceBarrier, events.BarrierCategories)
	if err != nil {
		return events.AssessNeeds{}, err
	}
	if len(b.Goals) > maxList {
		return events.AssessNeeds{}, events.Invalid("goals", "has more than %d entries", maxList)
	}
	cmd := events.AssessNeeds{WhatMatters: strings.TrimSpace(b.WhatMatters), Needs: needs, Barriers: barriers}
	for i, g := range b.Goals {
		if err := text(fmt.Sprintf("goals[%d].text", i), g.Text, maxText/4, true); err != nil {
			return events.AssessNeeds{}, err
		}
		cmd.Goals = append(cmd.Goals, events.GoalInput{GoalID: events.NewID(), Text: strings.TrimSpace(g.Text)})
	}
	return cmd, nil
}

// placeAll places each entry of a list in a taxonomy, each category once.
func placeAll(field string, vs []string, place func(string) (string, bool), ids []string) ([]string, error) {
	if len(vs) > maxList {
		return nil, events.Invalid(field, "has more than %d entries", maxList)
	}
	var out []string
	for i, v := range vs {
		c, ok := place(v)
		if !ok || len(v) > maxShort {
			return nil, events.Invalid(fmt.Sprintf("%s[%d]", field, i), "must be one of %v", ids)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
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
	if !slices.Contains(events.Instruments, b.Instrument) {
		return events.Invalid("instrument", "must be one of %v", events.Instruments)
	}
	if !slices.Contains(events.Timepoints, b.Timepoint) {
		return events.Invalid("timepoint", "must be one of %v", events.Timepoints)
	}
	if err := checkInstrument(b); err != nil {
		return err
	}
	return s.respond(w, r, p, events.RecordMeasure{MeasureID: events.NewID(), Instrument: b.Instrument,
		Timepoint: b.Timepoint, Answers: b.Answers})
}

// checkInstrument checks a questionnaire at the edge, so a bad one is a
// 400 naming the answer whatever the journey's state.
func checkInstrument(b measureBody) error {
	if !slices.Contains(events.Instruments, b.Instrument) {
		return events.Invalid("instrument", "must be one of %v", events.Instruments)
	}
	_, err := events.Score(b.Instrument, b.Answers)
	return err
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
	// The journey is looked up first, so another team's id is not found
	// before anything about the service is said; its worker signs the
	// referral. (The command's guard is what scopes the write.)
	row, err := s.ownRow(p, r.PathValue("id"))
	if err != nil {
		return err
	}
	cmd, err := s.onwardCommand(r.Context(), p, row, b)
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

func (s *Service) onwardCommand(ctx context.Context, p api.Principal, row caseRow, b onwardBody) (events.ReferOnward, error) {
	if err := events.CheckShare(b.Share, b.ServiceID != ""); err != nil {
		return events.ReferOnward{}, err
	}
	facts, err := s.service(ctx, b.ServiceID)
	if err != nil {
		return events.ReferOnward{}, err
	}
	return events.ReferOnward{OnwardReferralID: events.NewID(), Service: facts, Share: dedupe(b.Share),
		WaitingList: b.WaitingList, LinkWorkerContact: s.contactLine(p, row.WorkerName)}, nil
}

// service looks a community service up in the directory.
func (s *Service) service(ctx context.Context, id string) (events.ServiceFacts, error) {
	if id == "" {
		return events.ServiceFacts{}, events.Invalid("service_id", "is required")
	}
	if len(id) > maxShort {
		return events.ServiceFacts{}, events.Invalid("service_id", "is too long")
	}
	if s.cfg.Directory == nil {
		return events.ServiceFacts{}, &events.Error{Code: events.CodeUnavailable, Message: "the directory is not available"}
	}
	facts, found, err := s.cfg.Directory.Service(ctx, id)
	if err != nil {
		return events.ServiceFacts{}, fmt.Errorf("directory lookup: %w", err)
	}
	if !found {
		return events.ServiceFacts{}, events.Invalid("service_id", "no such service in the directory")
	}
	return facts, nil
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

// contactLine is how the VCS organisation reaches the link worker: the
// named worker and the team's duty contact from the register.
func (s *Service) contactLine(p api.Principal, worker string) string {
	var parts []string
	if worker != "" {
		parts = append(parts, worker)
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
	// Timepoint is 3_months, 6_months or 12_months: with no due date, the
	// due date is that long after the closure (a check-in on a closed
	// journey) or after today.
	Timepoint string `json:"timepoint"`
}

func (s *Service) postFollowUp(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b followUpBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	cmd, err := s.followUpCommand(p, r.PathValue("id"), b)
	if err != nil {
		return err
	}
	return s.respond(w, r, p, cmd)
}

func (s *Service) followUpCommand(p api.Principal, id string, b followUpBody) (events.ScheduleFollowUp, error) {
	if b.Timepoint != "" && !slices.Contains(events.FollowUpTimepoints, b.Timepoint) {
		return events.ScheduleFollowUp{}, events.Invalid("timepoint", "must be one of %v, or left out for a date chosen freely", events.FollowUpTimepoints)
	}
	if b.Due == "" && b.Timepoint != "" {
		base := s.now()
		if row, err := s.ownRow(p, id); err != nil {
			return events.ScheduleFollowUp{}, err
		} else if row.ClosedAt != nil {
			base = *row.ClosedAt
		}
		b.Due, _ = events.FollowUpDue(base, b.Timepoint)
	}
	if err := s.validateDue(b.Due); err != nil {
		return events.ScheduleFollowUp{}, err
	}
	return events.ScheduleFollowUp{FollowUpID: events.NewID(), Due: b.Due, Timepoint: b.Timepoint}, nil
}

// validateDue: a follow-up is for today or later (in England), and within
// five years (a check-in after closure: within 24 months of it, which the
// journey rules check).
func (s *Service) validateDue(due string) error {
	d, err := events.ParseDate("due", due)
	if err != nil {
		return err
	}
	// The earlier of today in England and in UTC: a caller counting days
	// in UTC is not refused in the hour after midnight in summer.
	today := earlier(events.UKDate(s.now()), utcDay(s.now()))
	if d.Before(today) {
		return events.Invalid("due", "must be today or later")
	}
	if d.After(today.AddDate(5, 0, 0)) {
		return events.Invalid("due", "must be within five years")
	}
	return nil
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

type completeBody struct {
	Measure *measureBody `json:"measure"`
}

func (s *Service) postCompleteFollowUp(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b completeBody
	if err := decodeOptional(w, r, &b); err != nil {
		return err
	}
	cmd := events.CompleteFollowUp{FollowUpID: r.PathValue("fid")}
	if m := b.Measure; m != nil {
		if m.Timepoint != "" && m.Timepoint != "follow_up" {
			return events.Invalid("measure.timepoint", "is follow_up at a follow-up (or left out)")
		}
		if err := checkInstrument(*m); err != nil {
			var e *events.Error
			if errors.As(err, &e) && e.Field != "" {
				e2 := *e
				e2.Field = "measure." + e.Field
				return &e2
			}
			return err
		}
		cmd.Measure = &events.MeasureInput{MeasureID: events.NewID(), Instrument: m.Instrument, Answers: m.Answers}
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
