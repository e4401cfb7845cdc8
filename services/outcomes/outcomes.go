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
	"linkway/services/platform/viewstore"
	"linkway/services/platform/websession"
)

// Settings are the operator's settings for the outcomes service, read
// once at start-up from flags and environment.
type Settings struct {
	// PseudonymKey is the secret of the commissioners' person pseudonyms
	// (HMAC-SHA256 of the NHS number); empty in demo mode means generate
	// one and keep it. PseudonymKeyID versions it ("k1").
	PseudonymKey   string
	PseudonymKeyID string
	// DeprivationFile is a CSV mapping postcodes to LSOA and IMD decile
	// (data/README.md says how to make one from the published files);
	// empty means the small illustrative sample bundled for the demo.
	DeprivationFile string
}

// DefaultSettings are the settings of `linkway hub` with no flags.
func DefaultSettings() Settings { return Settings{PseudonymKeyID: "k1"} }

// Journal is the log of journeys (journal.Store): a read waits until the
// view holds what the log held when the request came.
type Journal interface {
	Stream() jetstream.Stream
}

// Views is the process's read side (views.Registry): the service adds
// its projection, reads its view, and waits for the view to reach a
// stream sequence.
type Views interface {
	Add(views.Projection)
	View(name string) *viewstore.View
	WaitFor(ctx context.Context, seq uint64, views ...string) error
}

// Group runs the feed's publisher with the process's other long-running
// parts (errgroup.Group).
type Group interface {
	Go(func() error)
}

// Leases decide which replica publishes the feed (leases.Leases): Hold
// runs fn while this replica holds the named lease, and returns when ctx
// ends.
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error
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
	// Views is where the service's projection is applied and read.
	Views Views
	// Group runs the feed's publisher; nil runs it on a goroutine of its
	// own until ctx ends.
	Group Group
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
	// Leases give the feed one publisher among replicas on one NATS; nil
	// when this process runs alone (the embedded server).
	Leases Leases
	// CacheRecords bounds the journeys' records kept decoded in memory for
	// summaries; 250,000 when 0.
	CacheRecords int
	// Demo makes (and keeps) a pseudonym key when none is configured.
	Demo bool
	// Settings are the operator's settings.
	Settings Settings
}

// Service is a running outcomes service.
type Service struct {
	cfg     Config
	ctx     context.Context
	proj    *projection
	feed    *feed
	months  *monthCache
	web     *web
	metrics *metrics
}

// New builds the service: it adds its projection to the read side, its
// routes to the route table, and starts the feed's publisher. Without a
// pseudonym key and outside demo mode it refuses to start.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Journal == nil || cfg.Views == nil || cfg.Orgs == nil || cfg.HTTP == nil {
		return nil, errors.New("outcomes: JS, Journal, Views, Orgs and HTTP are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CacheRecords <= 0 {
		cfg.CacheRecords = 250_000
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
	f.views, f.commish, f.log, f.leases = cfg.Views, cfg.Orgs.CommissionersOf, cfg.Log, cfg.Leases
	s := &Service{cfg: cfg, ctx: ctx, feed: f, months: newMonthCache(cfg.CacheRecords)}
	s.proj = &projection{pseudo: p, dep: dep, feed: f, months: s.months}
	if s.metrics, err = newMetrics(cfg.Metrics, s.months); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	f.metrics = s.metrics
	cfg.Views.Add(s.proj)
	if cfg.Group != nil {
		cfg.Group.Go(func() error { return f.run(ctx) })
	} else {
		go func() { _ = f.run(ctx) }()
	}
	commissioner := []events.Kind{events.KindCommissioner}
	cfg.HTTP.Handle("GET /v1/outcomes/events", commissioner, s.serveEvents)
	cfg.HTTP.Handle("GET /v1/outcomes/summary", commissioner, s.serveSummary)
	s.web, err = newWeb(s)
	if err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	s.web.routes(cfg.HTTP)
	cfg.Log.Info("outcomes service started", "pseudonym_key_id", p.keyID, "generated_key", generated,
		"deprivation_postcodes", len(dep.byPostcode), "deprivation_source", dep.source, "feed_from_seq", f.from())
	return s, nil
}

// errCatchingUp answers a read while the view is behind the log.
var errCatchingUp = &events.Error{Code: events.CodeUnavailable, Message: "the outcomes view is catching up; retry"}

// caughtUp waits (briefly) until the view holds everything the log held
// when the request came, so a commissioner reads their own world's
// writes; it returns that sequence.
func (s *Service) caughtUp(ctx context.Context) (uint64, error) {
	info, err := s.cfg.Journal.Stream().Info(ctx)
	if err != nil {
		return 0, &events.Error{Code: events.CodeUnavailable, Message: "the event log is unavailable"}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.cfg.Views.WaitFor(wctx, info.State.LastSeq, ProjectionName); err != nil {
		return 0, errCatchingUp
	}
	return info.State.LastSeq, nil
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
	seq, err := s.caughtUp(r.Context())
	if err != nil {
		return err
	}
	// The lines of what the log held are in the feed a moment after the
	// view has them; wait for them, bounded, then answer what is there
	// (the cursor reads on from it later).
	wctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	_ = s.feed.waitPublished(wctx, seq)
	cancel()
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
	if _, err := s.caughtUp(r.Context()); err != nil {
		return err
	}
	sum, err := s.Summary(r.Context(), p.OrgID, q)
	if err != nil {
		return err
	}
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

// Summary computes a commissioner's summary from the view.
func (s *Service) Summary(ctx context.Context, commissioner string, q Query) (Summary, error) {
	start := time.Now()
	sum := newSummary(q.By)
	if err := s.walk(ctx, s.teams(commissioner), q, sum.add); err != nil {
		return Summary{}, err
	}
	out := sum.publish(commissioner, q)
	s.metrics.summary.WithLabelValues(q.By).Observe(time.Since(start).Seconds())
	return out, nil
}

// walk calls fn with every journey of the teams referred within the
// query's dates, month by month: from the cache, or the view.
func (s *Service) walk(ctx context.Context, teams []string, q Query, fn func(*dated)) error {
	from, to := "", "9999-12-31"
	if !q.From.IsZero() {
		from = q.From.Format(time.DateOnly)
	}
	if !q.To.IsZero() {
		to = q.To.Format(time.DateOnly)
	}
	v := s.cfg.Views.View(ProjectionName)
	teams = slices.Compact(slices.Sorted(slices.Values(teams))) // a team listed twice counts once
	for _, team := range teams {
		var months []string
		err := v.ForEach(monthPrefix+team+".", func(key string, _ []byte) error {
			m := key[len(monthPrefix)+len(team)+1:]
			if m >= from[:min(len(from), 7)] && m <= to[:7] {
				months = append(months, m)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("outcomes view: %w", err)
		}
		for _, m := range months {
			if err := ctx.Err(); err != nil {
				return err
			}
			recs, err := s.months.get(v, team, m)
			if err != nil {
				return fmt.Errorf("outcomes view: %w", err)
			}
			for i := range recs {
				if d := recs[i].day; d >= from && d <= to {
					fn(&recs[i])
				}
			}
		}
	}
	return nil
}
