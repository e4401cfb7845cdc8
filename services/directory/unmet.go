package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/views"
)

// UnmetNeedProjection names the unmet-need view over JOURNEYS.
const UnmetNeedProjection = "directory_unmet_need"

// Keys of the unmet-need view. It holds counts, and each decline by need
// and time (for gaps: declines before and after a service was linked);
// no journey, no person: only reasons, categories, areas, service ids and
// hashed onward-referral ids.
const (
	countPrefix    = "n."   // counters: n.<kind>.<key> -> decimal
	declinesKey    = "n.d." // declines by reason|category|area
	pendingKey     = "n.p." // onward referrals awaiting an answer, by service
	waitingKey     = "n.w." // ... of them on the service's waiting list
	needSetKey     = "n.s." // open journeys by their sorted need categories ("a,b")
	declinedPrefix = "t."   // t.<category>.<declined at>.<onward key> -> area
)

// declinedAtLayout orders decline times as text: fixed width, UTC.
const declinedAtLayout = "20060102T150405.000000000Z"

// unmetNeed is the projection. It renders from the folded journey
// (views.Change.Before and After, events.Evolve's): whether the journey is
// open and its needs, and each onward referral's status, waiting list and
// decline come from events; the projection only counts the difference the
// change made. Where a declined onward referral belongs (category, area)
// is where its service stood in the directory when the referral was made
// (DirectoryService.PlacementAt), so a rebuilt view equals the live one
// and a later change of the service does not move past declines.
type unmetNeed struct{ dir *Service }

func (unmetNeed) Name() string { return UnmetNeedProjection }

func (p unmetNeed) Apply(b *views.Batch, c views.Change) error {
	delta := map[string]int{}
	// Most events change neither whether the journey is open nor its needs
	// (the referral is never changed, only replaced on erasure): only
	// then is the need set worked out.
	needsMoved := c.Before.Open() != c.After.Open() || c.Before.Referral != c.After.Referral ||
		!slices.Equal(c.Before.Needs, c.After.Needs)
	if needsMoved {
		if before, after := needSet(c.Before), needSet(c.After); before != after {
			if before != "" {
				delta[needSetKey+before]--
			}
			if after != "" {
				delta[needSetKey+after]++
			}
		}
	}
	// Only the onward referrals the change touched: Evolve never removes
	// one, so each is in After.
	for _, o := range c.After.Onward {
		old, had := c.Before.OnwardByID(o.ID)
		if had && sameStanding(old, o) {
			continue
		}
		if had {
			p.count(b, delta, old, -1)
		}
		p.count(b, delta, o, +1)
	}
	for k, d := range delta {
		if d == 0 {
			continue
		}
		n, err := counter(b, k)
		if err != nil {
			return err
		}
		if n += d; n <= 0 {
			b.Delete(k)
		} else {
			b.Set(k, strconv.AppendInt(nil, int64(n), 10))
		}
	}
	return nil
}

// needSet is what an open journey counts under: its need categories
// joined; "" when it is not open or has none.
func needSet(s events.State) string {
	if !s.Open() {
		return ""
	}
	return strings.Join(s.NeedCategories(), ",")
}

// sameStanding reports whether nothing the view counts of an onward
// referral changed.
func sameStanding(a, b events.Onward) bool {
	return a.Status == b.Status && a.ServiceID == b.ServiceID && a.WaitingList == b.WaitingList &&
		a.DeclineReason == b.DeclineReason && a.DeclinedAt.Equal(b.DeclinedAt)
}

// count adds (sign +1) or takes away (-1) what one onward referral counts.
func (p unmetNeed) count(b *views.Batch, delta map[string]int, o events.Onward, sign int) {
	if o.Awaiting() {
		delta[pendingKey+o.ServiceID] += sign
		if o.WaitingList {
			delta[waitingKey+o.ServiceID] += sign
		}
	}
	if o.Status != events.OnwardDeclined {
		return
	}
	category, area := p.dir.placementAt(o.ServiceID, o.MadeAt)
	delta[declinesKey+o.DeclineReason+"|"+category+"|"+area] += sign
	k := declinedPrefix + category + "." + o.DeclinedAt.UTC().Format(declinedAtLayout) + "." + onwardKey(o.ID)
	if sign > 0 {
		b.Set(k, []byte(area))
	} else {
		b.Delete(k)
	}
}

// onwardKey hashes the onward referral id: ids are chosen by another
// service, and a key must be safe whatever they look like.
func onwardKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func counter(b *views.Batch, k string) (int, error) {
	v, ok, err := b.Get(k)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("unmet need counter %s: %w", k, err)
	}
	return n, nil
}

// unmetCounts are the unmet-need counts as the view holds them.
type unmetCounts struct {
	// Declines by "reason|category|area".
	Declines map[string]int
	// Waiting: onward referrals put on a service's waiting list and not yet
	// answered; Pending: all onward referrals not yet answered.
	Waiting map[string]int
	Pending map[string]int
	// NeedSets: open journeys by their sorted need categories ("a,b").
	NeedSets map[string]int
	// AsOf is the view's checkpoint: the last journey event it applied.
	AsOf uint64
}

// readUnmet reads the counts from the view.
func (s *Service) readUnmet() (unmetCounts, error) {
	c := unmetCounts{Declines: map[string]int{}, Waiting: map[string]int{}, Pending: map[string]int{}, NeedSets: map[string]int{}}
	v := s.views.View(UnmetNeedProjection)
	err := v.ForEach(countPrefix, func(key string, value []byte) error {
		n, err := strconv.Atoi(string(value))
		if err != nil {
			return fmt.Errorf("unmet need counter %s: %w", key, err)
		}
		switch {
		case strings.HasPrefix(key, declinesKey):
			c.Declines[key[len(declinesKey):]] = n
		case strings.HasPrefix(key, waitingKey):
			c.Waiting[key[len(waitingKey):]] = n
		case strings.HasPrefix(key, pendingKey):
			c.Pending[key[len(pendingKey):]] = n
		case strings.HasPrefix(key, needSetKey):
			c.NeedSets[key[len(needSetKey):]] = n
		}
		return nil
	})
	if err != nil {
		return unmetCounts{}, err
	}
	if c.AsOf, err = v.Checkpoint(); err != nil {
		return unmetCounts{}, err
	}
	return c, nil
}

// declineTally counts the declines of onward referrals to services of a
// category, before a time and from it on, in all areas and in one.
type declineTally struct{ before, after, areaBefore, areaAfter int }

// declinesOf tallies the declines of a need (a category) around a time
// (the zero time: all are before); area is matched without regard to case.
func (s *Service) declinesOf(category, area string, at time.Time) (declineTally, error) {
	var t declineTally
	cut := ""
	if !at.IsZero() {
		cut = at.UTC().Format(declinedAtLayout)
	}
	prefix := declinedPrefix + category + "."
	err := s.views.View(UnmetNeedProjection).ForEach(prefix, func(key string, value []byte) error {
		rest := key[len(prefix):]
		when := rest[:max(strings.LastIndexByte(rest, '.'), 0)] // the time holds a '.' too
		inArea := strings.EqualFold(strings.TrimSpace(string(value)), strings.TrimSpace(area))
		if cut == "" || when < cut {
			t.before++
			if inArea {
				t.areaBefore++
			}
		} else {
			t.after++
			if inArea {
				t.areaAfter++
			}
		}
		return nil
	})
	return t, err
}

func (s *Service) serveUnmetNeed(h Routes) {
	h.Handle("GET /v1/directory/unmet-need", unmetNeedReaders, s.getUnmetNeed)
}

func (s *Service) getUnmetNeed(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	s.catchUp(r.Context(), UnmetNeedProjection)
	u, err := s.UnmetNeed(p)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, u)
	return nil
}

// UnmetNeed is the unmet-need view as p may see it.
func (s *Service) UnmetNeed(p api.Principal) (UnmetNeed, error) {
	c, err := s.readUnmet()
	if err != nil {
		s.log.Error("reading the unmet-need view", "err", err)
		return UnmetNeed{}, &events.Error{Code: events.CodeUnavailable, Message: "the unmet-need view is unavailable"}
	}
	return s.unmetNeed(c, p.Kind == events.KindCommissioner), nil
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

// suppressed shows a count as commissioners see counts of people: 1 to 7
// as "*", larger ones rounded to the nearest 5; others see it as it is.
func suppressed(suppress bool) func(int) any {
	return func(v int) any {
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
}

// unmetNeed turns the counts into the answer, against the directory as it
// is now (which services accept referrals).
func (s *Service) unmetNeed(c unmetCounts, suppress bool) UnmetNeed {
	n := suppressed(suppress)
	out := UnmetNeed{Suppressed: suppress, AsOf: c.AsOf, Categories: events.NeedCategories,
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
