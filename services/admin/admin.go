// Package admin is the operators' service: erasure of a person's data
// (right to erasure, carried out by crypto-shredding) and the read audit.
package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"linkway/events"
	"linkway/services/platform"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// Start adds the admin routes.
func Start(_ context.Context, d platform.Deps) error {
	s := &service{d: d}
	d.HTTP.Handle("POST /v1/admin/erasures", []events.Kind{events.KindAdmin}, s.erase)
	d.HTTP.Handle("GET /v1/admin/audit", []events.Kind{events.KindAdmin}, s.audit)
	return nil
}

// audit lists who read a journey's identifiable data: GET
// /v1/admin/audit?journey=<id>&since=<RFC 3339> (since: default 90 days).
func (s *service) audit(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	q := r.URL.Query()
	since := time.Now().Add(-90 * 24 * time.Hour)
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return events.Invalid("since", "must be an RFC 3339 time")
		}
		since = t
	}
	recs, err := s.d.Audit.ForJourney(r.Context(), q.Get("journey"), since)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"reads": recs})
	return nil
}

type service struct{ d platform.Deps }

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
func (s *service) erase(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var req erasureRequest
	if err := api.DecodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	nhs := events.NormaliseNHSNumber(req.NHSNumber)
	if err := events.CheckNHSNumber(nhs); err != nil {
		return events.Invalid("nhs_number", "%v", err)
	}
	keyID := s.d.Keyring.PersonKeyID(nhs)
	journeys, err := s.d.Keyring.Journeys(r.Context(), keyID)
	if err != nil {
		return &events.Error{Code: events.CodeUnavailable, Message: "the person's records cannot be read now"}
	}
	meta := journal.Meta{
		Actor:          p.Actor(),
		IdempotencyKey: "erasure/" + keyID,
	}
	for _, j := range journeys {
		if _, err := s.d.Store.Execute(r.Context(), j, meta, events.ErasePersonalData{}); err != nil {
			return fmt.Errorf("erase journey: %w", err)
		}
	}
	if len(journeys) > 0 {
		if err := s.d.Keyring.Erase(r.Context(), keyID); err != nil {
			return &events.Error{Code: events.CodeUnavailable, Message: "the person's key could not be destroyed; ask again"}
		}
	}
	s.d.Log.Info("personal data erased", "admin", p.OrgID, "key", p.KeyID, "journeys", len(journeys))
	api.WriteJSON(w, http.StatusOK, erasureResult{Journeys: len(journeys)})
	return nil
}
