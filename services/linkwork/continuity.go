package linkwork

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// Continuity and safety (issue 17): the person's history with the team,
// case notes, risks and supervision.

// history is the person's earlier journeys with the team, latest first,
// found through the person index of the caseload view (keyed by a hash of
// the NHS number, which it never shows).
func (s *Service) history(row caseRow) ([]HistoryItem, error) {
	out := []HistoryItem{}
	if row.Ref == "" {
		return out, nil
	}
	raw, ok, err := s.view.Get(personKey(row.Team, row.Ref))
	if err != nil || !ok {
		return out, err
	}
	var pj personJourneys
	if err := json.Unmarshal(raw, &pj); err != nil {
		return nil, fmt.Errorf("person index: %w", err)
	}
	for _, id := range pj.Journeys {
		if id == row.JourneyID {
			continue
		}
		raw, ok, err := s.view.Get(rowKey(id))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		o, err := rowJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("caseload row: %w", err)
		}
		earlier := o.ReferredAt.Before(row.ReferredAt) || o.ReferredAt.Equal(row.ReferredAt) && id < row.JourneyID
		if o.Team != row.Team || !earlier {
			continue
		}
		out = append(out, HistoryItem{JourneyID: id, ReferredAt: o.ReferredAt, ClosedAt: o.ClosedAt, Status: o.Status,
			WorkerID: o.WorkerID, WorkerName: o.WorkerName, ClosedReason: o.ClosedReason})
	}
	slices.SortFunc(out, func(a, b HistoryItem) int { return b.ReferredAt.Compare(a.ReferredAt) })
	return out, nil
}

// notesAnswer is GET /v1/journeys/{id}/notes.
type notesAnswer struct {
	JourneyID string     `json:"journey_id"`
	Notes     []CaseNote `json:"notes"`
}

func (s *Service) getNotes(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	row, err := s.ownRow(p, r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := readJourney(s.view, row, events.UKDate(s.now()))
	if err != nil {
		return err
	}
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, row.JourneyID); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, notesAnswer{JourneyID: row.JourneyID, Notes: v.CaseNotes})
	return nil
}

type noteBody struct {
	Text string `json:"text"`
}

// postNote records a case note: sealed under the person's key on the log,
// shown to the team only, erased with the person.
func (s *Service) postNote(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b noteBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := text("text", b.Text, maxNote, true); err != nil {
		return err
	}
	return s.respond(w, r, p, events.AddCaseNote{NoteID: events.NewID(), Text: strings.TrimSpace(b.Text)})
}

type riskBody struct {
	Kind         string `json:"kind"`
	Detail       string `json:"detail"`
	EscalateToGP bool   `json:"escalate_to_gp"`
}

// postRisk records a risk or safeguarding concern; with escalate_to_gp the
// GP's view shows the escalation. No VCS organisation ever sees one.
func (s *Service) postRisk(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b riskBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if !slices.Contains(events.RiskKinds, b.Kind) {
		return events.Invalid("kind", "must be one of %v", events.RiskKinds)
	}
	if err := text("detail", b.Detail, maxText, true); err != nil {
		return err
	}
	return s.respond(w, r, p, events.RecordRisk{RiskID: events.NewID(), Kind: b.Kind, Detail: strings.TrimSpace(b.Detail),
		EscalateToGP: b.EscalateToGP})
}

type supervisionBody struct {
	WorkerID string `json:"worker_id"`
	Date     string `json:"date"`
	Kind     string `json:"kind"`
}

// SupervisionAnswer is what POST /v1/supervision answers: the session and
// the worker's latest supervision since.
type SupervisionAnswer struct {
	SupervisionID   string `json:"supervision_id,omitempty"`
	Team            string `json:"team"`
	WorkerID        string `json:"worker_id"`
	Date            string `json:"date"`
	Kind            string `json:"kind"`
	LastSupervision string `json:"last_supervision"`
	Replayed        bool   `json:"replayed,omitempty"`
}

// postSupervision records a supervision session of one of the team's
// workers in the team's supervision log; the workload shows it at once.
func (s *Service) postSupervision(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b supervisionBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := validWorkerID("worker_id", b.WorkerID); err != nil {
		return err
	}
	if !slices.Contains(events.SupervisionKinds, b.Kind) {
		return events.Invalid("kind", "must be one of %v", events.SupervisionKinds)
	}
	// Today is the later of England's and UTC's: a session is never
	// refused as future by a caller a timezone apart.
	now := s.now()
	today := later(events.UKDate(now), utcDay(now)).Format(time.DateOnly)
	key, err := api.IdempotencyKey(r)
	if err != nil {
		return err
	}
	cmd := events.RecordSupervision{SupervisionID: events.NewID(), Team: p.OrgID, WorkerID: b.WorkerID, Date: b.Date,
		Kind: b.Kind, Today: today}
	res, err := s.cfg.Journal.Supervise(r.Context(), journal.Meta{Actor: p.Actor(), IdempotencyKey: key}, cmd)
	if err != nil {
		s.commands.WithLabelValues("record_supervision", "refused").Inc()
		return fmt.Errorf("record supervision: %w", err)
	}
	s.commands.WithLabelValues("record_supervision", map[bool]string{true: "replayed", false: "ok"}[res.Replayed]).Inc()
	if err := s.awaitView(r.Context(), res.LastSeq); err != nil {
		s.log.Warn("caseload view lagging behind a supervision", "err", err)
		return &events.Error{Code: events.CodeUnavailable,
			Message: "recorded, but the workload has not caught up with it yet; read the caseload again shortly"}
	}
	ans := SupervisionAnswer{Team: p.OrgID, WorkerID: b.WorkerID, Date: b.Date, Kind: b.Kind,
		LastSupervision: res.Log.LastSupervision(b.WorkerID), Replayed: res.Replayed}
	for _, rec := range res.Events {
		if e := rec.Event.GetSupervisionRecorded(); e != nil {
			ans.SupervisionID = e.GetSupervisionId()
			ans.WorkerID, ans.Date, ans.Kind = cmp.Or(e.GetWorkerId(), ans.WorkerID), cmp.Or(e.GetDate(), ans.Date), cmp.Or(e.GetKind(), ans.Kind)
		}
	}
	api.WriteJSON(w, http.StatusOK, ans)
	return nil
}
