package outcomes

import (
	"cmp"
	"encoding/csv"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"linkway/events"
)

// Small-number suppression, as NHS England publishes: a count of 1 to 7 is
// shown as "*", any other count rounded to the nearest 5; rates are worked
// out from the rounded counts; a mean, median or percentile is not shown
// where it rests on fewer than 8 people. A published figure never lets a
// reader work back to one person.

// Count is a count as published.
type Count struct{ raw int }

// Suppressed reports whether the count is shown as "*".
func (c Count) Suppressed() bool { return c.raw >= 1 && c.raw <= 7 }

// Rounded is the published number (when not suppressed).
func (c Count) Rounded() int { return roundTo5(c.raw) }

func roundTo5(n int) int { return (n + 2) / 5 * 5 }

// String is the count as published: "*" or the rounded number.
func (c Count) String() string {
	if c.Suppressed() {
		return "*"
	}
	return strconv.Itoa(c.Rounded())
}

// MarshalJSON publishes "*" or the rounded number.
func (c Count) MarshalJSON() ([]byte, error) {
	if c.Suppressed() {
		return []byte(`"*"`), nil
	}
	return []byte(strconv.Itoa(c.Rounded())), nil
}

// Rate is a proportion worked out from two published counts: "*" when
// either is suppressed, null when the denominator is 0.
type Rate struct {
	num, den Count
}

func (r Rate) value() (float64, bool) {
	if r.num.Suppressed() || r.den.Suppressed() || r.den.Rounded() == 0 {
		return 0, false
	}
	return math.Round(float64(r.num.Rounded())/float64(r.den.Rounded())*1000) / 1000, true
}

// String is the rate as published: a proportion to 3 places, "*" or "".
func (r Rate) String() string {
	if v, ok := r.value(); ok {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if r.den.Rounded() == 0 && !r.den.Suppressed() {
		return ""
	}
	return "*"
}

// MarshalJSON publishes the rate as a number, "*" or null.
func (r Rate) MarshalJSON() ([]byte, error) {
	switch s := r.String(); s {
	case "":
		return []byte("null"), nil
	case "*":
		return []byte(`"*"`), nil
	default:
		return []byte(s), nil
	}
}

// minN is the fewest values a mean, median or percentile is shown for.
const minN = 8

// Figure is a number shown only when it rests on at least minN people.
type Figure struct {
	v  float64
	ok bool
}

func figure(v float64, n int) Figure {
	if n < minN || math.IsNaN(v) || math.IsInf(v, 0) {
		return Figure{}
	}
	return Figure{v: math.Round(v*100) / 100, ok: true}
}

// String is the figure to 2 places, or "" when not shown.
func (f Figure) String() string {
	if !f.ok {
		return ""
	}
	return strconv.FormatFloat(f.v, 'f', -1, 64)
}

// MarshalJSON publishes the figure or null.
func (f Figure) MarshalJSON() ([]byte, error) {
	if !f.ok {
		return []byte("null"), nil
	}
	return []byte(f.String()), nil
}

// Duration is the median and 90th percentile of waits in days.
type Duration struct {
	N      Count  `json:"n"`
	Median Figure `json:"median_days"`
	P90    Figure `json:"p90_days"`
}

func duration(days []float64) Duration {
	slices.Sort(days)
	return Duration{N: Count{len(days)}, Median: figure(quantile(days, 0.5), len(days)), P90: figure(quantile(days, 0.9), len(days))}
}

// quantile of sorted values, by linear interpolation between closest ranks
// (the default of R and numpy).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}

// Wellbeing is the change from baseline to the latest follow-up of one
// measure among people with both.
type Wellbeing struct {
	Measure    string `json:"measure"`
	N          Count  `json:"n"`
	MeanChange Figure `json:"mean_change"`
	CILow      Figure `json:"ci95_low"`
	CIHigh     Figure `json:"ci95_high"`
	// Meaningful counts changes of at least the measure's meaningful
	// threshold (3 metric points on SWEMWBS and WEMWBS); absent for
	// measures without a published threshold.
	Meaningful     *Count `json:"meaningful_change,omitempty"`
	MeaningfulRate *Rate  `json:"meaningful_change_rate,omitempty"`
}

// Measures are the wellbeing measures summarised, in order.
var Measures = [numMeasures]string{"SWEMWBS", "WEMWBS", "UCLA3", "ONS4.life_satisfaction", "ONS4.worthwhile", "ONS4.happiness", "ONS4.anxiety"}

// meaningfulThreshold is the smallest change counted as meaningful
// (Warwick Medical School guidance: 3 points on (S)WEMWBS).
var meaningfulThreshold = map[string]float64{"SWEMWBS": 3, "WEMWBS": 3}

func wellbeing(measure string, changes []float64) Wellbeing {
	n := len(changes)
	w := Wellbeing{Measure: measure, N: Count{n}}
	if n > 0 {
		mean := 0.0
		for _, c := range changes {
			mean += c
		}
		mean /= float64(n)
		w.MeanChange = figure(mean, n)
		if n > 1 {
			ss := 0.0
			for _, c := range changes {
				ss += (c - mean) * (c - mean)
			}
			half := tCritical(n-1) * math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
			w.CILow, w.CIHigh = figure(mean-half, n), figure(mean+half, n)
		}
	}
	if t, ok := meaningfulThreshold[measure]; ok {
		k := 0
		for _, c := range changes {
			if c >= t-1e-9 {
				k++
			}
		}
		m := Count{k}
		r := Rate{num: m, den: w.N}
		w.Meaningful, w.MeaningfulRate = &m, &r
	}
	return w
}

// tCritical is the two-sided 95% critical value of Student's t.
func tCritical(df int) float64 {
	table := []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	switch {
	case df < len(table):
		return table[df]
	case df < 60:
		return 2.021
	case df < 120:
		return 2.000
	}
	return 1.960
}

// Onward is what became of onward referrals to VCS services.
type Onward struct {
	Made     Count `json:"made"`
	Accepted Count `json:"accepted"`
	Declined Count `json:"declined"`
	// DeclinedByReason is unmet need: why services could not take people on.
	DeclinedByReason map[string]Count `json:"declined_by_reason"`
	// DeclinedByNeed is unmet need by need category: each declined onward
	// referral counted under each of the person's need categories.
	DeclinedByNeed map[string]Count `json:"declined_by_need"`
	Attended       Count            `json:"attended"`
	AttendanceRate Rate             `json:"attendance_rate"`
	Completed      Count            `json:"completed"`
	CompletionRate Rate             `json:"completion_rate"`
}

// needColumns are the need categories unmet need is counted by.

// Row is one group's published figures.
type Row struct {
	Group            string      `json:"group"`
	Referrals        Count       `json:"referrals"`
	DeclinedByPerson Count       `json:"declined_by_person"`
	DeclinedRate     Rate        `json:"declined_by_person_rate"`
	Contacted        Count       `json:"contacted"`
	Connected        Count       `json:"connected"`
	AttendedPeople   Count       `json:"attended"`
	ToFirstContact   Duration    `json:"referral_to_first_contact"`
	ToFirstSession   Duration    `json:"referral_to_first_vcs_session"`
	Onward           Onward      `json:"onward_referrals"`
	Wellbeing        []Wellbeing `json:"wellbeing"`
	ReReferrals      Count       `json:"re_referrals_12m"`
	ReReferralRate   Rate        `json:"re_referral_rate"`
}

// Summary is the published summary.
type Summary struct {
	Commissioner string `json:"commissioner"`
	From         string `json:"from,omitempty"`
	To           string `json:"to,omitempty"`
	By           string `json:"by"`
	Suppression  string `json:"suppression"`
	Groups       []Row  `json:"groups"`
	Total        Row    `json:"total"`
}

const suppressionNote = "counts of 1 to 7 are shown as \"*\" and other counts rounded to the nearest 5; rates are worked out from the rounded counts; means, medians and percentiles are not shown where n < 8"

// Groupings of a summary.
var Groupings = []string{"month", "practice", "reason", "age_band", "sex", "deprivation_decile"}

// Query selects journeys for a summary by referral date (inclusive).
type Query struct {
	From, To time.Time // zero: unbounded
	By       string
}

// tally is one group's raw figures, never published as they are.
type tally struct {
	referrals, declined, contacted, connected, attendedPeople int
	toContact, toSession                                      []float64
	made, accepted, declinedOnward, attended, completed       int
	declinedBy, declinedByNeed                                map[string]int
	changes                                                   [numMeasures][]float64
	reReferrals                                               int
}

func (t *tally) add(j *journey) {
	t.referrals++
	if j.declined {
		t.declined++
	}
	if j.contacted() {
		t.contacted++
		t.toContact = append(t.toContact, max(0, j.firstContact.Sub(j.referred).Hours()/24))
	}
	if j.connected() {
		t.connected++
	}
	if j.attended() {
		t.attendedPeople++
	}
	if !j.firstSession.IsZero() {
		t.toSession = append(t.toSession, max(0, j.firstSession.Sub(dateOf(j.referred)).Hours()/24))
	}
	for _, o := range j.onward {
		t.made++
		if o.accepted {
			t.accepted++
		}
		if o.declineReason != "" {
			t.declinedOnward++
			if t.declinedBy == nil {
				t.declinedBy = map[string]int{}
			}
			t.declinedBy[o.declineReason]++
			if t.declinedByNeed == nil {
				t.declinedByNeed = map[string]int{}
			}
			if len(j.needs) == 0 {
				t.declinedByNeed["unassessed"]++
			}
			for _, n := range j.needs {
				t.declinedByNeed[n]++
			}
		}
		if o.attended {
			t.attended++
		}
		if o.completed {
			t.completed++
		}
	}
	if j.hasFollowUp != 0 {
		for i := range numMeasures {
			if c, ok := j.change(i); ok {
				t.changes[i] = append(t.changes[i], c)
			}
		}
	}
	if j.reReferral {
		t.reReferrals++
	}
}

func dateOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (t *tally) publish(group string) Row {
	r := Row{
		Group: group, Referrals: Count{t.referrals}, DeclinedByPerson: Count{t.declined},
		Contacted: Count{t.contacted}, Connected: Count{t.connected}, AttendedPeople: Count{t.attendedPeople},
		ToFirstContact: duration(t.toContact), ToFirstSession: duration(t.toSession),
		ReReferrals: Count{t.reReferrals},
	}
	r.DeclinedRate = Rate{r.DeclinedByPerson, r.Referrals}
	r.ReReferralRate = Rate{r.ReReferrals, r.Referrals}
	o := Onward{Made: Count{t.made}, Accepted: Count{t.accepted}, Declined: Count{t.declinedOnward},
		Attended: Count{t.attended}, Completed: Count{t.completed}, DeclinedByReason: map[string]Count{}}
	for _, reason := range events.DeclineReasons {
		o.DeclinedByReason[reason] = Count{t.declinedBy[reason]}
	}
	o.DeclinedByNeed = map[string]Count{}
	for _, n := range needColumns {
		o.DeclinedByNeed[n] = Count{t.declinedByNeed[n]}
	}
	o.AttendanceRate, o.CompletionRate = Rate{o.Attended, o.Accepted}, Rate{o.Completed, o.Accepted}
	r.Onward = o
	for i, m := range Measures {
		r.Wellbeing = append(r.Wellbeing, wellbeing(m, t.changes[i]))
	}
	return r
}

// eachGroup calls f with each group a journey falls in: one, but one per
// reason when grouping by reason (so reason groups may add up to more than
// the total). Labels are precomputed: this runs for every journey of every
// summary.
func eachGroup(j *journey, by string, f func(string)) {
	switch by {
	case "practice":
		f(cmp.Or(j.practice, "unknown"))
	case "reason":
		if len(j.reasons) == 0 {
			f("unknown")
		}
		for _, r := range j.reasons {
			f(r)
		}
	case "age_band":
		f(j.ageBand)
	case "sex":
		f(j.sex)
	case "deprivation_decile":
		f(j.decileLabel)
	default:
		f(j.month)
	}
}

// summarise computes the published summary of the journeys of the teams a
// commissioner commissions. It reads the in-memory view only.
func (m *model) summarise(commissioner string, teams []string, q Query) Summary {
	s := Summary{Commissioner: commissioner, By: q.By, Suppression: suppressionNote}
	if !q.From.IsZero() {
		s.From = q.From.Format(time.DateOnly)
	}
	if !q.To.IsZero() {
		s.To = q.To.Format(time.DateOnly)
	}
	var end time.Time
	if !q.To.IsZero() {
		end = q.To.AddDate(0, 0, 1)
	}
	groups := map[string]*tally{}
	var total tally
	var j *journey
	addTo := func(g string) {
		t := groups[g]
		if t == nil {
			t = &tally{}
			groups[g] = t
		}
		t.add(j)
	}
	teams = slices.Compact(slices.Sorted(slices.Values(teams))) // a team listed twice counts once
	m.mu.RLock()
	for _, team := range teams {
		for _, j = range m.byTeam[team] {
			if (!q.From.IsZero() && j.referred.Before(q.From)) || (!end.IsZero() && !j.referred.Before(end)) {
				continue
			}
			total.add(j)
			eachGroup(j, q.By, addTo)
		}
	}
	m.mu.RUnlock()
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareGroups)
	s.Groups = make([]Row, 0, len(keys))
	for _, k := range keys {
		s.Groups = append(s.Groups, groups[k].publish(k))
	}
	s.Total = total.publish("total")
	return s
}

// compareGroups orders groups naturally: numbers by value, "unknown" last.
func compareGroups(a, b string) int {
	if (a == "unknown") != (b == "unknown") {
		if a == "unknown" {
			return 1
		}
		return -1
	}
	ai, aerr := strconv.Atoi(a)
	bi, berr := strconv.Atoi(b)
	if aerr == nil && berr == nil {
		return cmp.Compare(ai, bi)
	}
	if ia, ib := slices.Index(AgeBands, a), slices.Index(AgeBands, b); ia >= 0 && ib >= 0 {
		return cmp.Compare(ia, ib)
	}
	return cmp.Compare(a, b)
}

// csvHeader is the header of the CSV form of a summary.
func csvHeader() []string {
	h := []string{"group", "referrals", "declined_by_person", "declined_by_person_rate", "contacted", "connected", "attended",
		"first_contact_n", "first_contact_median_days", "first_contact_p90_days",
		"first_vcs_session_n", "first_vcs_session_median_days", "first_vcs_session_p90_days",
		"onward_made", "onward_accepted", "onward_declined"}
	for _, r := range events.DeclineReasons {
		h = append(h, "onward_declined_"+r)
	}
	for _, n := range needColumns {
		h = append(h, "onward_declined_need_"+n)
	}
	h = append(h, "onward_attended", "attendance_rate", "onward_completed", "completion_rate", "re_referrals_12m", "re_referral_rate")
	for _, m := range Measures {
		h = append(h, m+"_n", m+"_mean_change", m+"_ci95_low", m+"_ci95_high", m+"_meaningful_change", m+"_meaningful_change_rate")
	}
	return h
}

func (r Row) csv() []string {
	o := r.Onward
	rec := []string{r.Group, r.Referrals.String(), r.DeclinedByPerson.String(), r.DeclinedRate.String(),
		r.Contacted.String(), r.Connected.String(), r.AttendedPeople.String(),
		r.ToFirstContact.N.String(), r.ToFirstContact.Median.String(), r.ToFirstContact.P90.String(),
		r.ToFirstSession.N.String(), r.ToFirstSession.Median.String(), r.ToFirstSession.P90.String(),
		o.Made.String(), o.Accepted.String(), o.Declined.String()}
	for _, reason := range events.DeclineReasons {
		rec = append(rec, o.DeclinedByReason[reason].String())
	}
	for _, n := range needColumns {
		rec = append(rec, o.DeclinedByNeed[n].String())
	}
	rec = append(rec, o.Attended.String(), o.AttendanceRate.String(), o.Completed.String(), o.CompletionRate.String(),
		r.ReReferrals.String(), r.ReReferralRate.String())
	for _, w := range r.Wellbeing {
		m, mr := "", ""
		if w.Meaningful != nil {
			m, mr = w.Meaningful.String(), w.MeaningfulRate.String()
		}
		rec = append(rec, w.N.String(), w.MeanChange.String(), w.CILow.String(), w.CIHigh.String(), m, mr)
	}
	return rec
}

// writeCSV writes the summary as CSV: one row per group, then the total.
func (s Summary) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader()); err != nil {
		return err
	}
	for _, r := range s.Groups {
		if err := cw.Write(r.csv()); err != nil {
			return err
		}
	}
	if err := cw.Write(s.Total.csv()); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
