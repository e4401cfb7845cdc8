// Package directory is the community directory: the organisations and
// services that link workers refer people to, kept by a community panel,
// with each service's current capacity (open, waiting list, full, paused),
// served as JSON and as Open Referral UK 3.0 (public: no key), a public
// page, the unmet-need view that shows a panel and a commissioner where new
// groups are needed, the gaps a panel records and closes, and what people
// and carers said of the services (suppressed below 8).
//
// Directory changes are events on their own stream (DIRECTORY, one subject
// per organisation, so each organisation's changes are guarded by that
// subject's last sequence). Every process folds the stream into memory:
// the directory is small (thousands of services, not millions) and is read
// on every onward referral. A serving process also keeps a KV view of it
// (lw_directory) for tools and systems outside the process. What the
// journeys say of the directory (unmet need, feedback) are projections on
// the process's one reader of the journey log (views.Registry).
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
	"linkway/services/platform/websession"
)

// Stream, subjects and the view bucket.
const (
	StreamName    = "DIRECTORY"
	SubjectPrefix = "lw.directory."
	// ViewBucket holds svc.<service id> and org.<organisation id> as JSON,
	// and the last applied stream sequence under _checkpoint.
	ViewBucket = "lw_directory"
	// viewCheckpoint is the key of that sequence.
	viewCheckpoint = "_checkpoint"
)

// maxRetries bounds reload-decide-append rounds on a conflict.
const maxRetries = 10

// Organisations is the organisation register (orgs.Registry): a
// directory organisation may not take the code of a registered
// organisation of another kind, and the web page names who signed in.
type Organisations interface {
	Get(id string) (orgs.Organisation, bool)
}

// Views is the process's read side (views.Registry): the directory adds
// its projections of the journey log (unmet need, feedback), reads their
// views, and waits for them to reach the log's end before a read.
type Views interface {
	Add(views.Projection)
	View(name string) *viewstore.View
	WaitFor(ctx context.Context, seq uint64, views ...string) error
}

// Routes is the route table the directory adds its handlers to
// (api.Server); the public Open Referral routes answer their errors
// through WriteError; the web page signs in with the keys it knows.
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
	HandlePublic(pattern string, h http.Handler)
	WriteError(w http.ResponseWriter, r *http.Request, err error)
	websession.KeyLookup
}

// Group runs the long-running parts of the process, each until the
// process stops; one that returns an error stops the process
// (errgroup.Group is one).
type Group interface {
	Go(run func() error)
}

// Config is what the directory is given by the process that runs it.
type Config struct {
	// JS holds the DIRECTORY stream, its KV view and the web page's
	// sessions.
	JS jetstream.JetStream
	// Orgs is the organisation register.
	Orgs Organisations
	// Serve adds the directory's routes, its web pages and its
	// projections; false when this process only reads the directory for
	// other services (then HTTP and Views are not used).
	Serve bool
	// HTTP is the route table the directory adds its routes to.
	HTTP Routes
	// Views is the read side the unmet-need and feedback views live in.
	Views Views
	// Group runs the directory's follower of its stream; when nil, a
	// goroutine of its own does, until ctx ends.
	Group Group
	// Log receives what the directory did; slog.Default when nil.
	Log *slog.Logger
	// Metrics registers the directory's metrics; none are registered when nil.
	Metrics prometheus.Registerer
	// Replicas of the stream and buckets the directory creates.
	Replicas int
	// Demo seeds the demo directory (what of it is missing).
	Demo bool
}

// Service is the directory. The other parties find community services
// through it (Service, ServicesOf, SetCapacity).
type Service struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	log     *slog.Logger
	view    jetstream.KeyValue // nil unless serving
	metrics *metrics
	orgs    Organisations

	views  Views // nil unless serving
	routes Routes
	// journeys is the journey log (JOURNEYS), whose last sequence a read
	// of the directory's views waits for; nil when it cannot be found.
	journeys jetstream.Stream

	mu      sync.RWMutex
	byOrg   map[string]*events.DirectoryOrg
	svcOrg  map[string]string // service id -> organisation id
	gapOrg  map[string]string // gap id -> organisation (panel) that holds it
	applied uint64
	changed chan struct{} // closed and replaced after every applied event
	viewCP  uint64        // view checkpoint: events up to it are in the view
}

// StreamConfig is the DIRECTORY stream: kept for ever, never edited.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Linkway community directory events, one subject per organisation",
		Subjects:    []string{SubjectPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Duplicates:  2 * time.Minute,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	}
}

// New opens the directory and, with cfg.Serve, serves it. It returns once
// the directory has caught up with its stream, so the services that start
// after it find every service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.JS == nil || cfg.Orgs == nil || (cfg.Serve && (cfg.HTTP == nil || cfg.Views == nil)) {
		return nil, errors.New("directory: JS and Orgs are required, and HTTP and Views to serve")
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	stream, err := cfg.JS.CreateOrUpdateStream(ctx, StreamConfig(cfg.Replicas))
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	s := &Service{js: cfg.JS, stream: stream, log: log.With("service", "directory"), orgs: cfg.Orgs,
		byOrg: map[string]*events.DirectoryOrg{}, svcOrg: map[string]string{}, gapOrg: map[string]string{}, changed: make(chan struct{})}
	if s.metrics, err = newMetrics(cfg.Metrics, s); err != nil {
		return nil, err
	}
	if cfg.Serve {
		s.view, err = cfg.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: ViewBucket, Description: "Linkway directory view (derived from the DIRECTORY stream)",
			Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1), History: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("directory view bucket: %w", err)
		}
		if e, err := s.view.Get(ctx, viewCheckpoint); err == nil {
			_, _ = fmt.Sscan(string(e.Value()), &s.viewCP)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamName, err)
	}
	cons, err := cfg.JS.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("directory consumer: %w", err)
	}
	if cfg.Group != nil {
		cfg.Group.Go(func() error { return s.follow(ctx, cons) })
	} else {
		go func() { _ = s.follow(ctx, cons) }()
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.waitFor(wctx, info.State.LastSeq); err != nil {
		return nil, fmt.Errorf("directory catching up with its stream: %w", err)
	}
	if cfg.Demo {
		if err := s.seedDemo(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Serve {
		s.views, s.routes = cfg.Views, cfg.HTTP
		if s.journeys, err = cfg.JS.Stream(ctx, events.JourneyStream); err != nil {
			// Reads then show the views as they are, without waiting.
			s.log.Warn("the journey log is not there yet: directory reads will not wait for it", "err", err)
			s.journeys = nil
		}
		if err := s.serve(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// follow folds the stream into memory (and the view) until ctx ends.
func (s *Service) follow(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("directory consumer: %w", err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
				return nil
			}
			// The ordered consumer recreates itself; pause so that an
			// outage is not a busy loop.
			s.log.Warn("directory consumer", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("directory message metadata: %w", err)
		}
		ev := &directoryv1.DirectoryEvent{}
		if err := proto.Unmarshal(msg.Data(), ev); err != nil || ev.GetEvent() == nil {
			// Unreadable by this version: skipped, so one bad message
			// cannot stop the directory.
			s.log.Error("skipping undecodable directory event", "seq", meta.Sequence.Stream)
			s.metrics.undecodable.Inc()
			s.advance(meta.Sequence.Stream)
			continue
		}
		s.apply(meta.Sequence.Stream, ev)
		if s.view != nil && meta.Sequence.Stream > s.viewCP {
			if err := s.writeView(ctx, ev); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// The view is derived: a failed write is logged and
				// rewritten with the next change of the same record.
				s.log.Warn("writing the directory view failed", "err", err)
			}
		}
	}
}

func (s *Service) apply(seq uint64, ev *directoryv1.DirectoryEvent) {
	s.mu.Lock()
	org := ev.GetOrganisationId()
	st := s.byOrg[org]
	if st == nil {
		st = &events.DirectoryOrg{}
		s.byOrg[org] = st
	}
	st.Evolve(ev)
	if a := ev.GetServiceAdded(); a != nil {
		s.svcOrg[a.GetService().GetId()] = org
	}
	if g := ev.GetGapRecorded(); g != nil {
		if _, ok := s.gapOrg[g.GetGapId()]; !ok { // the first record stands, as in Evolve
			s.gapOrg[g.GetGapId()] = org
		}
	}
	s.mu.Unlock()
	s.metrics.applied.Inc()
	s.advance(seq)
}

func (s *Service) advance(seq uint64) {
	s.mu.Lock()
	if seq > s.applied {
		s.applied = seq
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitFor blocks until the directory has applied stream sequence seq.
func (s *Service) waitFor(ctx context.Context, seq uint64) error {
	for {
		s.mu.RLock()
		applied, ch := s.applied, s.changed
		s.mu.RUnlock()
		if applied >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// writeView writes the records an event touched to the KV view, then the
// checkpoint, so a restart only ever rewrites.
func (s *Service) writeView(ctx context.Context, ev *directoryv1.DirectoryEvent) error {
	org := ev.GetOrganisationId()
	if o, ok := s.Organisation(org); ok {
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := s.view.Put(ctx, "org."+org, b); err != nil {
			return err
		}
	}
	var id string
	switch e := ev.GetEvent().(type) {
	case *directoryv1.DirectoryEvent_ServiceAdded:
		id = e.ServiceAdded.GetService().GetId()
	case *directoryv1.DirectoryEvent_ServiceUpdated:
		id = e.ServiceUpdated.GetService().GetId()
	case *directoryv1.DirectoryEvent_ServiceWithdrawn:
		id = e.ServiceWithdrawn.GetServiceId()
	case *directoryv1.DirectoryEvent_CapacityChanged:
		id = e.CapacityChanged.GetServiceId()
	}
	if id != "" {
		if v, ok := s.ServiceView(id); ok {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if _, err := s.view.Put(ctx, "svc."+id, b); err != nil {
				return err
			}
		}
	}
	s.mu.RLock()
	cp := s.applied
	s.mu.RUnlock()
	_, err := s.view.Put(ctx, viewCheckpoint, []byte(fmt.Sprint(cp)))
	return err
}

// execute carries out cmd on an organisation's part of the directory:
// decide from the folded state that includes the subject's last event,
// append with that event's sequence as the expected one, and on a
// conflict decide again. It returns once the change is readable here.
func (s *Service) execute(ctx context.Context, actor api.Principal, orgID string, cmd events.DirectoryCommand) (changed bool, err error) {
	name := events.DirectoryCommandName(cmd)
	defer func() {
		result := "ok"
		switch {
		case err != nil:
			result = string(events.ErrorCode(err))
		case !changed:
			result = "unchanged"
		}
		s.metrics.commands.WithLabelValues(name, result).Inc()
	}()
	if !orgs.ValidCode(orgID) {
		return false, events.Invalid("organisation_id", "must be an organisation code")
	}
	subject := SubjectPrefix + orgID
	for attempt := 0; ; attempt++ {
		var expect uint64
		last, err := s.stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return false, &events.Error{Code: events.CodeUnavailable, Message: "the directory is unavailable"}
		default:
			expect = last.Sequence
		}
		if err := s.waitFor(ctx, expect); err != nil {
			return false, err
		}
		evs, err := events.DecideDirectory(s.orgSnapshot(orgID), cmd)
		if err != nil || len(evs) == 0 {
			return false, err
		}
		now := time.Now().UTC()
		conflict := false
		for _, ev := range evs {
			ev.EventId = events.NewID()
			ev.OrganisationId = orgID
			ev.OccurredAt = timestamppb.New(now)
			ev.Actor = actor.Actor()
			data, err := proto.Marshal(ev)
			if err != nil {
				return false, fmt.Errorf("marshal directory event: %w", err)
			}
			msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
			msg.Header.Set(journal.HeaderEvent, events.DirectoryEventName(ev)) // named as on JOURNEYS
			ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.EventId), jetstream.WithExpectLastSequencePerSubject(expect))
			if journal.IsConflict(err) {
				conflict = true
				break
			}
			if err != nil {
				return false, &events.Error{Code: events.CodeUnavailable, Message: "the directory is unavailable"}
			}
			expect = ack.Sequence
		}
		if !conflict {
			return true, s.waitFor(ctx, expect)
		}
		s.metrics.conflicts.Inc()
		if attempt >= maxRetries {
			return false, &events.Error{Code: events.CodeUnavailable, Message: "the directory is being changed by others; retry"}
		}
	}
}

// readYourWrites bounds how long a read of a view waits for the view to
// reach the journey log's end.
const readYourWrites = time.Second

// catchUp waits, at most readYourWrites, for view to apply the journey log
// as it is now: the unmet-need and feedback views count across journeys,
// so a read waits for the log's last event, and then sees a write made a
// moment before on any journey (feedback just given). A view still behind
// after that is read as it is: a count a moment old, never an error.
func (s *Service) catchUp(ctx context.Context, view string) {
	if s.journeys == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readYourWrites)
	defer cancel()
	info, err := s.journeys.Info(ctx)
	if err != nil {
		return
	}
	_ = s.views.WaitFor(ctx, info.State.LastSeq, view)
}

// orgSnapshot copies an organisation's state for the rules.
func (s *Service) orgSnapshot(orgID string) events.DirectoryOrg {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.byOrg[orgID]
	if st == nil {
		return events.DirectoryOrg{Services: map[string]*events.DirectoryService{}}
	}
	return st.Snapshot()
}

// Service returns what the journey rules need to know of a service;
// found is false when there is none. A withdrawn service is not found:
// nobody can be referred to it.
func (s *Service) Service(ctx context.Context, id string) (events.ServiceFacts, bool, error) {
	st, ok := s.lookup(id)
	if !ok || st.Withdrawn {
		return events.ServiceFacts{}, false, nil
	}
	return facts(st.Service), true, nil
}

func facts(svc *directoryv1.Service) events.ServiceFacts {
	return events.ServiceFacts{ID: svc.GetId(), Name: svc.GetName(), OrganisationID: svc.GetOrganisationId(),
		AcceptsReferrals: svc.GetAcceptsReferrals(), Capacity: svc.GetCapacity()}
}

func (s *Service) lookup(id string) (*events.DirectoryService, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	org, ok := s.svcOrg[id]
	if !ok {
		return nil, false
	}
	st, ok := s.byOrg[org].Services[id]
	return st, ok
}

// ServicesOf lists the organisation's services
// that are not withdrawn, by id.
func (s *Service) ServicesOf(ctx context.Context, orgID string) ([]events.ServiceFacts, error) {
	s.mu.RLock()
	var out []events.ServiceFacts
	if st := s.byOrg[orgID]; st != nil {
		for _, svc := range st.Services {
			if !svc.Withdrawn {
				out = append(out, facts(svc.Service))
			}
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b events.ServiceFacts) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// SetCapacity records a service's capacity (open, waiting_list, full,
// paused), changed by actor. Panel and admin keys change
// any service; a VCS organisation only its own (another's is 403: the
// directory is public, so its existence is no secret); other kinds none.
func (s *Service) SetCapacity(ctx context.Context, actor api.Principal, serviceID, capacity string) error {
	st, ok := s.lookup(serviceID)
	if !ok {
		return events.ErrNotFound
	}
	org := st.Service.GetOrganisationId()
	switch actor.Kind {
	case events.KindPanel, events.KindAdmin:
	case events.KindVCS:
		if actor.OrgID != org {
			return &events.Error{Code: events.CodePermissionDenied, Message: "a VCS organisation may change the capacity of its own services only"}
		}
	default:
		return &events.Error{Code: events.CodePermissionDenied, Message: "a " + string(actor.Kind) + " key may not change a service's capacity"}
	}
	_, err := s.execute(ctx, actor, org, events.SetCapacity{ServiceID: serviceID, Capacity: capacity})
	return err
}

// metrics of the directory. Labels are bounded: command names and codes.
type metrics struct {
	commands    *prometheus.CounterVec
	conflicts   prometheus.Counter
	applied     prometheus.Counter
	undecodable prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_directory_commands_total", Help: "Directory commands by command and result.",
		}, []string{"command", "result"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_directory_conflicts_total", Help: "Directory appends that met a concurrent change and were decided again.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_directory_events_applied_total", Help: "Directory events folded into this process's directory.",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_directory_events_undecodable_total", Help: "Directory events this version could not read and skipped.",
		}),
	}
	services := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "linkway_directory_services", Help: "Services in the directory that are not withdrawn.",
	}, func() float64 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		n := 0
		for _, o := range s.byOrg {
			for _, svc := range o.Services {
				if !svc.Withdrawn {
					n++
				}
			}
		}
		return float64(n)
	})
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.commands, m.conflicts, m.applied, m.undecodable, services} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("directory metrics: %w", err)
		}
	}
	return m, nil
}
