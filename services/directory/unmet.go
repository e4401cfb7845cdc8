package directory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/views"
)

// UnmetNeedProjection names the unmet-need view over JOURNEYS.
const UnmetNeedProjection = "directory_unmet_need"

// Keys of the unmet-need view.
const (
	aggKey       = "agg"      // the counts, one small document
	onwardPrefix = "onward."  // onward referrals still waiting for an answer
	needsPrefix  = "journey." // a journey's need categories and whether it is open
)

// unmetCounts are the unmet-need counts. They hold no journey or person:
// only reasons, categories, areas and service ids.
type unmetCounts struct {
	// Declines by "reason|category|area".
	Declines map[string]int `json:"declines"`
	// Waiting: onward referrals put on a service's waiting list and not yet
	// answered; Pending: all onward referrals not yet answered.
	Waiting map[string]int `json:"waiting"`
	Pending map[string]int `json:"pending"`
	// NeedSets: open journeys by their sorted need categories ("a,b").
	NeedSets map[string]int `json:"need_sets"`
}

type onwardRecord struct {
	ServiceID string `json:"service_id"`
	Category  string `json:"category"`
	Area      string `json:"area"`
	Waiting   bool   `json:"waiting"`
}

type journeyNeeds struct {
	Needs string `json:"needs"` // sorted categories joined by ','
	Open  bool   `json:"open"`
}

// unmetNeed is the projector. Where a declined onward referral belongs
// (category, area) is where its service stood in the directory when the
// referral was recorded, kept with the referral: a later change of the
// service does not move declines that already happened, live or rebuilt.
type unmetNeed struct {
	dir *Service
	// counts are those of tx: reloaded at each new batch, so a view that
	// was dropped and is being rebuilt starts again from what it holds.
	tx     *views.Tx
	counts unmetCounts
}

func (p *unmetNeed) Name() string { return UnmetNeedProjection }

func (p *unmetNeed) load(tx *views.Tx) error {
	if p.tx == tx {
		return nil
	}
	p.counts = unmetCounts{}
	if _, err := tx.GetJSON(aggKey, &p.counts); err != nil {
		return fmt.Errorf("unmet need counts: %w", err)
	}
	if p.counts.Declines == nil {
		p.counts.Declines = map[string]int{}
	}
	if p.counts.Waiting == nil {
		p.counts.Waiting = map[string]int{}
	}
	if p.counts.Pending == nil {
		p.counts.Pending = map[string]int{}
	}
	if p.counts.NeedSets == nil {
		p.counts.NeedSets = map[string]int{}
	}
	p.tx = tx
	return nil
}

// onwardKey hashes the onward referral id: ids are chosen by another
// service, and a key must be safe whatever they look like.
func onwardKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return onwardPrefix + hex.EncodeToString(sum[:16])
}

func (p *unmetNeed) Apply(tx *views.Tx, ev views.Event) error {
	env := ev.Envelope
	jid := env.GetJourneyId()
	if events.ParseID(jid) != nil {
		return nil // not a journey this version can key
	}
	if err := p.load(tx); err != nil {
		return err
	}
	c := &p.counts
	changed := false
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ReferralReceived:
		var cats []string
		for _, r := range e.ReferralReceived.GetReasons() {
			if cat, ok := events.ReasonNeed(r); ok {
				cats = append(cats, cat)
			}
		}
		ch, err := p.setNeeds(tx, jid, cats)
		if err != nil {
			return err
		}
		changed = ch
	case *eventsv1.Envelope_NeedsAssessed:
		var cats []string
		for _, n := range e.NeedsAssessed.GetNeeds() {
			if cat, ok := events.PlaceNeed(n); ok {
				cats = append(cats, cat)
			}
		}
		if len(cats) > 0 {
			ch, err := p.setNeeds(tx, jid, cats)
			if err != nil {
				return err
			}
			changed = ch
		}
	case *eventsv1.Envelope_PatientDeclined, *eventsv1.Envelope_JourneyClosed:
		ch, err := p.setOpen(tx, jid, false)
		if err != nil {
			return err
		}
		changed = ch
	case *eventsv1.Envelope_JourneyReopened:
		ch, err := p.setOpen(tx, jid, true)
		if err != nil {
			return err
		}
		changed = ch
	case *eventsv1.Envelope_OnwardReferralMade:
		m := e.OnwardReferralMade
		cat, area := p.dir.placementAt(m.GetServiceId(), env.GetRecordedAt().AsTime())
		rec := onwardRecord{ServiceID: m.GetServiceId(), Category: cat, Area: area, Waiting: m.GetWaitingList()}
		if err := tx.PutJSON(onwardKey(m.GetOnwardReferralId()), rec); err != nil {
			return err
		}
		c.Pending[rec.ServiceID]++
		if rec.Waiting {
			c.Waiting[rec.ServiceID]++
		}
		changed = true
	case *eventsv1.Envelope_OnwardReferralAccepted:
		ch, err := p.answered(tx, e.OnwardReferralAccepted.GetOnwardReferralId(), "")
		if err != nil {
			return err
		}
		changed = ch
	case *eventsv1.Envelope_OnwardReferralWithdrawn:
		ch, err := p.answered(tx, e.OnwardReferralWithdrawn.GetOnwardReferralId(), "")
		if err != nil {
			return err
		}
		changed = ch
	case *eventsv1.Envelope_OnwardReferralDeclined:
		reason := e.OnwardReferralDeclined.GetReason()
		if !slices.Contains(events.DeclineReasons, reason) {
			reason = "other"
		}
		ch, err := p.answered(tx, e.OnwardReferralDeclined.GetOnwardReferralId(), reason)
		if err != nil {
			return err
		}
		changed = ch
	}
	if changed {
		return tx.PutJSON(aggKey, c)
	}
	return nil
}

// answered closes an onward referral's pending record; a decline is
// counted under its reason, the service's category and area.
func (p *unmetNeed) answered(tx *views.Tx, onwardID, declineReason string) (bool, error) {
	c := &p.counts
	var rec onwardRecord
	ok, err := tx.GetJSON(onwardKey(onwardID), &rec)
	if err != nil {
		return false, err
	}
	if !ok {
		if declineReason == "" {
			return false, nil
		}
		rec = onwardRecord{Category: "unknown", Area: "unknown"}
	} else {
		tx.Delete(onwardKey(onwardID))
		decrement(c.Pending, rec.ServiceID)
		if rec.Waiting {
			decrement(c.Waiting, rec.ServiceID)
		}
	}
	if declineReason != "" {
		c.Declines[declineReason+"|"+rec.Category+"|"+rec.Area]++
	}
	return true, nil
}

func decrement(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
		return
	}
	m[k]--
}

// setNeeds records a journey's need categories (replacing earlier ones).
func (p *unmetNeed) setNeeds(tx *views.Tx, jid string, cats []string) (bool, error) {
	slices.Sort(cats)
	set := strings.Join(slices.Compact(cats), ",")
	var rec journeyNeeds
	ok, err := tx.GetJSON(needsPrefix+jid, &rec)
	if err != nil {
		return false, err
	}
	if !ok {
		if set == "" {
			return false, nil
		}
		rec.Open = true
	}
	if rec.Needs == set {
		return false, nil
	}
	if rec.Open && rec.Needs != "" {
		decrement(p.counts.NeedSets, rec.Needs)
	}
	rec.Needs = set
	if rec.Open && set != "" {
		p.counts.NeedSets[set]++
	}
	return true, tx.PutJSON(needsPrefix+jid, rec)
}

// setOpen follows a journey's closing and reopening: only open journeys'
// needs count.
func (p *unmetNeed) setOpen(tx *views.Tx, jid string, open bool) (bool, error) {
	var rec journeyNeeds
	ok, err := tx.GetJSON(needsPrefix+jid, &rec)
	if err != nil || !ok || rec.Open == open {
		return false, err
	}
	rec.Open = open
	if rec.Needs != "" {
		if open {
			p.counts.NeedSets[rec.Needs]++
		} else {
			decrement(p.counts.NeedSets, rec.Needs)
		}
	}
	return true, tx.PutJSON(needsPrefix+jid, rec)
}

// unmetReader serves the view.
type unmetReader struct {
	dir *Service
	run *views.Runner
}

func (s *Service) serveUnmetNeed(ctx context.Context, cfg Config) (*views.Runner, error) {
	run, err := cfg.Projections.Project(ctx, &unmetNeed{dir: s})
	if err != nil {
		return nil, fmt.Errorf("unmet need projection: %w", err)
	}
	u := &unmetReader{dir: s, run: run}
	cfg.HTTP.Handle("GET /v1/directory/unmet-need", unmetNeedReaders, u.serve)
	return run, nil
}

// UnmetNeed is the answer of GET /v1/directory/unmet-need. Counts are
// numbers, except for commissioners: 1 to 7 shows as "*" and larger
// counts are rounded to the nearest 5, as in the outcome summaries.
type UnmetNeed struct {
	Declines    DeclineCounts         `json:"declines"`
	Needs       []NeedCount           `json:"needs"`
	Unmatched   UnmatchedNeeds        `json:"unmatched"`
	WaitingList []WaitingCount        `json:"waiting_lists"`
	Suppressed  bool                  `json:"small_numbers_suppressed"`
	AsOf        uint64                `json:"as_of_sequence"`
	Categories  []events.NeedCategory `json:"categories"`
}

// DeclineCounts are VCS declines of onward referrals.
type DeclineCounts struct {
	Total      any            `json:"total"`
	ByReason   map[string]any `json:"by_reason"`
	ByCategory map[string]any `json:"by_category"`
	ByArea     map[string]any `json:"by_area"`
	Rows       []DeclineRow   `json:"rows"`
}

// DeclineRow is declines of one reason, category and area.
type DeclineRow struct {
	Reason   string `json:"reason"`
	Category string `json:"category"`
	Area     string `json:"area"`
	Count    any    `json:"count"`
}

// NeedCount is the open referrals needing a category, against the
// services that can take them now.
type NeedCount struct {
	Category          string `json:"category"`
	CategoryName      string `json:"category_name"`
	OpenReferrals     any    `json:"open_referrals"`
	AcceptingServices int    `json:"accepting_services"`
}

// UnmatchedNeeds are open referrals none of whose needs any accepting
// service meets now.
type UnmatchedNeeds struct {
	Referrals any            `json:"referrals"`
	ByNeeds   []UnmatchedSet `json:"by_needs"`
}

// UnmatchedSet is one combination of needs that nothing meets.
type UnmatchedSet struct {
	Categories []string `json:"categories"`
	Referrals  any      `json:"referrals"`
}

// WaitingCount is one service's unanswered onward referrals.
type WaitingCount struct {
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	Category    string `json:"category"`
	Capacity    string `json:"capacity"`
	WaitingList any    `json:"waiting_list"`
	Pending     any    `json:"pending"`
}

func (u *unmetReader) serve(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var c unmetCounts
	e, err := u.run.KV().Get(r.Context(), aggKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return &events.Error{Code: events.CodeUnavailable, Message: "the unmet-need view is unavailable"}
	default:
		if err := jsonUnmarshal(e.Value(), &c); err != nil {
			return fmt.Errorf("unmet need counts: %w", err)
		}
	}
	api.WriteJSON(w, http.StatusOK, u.dir.unmetNeed(c, p.Kind == events.KindCommissioner, u.run.Applied()))
	return nil
}

// unmetNeed turns the counts into the answer, against the directory as it
// is now (which services accept referrals).
func (s *Service) unmetNeed(c unmetCounts, suppress bool, asOf uint64) UnmetNeed {
	n := func(v int) any {
		if !suppress {
			return v
		}
		switch {
		case v == 0:
			return 0
		case v < 8:
			return "*"
		}
		return (v + 2) / 5 * 5
	}
	out := UnmetNeed{Suppressed: suppress, AsOf: asOf, Categories: events.NeedCategories,
		Declines: DeclineCounts{ByReason: map[string]any{}, ByCategory: map[string]any{}, ByArea: map[string]any{}, Rows: []DeclineRow{}},
		Needs:    []NeedCount{}, Unmatched: UnmatchedNeeds{ByNeeds: []UnmatchedSet{}}, WaitingList: []WaitingCount{}}
	total := 0
	byReason, byCat, byArea := map[string]int{}, map[string]int{}, map[string]int{}
	for _, k := range slices.Sorted(maps.Keys(c.Declines)) {
		parts := strings.SplitN(k, "|", 3)
		if len(parts) != 3 {
			continue
		}
		v := c.Declines[k]
		total += v
		byReason[parts[0]] += v
		byCat[parts[1]] += v
		byArea[parts[2]] += v
		out.Declines.Rows = append(out.Declines.Rows, DeclineRow{Reason: parts[0], Category: parts[1], Area: parts[2], Count: n(v)})
	}
	out.Declines.Total = n(total)
	for k, v := range byReason {
		out.Declines.ByReason[k] = n(v)
	}
	for k, v := range byCat {
		out.Declines.ByCategory[k] = n(v)
	}
	for k, v := range byArea {
		out.Declines.ByArea[k] = n(v)
	}

	acc := s.acceptingCategories()
	needing := map[string]int{}
	unmatched := 0
	for _, set := range slices.Sorted(maps.Keys(c.NeedSets)) {
		v := c.NeedSets[set]
		cats := strings.Split(set, ",")
		met := false
		for _, cat := range cats {
			needing[cat] += v
			met = met || acc[cat] > 0
		}
		if !met {
			unmatched += v
			out.Unmatched.ByNeeds = append(out.Unmatched.ByNeeds, UnmatchedSet{Categories: cats, Referrals: n(v)})
		}
	}
	out.Unmatched.Referrals = n(unmatched)
	for _, cat := range events.NeedCategories {
		out.Needs = append(out.Needs, NeedCount{Category: cat.ID, CategoryName: cat.Name,
			OpenReferrals: n(needing[cat.ID]), AcceptingServices: acc[cat.ID]})
	}
	ids := slices.Sorted(maps.Keys(c.Pending))
	for _, id := range slices.Sorted(maps.Keys(c.Waiting)) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		wc := WaitingCount{ServiceID: id, WaitingList: n(c.Waiting[id]), Pending: n(c.Pending[id])}
		if v, ok := s.ServiceView(id); ok {
			wc.ServiceName, wc.Category, wc.Capacity = v.Name, v.Category, v.Capacity
		}
		out.WaitingList = append(out.WaitingList, wc)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
