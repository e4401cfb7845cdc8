package directory

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"linkway/events"
	"linkway/services/platform/api"
)

// Gaps in provision: a panel records a need no service meets in an area
// (on the panel's own subject of the DIRECTORY stream, events.RecordGap),
// links the services set up to meet it (events.LinkGapService), and sees
// the declines of onward referrals for that need before and after the
// first link, from the unmet-need view. A gap is open until a service is
// linked, closed from then.

// gapNamespace scopes gap ids made from an Idempotency-Key, so a retried
// POST records the gap once.
var gapNamespace = uuid.MustParse("5d0f3c2e-8a61-4f7b-b0a4-6c2e9d1f7a35")

// Gap statuses.
const (
	GapOpen   = "open"
	GapClosed = "closed"
)

// GapView is a gap as the JSON API and the page show it.
type GapView struct {
	GapID      string           `json:"gap_id"`
	Need       string           `json:"need"`
	NeedName   string           `json:"need_name"`
	Area       string           `json:"area"`
	Detail     string           `json:"detail"`
	Status     string           `json:"status"`
	RecordedAt time.Time        `json:"recorded_at"`
	RecordedBy string           `json:"recorded_by"`
	ClosedAt   *time.Time       `json:"closed_at,omitempty"`
	Services   []GapServiceView `json:"services"`
	// Declines are shown to those who see unmet need (panel, admin,
	// commissioner; suppressed for commissioners).
	Declines *GapDeclines `json:"declines,omitempty"`
}

// GapServiceView is a service linked to a gap.
type GapServiceView struct {
	ServiceID      string    `json:"service_id"`
	ServiceName    string    `json:"service_name"`
	OrganisationID string    `json:"organisation_id"`
	Status         string    `json:"status"`
	LinkedAt       time.Time `json:"linked_at"`
}

// GapDeclines are the declines of onward referrals to services of the
// gap's need, before the first service was linked to it (all of them
// while the gap is open) and since, in every area and in the gap's.
type GapDeclines struct {
	BeforeLink       any `json:"before_link"`
	AfterLink        any `json:"after_link"`
	InAreaBeforeLink any `json:"in_area_before_link"`
	InAreaAfterLink  any `json:"in_area_after_link"`
}

// GapList is the answer of GET /v1/directory/gaps.
type GapList struct {
	Gaps   []GapView `json:"gaps"`
	Open   int       `json:"open"`
	Closed int       `json:"closed"`
}

func (s *Service) serveGaps(h Routes) {
	h.Handle("GET /v1/directory/gaps", readers, s.listGaps)
	h.Handle("POST /v1/directory/gaps", editors, s.recordGap)
	h.Handle("POST /v1/directory/gaps/{id}/services", editors, s.linkGap)
}

// gap returns a gap and the organisation whose subject holds it.
func (s *Service) gap(id string) (*events.DirectoryGap, string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	org, ok := s.gapOrg[id]
	if !ok {
		return nil, "", false
	}
	g, ok := s.byOrg[org].Gaps[id]
	return g, org, ok
}

// allGaps lists the gaps, the oldest first. Gaps are replaced by Evolve,
// never changed, so the pointers may be read outside the lock.
func (s *Service) allGaps() []*events.DirectoryGap {
	s.mu.RLock()
	var out []*events.DirectoryGap
	for _, o := range s.byOrg {
		for _, g := range o.Gaps {
			out = append(out, g)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *events.DirectoryGap) int {
		if c := a.RecordedAt.Compare(b.RecordedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// gapView shows a gap to p: with its declines to those who see unmet need.
func (s *Service) gapView(g *events.DirectoryGap, p api.Principal) (GapView, error) {
	v := GapView{GapID: g.ID, Need: g.Need, NeedName: categoryName(g.Need), Area: g.Area, Detail: g.Detail,
		Status: GapOpen, RecordedAt: g.RecordedAt, RecordedBy: g.RecordedBy, Services: []GapServiceView{}}
	if g.Met() {
		at := g.MetAt()
		v.Status, v.ClosedAt = GapClosed, &at
	}
	for _, l := range g.Services {
		sv := GapServiceView{ServiceID: l.ServiceID, OrganisationID: l.OrganisationID, LinkedAt: l.LinkedAt}
		if d, ok := s.ServiceView(l.ServiceID); ok {
			sv.ServiceName, sv.Status = d.Name, d.Status
		}
		v.Services = append(v.Services, sv)
	}
	if slices.Contains(unmetNeedReaders, p.Kind) {
		t, err := s.declinesOf(g.Need, g.Area, g.MetAt())
		if err != nil {
			s.log.Error("reading the unmet-need view", "err", err)
			return GapView{}, &events.Error{Code: events.CodeUnavailable, Message: "the unmet-need view is unavailable"}
		}
		n := suppressed(p.Kind == events.KindCommissioner)
		v.Declines = &GapDeclines{BeforeLink: n(t.before), AfterLink: n(t.after), InAreaBeforeLink: n(t.areaBefore), InAreaAfterLink: n(t.areaAfter)}
	}
	return v, nil
}

// Gaps lists the gaps as p sees them, those of a status only when status
// is set.
func (s *Service) Gaps(p api.Principal, status string) (GapList, error) {
	out := GapList{Gaps: []GapView{}}
	for _, g := range s.allGaps() {
		if g.Met() {
			out.Closed++
		} else {
			out.Open++
		}
		if status != "" && (status == GapClosed) != g.Met() {
			continue
		}
		v, err := s.gapView(g, p)
		if err != nil {
			return GapList{}, err
		}
		out.Gaps = append(out.Gaps, v)
	}
	return out, nil
}

func (s *Service) listGaps(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	status := r.URL.Query().Get("status")
	if status != "" && status != GapOpen && status != GapClosed {
		return events.Invalid("status", "must be open or closed")
	}
	if slices.Contains(unmetNeedReaders, p.Kind) {
		s.catchUp(r.Context(), UnmetNeedProjection) // the declines
	}
	list, err := s.Gaps(p, status)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, list)
	return nil
}

// GapRequest is a gap as recorded.
type GapRequest struct {
	Need   string `json:"need"`
	Area   string `json:"area"`
	Detail string `json:"detail"`
}

// RecordGap records a gap on p's organisation's subject. The need may be a
// category id or a word link workers use ("debt"); idempotencyKey, when
// set (checked by api.IdempotencyKey), makes a retry record it once.
func (s *Service) RecordGap(ctx context.Context, p api.Principal, b GapRequest, idempotencyKey string) (GapView, bool, error) {
	id := events.NewID()
	if idempotencyKey != "" {
		id = uuid.NewSHA1(gapNamespace, []byte(p.OrgID+"\x00"+idempotencyKey)).String()
	}
	need := strings.TrimSpace(b.Need)
	if c, ok := events.PlaceNeed(need); ok {
		need = c
	}
	changed, err := s.execute(ctx, p, p.OrgID, events.RecordGap{GapID: id, Need: need,
		Area: strings.TrimSpace(b.Area), Detail: strings.TrimSpace(b.Detail)})
	if err != nil {
		return GapView{}, false, err
	}
	g, _, ok := s.gap(id)
	if !ok { // execute returns once the change is folded here
		return GapView{}, false, events.Errorf(events.CodeInternal, "gap %s recorded but not found", id)
	}
	v, err := s.gapView(g, p)
	return v, changed, err
}

func (s *Service) recordGap(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b GapRequest
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	key, err := api.IdempotencyKey(r)
	if err != nil {
		return err
	}
	v, changed, err := s.RecordGap(r.Context(), p, b, key)
	if err != nil {
		return err
	}
	api.WriteJSON(w, created(changed), v)
	return nil
}

// LinkGap links a service to a gap (a service set up to meet it), on the
// subject of the organisation that recorded the gap.
func (s *Service) LinkGap(ctx context.Context, p api.Principal, gapID, serviceID string) (GapView, bool, error) {
	_, org, ok := s.gap(gapID)
	if !ok {
		return GapView{}, false, &events.Error{Code: events.CodeNotFound, Message: "no such gap"}
	}
	if serviceID == "" {
		return GapView{}, false, events.Invalid("service_id", "is required")
	}
	st, _ := s.lookup(serviceID) // none: the rule names service_id
	changed, err := s.execute(ctx, p, org, events.LinkGapService{GapID: gapID, Service: st})
	if err != nil {
		return GapView{}, false, err
	}
	g, _, _ := s.gap(gapID)
	v, err := s.gapView(g, p)
	return v, changed, err
}

func (s *Service) linkGap(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b struct {
		ServiceID string `json:"service_id"`
	}
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	v, changed, err := s.LinkGap(r.Context(), p, r.PathValue("id"), b.ServiceID)
	if err != nil {
		return err
	}
	api.WriteJSON(w, created(changed), v)
	return nil
}
