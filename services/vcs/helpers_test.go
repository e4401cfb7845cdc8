package vcs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
)

// Demo keys (API.md).
const (
	gpKey   = "demo-gp-a81001"
	lwKey   = "demo-lw-u12345"
	vcs1Key = "demo-vcs-001"
	vcs2Key = "demo-vcs-002"
)

// Personal data the tests look for where it must never be.
const (
	nhsNumber = "9434765919"
	birthDate = "1956-03-14"
	gpNotes   = "Recently bereaved, isolated since moving."
	postcode  = "M33 7XX"
)

var (
	walk = events.ServiceFacts{ID: "VCS001-walk", Name: "Sale Walking Group walks", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}
	debt = events.ServiceFacts{ID: "VCS002-debt", Name: "Trafford Money Advice debt help", OrganisationID: "VCS002", AcceptsReferrals: true, Capacity: "open"}
)

// journey is a journey driven to an onward referral.
type journey struct{ ID, OnwardID string }

// referredOn is the day toOnward's journeys happen on.
var referredOn = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// Who acts in the tests' journeys, on referredOn.
var (
	gpPractice = journal.Meta{OccurredAt: referredOn, Actor: &eventsv1.Actor{OrganisationId: "A81001", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_GP}}
	linkWorker = journal.Meta{OccurredAt: referredOn, Actor: &eventsv1.Actor{OrganisationId: "U12345", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK}}
)

// step is one command of a journey, by whom.
type step struct {
	meta journal.Meta
	cmd  events.Command
}

// onwardSteps are the commands that take a new journey to an onward
// referral to svc sharing share, as the GP practice and link worker would.
func onwardSteps(svc events.ServiceFacts, share ...string) []step {
	return []step{
		{gpPractice, events.Refer{Referral: &eventsv1.ReferralReceived{
			Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "VCS-TEST-" + events.NewID(),
			Person: &eventsv1.PersonalData{NhsNumber: nhsNumber, GivenName: "Jane", FamilyName: "Walker", BirthDate: birthDate,
				Postcode: postcode, Phone: "07700 900123", Email: "jane@example.org"},
			Sex: "female", Reasons: []string{"422650009"}, Notes: &eventsv1.FreeText{Text: gpNotes},
			Consent: &eventsv1.Consent{ShareWithVcs: true}, LinkWorkTeam: "U12345", Urgency: "routine"}}},
		{linkWorker, events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"}},
		{linkWorker, events.RecordContact{Outcome: "reached", Method: "phone"}},
		// What a VCS is given as needs is the assessed needs (in the taxonomy).
		{linkWorker, events.AssessNeeds{Needs: []string{"company"}}},
		{linkWorker, events.ReferOnward{OnwardReferralID: events.NewID(), Service: svc, Share: share, LinkWorkerContact: "Sam Link, 0161 496 0000"}},
	}
}

// toOnward drives a new journey through the store, as the GP practice and
// link worker would, to an onward referral to svc sharing share, all on
// referredOn (before the sessions the tests record: attendance is on or
// after the onward referral's day). It does not depend on the referrals or
// linkwork services' HTTP routes.
func toOnward(tb testing.TB, h *hubtest.Hub, svc events.ServiceFacts, share ...string) journey {
	tb.Helper()
	ctx := context.Background()
	jid := events.ReferralJourneyID("A81001", "VCS-TEST-"+events.NewID())
	steps := onwardSteps(svc, share...)
	for _, s := range steps {
		if _, err := h.Journal().Execute(ctx, jid, s.meta, s.cmd); err != nil {
			tb.Fatalf("%s: %v", events.CommandName(s.cmd), err)
		}
	}
	return journey{ID: jid, OnwardID: steps[len(steps)-1].cmd.(events.ReferOnward).OnwardReferralID}
}

// inboxItem is the part of an inbox item the tests read.
type inboxItem struct {
	OnwardReferralID  string `json:"onward_referral_id"`
	ServiceID         string `json:"service_id"`
	Status            string `json:"status"`
	WaitingSeconds    *int64 `json:"waiting_seconds"`
	LinkWorkerContact string `json:"link_worker_contact"`
	DeclineReason     string `json:"decline_reason"`
	Detail            string `json:"detail"`
	Person            struct {
		GivenName  string `json:"given_name"`
		FamilyName string `json:"family_name"`
		Phone      string `json:"phone"`
		Email      string `json:"email"`
	} `json:"person"`
	Needs      []string `json:"needs"`
	Shared     []string `json:"shared"`
	Attendance []struct {
		Date     string `json:"date"`
		Attended bool   `json:"attended"`
	} `json:"attendance"`
	Warnings []string `json:"warnings"`
}

// inbox lists an organisation's inbox.
func inbox(tb testing.TB, h *hubtest.Hub, key, query string) ([]inboxItem, string) {
	tb.Helper()
	var page struct {
		OnwardReferrals []inboxItem `json:"onward_referrals"`
	}
	st, body := h.Do("GET", "/v1/inbox"+query, key, nil)
	if st != 200 {
		tb.Fatalf("GET /v1/inbox%s: %d %s", query, st, body)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		tb.Fatal(err)
	}
	return page.OnwardReferrals, string(body)
}

// waitInInbox waits until the onward referral is in key's inbox.
func waitInInbox(tb testing.TB, h *hubtest.Hub, key, oid string) {
	tb.Helper()
	h.Eventually(func() bool {
		_, body := inbox(tb, h, key, "")
		return strings.Contains(body, oid)
	}, "the onward referral reaches the inbox")
}

// errorField returns the field of a JSON error answer.
func errorField(tb testing.TB, body []byte) (code, field string) {
	tb.Helper()
	var e struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		tb.Fatalf("not a JSON error: %s", body)
	}
	return e.Error.Code, e.Error.Field
}

// journeyVersion is how many events a journey holds.
func journeyVersion(tb testing.TB, h *hubtest.Hub, jid string) int {
	tb.Helper()
	s, _, err := h.Journal().Load(context.Background(), jid)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Version
}

// leaks lists the personal data that must not be in s.
func leaks(s string, allowed ...string) []string {
	var out []string
	for _, x := range []string{nhsNumber, birthDate, gpNotes, postcode} {
		if strings.Contains(s, x) && !contains(allowed, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// doWithHeader is hubtest's Do with one extra request header.
func doWithHeader(tb testing.TB, h *hubtest.Hub, method, path, key string, body []byte, name, value string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, h.Base+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(name, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, out
}
