package linkwork

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

// ProjectionName is the caseload view: one entry per journey, keyed by team
// and journey, holding what a team lead needs to see the caseload at a
// glance. Figures that depend on today (waiting days, due follow-ups) are
// worked out when read, so the view never goes stale overnight.
const ProjectionName = "caseload"

// Keys of the view: caseKey holds a journey's entry under its team, so a
// team's caseload is one prefix scan; teamKey finds a journey's team for
// events after the referral, which do not carry it.
func caseKey(team, journeyID string) string { return "c." + team + "." + journeyID }
func casePrefix(team string) string         { return "c." + team + "." }
func teamKey(journeyID string) string       { return "t." + journeyID }

// caseEntry is one journey in the caseload view.
type caseEntry struct {
	JourneyID      string          `json:"journey_id"`
	Team           string          `json:"team"`
	Seq            uint64          `json:"seq"`
	GivenName      string          `json:"given_name,omitempty"`
	FamilyName     string          `json:"family_name,omitempty"`
	Practice       string          `json:"practice,omitempty"`
	Urgency        string          `json:"urgency,omitempty"`
	Reasons        []string        `json:"reasons,omitempty"`
	ReferredAt     time.Time       `json:"referred_at"`
	OpenedAt       time.Time       `json:"opened_at"` // referral or latest reopening
	WorkerID       string          `json:"worker_id,omitempty"`
	WorkerName     string          `json:"worker_name,omitempty"`
	AssignedAt     *time.Time      `json:"assigned_at,omitempty"`
	Contacted      bool            `json:"contacted,omitempty"`
	FirstContactAt *time.Time      `json:"first_contact_at,omitempty"`
	LastContactAt  *time.Time      `json:"last_contact_at,omitempty"`
	FailedAttempts []time.Time     `json:"failed_attempts,omitempty"`
	Onward         []events.Onward `json:"onward,omitempty"`
	FollowUps      []caseFollowUp  `json:"follow_ups,omitempty"`
	Closed         bool            `json:"closed,omitempty"`
	Declined       bool            `json:"declined,omitempty"`
	ClosedReason   string          `json:"closed_reason,omitempty"`
	ClosedAt       *time.Time      `json:"closed_at,omitempty"`
	LastActivityAt time.Time       `json:"last_activity_at"`
}

type caseFollowUp struct {
	ID   string `json:"id"`
	Due  string `json:"due"`
	Done bool   `json:"done,omitempty"`
}

// state is the entry as the journey rules see it, so status and the
// uncontactable flag are derived by the same code as everywhere else.
func (c *caseEntry) state() events.State {
	return events.State{JourneyID: c.JourneyID, Referral: &eventsv1.ReferralReceived{}, Closed: c.Closed,
		Declined: c.Declined, ClosedReason: c.ClosedReason, WorkerID: c.WorkerID, WorkerName: c.WorkerName,
		Contacted: c.Contacted, FailedAttempts: c.FailedAttempts, Onward: c.Onward}
}

// caseload is the caseload projector.
type caseload struct{}

func (caseload) Name() string { return ProjectionName }

// Apply folds one event into its journey's entry.
func (caseload) Apply(tx *views.Tx, ev views.Event) error {
	env := ev.Envelope
	jid := env.GetJourneyId()
	if events.ParseID(jid) != nil {
		return nil // not a journey id this version issues; nothing to show
	}
	at := env.GetOccurredAt().AsTime().UTC()
	var c caseEntry
	if r, ok := env.GetEvent().(*eventsv1.Envelope_ReferralReceived); ok {
		team := r.ReferralReceived.GetLinkWorkTeam()
		if !orgs.ValidCode(team) {
			return nil // the referrals edge refuses these; never a key from bad input
		}
		if _, exists, err := tx.Get(teamKey(jid)); err != nil || exists {
			return err // a second referral for a journey changes nothing
		}
		p := r.ReferralReceived.GetPerson()
		c = caseEntry{JourneyID: jid, Team: team, GivenName: p.GetGivenName(), FamilyName: p.GetFamilyName(),
			Practice: r.ReferralReceived.GetReferrerOrganisationId(), Urgency: r.ReferralReceived.GetUrgency(),
			Reasons: r.ReferralReceived.GetReasons(), ReferredAt: at, OpenedAt: at}
		tx.Put(teamKey(jid), []byte(team))
	} else {
		team, ok, err := tx.Get(teamKey(jid))
		if err != nil || !ok {
			return err // events of a journey never referred: nothing to show
		}
		found, err := tx.GetJSON(caseKey(string(team), jid), &c)
		if err != nil {
			return fmt.Errorf("caseload entry: %w", err)
		}
		if !found || ev.Seq <= c.Seq {
			return nil
		}
		c.fold(env, at)
	}
	c.Seq, c.LastActivityAt = ev.Seq, at
	return tx.PutJSON(caseKey(c.Team, jid), &c)
}

func (c *caseEntry) fold(env *eventsv1.Envelope, at time.Time) {
	setOnward := func(id string, st events.OnwardStatus) {
		for i := range c.Onward {
			if c.Onward[i].ID == id {
				c.Onward[i].Status = st
			}
		}
	}
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_LinkWorkerAssigned:
		c.WorkerID, c.WorkerName, c.AssignedAt = e.LinkWorkerAssigned.GetWorkerId(), e.LinkWorkerAssigned.GetWorkerName(), &at
	case *eventsv1.Envelope_ContactAttempted:
		c.FailedAttempts = append(c.FailedAttempts, at)
	case *eventsv1.Envelope_ContactMade:
		c.Contacted, c.LastContactAt, c.FailedAttempts = true, &at, nil
		if c.FirstContactAt == nil {
			c.FirstContactAt = &at
		}
	case *eventsv1.Envelope_OnwardReferralMade:
		m := e.OnwardReferralMade
		c.Onward = append(c.Onward, events.Onward{ID: m.GetOnwardReferralId(), ServiceID: m.GetServiceId(),
			OrganisationID: m.GetOrganisationId(), Status: events.OnwardSent})
	case *eventsv1.Envelope_OnwardReferralAccepted:
		setOnward(e.OnwardReferralAccepted.GetOnwardReferralId(), events.OnwardAccepted)
	case *eventsv1.Envelope_OnwardReferralDeclined:
		setOnward(e.OnwardReferralDeclined.GetOnwardReferralId(), events.OnwardDeclined)
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		setOnward(e.OnwardReferralWithdrawn.GetOnwardReferralId(), events.OnwardWithdrawn)
	case *eventsv1.Envelope_AttendanceRecorded:
		if e.AttendanceRecorded.GetAttended() {
			setOnward(e.AttendanceRecorded.GetOnwardReferralId(), events.OnwardAttending)
		}
	case *eventsv1.Envelope_OnwardReferralCompleted:
		setOnward(e.OnwardReferralCompleted.GetOnwardReferralId(), events.OnwardCompleted)
	case *eventsv1.Envelope_OnwardReferralDroppedOut:
		setOnward(e.OnwardReferralDroppedOut.GetOnwardReferralId(), events.OnwardDroppedOut)
	case *eventsv1.Envelope_FollowUpScheduled:
		c.FollowUps = append(c.FollowUps, caseFollowUp{ID: e.FollowUpScheduled.GetFollowUpId(), Due: e.FollowUpScheduled.GetDue()})
	case *eventsv1.Envelope_FollowUpCompleted:
		c.doneFollowUp(e.FollowUpCompleted.GetFollowUpId())
	case *eventsv1.Envelope_WellbeingMeasured:
		if id := e.WellbeingMeasured.GetFollowUpId(); id != "" {
			c.doneFollowUp(id)
		}
	case *eventsv1.Envelope_PatientDeclined:
		c.Closed, c.Declined, c.ClosedReason, c.ClosedAt = true, true, "declined", &at
	case *eventsv1.Envelope_JourneyClosed:
		c.Closed, c.ClosedReason, c.ClosedAt = true, e.JourneyClosed.GetReason(), &at
		c.Declined = c.ClosedReason == "declined"
	case *eventsv1.Envelope_JourneyReopened:
		c.Closed, c.Declined, c.ClosedReason, c.ClosedAt, c.FailedAttempts = false, false, "", nil, nil
		c.OpenedAt = at
	case *eventsv1.Envelope_PersonalDataErased:
		c.GivenName, c.FamilyName = "", ""
	}
}

func (c *caseEntry) doneFollowUp(id string) {
	for i := range c.FollowUps {
		if c.FollowUps[i].ID == id {
			c.FollowUps[i].Done = true
		}
	}
}

// CaseSummary is one journey in the caseload listing.
type CaseSummary struct {
	JourneyID  string        `json:"journey_id"`
	Status     events.Status `json:"status"`
	Name       string        `json:"name,omitempty"`
	Practice   string        `json:"practice,omitempty"`
	Urgency    string        `json:"urgency,omitempty"`
	Reasons    []string      `json:"reasons"`
	WorkerID   string        `json:"worker_id,omitempty"`
	WorkerName string        `json:"worker_name,omitempty"`
	ReferredAt time.Time     `json:"referred_at"`
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
	ClosedReason         string     `json:"closed_reason,omitempty"`
	LastActivityAt       time.Time  `json:"last_activity_at"`
}

// DueFollowUp is one follow-up due within a week or overdue.
type DueFollowUp struct {
	JourneyID  string `json:"journey_id"`
	FollowUpID string `json:"follow_up_id"`
	Due        string `json:"due"`
	State      string `json:"state"` // due or overdue
	Days       int    `json:"days"`  // until due (negative: days overdue)
	Name       string `json:"name,omitempty"`
	WorkerID   string `json:"worker_id,omitempty"`
	WorkerName string `json:"worker_name,omitempty"`
}

// Workload is one worker's share of the open caseload.
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
}

// Caseload is the answer of GET /v1/caseload.
type Caseload struct {
	Team     string                `json:"team"`
	AsOf     string                `json:"as_of"`
	Filter   map[string]string     `json:"filter,omitempty"`
	Journeys []CaseSummary         `json:"journeys"`
	Due      []DueFollowUp         `json:"due"`
	Workload []Workload            `json:"workload"`
	Totals   CaseloadTotals        `json:"totals"`
	ByStatus map[events.Status]int `json:"open_by_status"`
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

func days(from, to time.Time) int {
	return int(math.Floor(dateOf(to).Sub(dateOf(from)).Hours() / 24))
}

func sameMonth(a, b time.Time) bool {
	a, b = a.UTC(), b.UTC()
	return a.Year() == b.Year() && a.Month() == b.Month()
}

// buildCaseload works out the caseload figures of a team's entries as of now.
func buildCaseload(team string, entries []caseEntry, worker, status string, now time.Time, policy events.UncontactablePolicy) Caseload {
	out := Caseload{Team: team, AsOf: dateOf(now).Format(time.DateOnly), Journeys: []CaseSummary{}, Due: []DueFollowUp{},
		Workload: []Workload{}, ByStatus: map[events.Status]int{}}
	if worker != "" || status != "" {
		out.Filter = map[string]string{}
		if worker != "" {
			out.Filter["worker"] = worker
		}
		if status != "" {
			out.Filter["status"] = status
		}
	}
	status = cmp.Or(status, "open")
	today := dateOf(now)
	loads := map[string]*Workload{}
	waitSum := 0
	for i := range entries {
		c := &entries[i]
		st := c.state()
		s := CaseSummary{JourneyID: c.JourneyID, Status: st.Status(), Name: strings.TrimSpace(c.GivenName + " " + c.FamilyName),
			Practice: c.Practice, Urgency: c.Urgency, Reasons: append([]string{}, c.Reasons...), WorkerID: c.WorkerID,
			WorkerName: c.WorkerName, ReferredAt: c.ReferredAt, LastContactAt: c.LastContactAt,
			FailedAttempts: len(c.FailedAttempts), FlaggedUncontactable: st.FlaggedUncontactable(policy),
			ClosedReason: c.ClosedReason, LastActivityAt: c.LastActivityAt}
		if c.FirstContactAt != nil {
			s.WaitingDays = days(c.ReferredAt, *c.FirstContactAt)
		} else {
			s.Waiting = !c.Closed
			s.WaitingDays = days(c.ReferredAt, cmp.Or(derefTime(c.ClosedAt), now))
		}
		if c.LastContactAt != nil {
			d := days(*c.LastContactAt, now)
			s.DaysSinceLastContact = &d
		}
		for _, o := range c.Onward {
			switch o.Status {
			case events.OnwardSent:
				s.OnwardOpen++
			case events.OnwardAccepted, events.OnwardAttending, events.OnwardCompleted:
				s.OnwardTaken++
			}
		}
		open := st.Open()
		// New this month counts intake whatever became of it since; the
		// other figures are of open cases only.
		newToWorker := c.AssignedAt != nil && sameMonth(*c.AssignedAt, now)
		var wl *Workload
		if c.WorkerID != "" && (open || newToWorker) {
			if wl = loads[c.WorkerID]; wl == nil {
				wl = &Workload{WorkerID: c.WorkerID}
				loads[c.WorkerID] = wl
			}
			wl.WorkerName = c.WorkerName
			if newToWorker {
				wl.NewThisMonth++
			}
		}
		if wl != nil && open {
			wl.OpenCases++
			if s.Waiting {
				wl.Waiting++
			}
			if s.FlaggedUncontactable {
				wl.Flagged++
			}
		} else {
			wl = nil // follow-ups of closed cases are not due
		}
		dueInEntry := []DueFollowUp{}
		for _, f := range c.FollowUps {
			if f.Done {
				continue
			}
			if s.NextFollowUp == "" || f.Due < s.NextFollowUp {
				s.NextFollowUp = f.Due
			}
			fs := followUpState(f.Due, false, today)
			if !open || (fs != "due" && fs != "overdue") {
				continue
			}
			d, _ := time.Parse(time.DateOnly, f.Due)
			dueInEntry = append(dueInEntry, DueFollowUp{JourneyID: c.JourneyID, FollowUpID: f.ID, Due: f.Due, State: fs,
				Days: days(today, d), Name: s.Name, WorkerID: c.WorkerID, WorkerName: c.WorkerName})
			if fs == "overdue" {
				s.FollowUpsOverdue++
				out.Totals.FollowUpsOverdue++
				if wl != nil {
					wl.FollowUpsOverdue++
				}
			} else {
				out.Totals.FollowUpsDue++
				if wl != nil {
					wl.FollowUpsDue++
				}
			}
		}
		// Team totals cover the whole team whatever the filter: a team lead
		// looking at one worker still sees the team's load.
		if sameMonth(c.OpenedAt, now) {
			out.Totals.NewThisMonth++
		}
		if open {
			out.Totals.Open++
			out.ByStatus[s.Status]++
			if c.WorkerID == "" {
				out.Totals.Unassigned++
			}
			if s.Waiting {
				out.Totals.Waiting++
				waitSum += s.WaitingDays
			}
			if s.FlaggedUncontactable {
				out.Totals.FlaggedUncontactable++
			}
		} else if c.ClosedAt != nil && sameMonth(*c.ClosedAt, now) {
			out.Totals.ClosedThisMonth++
		}
		if worker != "" && c.WorkerID != worker {
			continue
		}
		if !matchStatus(status, s.Status, open) {
			continue
		}
		out.Journeys = append(out.Journeys, s)
		out.Due = append(out.Due, dueInEntry...)
	}
	if out.Totals.Waiting > 0 {
		out.Totals.MeanWaitingDays = math.Round(float64(waitSum)/float64(out.Totals.Waiting)*10) / 10
	}
	for _, wl := range loads {
		out.Workload = append(out.Workload, *wl)
	}
	slices.SortFunc(out.Workload, func(a, b Workload) int {
		return cmp.Or(cmp.Compare(b.OpenCases, a.OpenCases), strings.Compare(a.WorkerID, b.WorkerID))
	})
	// Urgent first, then oldest referral (the longest wait): the order a
	// team works through its list.
	slices.SortStableFunc(out.Journeys, func(a, b CaseSummary) int {
		return cmp.Or(cmp.Compare(urgencyRank(a.Urgency), urgencyRank(b.Urgency)), a.ReferredAt.Compare(b.ReferredAt),
			strings.Compare(a.JourneyID, b.JourneyID))
	})
	slices.SortFunc(out.Due, func(a, b DueFollowUp) int {
		return cmp.Or(strings.Compare(a.Due, b.Due), strings.Compare(a.JourneyID, b.JourneyID))
	})
	return out
}

func urgencyRank(u string) int {
	if u == "urgent" {
		return 0
	}
	return 1
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func matchStatus(filter string, st events.Status, open bool) bool {
	switch filter {
	case "all":
		return true
	case "open":
		return open
	}
	return string(st) == filter
}

// entriesOf reads a team's entries from the mirrored view.
func entriesOf(m *views.Mirror, team string) []caseEntry {
	kvs := m.Scan(casePrefix(team))
	out := make([]caseEntry, 0, len(kvs))
	for _, kv := range kvs {
		var c caseEntry
		if json.Unmarshal(kv.Value, &c) == nil && c.Team == team {
			out = append(out, c)
		}
	}
	return out
}
