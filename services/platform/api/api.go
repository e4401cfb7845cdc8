// Package api is what every Linkway HTTP service stands on: callers
// authenticated by API key and bound to one organisation, handlers that
// return errors, the one mapping from error codes to HTTP statuses and FHIR
// issue types (errors.go) and the JSON error shape, the one reading of
// request bodies and JSON decoding (json.go), and request metrics.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// Principal is an authenticated caller.
type Principal struct {
	// OrgID is the organisation's code (ODS code for practices and teams).
	OrgID string      `json:"org_id"`
	Kind  events.Kind `json:"kind"`
	// KeyID names the key (never the key itself), for audit.
	KeyID string `json:"key_id"`
}

// Actor is the caller as journey and directory events record it: the
// organisation, its kind and the key (never the key itself).
func (p Principal) Actor() *eventsv1.Actor {
	return &eventsv1.Actor{OrganisationId: p.OrgID, OrganisationKind: p.Kind.Proto(), User: p.KeyID}
}

// Keys finds the principal of an API key.
type Keys interface {
	Lookup(ctx context.Context, key string) (Principal, bool, error)
}

// HandlerFunc serves one authenticated request. An error it returns is
// turned into the JSON error shape by the server; it must not have written
// a response first.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

// Server routes requests, authenticates them and maps errors.
type Server struct {
	mux     *http.ServeMux
	keys    Keys
	log     *slog.Logger
	metrics *httpMetrics
	limits  *rateLimits
	edge    Edge // public URL and trusted proxies (edge.go)

	routesMu sync.Mutex
	routes   []string
}

// NewServer returns a server that authenticates with keys.
func NewServer(keys Keys, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{mux: http.NewServeMux(), keys: keys, log: log, metrics: m, limits: newRateLimits(DefaultRateLimit)}, nil
}

// SetRateLimit sets the per-key request rate (zero Rate: no limit).
func (s *Server) SetRateLimit(l RateLimit) { s.limits = newRateLimits(l) }

// Handle serves pattern (a net/http pattern with method) for callers of
// one of kinds. No key or an unknown key is 401; another kind is 403.
func (s *Server) Handle(pattern string, kinds []events.Kind, h HandlerFunc) {
	s.record(pattern)
	s.mux.Handle(pattern, s.instrument(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r)
		if err == nil && !allowed(kinds, p.Kind) {
			err = &events.Error{Code: events.CodePermissionDenied, Message: "a " + string(p.Kind) + " key may not call this route"}
		}
		if err == nil {
			err = s.Admit(w, p)
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.WriteError(w, r, err)
		}
	}))
}

// Admit takes one request of p's key from its rate limit. Over the limit it
// sets Retry-After and returns too_many_requests. Handle admits every
// request; a route served with HandlePublic that authenticates on its own
// (FHIR) must call it too.
func (s *Server) Admit(w http.ResponseWriter, p Principal) error {
	if wait, ok := s.limits.allow(p); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return &events.Error{Code: events.CodeTooManyRequests, Message: "too many requests for this key; retry later"}
	}
	return nil
}

// HandlePublic serves pattern without authentication (health, metrics,
// sign-in pages).
func (s *Server) HandlePublic(pattern string, h http.Handler) {
	s.record(pattern)
	s.mux.Handle(pattern, s.instrument(pattern, h.ServeHTTP))
}

func (s *Server) record(pattern string) {
	s.routesMu.Lock()
	s.routes = append(s.routes, pattern)
	s.routesMu.Unlock()
}

// Routes lists every pattern registered so far, in registration order, so
// a test can check that each one is covered (the authorization matrix).
func (s *Server) Routes() []string {
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	return append([]string(nil), s.routes...)
}

// ServeHTTP implements http.Handler. A request no route matches gets the
// mux's answer (a redirect to the canonical path, 404 or 405) with the
// headers every route has, and its 404 or 405 in the JSON error shape
// rather than the mux's plain text.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	baseHeaders(w.Header())
	r = s.atEdge(w, r)
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	s.instrument("unmatched", func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&unmatched{ResponseWriter: w}, r)
	}).ServeHTTP(w, r)
}

// baseHeaders are on every answer. API answers are data, never pages:
// nothing in them may run, be sniffed into a script or be framed. Web pages
// replace the policy with their own.
func baseHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// unmatched turns the mux's plain-text 404 and 405 into the JSON error shape.
type unmatched struct {
	http.ResponseWriter
	replaced bool
}

func (u *unmatched) WriteHeader(code int) {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		u.ResponseWriter.WriteHeader(code)
		return
	}
	u.replaced = true
	e := errorDetail{Code: events.CodeNotFound, Message: "no such route"}
	if code == http.StatusMethodNotAllowed { // the mux has set Allow
		e = errorDetail{Code: CodeMethodNotAllowed, Message: "this route does not take that method; it takes " +
			strings.Join(u.Header().Values("Allow"), ", ")}
	}
	WriteJSON(u.ResponseWriter, Status(e.Code), errorBody{Error: e})
}

func (u *unmatched) Write(b []byte) (int, error) {
	if u.replaced {
		return len(b), nil
	}
	return u.ResponseWriter.Write(b)
}

// Authenticate returns the caller of a request bearing an API key.
func (s *Server) Authenticate(r *http.Request) (Principal, error) {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || key == "" {
		return Principal{}, &events.Error{Code: events.CodeUnauthenticated, Message: "an API key is required: Authorization: Bearer <key>"}
	}
	return s.LookupKey(r.Context(), key)
}

// LookupKey returns the principal of a key, or an unauthenticated error.
func (s *Server) LookupKey(ctx context.Context, key string) (Principal, error) {
	p, found, err := s.keys.Lookup(ctx, key)
	if err != nil {
		return Principal{}, &events.Error{Code: events.CodeUnavailable, Message: "keys cannot be checked now"}
	}
	if !found {
		return Principal{}, &events.Error{Code: events.CodeUnauthenticated, Message: "unknown API key"}
	}
	return p, nil
}

func allowed(kinds []events.Kind, k events.Kind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// instrument counts requests by route pattern (never by path: paths hold
// ids) and status, and turns a panic into a 500 without a stack trace.
func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		// Every route's body is bounded; routes that decode JSON bound it
		// again with their own (smaller or equal) limit.
		r.Body = http.MaxBytesReader(rec, r.Body, MaxBody)
		baseHeaders(rec.Header())
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "route", route, "panic", v)
				if !rec.wrote {
					s.WriteError(rec, r, errors.New("panic"))
				}
			}
			s.metrics.observe(route, rec.status, time.Since(start))
		}()
		h(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Flush lets server-sent events through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
