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
	// threshold (MeaningfulThreshold points); absent for measures without
	// a threshold.
	Meaningful          *Count   `json:"meaningful_change,omitempty"`
	MeaningfulRate      *Rate    `json:"meaningful_change_rate,omitempty"`
	MeaningfulThreshold *float64 `json:"meaningful_change_threshold,omitempty"`
}

// Measures are the wellbeing measures summarised, in order.
var Measures = [numMeasures]string{"SWEMWBS", "WEMWBS", "UCLA3", "ONS4.life_satisfaction", "ONS4.worthwhile", "ONS4.happiness", "ONS4.anxiety"}

// meaningfulThreshold is the smallest change in score counted as a
// meaningful improvement, per instrument (issue 16 fixes 3 points on both):
//
//   - SWEMWBS (metric score 7-35): 3 points. Shah et al. 2018 (Health and
//     Quality of Life Outcomes 16:238, responsiveness of SWEMWBS) give a
//     minimal important change of about 3: 2.77 standard errors of
//     measurement, 2.87 points.
//   - WEMWBS (14-70): 3 points, the lower end of the range of Maheswaran et
//     al. 2012 (Health and Quality of Life Outcomes 10:156, responsiveness
//     of WEMWBS), whose SEM of 2.4-3.1 puts the minimal important
//     difference between about 3 and 8 points. So the share meeting 3 on
//     WEMWBS is an upper figure; a stricter reading would take 8.
//
// UCLA3 and the ONS4 items have no threshold here, so no meaningful
// change is counted for them.
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
		w.Meaningful, w.MeaningfulRate, w.MeaningfulThreshold = &m, &r, &t
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

// Continuity is how often a person referred again within 12 months was
// seen by the worker who saw them before (issue 17): of the re-referrals
// whose worker and previous worker are both known, those with the same
// worker.
type Continuity struct {
	ReReferrals Count `json:"re_referrals_with_worker"`
	SameWorker  Count `json:"same_worker"`
	Rate        Rate  `json:"same_worker_rate"`
}

// Risks are the risks and safeguarding concerns link workers recorded:
// counts only, never who or what.
type Risks struct {
	Recorded  Count            `json:"recorded"`
	People    Count            `json:"people"`
	Escalated Count            `json:"escalated_to_gp"`
	ByKind    map[string]Count `json:"by_kind"`
}

// Row is one group's published figures.
type Row struct {
	Group            string `json:"group"`
	Referrals        Count  `json:"referrals"`
	DeclinedByPerson Count  `json:"declined_by_person"`
	DeclinedRate     Rate   `json:"declined_by_person_rate"`
	Contacted        Count  `json:"contacted"`
	Connected        Count  `json:"connected"`
	ConnectedRate    Rate   `json:"connected_rate"`
	// Signposted counts people told of a service without an onward
	// referral taken up (events.ConnectionSignposted).
	Signposted     Count       `json:"signposted"`
	SignpostedRate Rate        `json:"signposted_rate"`
	AttendedPeople Count       `json:"attended"`
	ToFirstContact Duration    `json:"referral_to_first_contact"`
	ToFirstSession Duration    `json:"referral_to_first_vcs_session"`
	Onward         Onward      `json:"onward_referrals"`
	Wellbeing      []Wellbeing `json:"wellbeing"`
	ReReferrals    Count       `json:"re_referrals_12m"`
	ReReferralRate Rate        `json:"re_referral_rate"`
	Continuity     Continuity  `json:"continuity"`
	Risks          Risks       `json:"risks"`
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
var Groupings = []string{"month", "practice", "reason", "age_band", "sex", "deprivation_decile", "ethnicity", "source"}

// Query selects journeys for a summary by referral date (inclusive, the
// day in England).
type Query struct {
	From, To time.Time // zero: unbounded
	By       string
}

// tally is one group's raw figures, never published as they are.
type tally struct {
	referrals, declined, contacted, connected, signposted, attendedPeople int
	toContact, toSession                                                  []float64
	made, accepted, declinedOnward, attended, completed                   int
	declinedBy, declinedByNeed                                            [16]int
	changes                                                               [numMeasures][]float64
	reReferrals, reReferralsKnown, sameWorker                             int
	risks, riskPeople, escalated                                          int
	riskKinds                                                             [numRiskKinds]int
}

func (t *tally) add(r *record) {
	t.referrals++
	if r.has(flagDeclined) {
		t.declined++
	}
	if r.has(flagContacted) {
		t.contacted++
	}
	if r.FirstContact != 0 {
		t.toContact = append(t.toContact, float64(r.FirstContact-r.Referred)/86400)
	}
	if r.has(flagConnected) {
		t.connected++
	}
	if r.has(flagSignposted) {
		t.signposted++
	}
	if r.FirstSession != 0 {
		t.toSession = append(t.toSession, float64(r.FirstSession-dateOf(r.referredAt()).Unix())/86400)
	}
	attended := false
	for _, o := range r.Onward {
		t.made++
		if o.Flags&onwardAccepted != 0 {
			t.accepted++
		}
		if o.Decline > 0 && int(o.Decline) <= len(events.DeclineReasons) {
			t.declinedOnward++
			t.declinedBy[o.Decline-1]++
			if r.Needs == 0 {
				t.declinedByNeed[len(needColumns)-1]++ // unassessed
			}
			for i := range needColumns {
				if r.Needs&(1<<i) != 0 {
					t.declinedByNeed[i]++
				}
			}
		}
		if o.Flags&onwardAttended != 0 {
			t.attended++
			attended = true
		}
		if o.Flags&onwardCompleted != 0 {
			t.completed++
		}
	}
	if attended {
		t.attendedPeople++
	}
	if r.HasFollowUp != 0 {
		for i := range numMeasures {
			if c, ok := r.change(i); ok {
				t.changes[i] = append(t.changes[i], c)
			}
		}
	}
	if r.has(flagReReferral) {
		t.reReferrals++
		if r.has(flagSameKnown) {
			t.reReferralsKnown++
			if r.has(flagSameWorker) {
				t.sameWorker++
			}
		}
	}
	n := 0
	for i, k := range r.Risks {
		t.riskKinds[i] += int(k)
		n += int(k)
	}
	if n > 0 {
		t.risks += n
		t.riskPeople++
	}
	t.escalated += int(r.Escalated)
}

// dateOf is the referral's day in England, as midnight UTC of that day.
func dateOf(t time.Time) time.Time { return events.UKDate(t) }

func (t *tally) publish(group string) Row {
	r := Row{
		Group: group, Referrals: Count{t.referrals}, DeclinedByPerson: Count{t.declined},
		Contacted: Count{t.contacted}, Connected: Count{t.connected}, Signposted: Count{t.signposted},
		AttendedPeople: Count{t.attendedPeople},
		ToFirstContact: duration(t.toContact), ToFirstSession: duration(t.toSession),
		ReReferrals: Count{t.reReferrals},
	}
	r.DeclinedRate = Rate{r.DeclinedByPerson, r.Referrals}
	r.ConnectedRate = Rate{r.Connected, r.Referrals}
	r.SignpostedRate = Rate{r.Signposted, r.Referrals}
	r.ReReferralRate = Rate{r.ReReferrals, r.Referrals}
	o := Onward{Made: Count{t.made}, Accepted: Count{t.accepted}, Declined: Count{t.declinedOnward},
		Attended: Count{t.attended}, Completed: Count{t.completed}, DeclinedByReason: map[string]Count{}}
	for i, reason := range events.DeclineReasons {
		o.DeclinedByReason[reason] = Count{t.declinedBy[i]}
	}
	o.DeclinedByNeed = map[string]Count{}
	for i, n := range needColumns {
		o.DeclinedByNeed[n] = Count{t.declinedByNeed[i]}
	}
	o.AttendanceRate, o.CompletionRate = Rate{o.Attended, o.Accepted}, Rate{o.Completed, o.Accepted}
	r.Onward = o
	for i, m := range Measures {
		r.Wellbeing = append(r.Wellbeing, wellbeing(m, t.changes[i]))
	}
	c := Continuity{ReReferrals: Count{t.reReferralsKnown}, SameWorker: Count{t.sameWorker}}
	c.Rate = Rate{c.SameWorker, c.ReReferrals}
	r.Continuity = c
	r.Risks = Risks{Recorded: Count{t.risks}, People: Count{t.riskPeople}, Escalated: Count{t.escalated}, ByKind: map[string]Count{}}
	for i, k := range events.RiskKinds {
		r.Risks.ByKind[k] = Count{t.riskKinds[i]}
	}
	return r
}

// eachGroup calls f with each group a journey falls in: one, but one per
// reason when grouping by reason (so reason groups may add up to more than
// the total).
func eachGroup(d *dated, by string, f func(string)) {
	r := &d.rec
	switch by {
	case "practice":
		f(cmp.Or(r.Practice, "unknown"))
	case "reason":
		if len(r.Reasons) == 0 {
			f("unknown")
		}
		for _, x := range r.Reasons {
			f(x)
		}
	case "age_band":
		f(cmp.Or(r.AgeBand, "unknown"))
	case "sex":
		f(cmp.Or(r.Sex, "unknown"))
	case "deprivation_decile":
		if r.Decile == 0 {
			f("unknown")
		} else {
			f(strconv.Itoa(int(r.Decile)))
		}
	case "ethnicity":
		f(cmp.Or(r.Ethnicity, "unknown"))
	case "source":
		f(cmp.Or(r.Source, "unknown"))
	default:
		f(d.day[:7])
	}
}

// summary gathers the tallies of one summary.
type summary struct {
	by     string
	groups map[string]*tally
	total  tally
	// swemwbs bins the SWEMWBS changes for the dashboard's chart.
	swemwbs []int
}

func newSummary(by string) *summary {
	return &summary{by: by, groups: map[string]*tally{}, swemwbs: make([]int, len(changeBands))}
}

func (s *summary) add(d *dated) {
	s.total.add(&d.rec)
	eachGroup(d, s.by, func(g string) {
		t := s.groups[g]
		if t == nil {
			t = &tally{}
			s.groups[g] = t
		}
		t.add(&d.rec)
	})
	if c, ok := d.rec.change(0); ok { // Measures[0] is SWEMWBS
		for i, band := range changeBands {
			if c < band.below {
				s.swemwbs[i]++
				break
			}
		}
	}
}

func (s *summary) publish(commissioner string, q Query) Summary {
	out := Summary{Commissioner: commissioner, By: q.By, Suppression: suppressionNote}
	if !q.From.IsZero() {
		out.From = q.From.Format(time.DateOnly)
	}
	if !q.To.IsZero() {
		out.To = q.To.Format(time.DateOnly)
	}
	keys := make([]string, 0, len(s.groups))
	for k := range s.groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareGroups)
	out.Groups = make([]Row, 0, len(keys))
	for _, k := range keys {
		out.Groups = append(out.Groups, s.groups[k].publish(k))
	}
	out.Total = s.total.publish("total")
	return out
}

// changeBands are the bins of the wellbeing change distribution: 3 points
// is the meaningful change on SWEMWBS (meaningfulThreshold).
var changeBands = []struct {
	label string
	below float64 // upper bound, exclusive
}{{"worse by 3+", -3 + 1e-9}, {"worse by <3", -1e-9}, {"no change", 1e-9}, {"better by <3", 3 - 1e-9}, {"better by 3+", math.Inf(1)}}

// compareGroups orders groups naturally: numbers by value, age bands and
// ethnic categories in their published order, "unknown" last.
func compareGroups(a, b string) int {
	if (a == "unknown") != (b == "unknown") {
		if a == "unknown" {
			return 1
		}
		return -1
	}
	if ia, ib := ethnicIndex(a), ethnicIndex(b); ia >= 0 && ib >= 0 {
		return cmp.Compare(ia, ib)
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

// ethnicIndex places a group label among the ethnic categories (letters
// and 99 only: a decile 9 is not one), or -1.
func ethnicIndex(g string) int {
	if len(g) != 1 && g != "99" {
		return -1
	}
	return slices.IndexFunc(events.EthnicCategories, func(c events.EthnicCategory) bool { return c.Code == g })
}

// csvHeader is the header of the CSV form of a summary.
func csvHeader() []string {
	h := []string{"group", "referrals", "declined_by_person", "declined_by_person_rate", "contacted",
		"connected", "connected_rate", "signposted", "signposted_rate", "attended",
		"first_contact_n", "first_contact_median_days", "first_contact_p90_days",
		"first_vcs_session_n", "first_vcs_session_median_days", "first_vcs_session_p90_days",
		"onward_made", "onward_accepted", "onward_declined"}
	for _, r := range events.DeclineReasons {
		h = append(h, "onward_declined_"+r)
	}
	for _, n := range needColumns {
		h = append(h, "onward_declined_need_"+n)
	}
	h = append(h, "onward_attended", "attendance_rate", "onward_completed", "completion_rate", "re_referrals_12m", "re_referral_rate",
		"re_referrals_with_worker", "same_worker", "same_worker_rate", "risks_recorded", "people_with_risks", "risks_escalated_to_gp")
	for _, k := range events.RiskKinds {
		h = append(h, "risks_"+k)
	}
	for _, m := range Measures {
		h = append(h, m+"_n", m+"_mean_change", m+"_ci95_low", m+"_ci95_high", m+"_meaningful_change", m+"_meaningful_change_rate")
	}
	return h
}

func (r Row) csv() []string {
	o := r.Onward
	rec := []string{r.Group, r.Referrals.String(), r.DeclinedByPerson.String(), r.DeclinedRate.String(),
		r.Contacted.String(), r.Connected.String(), r.ConnectedRate.String(), r.Signposted.String(), r.SignpostedRate.String(),
		r.AttendedPeople.String(),
		r.ToFirstContact.N.String(), r.ToFirstContact.Median.String(), r.ToFirstContact.P90.String(),
		r.ToFirstSession.N.String(), r.ToFirstSession.Median.String(), r.ToFirstSession.P90.String(),
		o.Made.String(), o.Accepted.String(), o.Declined.String()}
	for _, reason := range events.DeclineReasons {
		rec = append(rec, o.DeclinedByReason[reason].String())
	}
	for _, n := range needColumns {
		rec = append(rec, o.DeclinedByNeed[n].String())
	}
	c, k := r.Continuity, r.Risks
	rec = append(rec, o.Attended.String(), o.AttendanceRate.String(), o.Completed.String(), o.CompletionRate.String(),
		r.ReReferrals.String(), r.ReReferralRate.String(), c.ReReferrals.String(), c.SameWorker.String(), c.Rate.String(),
		k.Recorded.String(), k.People.String(), k.Escalated.String())
	for _, kind := range events.RiskKinds {
		rec = append(rec, k.ByKind[kind].String())
	}
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
