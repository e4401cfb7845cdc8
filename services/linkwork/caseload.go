package linkwork

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/viewstore"
)

// CaseSummary is one journey in the caseload listing.
type CaseSummary struct {
	JourneyID  string        `json:"journey_id"`
	Status     events.Status `json:"status"`
	Name       string        `json:"name,omitempty"`
	Practice   string        `json:"practice,omitempty"`
	Source     string        `json:"source,omitempty"`
	Urgency    string        `json:"urgency,omitempty"`
	Reasons    []string      `json:"reasons"`
	WorkerID   string        `json:"worker_id,omitempty"`
	WorkerName string        `json:"worker_name,omitempty"`
	// SuggestedWorker is the worker who last held the person's case with
	// the team (a journey closed within 12 months, or still open): a
	// re-referral goes back to someone they know.
	SuggestedWorker     string    `json:"suggested_worker,omitempty"`
	SuggestedWorkerName string    `json:"suggested_worker_name,omitempty"`
	ReferredAt          time.Time `json:"referred_at"`
	// WaitingDays: from referral to first contact, or to today while the
	// person has not yet been reached.
	WaitingDays int  `json:"waiting_days"`
	Waiting     bool `json:"waiting"`
	// DaysSinceLastContact is absent until the person has been reached.
	DaysSinceLastContact *int       `json:"days_since_last_contact,omitempty"`
	LastContactAt        *time.Time `json:"last_contact_at,omitempty"`
	FailedAttempts       int        `json:"failed_attempts"`
	FlaggedUncontactable bool       `json:"flagged_uncontactable"`
	OnwardOpen           int        `json:"onward_referrals_open"`
	OnwardTaken          int        `json:"onward_referrals_taken_up"`
	NextFollowUp         string     `json:"next_follow_up,omitempty"`
	FollowUpsOverdue     int        `json:"follow_ups_overdue"`
	// Risks counts recorded risks; EscalatedToGP those escalated.
	Risks         int        `json:"risks,omitempty"`
	EscalatedToGP int        `json:"escalated_to_gp,omitempty"`
	ClosedReason  string     `json:"closed_reason,omitempty"`
	ClosedAt      *time.Time `json:"closed_at,omitempty"`
	// PersonalDataErased: the person's data is gone; the journey's course stays.
	Erased         bool      `json:"personal_data_erased,omitempty"`
	LastActivityAt time.Time `json:"last_activity_at"`
}

// DueFollowUp is one follow-up due within a week or overdue, check-ins
// after closure included.
type DueFollowUp struct {
	JourneyID    string `json:"journey_id"`
	FollowUpID   string `json:"follow_up_id"`
	Due          string `json:"due"`
	State        string `json:"state"` // due or overdue
	Days         int    `json:"days"`  // until due (negative: days overdue)
	Timepoint    string `json:"timepoint,omitempty"`
	AfterClosure bool   `json:"after_closure,omitempty"`
	Name         string `json:"name,omitempty"`
	WorkerID     string `json:"worker_id,omitempty"`
	WorkerName   string `json:"worker_name,omitempty"`
}

// Workload is one worker's share of the caseload, and their year.
type Workload struct {
	WorkerID     string `json:"worker_id"`
	WorkerName   string `json:"worker_name"`
	OpenCases    int    `json:"open_cases"`
	NewThisMonth int    `json:"new_this_month"`
	// Waiting: open cases whose person has not yet been reached.
	Waiting          int `json:"waiting"`
	FollowUpsDue     int `json:"follow_ups_due"`
	FollowUpsOverdue int `json:"follow_ups_overdue"`
	Flagged          int `json:"flagged_uncontactable"`
	// Closed12m: journeys of the worker closed in the last 12 months.
	Closed12m int `json:"closed_12m"`
	// People12m: the worker's year, closed in the last 12 months and open
	// now: what a safe caseload of 200-250 a year is measured by.
	People12m int `json:"people_12m"`
	// CaseloadBand places the year against the safe range: below, within
	// or above; OverSafeRange flags a year above it.
	CaseloadBand  string `json:"caseload_band"`
	OverSafeRange bool   `json:"over_safe_range"`
	// LastSupervision is the date of the worker's latest supervision of
	// any kind; absent when none is recorded.
	LastSupervision string `json:"last_supervision,omitempty"`
}

// The safe caseload range: NHS England's guidance for social prescribing
// link workers is 200-250 people a year.
const (
	SafeYearLow  = 200
	SafeYearHigh = 250
)

// Caseload is the answer of GET /v1/caseload: one page of the team's
// journeys, and the team's figures (the due list, workload and totals are
// the whole team's on every page, whatever the filter; the due list
// follows the worker filter only).
type Caseload struct {
	Team          string                `json:"team"`
	AsOf          string                `json:"as_of"`
	Filter        map[string]string     `json:"filter,omitempty"`
	Journeys      []CaseSummary         `json:"journeys"`
	NextPageToken string                `json:"next_page_token,omitempty"`
	Due           []DueFollowUp         `json:"due"`
	Workload      []Workload            `json:"workload"`
	Totals        CaseloadTotals        `json:"totals"`
	ByStatus      map[events.Status]int `json:"open_by_status"`
}

// CaseloadTotals are the team's figures (for the whole team, whatever the filter).
type CaseloadTotals struct {
	Open                 int     `json:"open"`
	Unassigned           int     `json:"unassigned"`
	NewThisMonth         int     `json:"new_this_month"`
	Waiting              int     `json:"waiting"`
	MeanWaitingDays      float64 `json:"mean_waiting_days"`
	FlaggedUncontactable int     `json:"flagged_uncontactable"`
	FollowUpsDue         int     `json:"follow_ups_due"`
	FollowUpsOverdue     int     `json:"follow_ups_overdue"`
	ClosedThisMonth      int     `json:"closed_this_month"`
}

// statusFilters are the values of ?status=: a journey status, "open"
// (the default: every status but closed and declined) or "all".
var statusFilters = []string{"open", "all", string(events.StatusReferred), string(events.StatusAssigned),
	string(events.StatusInProgress), string(events.StatusConnected), string(events.StatusClosed), string(events.StatusDeclined)}

// maxDue bounds the due list: the oldest overdue first.
const maxDue = 500

// caseloadQuery is what a caseload read asks for.
type caseloadQuery struct {
	Worker, Status string
	PageSize       int
	PageToken      string
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// caseloadReader reads one team's caseload as of one day, each row once.
type caseloadReader struct {
	v     *viewstore.View
	team  string
	now   time.Time
	today time.Time // a day in England (events.UKDate)
	rows  map[string]*caseRow
}

func (r *caseloadReader) row(id string) (*caseRow, error) {
	if c, ok := r.rows[id]; ok {
		return c, nil
	}
	raw, ok, err := r.v.Get(rowKey(id))
	if err != nil {
		return nil, err
	}
	var c *caseRow
	if ok {
		row, err := rowJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("caseload row %s: %w", id, err)
		}
		if row.Team == r.team {
			c = &row
		}
	}
	r.rows[id] = c
	return c, nil
}

// readCaseload reads a page of a team's caseload and the team's figures.
func readCaseload(v *viewstore.View, team string, q caseloadQuery, now time.Time) (Caseload, error) {
	r := &caseloadReader{v: v, team: team, now: now, today: events.UKDate(now), rows: map[string]*caseRow{}}
	out := Caseload{Team: team, AsOf: r.today.Format(time.DateOnly), Journeys: []CaseSummary{}, Due: []DueFollowUp{},
		Workload: []Workload{}, ByStatus: map[events.Status]int{}}
	if q.Worker != "" || q.Status != "" {
		out.Filter = map[string]string{}
		if q.Worker != "" {
			out.Filter["worker"] = q.Worker
		}
		if q.Status != "" {
			out.Filter["status"] = q.Status
		}
	}
	filter := cmp.Or(q.Status, "open")
	prefix := listPrefix(team, filter)
	if q.Worker != "" {
		prefix = workerListPrefix(team, q.Worker, filter)
	}
	page, err := v.Page(prefix, q.PageSize, q.PageToken)
	if err != nil {
		return Caseload{}, err
	}
	out.NextPageToken = page.NextPageToken
	for _, it := range page.Items {
		c, err := r.row(lastPart(it.Key))
		if err != nil {
			return Caseload{}, err
		}
		if c != nil {
			out.Journeys = append(out.Journeys, r.summary(c))
		}
	}
	loads := map[string]*Workload{}
	load := func(id string) *Workload {
		if w := loads[id]; w != nil {
			return w
		}
		w := &Workload{WorkerID: id}
		loads[id] = w
		return w
	}
	if err := r.due(&out, q.Worker, load); err != nil {
		return Caseload{}, err
	}
	known := func(id string) bool { _, ok := loads[id]; return ok }
	if err := r.figures(&out, load, known); err != nil {
		return Caseload{}, err
	}
	for _, w := range loads {
		if w.OpenCases == 0 && w.NewThisMonth == 0 && w.Closed12m == 0 && w.FollowUpsDue == 0 && w.FollowUpsOverdue == 0 &&
			!r.recent(w.LastSupervision) {
			continue // a worker with nothing this year
		}
		w.WorkerName = cmp.Or(w.WorkerName, w.WorkerID)
		w.People12m = w.Closed12m + w.OpenCases
		switch {
		case w.People12m > SafeYearHigh:
			w.CaseloadBand, w.OverSafeRange = "above", true
		case w.People12m >= SafeYearLow:
			w.CaseloadBand = "within"
		default:
			w.CaseloadBand = "below"
		}
		out.Workload = append(out.Workload, *w)
	}
	slices.SortFunc(out.Workload, func(a, b Workload) int {
		return cmp.Or(cmp.Compare(b.OpenCases, a.OpenCases), strings.Compare(a.WorkerID, b.WorkerID))
	})
	return out, nil
}

// recent reports whether a date is within the last 12 months.
func (r *caseloadReader) recent(date string) bool {
	return date != "" && date >= r.today.AddDate(-1, 0, 0).Format(time.DateOnly)
}

// summary is a row as of today.
func (r *caseloadReader) summary(c *caseRow) CaseSummary {
	s := CaseSummary{JourneyID: c.JourneyID, Status: c.Status, Name: c.Name, Practice: c.Referrer, Source: c.Source,
		Urgency: c.Urgency, Reasons: append([]string{}, c.Reasons...), WorkerID: c.WorkerID, WorkerName: c.WorkerName,
		SuggestedWorker: c.Suggested.WorkerID, SuggestedWorkerName: c.Suggested.WorkerName, ReferredAt: c.ReferredAt,
		Waiting: c.Waiting, LastContactAt: c.LastContactAt, FailedAttempts: c.FailedAttempts, FlaggedUncontactable: c.Flagged,
		OnwardOpen: c.OnwardOpen, OnwardTaken: c.OnwardTaken, Risks: c.Risks, EscalatedToGP: c.Escalations,
		ClosedReason: c.ClosedReason, ClosedAt: c.ClosedAt, Erased: c.Erased, LastActivityAt: c.LastActivityAt}
	switch {
	case c.FirstContactAt != nil:
		s.WaitingDays = days(c.ReferredAt, *c.FirstContactAt)
	case c.ClosedAt != nil:
		s.WaitingDays = days(c.ReferredAt, *c.ClosedAt)
	default:
		s.WaitingDays = days(c.ReferredAt, r.now)
	}
	if c.LastContactAt != nil {
		d := days(*c.LastContactAt, r.now)
		s.DaysSinceLastContact = &d
	}
	for _, f := range c.FollowUps {
		if s.NextFollowUp == "" || f.Due < s.NextFollowUp {
			s.NextFollowUp = f.Due
		}
		if followUpState(f.Due, false, r.today) == "overdue" {
			s.FollowUpsOverdue++
		}
	}
	return s
}

// due lists the follow-ups due within a week or overdue (the whole team's
// counted; the list follows the worker filter), oldest first.
func (r *caseloadReader) due(out *Caseload, worker string, load func(string) *Workload) error {
	last := r.today.AddDate(0, 0, dueSoon).Format(time.DateOnly)
	prefix := duePrefix(r.team)
	err := r.v.ForEach(prefix, func(key string, _ []byte) error {
		parts := strings.Split(strings.TrimPrefix(key, prefix), "/")
		if len(parts) != 3 {
			return nil
		}
		due, id, fid := parts[0], parts[1], unpart(parts[2])
		if due > last {
			return errStop
		}
		c, err := r.row(id)
		if err != nil || c == nil {
			return err
		}
		d, err := time.Parse(time.DateOnly, due)
		if err != nil {
			return nil
		}
		f := DueFollowUp{JourneyID: id, FollowUpID: fid, Due: due, State: followUpState(due, false, r.today),
			Days: int(d.Sub(r.today).Hours() / 24), Name: c.Name, WorkerID: c.WorkerID, WorkerName: c.WorkerName}
		if i := slices.IndexFunc(c.FollowUps, func(x rowFollowUp) bool { return x.ID == fid }); i >= 0 {
			f.Timepoint, f.AfterClosure = c.FollowUps[i].Timepoint, c.FollowUps[i].AfterClosure
		}
		var w *Workload
		if c.WorkerID != "" {
			w = load(c.WorkerID)
			w.WorkerName = cmp.Or(w.WorkerName, c.WorkerName)
		}
		if f.State == "overdue" {
			out.Totals.FollowUpsOverdue++
			if w != nil {
				w.FollowUpsOverdue++
			}
		} else {
			out.Totals.FollowUpsDue++
			if w != nil {
				w.FollowUpsDue++
			}
		}
		if (worker == "" || c.WorkerID == worker) && len(out.Due) < maxDue {
			out.Due = append(out.Due, f)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	return nil
}

// figures reads the team's and workers' counts kept by the projection,
// and the figures of this month and this year from the dated indexes.
func (r *caseloadReader) figures(out *Caseload, load func(string) *Workload, known func(string) bool) error {
	var team figures
	if raw, ok, err := r.v.Get(teamKey(r.team)); err != nil {
		return err
	} else if ok {
		if err := json.Unmarshal(raw, &team); err != nil {
			return fmt.Errorf("team figures: %w", err)
		}
	}
	out.Totals.Open, out.Totals.Unassigned, out.Totals.Waiting = team.Open, team.Unassigned, team.Waiting
	out.Totals.FlaggedUncontactable = team.Flagged
	if team.Waiting > 0 {
		mean := float64(dayNumber(r.now)) - float64(team.WaitingDays)/float64(team.Waiting)
		out.Totals.MeanWaitingDays = math.Round(mean*10) / 10
	}
	for st, n := range team.ByStatus {
		out.ByStatus[st] = n
	}
	err := r.v.ForEach(workerPrefix(r.team), func(key string, value []byte) error {
		var wf workerFigures
		if err := json.Unmarshal(value, &wf); err != nil {
			return fmt.Errorf("worker figures: %w", err)
		}
		w := load(unpart(strings.TrimPrefix(key, workerPrefix(r.team))))
		w.WorkerName = cmp.Or(wf.Name, w.WorkerName)
		w.OpenCases, w.Waiting, w.Flagged = wf.Open, wf.Waiting, wf.Flagged
		return nil
	})
	if err != nil {
		return err
	}
	month := time.Date(r.today.Year(), r.today.Month(), 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	year := r.today.AddDate(-1, 0, 0).Format(time.DateOnly)
	// Newest first: each scan reads only the days it counts.
	err = r.since(openedPrefix(r.team), month, func(string, string) { out.Totals.NewThisMonth++ })
	if err == nil {
		err = r.since(assignedPrefix(r.team), month, func(_, worker string) {
			if worker != "" {
				load(worker).NewThisMonth++
			}
		})
	}
	if err == nil {
		err = r.since(closedPrefix(r.team), year, func(day, worker string) {
			if day >= month {
				out.Totals.ClosedThisMonth++
			}
			if worker != "" {
				load(worker).Closed12m++
			}
		})
	}
	if err != nil {
		return err
	}
	return r.v.ForEach(supervisionPrefix(r.team), func(key string, value []byte) error {
		var t events.TeamSupervision
		if err := json.Unmarshal(value, &t); err != nil {
			return fmt.Errorf("supervision: %w", err)
		}
		worker := unpart(strings.TrimPrefix(key, supervisionPrefix(r.team)))
		// Shown however old it is (a worker unsupervised for long is what
		// the figure is for); a worker known only for a supervision more
		// than a year ago is not listed.
		if last := t.LastSupervision(worker); last != "" && (known(worker) || r.recent(last)) {
			load(worker).LastSupervision = last
		}
		return nil
	})
}

// since scans a newest-first dated index down to day from (inclusive).
func (r *caseloadReader) since(prefix, from string, fn func(day, value string)) error {
	err := r.v.ForEach(prefix, func(key string, value []byte) error {
		p, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		d := dayOfNewestFirst(p)
		if d < from {
			return errStop
		}
		fn(d, string(value))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	return nil
}

// days counts calendar days (in England) from one moment to another.
func days(from, to time.Time) int {
	return int(dayNumber(to) - dayNumber(from))
}
