package directory_test

import (
	"fmt"
	"net/http"
	"testing"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
)

type gapAnswer struct {
	GapID    string `json:"gap_id"`
	Need     string `json:"need"`
	Area     string `json:"area"`
	Status   string `json:"status"`
	ClosedAt string `json:"closed_at"`
	Services []struct {
		ServiceID string `json:"service_id"`
	} `json:"services"`
	Declines *struct {
		BeforeLink       any `json:"before_link"`
		AfterLink        any `json:"after_link"`
		InAreaBeforeLink any `json:"in_area_before_link"`
		InAreaAfterLink  any `json:"in_area_after_link"`
	} `json:"declines"`
}

type gapList struct {
	Gaps   []gapAnswer `json:"gaps"`
	Open   int         `json:"open"`
	Closed int         `json:"closed"`
}

func gaps(h *hubtest.Hub, key, query string) gapList {
	var l gapList
	h.JSON("GET", "/v1/directory/gaps"+query, key, nil, 200, &l)
	return l
}

func (l gapList) find(id string) (gapAnswer, bool) {
	for _, g := range l.Gaps {
		if g.GapID == id {
			return g, true
		}
	}
	return gapAnswer{}, false
}

func (g gapAnswer) declines() string {
	if g.Declines == nil {
		return "none"
	}
	d := g.Declines
	return fmt.Sprintf("%v/%v in area %v/%v", d.BeforeLink, d.AfterLink, d.InAreaBeforeLink, d.InAreaAfterLink)
}

// TestGapsClosedByAService: a panel records a gap, sees the declines for
// its need, links a service set up to meet it, and sees the declines
// before and after.
func TestGapsClosedByAService(t *testing.T) {
	// Polled often: no rate limit.
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	s := script{t: t, h: h, dir: reader(t, h)}

	// A decline for the need before anything is done: VCS002-debt is
	// financial advice in Trafford.
	j1 := s.journey("debt")
	o1, err := s.referOn(j1, "VCS002-debt", false)
	if err != nil {
		t.Fatal(err)
	}
	s.must(j1, "VCS002", events.DeclineOnward{OnwardReferralID: o1, Reason: "no_capacity"})

	var g gapAnswer
	h.JSON("POST", "/v1/directory/gaps", panel, map[string]string{"need": "debt", "area": "trafford", "detail": "Nothing on Saturdays"}, 201, &g)
	if g.GapID == "" || g.Need != "financial_and_debt_advice" || g.Status != "open" || g.ClosedAt != "" || len(g.Services) != 0 {
		t.Fatalf("recorded gap = %+v", g)
	}
	h.Eventually(func() bool {
		got, _ := gaps(h, panel, "").find(g.GapID)
		return got.declines() == "1/0 in area 1/0"
	}, "the decline before the gap shows before the link, in its area (whatever the case)")

	// A retry with the same Idempotency-Key records it once.
	st, hdr, body := h.Request("POST", "/v1/directory/gaps", panel, map[string]string{"need": "food", "area": "Sale West"}, "Idempotency-Key", "gap-food-1")
	st2, _, body2 := h.Request("POST", "/v1/directory/gaps", panel, map[string]string{"need": "food", "area": "Sale West"}, "Idempotency-Key", "gap-food-1")
	if st != 201 || st2 != 200 || string(body) != string(body2) {
		t.Errorf("retried gap: %d then %d (%s / %s) %v", st, st2, body, body2, hdr)
	}
	if l := gaps(h, panel, ""); l.Open != 2 || l.Closed != 0 || len(l.Gaps) != 2 {
		t.Errorf("gaps = %+v, want 2 open", l)
	}

	// Refusals: only panels and admins record and link; a need is needed.
	for _, key := range []string{gp, lw, vcs1, icb} {
		refused(t, h, "POST", "/v1/directory/gaps", key, map[string]string{"need": "food", "area": "Sale"}, http.StatusForbidden, "")
		refused(t, h, "POST", "/v1/directory/gaps/"+g.GapID+"/services", key, map[string]string{"service_id": "VCS002-debt"}, http.StatusForbidden, "")
	}
	refused(t, h, "POST", "/v1/directory/gaps", panel, map[string]string{"area": "Sale", "detail": "x"}, 400, "need")
	refused(t, h, "POST", "/v1/directory/gaps", panel, map[string]string{"need": "knitting", "area": "Sale"}, 400, "need")
	refused(t, h, "POST", "/v1/directory/gaps", panel, map[string]string{"need": "food", "area": " "}, 400, "area")
	refused(t, h, "POST", "/v1/directory/gaps", panel, map[string]string{"need": "food", "area": "Sale", "colour": "red"}, 400, "colour")
	refused(t, h, "POST", "/v1/directory/gaps", "", map[string]string{"need": "food", "area": "Sale"}, 401, "")
	refused(t, h, "POST", "/v1/directory/gaps/"+g.GapID+"/services", panel, map[string]string{"service_id": "VCS404-none"}, 400, "service_id")
	refused(t, h, "POST", "/v1/directory/gaps/"+g.GapID+"/services", panel, map[string]string{}, 400, "service_id")
	refused(t, h, "POST", "/v1/directory/gaps/no-such-gap/services", panel, map[string]string{"service_id": "VCS002-debt"}, 404, "")
	refused(t, h, "GET", "/v1/directory/gaps?status=maybe", lw, nil, 400, "status")
	h.JSON("POST", "/v1/directory/services/VCS006-garden/withdraw", panel, nil, 200, nil)
	refused(t, h, "POST", "/v1/directory/gaps/"+g.GapID+"/services", panel, map[string]string{"service_id": "VCS006-garden"}, 409, "service_id")

	// A service set up for it, linked by an admin: the gap closes.
	h.JSON("POST", "/v1/directory/services", panel, map[string]any{"organisation_id": "VCS002", "name": "Saturday money clinic",
		"category": "financial_and_debt_advice", "areas": []string{"Trafford"}, "accepts_referrals": true}, 201, nil)
	var linked gapAnswer
	h.JSON("POST", "/v1/directory/gaps/"+g.GapID+"/services", admin, map[string]string{"service_id": "VCS002-saturday-money-clinic"}, 201, &linked)
	if linked.Status != "closed" || linked.ClosedAt == "" || len(linked.Services) != 1 || linked.Services[0].ServiceID != "VCS002-saturday-money-clinic" {
		t.Errorf("linked gap = %+v", linked)
	}
	h.JSON("POST", "/v1/directory/gaps/"+g.GapID+"/services", panel, map[string]string{"service_id": "VCS002-saturday-money-clinic"}, 200, nil)

	// A decline after the link counts after it.
	j2 := s.journey("debt")
	o2, err := s.referOn(j2, "VCS002-debt", false)
	if err != nil {
		t.Fatal(err)
	}
	s.must(j2, "VCS002", events.DeclineOnward{OnwardReferralID: o2, Reason: "not_eligible"})
	h.Eventually(func() bool {
		got, _ := gaps(h, panel, "").find(g.GapID)
		return got.declines() == "1/1 in area 1/1"
	}, "the decline after the link counts after it")

	// Everyone reads the gaps; declines only those who see unmet need,
	// suppressed for commissioners.
	l := gaps(h, lw, "")
	if got, ok := l.find(g.GapID); !ok || got.Declines != nil || got.Status != "closed" || l.Open != 1 || l.Closed != 1 {
		t.Errorf("a link worker's list: %+v", l)
	}
	if got, _ := gaps(h, icb, "").find(g.GapID); got.declines() != "*/* in area */*" {
		t.Errorf("a commissioner sees declines %s, want suppressed", got.declines())
	}
	if got, _ := gaps(h, admin, "").find(g.GapID); got.declines() != "1/1 in area 1/1" {
		t.Errorf("an admin sees declines %s", got.declines())
	}
	if l := gaps(h, gp, "?status=open"); len(l.Gaps) != 1 || l.Gaps[0].Need != "food" {
		t.Errorf("open gaps: %+v", l.Gaps)
	}
	if l := gaps(h, gp, "?status=closed"); len(l.Gaps) != 1 || l.Gaps[0].GapID != g.GapID {
		t.Errorf("closed gaps: %+v", l.Gaps)
	}
	refused(t, h, "GET", "/v1/directory/gaps", "", nil, 401, "")
}
