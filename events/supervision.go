package events

import (
	"slices"
	"strings"
	"time"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Supervision is about a worker, not a journey: a team's log of its
// workers' supervision sessions, one subject per team on the JOURNEYS
// stream (SupervisionSubject). Its rules sit beside the journey's, pure as
// they are: DecideSupervision and TeamSupervision.Evolve.

// RecordSupervision records one supervision session of a worker of Team.
type RecordSupervision struct {
	SupervisionID string
	Team          string
	WorkerID      string
	// Date of the session, YYYY-MM-DD.
	Date string
	// Kind: SupervisionKinds.
	Kind string
	// Today (YYYY-MM-DD) is the caller's today: a session dated after it
	// is refused. Empty: not checked.
	Today string
}

// SupervisionSession is one recorded session.
type SupervisionSession struct {
	ID, WorkerID, Date, Kind string
}

// TeamSupervision is a team's supervision log folded from its events. It is
// a value: Evolve returns a new one.
type TeamSupervision struct {
	Team     string
	Sessions []SupervisionSession
}

// LastSupervision is the date (YYYY-MM-DD) of a worker's latest session of
// any kind, or "" when there is none: the workload's last_supervision.
func (t TeamSupervision) LastSupervision(workerID string) string {
	last := ""
	for _, s := range t.Sessions {
		if s.WorkerID == workerID && s.Date > last { // ISO dates sort as strings
			last = s.Date
		}
	}
	return last
}

// maxWorkerID bounds a worker id: it is shown and used as a key.
const maxWorkerID = 64

// DecideSupervision returns the event that records c in a team's log t,
// or an *Error naming the field; none and no error when the same session
// (worker, date, kind) is recorded already. The caller fills in the
// envelope's id, time and actor, and leaves its journey id empty.
func DecideSupervision(t TeamSupervision, c RecordSupervision) ([]*eventsv1.Envelope, error) {
	switch {
	case !ValidOrgCode(c.Team):
		return nil, Invalid("team", "must be an organisation code")
	case t.Team != "" && t.Team != c.Team:
		return nil, Invalid("team", "is not the team of this supervision log (%s)", t.Team)
	case strings.TrimSpace(c.WorkerID) == "":
		return nil, Invalid("worker_id", "is required")
	case len(c.WorkerID) > maxWorkerID || strings.ContainsFunc(c.WorkerID, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return nil, Invalid("worker_id", "must be at most %d characters, no control characters", maxWorkerID)
	case !slices.Contains(SupervisionKinds, c.Kind):
		return nil, Invalid("kind", "must be one of %v", SupervisionKinds)
	}
	date, err := ParseDate("date", c.Date)
	if err != nil {
		return nil, err
	}
	if c.Today != "" {
		today, err := ParseDate("today", c.Today)
		if err != nil {
			return nil, err
		}
		if date.After(today) {
			return nil, Invalid("date", "is in the future (today is %s)", today.Format(time.DateOnly))
		}
	}
	if slices.ContainsFunc(t.Sessions, func(s SupervisionSession) bool {
		return s.WorkerID == c.WorkerID && s.Date == c.Date && s.Kind == c.Kind
	}) {
		return nil, nil
	}
	return one(&eventsv1.SupervisionRecorded{SupervisionId: c.SupervisionID, Team: c.Team,
		WorkerId: c.WorkerID, Date: c.Date, Kind: c.Kind})
}

// Evolve folds one event into the log; events other than
// SupervisionRecorded are passed over, as the log is the truth.
func (t TeamSupervision) Evolve(env *eventsv1.Envelope) TeamSupervision {
	r := env.GetSupervisionRecorded()
	if r == nil {
		return t
	}
	if t.Team == "" {
		t.Team = r.GetTeam()
	}
	t.Sessions = append(slices.Clip(t.Sessions), SupervisionSession{ID: r.GetSupervisionId(),
		WorkerID: r.GetWorkerId(), Date: r.GetDate(), Kind: r.GetKind()})
	return t
}
