// Package outcomes is the commissioners' service: a pseudonymised feed of
// journey events (NDJSON over HTTP and the NATS subjects
// lw.feed.outcomes.<commissioner>.>), summaries with NHS-style small-number
// suppression (JSON and CSV), and a dashboard of server-rendered charts.
// Commissioners see only journeys of the link-worker teams they
// commission, and never who the people are.
package outcomes

import (
	"context"
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
	"linkway/services/platform/api"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/websession"
)

// ProjectionName names the outcomes projection (its consumer and bucket).
const ProjectionName = "outcomes"

// Settings are the operator's settings for the outcomes service, read
// once at start-up from flags and environment.
type Settings struct {
	// PseudonymKey is the secret of the commissioners' person pseudonyms
	// (HMAC-SHA256 of the NHS number); empty in demo mode means generate
	// one and keep it. PseudonymKeyID versions it ("k1").
	PseudonymKey   string
	PseudonymKeyID string
	// DeprivationFile is a CSV mapping postcodes to LSOA and IMD decile.
	DeprivationFile string
}

// DefaultSettings are the settings of `linkway hub` with no flags.
func DefaultSettings() Settings { return Settings{PseudonymKeyID: "k1"} }

// Journal is the log of journeys (journal.Store): a read waits until the
// view holds what it held when the request came.
type Journal interface {
	Stream() jetstream.Stream
}

// Projections starts a projection: the hub runs it until the process
// stops and counts it for readiness.
type Projections interface {
	Project(ctx context.Context, p views.Projector) (*views.Runner, error)
}

// Organisations is the organisation register (orgs.Registry).
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
	// CommissionersOf lists the commissioners of a link-worker team.
	CommissionersOf(team string) []string
}

// Routes is the route table the service adds its handlers to
// (api.Server); the dashboard signs in with the keys it knows.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	websession.KeyLookup
}

// Config is what the outcomes service is given by the process that runs it.
type Config struct {
	// JS holds the outcome feed stream, the pseudonym key generated in demo
	// mode and the dashboard's sessions.
	JS jetstream.JetStream
	// Journal is the log the view follows.
	Journal Journal
	// Projections starts the outcomes projection. Its view is this
	// process's memory, so every replica must apply every event: give it a
	// local projection (views.Config.Local).
	Projections Projections
	// Orgs tells which teams a commissioner commissions.
	Orgs Organisations
	// HTTP is the route table the service adds its routes to.
	HTTP Routes
	// Log receives what the service did (never personal data); slog.Default when nil.
	Log *slog.Logger
	// Metrics registers the service's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// Replicas of the buckets and streams the service creates.
	Replicas int
	// Demo makes (and keeps) a pseudonym key when none is configured.
	Demo bool
	// Settings are the operator's settings.
	Settings Settings
}

// Service is a running outcomes service.
type Service struct {
	cfg     Config
	ctx     context.Context
	model   *model
	feed    *feed
	runner  *views.Runner
	web     *web
	metrics *metrics
}

// New starts the service: it adds its routes and starts its projection.
// Without a pseudonym key and outside demo mode it refuses to start.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Projections == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("outcomes: JS, Journal, Projections, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	key, generated, err := loadKey(ctx, cfg.JS, cfg.Settings.PseudonymKey, cfg.Demo, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	if generated && !cfg.Demo {
		cfg.Log.Warn("outcomes: no --pseudonym-key; using the key generated for this data folder in demo mode")
	}
	p, err := newPseudonymiser(cfg.Settings.PseudonymKeyID, key)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	dep, err := loadDeprivation(cfg.Settings.DeprivationFile)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	f, err := openFeed(ctx, cfg.JS, cfg.Replicas)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	s := &Service{cfg: cfg, ctx: ctx, model: newModel(p, dep), feed: f}
	if s.metrics, err = newMetrics(cfg.Metrics, s.model); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	f.metrics = s.metrics
	// The view lives in memory, so it is replayed from the log at every
	// start, by each replica on its own (a local projection). The feed
	// keeps its own high-water mark, and a line two replicas both publish
	// has one message id, so the replay publishes nothing twice.
	if s.runner, err = cfg.Projections.Project(ctx, projector{s}); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	commissioner := []events.Kind{events.KindCommissioner}
	cfg.HTTP.Handle("GET /v1/outcomes/events", commissioner, s.serveEvents)
	cfg.HTTP.Handle("GET /v1/outcomes/summary", commissioner, s.serveSummary)
	s.web, err = newWeb(s)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	s.web.routes(cfg.HTTP)
	cfg.Log.Info("outcomes service started", "pseudonym_key_id", p.keyID,
		"generated_key", generated, "deprivation_postcodes", len(dep.byPostcode))
	return s, nil
}

// projector folds journey events into the in-memory view and the feed.
type projector struct{ s *Service }

func (projector) Name() string { return ProjectionName }

func (p projector) Apply(_ *views.Tx, ev views.Event) error {
	line := p.s.model.applySeq(ev.Seq, ev.Envelope)
	if line == nil || !p.s.feed.wants(ev.Seq) {
		return nil // replaying what the feed already holds: skip the organisation lookup too
	}
	return p.s.feed.publish(p.s.ctx, ev.Seq, p.s.cfg.Orgs.CommissionersOf(line.Team), line)
}

// caughtUp waits (briefly) until the view holds everything the log held
// when the request came, so a commissioner reads their own world's writes.
func (s *Service) caughtUp(ctx context.Context) error {
	info, err := s.cfg.Journal.Stream().Info(ctx)
	if err != nil {
		return &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable"}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.runner.WaitFor(wctx, info.State.LastSeq); err != nil {
		return &events.Error{Code: events.CodeUnavailable, Message: "the outcomes view is catching up; retry"}
	}
	return nil
}

// teams are the link-worker teams a commissioner commissions.
func (s *Service) teams(commissioner string) []string {
	o, ok := s.cfg.Orgs.Get(commissioner)
	if !ok || o.Kind != events.KindCommissioner {
		return nil
	}
	return o.Commissions
}

const (
	defaultFeedLimit = 1000
	maxFeedLimit     = 10000
)

func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return events.Invalid("after", "must be a cursor from an earlier line")
		}
		after = n
	}
	limit := defaultFeedLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxFeedLimit {
			return events.Invalid("limit", "must be from 1 to %d", maxFeedLimit)
		}
		limit = n
	}
	if err := s.caughtUp(r.Context()); err != nil {
		return err
	}
	lines, err := s.feed.read(r.Context(), p.OrgID, after, limit)
	if err != nil {
		return fmt.Errorf("read the outcome feed: %w", err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return nil // the client went away
		}
	}
	return nil
}

// parseQuery reads from, to and by of a summary request.
func parseQuery(get func(string) string) (Query, error) {
	q := Query{By: get("by")}
	if q.By == "" {
		q.By = "month"
	}
	if !slices.Contains(Groupings, q.By) {
		return q, events.Invalid("by", "must be one of %s", strings.Join(Groupings, ", "))
	}
	var err error
	if v := get("from"); v != "" {
		if q.From, err = events.ParseDate("from", v); err != nil {
			return q, err
		}
	}
	if v := get("to"); v != "" {
		if q.To, err = events.ParseDate("to", v); err != nil {
			return q, err
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, events.Invalid("to", "must not be before from")
	}
	return q, nil
}

// wantsCSV reports whether the client asked for CSV.
func wantsCSV(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/csv") || r.URL.Query().Get("format") == "csv"
}

func (s *Service) serveSummary(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q, err := parseQuery(r.URL.Query().Get)
	if err != nil {
		return err
	}
	if err := s.caughtUp(r.Context()); err != nil {
		return err
	}
	sum := s.Summary(p.OrgID, q)
	if wantsCSV(r) {
		writeCSVResponse(w, sum)
		return nil
	}
	api.WriteJSON(w, http.StatusOK, sum)
	return nil
}

func writeCSVResponse(w http.ResponseWriter, sum Summary) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="outcomes-by-`+sum.By+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = sum.writeCSV(w) // the client went away: nothing more to do
}

// Summary computes a commissioner's summary from the view (for the
// benchmark and tests).
func (s *Service) Summary(commissioner string, q Query) Summary {
	start := time.Now()
	sum := s.model.summarise(commissioner, s.teams(commissioner), q)
	s.metrics.summary.WithLabelValues(q.By).Observe(time.Since(start).Seconds())
	return sum
}
