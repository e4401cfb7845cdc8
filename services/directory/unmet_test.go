package directory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/directory"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
)

// script drives journeys through the event store, as the referral,
// link-worker and VCS services do, with service facts from the directory.
type script struct {
	t   *testing.T
	h   *hubtest.Hub
	dir *directory.Service
}

func (s script) exec(jid string, org string, cmd events.Command) error {
	s.t.Helper()
	_, err := s.h.Journal().Execute(context.Background(), jid, journal.Meta{
		Actor: &eventsv1.Actor{OrganisationId: org}}, cmd)
	return err
}

func (s script) must(jid, org string, cmd events.Command) {
	s.t.Helper()
	if err := s.exec(jid, org, cmd); err != nil {
		s.t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
}

// journey refers a person, reaches them and records their needs.
func (s script) journey(needs ...string) string {
	s.t.Helper()
	jid := events.NewID()
	s.must(jid, "A81001", events.Refer{Referral: &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: "A81001", SourceId: jid,
		Person:  &eventsv1.PersonalData{NhsNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe", BirthDate: "1956-03-14"},
		Reasons: []string{"422650009"}, Consent: &eventsv1.Consent{ShareWithVcs: true},
		LinkWorkTeam: "U12345", Urgency: "routine"}})
	s.must(jid, "U12345", events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"})
	s.must(jid, "U12345", events.RecordContact{Outcome: "reached", Method: "phone"})
	s.must(jid, "U12345", events.AssessNeeds{Needs: needs})
	return jid
}

func (s script) referOn(jid, serviceID string, waitingList bool) (string, error) {
	s.t.Helper()
	f, ok, err := s.dir.Service(context.Background(), serviceID)
	if err != nil || !ok {
		s.t.Fatalf("service %s: found %v, %v", serviceID, ok, err)
	}
	id := events.NewID()
	return id, s.exec(jid, "U12345", events.ReferOnward{OnwardReferralID: id, Service: f, Share: []string{"name"}, WaitingList: waitingList})
}

func code(err error) events.Code {
	var e *events.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

type unmetAnswer struct {
	Declines struct {
		Total      any            `json:"total"`
		ByReason   map[string]any `json:"by_reason"`
		ByCategory map[string]any `json:"by_category"`
		ByArea     map[string]any `json:"by_area"`
		Rows       []struct {
			Reason, Category, Area string
			Count                  any
		} `json:"rows"`
	} `json:"declines"`
	Needs []struct {
		Category          string `json:"category"`
		OpenReferrals     any    `json:"open_referrals"`
		AcceptingServices int    `json:"accepting_services"`
	} `json:"needs"`
	Unmatched struct {
		Referrals any `json:"referrals"`
		ByNeeds   []struct {
			Categories []string `json:"categories"`
			Referrals  any      `json:"referrals"`
		} `json:"by_needs"`
	} `json:"unmatched"`
	WaitingLists []struct {
		ServiceID   string `json:"service_id"`
		WaitingList any    `json:"waiting_list"`
		Pending     any    `json:"pending"`
	} `json:"waiting_lists"`
	Suppressed bool `json:"small_numbers_suppressed"`
}

func (u unmetAnswer) need(cat string) string {
	for _, n := range u.Needs {
		if n.Category == cat {
			return fmt.Sprint(n.OpenReferrals)
		}
	}
	return "missing"
}

func unmet(h *hubtest.Hub, key string) unmetAnswer {
	var u unmetAnswer
	h.JSON("GET", "/v1/directory/unmet-need", key, nil, 200, &u)
	return u
}

// TestUnmetNeedAfterScriptedDeclines runs a series of journeys through
// onward referrals, declines and closures, and checks every count.
func TestUnmetNeedAfterScriptedDeclines(t *testing.T) {
	h := hubtest.Start(t)
	s := script{t: t, h: h, dir: reader(t, h)}

	j1 := s.journey("debt")
	o1, err := s.referOn(j1, "VCS002-debt", false)
	if err != nil {
		t.Fatal(err)
	}
	s.must(j1, "VCS002", events.DeclineOnward{OnwardReferralID: o1, Reason: "no_capacity"})

	j2 := s.journey("company", "walking")
	o2, _ := s.referOn(j2, "VCS001-walk", false)
	s.must(j2, "VCS001", events.DeclineOnward{OnwardReferralID: o2, Reason: "not_eligible"})

	j3 := s.journey("exercise")
	o3, _ := s.referOn(j3, "VCS001-walk", false)
	s.must(j3, "VCS001", events.DeclineOnward{OnwardReferralID: o3, Reason: "no_capacity"})

	// Capacity rules as the journey meets them: a full service only by
	// its waiting list, a paused one not at all, a signposting-only one
	// never directly.
	j4 := s.journey("company")
	if _, err := s.referOn(j4, "VCS003-shed", false); code(err) != events.CodeFailedPrecondition {
		t.Errorf("referral to a full service without the waiting list: %v, want failed_precondition", err)
	}
	if _, err := s.referOn(j4, "VCS003-shed", true); err != nil {
		t.Errorf("referral to a full service's waiting list: %v", err)
	}
	j5 := s.journey("mental health")
	if _, err := s.referOn(j5, "VCS008-talk", false); code(err) != events.CodeFailedPrecondition {
		t.Errorf("referral to a paused service: %v, want failed_precondition", err)
	}
	j6 := s.journey("carers")
	if _, err := s.referOn(j6, "VCS005-carers", false); code(err) != events.CodeInvalid {
		t.Errorf("referral to a signposting-only service: %v, want invalid_argument", err)
	}
	j7 := s.journey("arts")
	o7, err := s.referOn(j7, "VCS004-art", false) // waiting_list capacity: accepting
	if err != nil {
		t.Fatal(err)
	}
	s.must(j7, "VCS004", events.AcceptOnward{OnwardReferralID: o7})

	var u unmetAnswer
	h.Eventually(func() bool {
		u = unmet(h, panel)
		return fmt.Sprint(u.Declines.Total) == "3" && u.need("arts_and_creativity") == "1" && len(u.WaitingLists) == 1
	}, "the unmet-need view counts the scripted journeys")
	for what, got := range map[string]any{
		"declines no_capacity":   u.Declines.ByReason["no_capacity"],
		"declines not_eligible":  u.Declines.ByReason["not_eligible"],
		"declines financial":     u.Declines.ByCategory["financial_and_debt_advice"],
		"declines physical":      u.Declines.ByCategory["physical_activity"],
		"declines in Trafford":   u.Declines.ByArea["Trafford"],
		"declines in Sale":       u.Declines.ByArea["Sale"],
		"need befriending":       u.need("befriending_and_social_groups"),
		"need physical activity": u.need("physical_activity"),
		"need financial":         u.need("financial_and_debt_advice"),
		"need mental wellbeing":  u.need("mental_wellbeing"),
		"need carers":            u.need("carers"),
		"unmatched referrals":    u.Unmatched.Referrals,
	} {
		want := map[string]string{
			"declines no_capacity": "2", "declines not_eligible": "1", "declines financial": "1", "declines physical": "2",
			"declines in Trafford": "1", "declines in Sale": "2", "need befriending": "2", "need physical activity": "2",
			"need financial": "1", "need mental wellbeing": "1", "need carers": "1", "unmatched referrals": "3",
		}[what]
		if fmt.Sprint(got) != want {
			t.Errorf("%s = %v, want %s", what, got, want)
		}
	}
	if len(u.Declines.Rows) != 3 {
		t.Errorf("decline rows = %+v, want 3 (reason, category, area)", u.Declines.Rows)
	}
	if w := u.WaitingLists[0]; w.ServiceID != "VCS003-shed" || fmt.Sprint(w.WaitingList) != "1" || fmt.Sprint(w.Pending) != "1" {
		t.Errorf("waiting lists = %+v, want VCS003-shed with one waiting", u.WaitingLists)
	}

	// A closed journey's needs no longer count; a service opening meets
	// the needs nothing met before.
	s.must(j6, "U12345", events.Close{Reason: "other"})
	h.Eventually(func() bool { return unmet(h, panel).need("carers") == "0" }, "a closed journey's needs stop counting")
	if got := fmt.Sprint(unmet(h, panel).Unmatched.Referrals); got != "2" {
		t.Errorf("unmatched after closing the carers journey = %s, want 2", got)
	}
	h.JSON("POST", "/v1/directory/services/VCS003-shed/capacity", panel, map[string]string{"capacity": "open"}, 200, nil)
	u = unmet(h, panel)
	if got := fmt.Sprint(u.Unmatched.Referrals); got != "1" || len(u.Unmatched.ByNeeds) != 1 || u.Unmatched.ByNeeds[0].Categories[0] != "mental_wellbeing" {
		t.Errorf("unmatched after the shed opens = %s %+v, want 1: mental wellbeing", got, u.Unmatched.ByNeeds)
	}

	// Commissioners see small numbers suppressed; the others may not look.
	c := unmet(h, icb)
	if !c.Suppressed || fmt.Sprint(c.Declines.Total) != "*" || fmt.Sprint(c.Declines.ByReason["no_capacity"]) != "*" {
		t.Errorf("commissioner's view is not suppressed: %+v", c.Declines)
	}
	unmet(h, admin)
	for _, key := range []string{gp, lw, vcs1} {
		refused(t, h, "GET", "/v1/directory/unmet-need", key, nil, 403, "")
	}
	refused(t, h, "GET", "/v1/directory/unmet-need", "", nil, 401, "")

	// The view is derived: dropped and rebuilt from the log, it is the same.
	before, _ := json.Marshal(unmet(h, panel))
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	cfg := hub.DefaultConfig()
	cfg.Data, cfg.HTTP, cfg.NATSListen = h.Data, "127.0.0.1:0", "off"
	cfg.Services = []string{"directory"} // only the view being rebuilt matters here
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := hub.Rebuild(context.Background(), cfg, directory.UnmetNeedProjection, nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	h2 := hubtest.Start(t, func(c *hub.Config) { c.Data = h.Data })
	after, _ := json.Marshal(unmet(h2, panel))
	if string(after) != string(before) {
		t.Errorf("rebuilt view differs:\n before %s\n after  %s", before, after)
	}
}
