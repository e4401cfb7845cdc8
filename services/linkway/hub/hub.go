// Package hub runs Linkway: every service in one process, with an embedded
// NATS JetStream server (the zero set-up default) or against an external
// NATS. Every long-running part runs in one group, so one failure stops the
// process cleanly.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	lwproto "linkway/proto"
	"linkway/services/linkwork"
	"linkway/services/outcomes"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/audit"
	"linkway/services/platform/datadir"
	"linkway/services/platform/journal"
	platformleases "linkway/services/platform/leases"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/orgs"
	"linkway/services/platform/sealing"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
	"linkway/services/referrals"
)

// Config of a hub. Read once at start-up.
type Config struct {
	// HTTP is the listen address (":8080"; port 0 picks one).
	HTTP string
	// Data holds the embedded server's JetStream store and, unless
	// ViewsDir says otherwise, the views (<data>/views).
	Data string
	// ViewsDir is the folder of this process's view store (--views);
	// empty: <data>/views. A copy of a `linkway snapshot` starts from its
	// checkpoints and replays only the log's tail.
	ViewsDir string
	// NATS is an external server's URL; empty runs the embedded one.
	NATS string
	// NATSMaxStore bounds the embedded JetStream store in bytes (0: the
	// disk): past it writes fail as on a full disk, and /readyz says so.
	NATSMaxStore int64
	// NATSListen is where the embedded server also listens for other
	// clients ("127.0.0.1:4222"), admitting only the users of the data
	// folder's nats-credentials; "off" (the default) keeps it in-process.
	NATSListen string
	// Demo seeds the demo organisations and keys of API.md.
	Demo bool
	// DemoHistory is how many journeys of synthetic history (a year of the
	// demo organisations', synthhistory.Demo) the first Demo start writes
	// on an empty embedded store; 0, the default here, none. The linkway
	// command's --demo-history sets it (make run asks for 2000).
	DemoHistory int
	// DemoKey lets a tool read a --demo folder's data with its demo master
	// key without seeding anything (rebuild). The hub itself uses that key
	// only with Demo; without, it refuses to start on such a folder.
	DemoKey bool
	// Command names what runs ("hub", "rebuild referrals") in the data
	// folder's lock, for the error a second process gets.
	Command string
	// Replicas of streams and buckets (3 on a cluster).
	Replicas int
	// Services to run; nil runs all.
	Services []string
	// TLSCert and TLSKey, when set, serve HTTPS.
	TLSCert, TLSKey string
	// PublicURL is how people and systems reach the hub (behind a proxy,
	// the proxy's https URL): the base of links in answers, and with https
	// Secure cookies and HSTS. Empty: the listen address. Never the Host
	// header.
	PublicURL string
	// TrustedProxies are the addresses or CIDR ranges, comma-separated,
	// whose X-Forwarded-For names the client.
	TrustedProxies string
	// RateLimit is the request rate allowed to each API key.
	RateLimit api.RateLimit
	// MasterKey (32 bytes) wraps every person's data key. Without one,
	// demo mode makes one and keeps it in the data folder; otherwise the
	// hub refuses to start.
	MasterKey []byte
	// Member names this replica among the replicas sharing an external
	// NATS (default: the host name); it must be stable across restarts.
	Member string
	// LeaseTTL is how long a dead replica's feed leases last before
	// another replica takes the feeds over (external NATS only; views
	// need no leases).
	LeaseTTL time.Duration
	// Journal configures the event store of journeys; its Replicas and
	// Sealer are the hub's. The zero value is journal.DefaultConfig().
	Journal journal.Config
	// Referrals are the referrals service's settings (how long a read
	// waits for its own write, list pages).
	Referrals referrals.Settings
	// Linkwork are the linkwork service's settings (when failed contact
	// attempts flag a journey).
	Linkwork linkwork.Settings
	// Outcomes are the outcomes service's settings (its pseudonym key and
	// deprivation lookup).
	Outcomes outcomes.Settings
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration
	Log             *slog.Logger

	// offline builds the parties without running the reader: for the
	// tools that run one of their own (rebuild, snapshot).
	offline bool
}

// DefaultConfig is `linkway hub` with no flags.
func DefaultConfig() Config {
	return Config{HTTP: ":8080", Data: "./data", NATSListen: "off", Replicas: 1,
		ShutdownTimeout: 15 * time.Second, Log: slog.Default(), RateLimit: api.DefaultRateLimit,
		LeaseTTL:  10 * time.Second,
		Journal:   journal.DefaultConfig(),
		Referrals: referrals.DefaultSettings(),
		Linkwork:  linkwork.DefaultSettings(),
		Outcomes:  outcomes.DefaultSettings(),
	}
}

// Hub is a running hub.
type Hub struct {
	cfg      Config
	ns       *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *journal.Store
	http     *http.Server
	listener net.Listener
	registry *prometheus.Registry

	// The data folder, held while the embedded server runs, and that
	// server's users.
	lock      *datadir.Lock
	natsUsers *natsserver.Users
	// health proves JetStream takes writes, for /readyz.
	health *writeProbe
	// embedded is the embedded server, which health may start again.
	embedded *embedded

	// The machinery the parties are given, and the parties running.
	api     *api.Server
	orgs    *orgs.Registry
	keys    *apikeys.KeyRing
	audit   *audit.Log
	keyring *sealing.Keyring
	parties Parties
	// The read side: the view store, the registry of every party's
	// projections, and the one reader that applies them.
	viewStore  *viewstore.Store
	views      *views.Registry
	reader     *views.Reader
	indexReady atomic.Bool
	// demoHistory is true while the demo history is being written and
	// applied (demohistory.go): /readyz waits for it.
	demoHistory atomic.Bool
	// started ends the start-up retries of the parties' calls (startJS);
	// stepCancels end what successful steps started, once the hub stops.
	started     atomic.Bool
	stepCancels []context.CancelFunc
	// leases decide which replica does what only one may do, such as
	// publishing a feed: nil (every lease held) on the embedded server,
	// none held in a tool (rebuild, snapshot).
	leases *platformleases.Leases

	mu     sync.Mutex
	group  *errgroup.Group
	ctx    context.Context
	cancel context.CancelFunc
}

// Start brings the hub up: NATS, the event store, the services and their
// projections, and the HTTP server. It returns once the HTTP server listens;
// /readyz answers 200 once the projections have caught up.
func Start(ctx context.Context, cfg Config) (_ *Hub, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Hub{cfg: cfg, cancel: cancel, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			cancel()
			h.waitGroup()
			h.closeViews()
			h.closeNATS()
		}
	}()
	h.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	edge, err := parseEdge(cfg)
	if err != nil {
		return nil, err
	}
	if err := h.connect(); err != nil {
		return nil, err
	}
	h.group, h.ctx = errgroup.WithContext(ctx)
	if h.health, err = h.newWriteProbe(cfg); err != nil {
		return nil, err
	}
	h.group.Go(func() error { return h.health.run(h.ctx) })

	master, err := masterKey(cfg)
	if err != nil {
		return nil, err
	}
	// Each step that asks NATS is retried while the cluster elects
	// leaders (retry.go); the parties' own calls while they are built too.
	h.js = startJS{JetStream: h.js, h: h, started: &h.started}
	var keyring *sealing.Keyring
	if err := h.step(h.ctx, "open the person keys", func(sctx context.Context) (err error) {
		opts := sealing.Options{Replicas: cfg.Replicas, Log: cfg.Log}
		if cfg.offline {
			// A tool runs no command: no person is looked up, so the
			// index need not read the log beside the tool's own reader.
			opts.Index = sealing.NewIndex(h.js)
			opts.Index.MarkReady()
		}
		keyring, err = sealing.OpenWith(sctx, h.js, master, opts)
		return err
	}); err != nil {
		return nil, masterKeyError(err)
	}
	storeCfg := journalConfig(cfg)
	storeCfg.Sealer = keyring
	if err := h.step(ctx, "open the journey log", func(sctx context.Context) (err error) {
		h.store, err = journal.Open(sctx, h.js, storeCfg, h.registry)
		return err
	}); err != nil {
		return nil, err
	}
	h.keyring = keyring
	var registry *orgs.Registry
	if err := h.step(h.ctx, "open the organisation register", func(sctx context.Context) (err error) {
		registry, err = orgs.Open(sctx, h.js, cfg.Replicas)
		return err
	}); err != nil {
		return nil, err
	}
	h.orgs = registry
	var keys *apikeys.KeyRing
	if err := h.step(ctx, "open the API keys", func(sctx context.Context) (err error) {
		keys, err = apikeys.OpenKeyRing(sctx, h.js, cfg.Replicas)
		return err
	}); err != nil {
		return nil, err
	}
	h.keys = keys
	if err := h.step(ctx, "open the read audit", func(sctx context.Context) (err error) {
		h.audit, err = audit.Open(sctx, h.js, cfg.Replicas)
		return err
	}); err != nil {
		return nil, err
	}
	// A key works only while its organisation is registered and enabled.
	httpAPI, err := api.NewServer(registry.ActiveKeys(keys), cfg.Log, h.registry)
	if err != nil {
		return nil, err
	}
	h.api = httpAPI
	httpAPI.SetRateLimit(cfg.RateLimit)
	// On an external NATS other replicas may run: what one replica only
	// may do (publish a feed) is held by lease. Views need none: every
	// replica keeps its own. The embedded server has this process only.
	if cfg.NATS != "" {
		member := cfg.Member
		if member == "" {
			if member, err = os.Hostname(); err != nil {
				return nil, fmt.Errorf("replica name: %w", err)
			}
		}
		if err := h.step(ctx, "open the leases", func(sctx context.Context) (err error) {
			h.leases, err = platformleases.Open(sctx, h.js, member, cfg.LeaseTTL, cfg.Replicas)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if cfg.offline {
		h.leases = platformleases.Never() // a tool publishes no feed
	}
	if cfg.Demo {
		if err := h.step(ctx, "seed the demo organisations", func(sctx context.Context) error {
			return seedDemo(sctx, registry, keys)
		}); err != nil {
			return nil, err
		}
	}
	if err := h.openViews(); err != nil {
		return nil, err
	}
	if err := h.startParties(h.ctx, cfg.Services); err != nil {
		return nil, err
	}
	// The parties have added their projections: one reader applies them,
	// after the demo history when this start writes one (demohistory.go).
	if !cfg.offline {
		history, err := h.demoHistoryDue(ctx)
		if err != nil {
			return nil, err
		}
		if err := h.startReader(history); err != nil {
			return nil, err
		}
	}
	h.watchIndex(&h.indexReady)

	httpAPI.HandlePublic("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	httpAPI.HandlePublic("GET /readyz", http.HandlerFunc(h.serveReady))
	httpAPI.HandlePublic("GET /metrics", promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{}))
	// The API document, whichever parties this process runs (every
	// replica of any service answers for the whole API).
	httpAPI.HandlePublic("GET /openapi.yaml", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(lwproto.OpenAPI)
	}))

	h.listener, err = net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTP, err)
	}
	if err := h.setEdge(httpAPI, edge); err != nil {
		return nil, err
	}
	h.http = &http.Server{
		Handler:           httpAPI,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	h.group.Go(func() error {
		var err error
		if cfg.TLSCert != "" {
			err = h.http.ServeTLS(h.listener, cfg.TLSCert, cfg.TLSKey)
		} else {
			err = h.http.Serve(h.listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	h.group.Go(func() error {
		<-h.ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return h.http.Shutdown(sctx)
	})
	cfg.Log.Info("linkway hub listening", "http", h.listener.Addr().String(), "demo", cfg.Demo,
		"nats", h.natsDescription())
	h.started.Store(true)
	return h, nil
}

// connect starts the embedded server, or connects to an external one.
func (h *Hub) connect() error {
	var err error
	if h.cfg.NATS != "" {
		h.nc, err = nats.Connect(h.cfg.NATS, externalOptions(h.cfg)...)
		if err != nil {
			return fmt.Errorf("connect to NATS at %s: %w", h.cfg.NATS, err)
		}
	} else if err = h.startEmbedded(); err != nil {
		return err
	}
	h.js, err = jetstream.New(h.nc)
	return err
}

func (h *Hub) natsDescription() string {
	if h.ns == nil {
		return "external"
	}
	if h.ns.Addr() == nil {
		return "embedded (in-process only)"
	}
	return "embedded on " + h.ns.Addr().String() + ", users in " + h.natsUsers.Path
}

// serveReady is 200 once NATS is connected, JetStream takes writes, and the
// views and the person index have caught up with the log as it was at
// start-up.
func (h *Hub) serveReady(w http.ResponseWriter, r *http.Request) {
	var behind []string
	if !h.viewsReady() {
		behind = append(behind, h.reader.Views()...)
	}
	if !h.indexReady.Load() {
		behind = append(behind, "person index")
	}
	if h.demoHistory.Load() {
		behind = append(behind, "demo history")
	}
	writable, _ := h.health.writable()
	switch {
	case !h.nc.IsConnected():
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "nats unavailable"})
	case !writable: // a full disk, a store over its limit, no quorum
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "jetstream cannot write"})
	case h.viewStore != nil && h.viewStore.Writable() != nil:
		// The views' disk is short of space (they wait, and catch up by
		// themselves once it has room) or their store failed.
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "view store cannot write"})
	case len(behind) > 0:
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "catching up", "projections": behind})
	default:
		api.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	}
}

// Addr is the HTTP listen address.
func (h *Hub) Addr() string { return h.listener.Addr().String() }

// The hub's parts, for tests and tools.

// NC is the hub's NATS connection.
func (h *Hub) NC() *nats.Conn { return h.nc }

// JS is the hub's JetStream.
func (h *Hub) JS() jetstream.JetStream { return h.js }

// Journal is the event store of journeys.
func (h *Hub) Journal() *journal.Store { return h.store }

// HTTP is the route table (and handler) of the hub's HTTP server.
func (h *Hub) HTTP() *api.Server { return h.api }

// Orgs is the organisation register.
func (h *Hub) Orgs() *orgs.Registry { return h.orgs }

// Keys are the API keys.
func (h *Hub) Keys() *apikeys.KeyRing { return h.keys }

// Audit is the read audit.
func (h *Hub) Audit() *audit.Log { return h.audit }

// Keyring holds each person's data key.
func (h *Hub) Keyring() *sealing.Keyring { return h.keyring }

// Metrics is the registry of the hub's metrics (served on /metrics).
func (h *Hub) Metrics() *prometheus.Registry { return h.registry }

// Parties are the parties this hub runs.
func (h *Hub) Parties() Parties { return h.parties }

// Stop begins a graceful stop; Wait waits for it.
func (h *Hub) Stop() { h.cancel() }

// Wait blocks until the hub has stopped, and returns why it stopped.
func (h *Hub) Wait() error {
	err := h.group.Wait()
	h.cancel()
	h.mu.Lock()
	for _, c := range h.stepCancels {
		c()
	}
	h.mu.Unlock()
	h.closeViews() // the reader, which writes it, has stopped
	h.closeNATS()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (h *Hub) closeNATS() {
	if h.nc != nil {
		_ = h.nc.Drain()
		h.nc.Close()
	}
	if h.ns != nil {
		h.ns.Shutdown()
		h.ns.WaitForShutdown()
	}
	_ = h.lock.Release() // after the server, which writes the folder, has stopped
	h.lock = nil
}

// Conn is a connection to the hub's NATS for command-line tools: the
// external server, or the embedded one started on the data folder.
type Conn struct {
	JS jetstream.JetStream
	h  *Hub
}

// Connect opens the NATS a hub with cfg would use.
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	h := &Hub{cfg: cfg}
	if err := h.connect(); err != nil {
		return nil, err
	}
	return &Conn{JS: h.js, h: h}, nil
}

// Close closes the connection (and stops an embedded server).
func (c *Conn) Close() { c.h.closeNATS() }
