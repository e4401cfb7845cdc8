// Package admin is the operators' service: erasure of a person's data
// (right to erasure, carried out by crypto-shredding) and the read audit.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/audit"
	"linkway/services/platform/journal"
)

// Journal is the event store an erasure is recorded on (journal.Store).
type Journal interface {
	Execute(ctx context.Context, journeyID string, meta journal.Meta, cmd events.Command) (journal.Result, error)
}

// Keyring holds each person's data key and the journeys sealed with it
// (sealing.Keyring).
type Keyring interface {
	// PersonKeyID names the key of the person with an NHS number.
	PersonKeyID(nhsNumber string) string
	// Journeys are the journeys sealed with the key.
	Journeys(ctx context.Context, keyID string) ([]string, error)
	// Erase destroys the key: nothing it sealed can be read again.
	Erase(ctx context.Context, keyID string) error
}

// Auditor answers who read a journey (audit.Log).
type Auditor interface {
	ForJourney(ctx context.Context, journeyID string, since time.Time) ([]audit.Record, error)
}

// Routes is the route table the service adds its handlers to (api.Server).
type Routes interface {
	Handle(pattern string, kinds []events.Kind, h api.HandlerFunc)
}

// Config is what the admin service is given by the process that runs it.
type Config struct {
	// Journal records PersonalDataErased on each of the person's journeys.
	Journal Journal
	// Keyring finds the person's journeys and destroys their key.
	Keyring Keyring
	// Audit is the read audit the operators query.
	Audit Auditor
	// HTTP is the route table the service adds its routes to.
	HTTP Routes
	// Log receives what the service did (never personal data); slog.Default when nil.
	Log *slog.Logger
}

// Service is the admin service.
type Service struct {
	journal Journal
	keyring Keyring
	audit   Auditor
	log     *slog.Logger
}

// New adds the admin routes to cfg.HTTP.
func New(_ context.Context, cfg Config) (*Service, error) {
	if cfg.Journal == nil || cfg.Keyring == nil || cfg.Audit == nil || cfg.HTTP == nil {
		return nil, errors.New("admin: Journal, Keyring, Audit and HTTP are required")
	}
	s := &Service{journal: cfg.Journal, keyring: cfg.Keyring, audit: cfg.Audit, log: cfg.Log}
	if s.log == nil {
		s.log = slog.Default()
	}
	cfg.HTTP.Handle("POST /v1/admin/erasures", []events.Kind{events.KindAdmin}, s.erase)
	cfg.HTTP.Handle("GET /v1/admin/audit", []events.Kind{events.KindAdmin}, s.readAudit)
	return s, nil
}

// readAudit lists who read a journey's identifiable data: GET
// /v1/admin/audit?journey=<id>&since=<RFC 3339> (since: default 90 days).
func (s *Service) readAudit(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	q := r.URL.Query()
	since := time.Now().Add(-90 * 24 * time.Hour)
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return events.Invalid("since", "must be an RFC 3339 time")
		}
		since = t
	}
	recs, err := s.audit.ForJourney(r.Context(), q.Get("journey"), since)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"reads": recs})
	return nil
}

type erasureRequest struct {
	NHSNumber string `json:"nhs_number"`
}

type erasureResult struct {
	// Journeys is how many journeys had their personal data erased.
	Journeys int `json:"journeys"`
}

// erase carries out an erasure: every journey of the person records
// PersonalDataErased (so every view drops the person's data), then the
// person's data key is destroyed (so nothing on the log can be read
// again). In that order, a failure part-way is mended by asking again: the
// key, and with it the list of journeys, goes last.
func (s *Service) erase(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var req erasureRequest
	if err := api.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	nhs := events.NormaliseNHSNumber(req.NHSNumber)
	if err := events.CheckNHSNumber(nhs); err != nil {
		return events.Invalid("nhs_number", "%v", err)
	}
	keyID := s.keyring.PersonKeyID(nhs)
	journeys, err := s.keyring.Journeys(r.Context(), keyID)
	if err != nil {
		// The cause goes to the log (a 503 is logged in full), not to the caller.
		return fmt.Errorf("%w: %w", &events.Error{Code: events.CodeUnavailable, Message: "the person's records cannot be read now"}, err)
	}
	meta := journal.Meta{
		Actor:          p.Actor(),
		IdempotencyKey: "erasure/" + keyID,
	}
	for _, j := range journeys {
		if _, err := s.journal.Execute(r.Context(), j, meta, events.ErasePersonalData{}); err != nil {
			return fmt.Errorf("erase journey: %w", err)
		}
	}
	if len(journeys) > 0 {
		if err := s.keyring.Erase(r.Context(), keyID); err != nil {
			return fmt.Errorf("%w: %w", &events.Error{Code: events.CodeUnavailable, Message: "the person's key could not be destroyed; ask again"}, err)
		}
	}
	s.log.Info("personal data erased", "admin", p.OrgID, "key", p.KeyID, "journeys", len(journeys))
	api.WriteJSON(w, http.StatusOK, erasureResult{Journeys: len(journeys)})
	return nil
}
