package linkwork_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/linkwork"
	"linkway/services/platform/journal"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

func TestJourneyThroughEveryRoute(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3, Within: 21 * 24 * time.Hour})
	id := e.referAs("U12345", "9434765919", true)
	j := "/v1/journeys/" + id

	var v answer
	e.ok("GET", j, nil, &v)
	if v.Status != events.StatusReferred || v.Person == nil || v.Person.NHSNumber != "9434765919" || v.Notes != "Recently bereaved." {
		t.Fatalf("new journey view: %+v", v.JourneyView)
	}

	e.ok("POST", j+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, &v)
	if v.Status != events.StatusAssigned || v.Worker == nil || v.Worker.Name != "Sam Link" {
		t.Fatalf("after assign: status %s worker %+v", v.Status, v.Worker)
	}
	e.ok("POST", j+"/contacts", map[string]string{"outcome": "no_answer", "method": "phone"}, &v)
	if v.FailedAttempts != 1 || v.Status != events.StatusAssigned || len(v.Contacts) != 1 {
		t.Fatalf("after a failed attempt: %d attempts, status %s", v.FailedAttempts, v.Status)
	}
	e.ok("POST", j+"/contacts", map[string]string{"outcome": "reached", "method": "phone"}, &v)
	if v.Status != events.StatusInProgress || v.LastContactAt == nil || v.FailedAttempts != 0 {
		t.Fatalf("after reaching the person: status %s, last contact %v, attempts %d", v.Status, v.LastContactAt, v.FailedAttempts)
	}

	e.ok("POST", j+"/assessment", map[string]any{"what_matters": "Getting out of the house", "needs": []string{"company", "physical_activity"},
		"goals": []map[string]string{{"text": "Join a walking group"}, {"text": "Sort out the gas bill"}}, "barriers": []string{"confidence", "transport"}}, &v)
	// Needs are placed in the one taxonomy ("company" is befriending and social groups).
	if v.Assessment == nil || !slices.Equal(v.Assessment.Needs, []string{"befriending_and_social_groups", "physical_activity"}) ||
		!slices.Equal(v.Assessment.Barriers, []string{"confidence", "transport"}) || len(v.Goals) != 2 || v.Goals[0].Status != "not_started" {
		t.Fatalf("assessment: %+v goals %+v", v.Assessment, v.Goals)
	}
	goal := v.Goals[0].GoalID
	e.ok("POST", j+"/goals/"+goal, map[string]string{"status": "in_progress"}, &v)
	if v.Goals[0].Status != "in_progress" || v.Goals[1].Status != "not_started" {
		t.Fatalf("goal update: %+v", v.Goals)
	}

	e.ok("POST", j+"/measures", map[string]any{"instrument": "SWEMWBS", "timepoint": "baseline", "answers": []int{3, 3, 3, 3, 3, 3, 3}}, &v)
	if v.Result == nil || v.Result.RawScore != 21 || v.Result.Score != 19.25 || v.Result.Version != "SWEMWBS-v1" || v.Result.Instrument != "SWEMWBS" {
		t.Fatalf("SWEMWBS result: %+v", v.Result)
	}
	e.ok("POST", j+"/measures", map[string]any{"instrument": "ONS4", "timepoint": "baseline", "answers": []int{4, 6, 8, 2}}, &v)
	wantItems := []linkwork.ONS4Item{{"life_satisfaction", 4, "low"}, {"worthwhile", 6, "medium"}, {"happiness", 8, "high"}, {"anxiety", 2, "low"}}
	if v.Result == nil || !slices.Equal(v.Result.Items, wantItems) {
		t.Fatalf("ONS4 items: %+v", v.Result)
	}

	e.ok("POST", j+"/onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name", "phone", "needs"}}, &v)
	if v.OnwardReferralID == "" || len(v.Onward) != 1 || v.Onward[0].Status != events.OnwardSent ||
		!slices.Equal(v.Onward[0].Shared, []string{"name", "phone", "needs"}) || v.Onward[0].OrganisationID != "VCS001" {
		t.Fatalf("onward referral: id %q %+v", v.OnwardReferralID, v.Onward)
	}
	first := v.OnwardReferralID
	e.ok("POST", j+"/onward-referrals", map[string]any{"service_id": serviceFull, "share": []string{"name"}, "waiting_list": true}, &v)
	if len(v.Onward) != 2 || !v.Onward[1].WaitingList {
		t.Fatalf("waiting-list referral: %+v", v.Onward)
	}
	e.ok("POST", j+"/onward-referrals/"+first+"/withdraw", map[string]string{"reason": "found a closer group"}, &v)
	if v.Onward[0].Status != events.OnwardWithdrawn || v.Onward[1].Status != events.OnwardSent {
		t.Fatalf("withdraw: %+v", v.Onward)
	}

	due := time.Now().UTC().AddDate(0, 3, 0).Format(time.DateOnly)
	e.ok("POST", j+"/follow-ups", map[string]string{"due": due}, &v)
	if v.FollowUpID == "" || len(v.FollowUps) != 1 || v.FollowUps[0].Due != due || v.FollowUps[0].State != "scheduled" {
		t.Fatalf("follow-up: %q %+v", v.FollowUpID, v.FollowUps)
	}
	e.ok("POST", j+"/follow-ups/"+v.FollowUpID+"/complete",
		map[string]any{"measure": map[string]any{"instrument": "SWEMWBS", "answers": []int{4, 4, 4, 4, 3, 3, 3}}}, &v)
	if !v.FollowUps[0].Done || v.FollowUps[0].MeasureID == "" || v.Result == nil || v.Result.Timepoint != "follow_up" || v.Result.RawScore != 25 {
		t.Fatalf("follow-up completion with a measure: %+v result %+v", v.FollowUps, v.Result)
	}
	i := slices.IndexFunc(v.Change, func(c linkwork.MeasureChange) bool { return c.Instrument == "SWEMWBS" })
	if i < 0 || v.Change[i].Baseline == nil || *v.Change[i].Baseline != 19.25 || v.Change[i].Change == nil || *v.Change[i].Change != 3.1 || v.Change[i].Direction != "better" {
		t.Fatalf("SWEMWBS change (19.25 -> 22.35): %+v", v.Change)
	}

	e.ok("POST", j+"/close", map[string]string{"reason": "goals_met"}, &v)
	if v.Status != events.StatusClosed || v.Closure == nil || v.Closure.Reason != "goals_met" {
		t.Fatalf("close: %s %+v", v.Status, v.Closure)
	}
	e.ok("POST", j+"/reopen", map[string]string{"reason": "setback after a bereavement"}, &v)
	if v.Status != events.StatusConnected && v.Status != events.StatusInProgress || v.Closure != nil || v.Reopenings != 1 {
		t.Fatalf("reopen: %s closure %+v reopenings %d", v.Status, v.Closure, v.Reopenings)
	}
	e.ok("POST", j+"/decline", map[string]string{"detail": "does not want support now"}, &v)
	if v.Status != events.StatusDeclined {
		t.Fatalf("decline: %s", v.Status)
	}
	types := []string{}
	for _, te := range v.Timeline {
		types = append(types, te.Type)
	}
	for _, want := range []string{"ReferralReceived", "LinkWorkerAssigned", "ContactAttempted", "ContactMade", "NeedsAssessed",
		"GoalUpdated", "WellbeingMeasured", "OnwardReferralMade", "OnwardReferralWithdrawn", "FollowUpScheduled",
		"JourneyClosed", "JourneyReopened", "PatientDeclined"} {
		if !slices.Contains(types, want) {
			t.Errorf("timeline lacks %s: %v", want, types)
		}
	}
}

func TestRefusedTransitionsAre409NamingTheState(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	referred := e.refer("U12345", true)
	contacted := e.contacted(true)
	noConsent := e.contacted(false)
	closed := e.contacted(true)
	e.ok("POST", "/v1/journeys/"+closed+"/close", map[string]string{"reason": "moved_away"}, nil)
	declined := e.refer("U12345", true)
	e.ok("POST", "/v1/journeys/"+declined+"/decline", nil, nil)
	var withOnward answer
	e.ok("POST", "/v1/journeys/"+contacted+"/onward-referrals", map[string]any{"service_id": "VCS002-debt", "share": []string{"name"}}, &withOnward)
	e.ok("POST", "/v1/journeys/"+contacted+"/onward-referrals/"+withOnward.OnwardReferralID+"/withdraw", nil, nil)
	var fu answer
	e.ok("POST", "/v1/journeys/"+contacted+"/follow-ups", map[string]string{"due": time.Now().UTC().Format(time.DateOnly)}, &fu)
	e.ok("POST", "/v1/journeys/"+contacted+"/follow-ups/"+fu.FollowUpID+"/complete", nil, nil)

	measure := map[string]any{"instrument": "ONS4", "timepoint": "baseline", "answers": []int{5, 5, 5, 5}}
	for _, c := range []struct {
		name, journey, path string
		body                any
		state               string // the state the message must name
	}{
		{"contact before a worker is assigned", referred, "contacts", map[string]string{"outcome": "reached", "method": "phone"}, "referred"},
		{"assessment before the person is reached", referred, "assessment", map[string]any{"needs": []string{"company"}}, "referred"},
		{"measure before the person is reached", referred, "measures", measure, "referred"},
		{"onward referral before the person is reached", referred, "onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}, "referred"},
		{"onward referral without consent to share", noConsent, "onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}, "consent"},
		{"onward referral to a paused service", contacted, "onward-referrals", map[string]any{"service_id": servicePaused, "share": []string{"name"}}, "paused"},
		{"onward referral to a full service without the waiting list", contacted, "onward-referrals", map[string]any{"service_id": serviceFull, "share": []string{"name"}}, "full"},
		{"withdrawing a withdrawn referral", contacted, "onward-referrals/" + withOnward.OnwardReferralID + "/withdraw", nil, "withdrawn"},
		{"completing a completed follow-up", contacted, "follow-ups/" + fu.FollowUpID + "/complete", nil, "already completed"},
		{"closing a closed journey", closed, "close", map[string]string{"reason": "goals_met"}, "closed"},
		{"assigning on a closed journey", closed, "assign", map[string]string{"worker_id": "lw-8", "worker_name": "Ali"}, "closed"},
		{"recording a contact on a closed journey", closed, "contacts", map[string]string{"outcome": "reached", "method": "phone"}, "closed"},
		// A closed journey takes check-ins (API.md version 2); a declined one does not.
		{"scheduling a follow-up on a declined journey", declined, "follow-ups", map[string]string{"due": "2030-01-01"}, "declined"},
		{"declining on a closed journey", closed, "decline", nil, "closed"},
		{"measuring on a closed journey", closed, "measures", measure, "closed"},
		{"reopening an open journey", contacted, "reopen", map[string]string{"reason": "x"}, "in_progress"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _, _ := e.h.Journal().Load(t.Context(), c.journey)
			ae := e.refused("POST", "/v1/journeys/"+c.journey+"/"+c.path, keyTeam, c.body, http.StatusConflict)
			if ae.Error.Code != "failed_precondition" || !strings.Contains(ae.Error.Message, c.state) {
				t.Errorf("got %+v, want failed_precondition naming %q", ae.Error, c.state)
			}
			after, _, _ := e.h.Journal().Load(t.Context(), c.journey)
			if after.Version != before.Version {
				t.Errorf("a refused command appended: version %d -> %d", before.Version, after.Version)
			}
		})
	}
}

func TestBadInputIs400NamingTheField(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	j := "/v1/journeys/" + id
	for _, c := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"assign without a worker id", "assign", map[string]string{"worker_name": "Sam"}, "worker_id"},
		{"assign without a name", "assign", map[string]string{"worker_id": "lw-1"}, "worker_name"},
		{"assign with a bad worker id", "assign", map[string]string{"worker_id": "lw 1/x", "worker_name": "Sam"}, "worker_id"},
		{"unknown field", "assign", map[string]string{"worker_id": "lw-1", "worker_name": "Sam", "grade": "x"}, "grade"},
		{"wrong type", "assign", map[string]any{"worker_id": 7, "worker_name": "Sam"}, "worker_id"},
		{"contact outcome", "contacts", map[string]string{"outcome": "maybe", "method": "phone"}, "outcome"},
		{"contact method", "contacts", map[string]string{"outcome": "reached", "method": "pigeon"}, "method"},
		{"assessment with nothing", "assessment", map[string]any{"barriers": []string{"cost"}}, "needs"},
		{"need not a category", "assessment", map[string]any{"needs": []string{"Company!"}}, "needs[0]"},
		{"barrier not a category", "assessment", map[string]any{"needs": []string{"company"}, "barriers": []string{"cost", "a b"}}, "barriers[1]"},
		{"goal without text", "assessment", map[string]any{"goals": []map[string]string{{"text": "walk"}, {"text": " "}}}, "goals[1].text"},
		{"unknown instrument", "measures", map[string]any{"instrument": "PHQ9", "timepoint": "baseline", "answers": []int{1}}, "instrument"},
		{"unknown timepoint", "measures", map[string]any{"instrument": "ONS4", "timepoint": "later", "answers": []int{1, 1, 1, 1}}, "timepoint"},
		{"SWEMWBS with 6 answers", "measures", map[string]any{"instrument": "SWEMWBS", "timepoint": "baseline", "answers": []int{3, 3, 3, 3, 3, 3}}, "answers"},
		{"ONS4 answer 11", "measures", map[string]any{"instrument": "ONS4", "timepoint": "baseline", "answers": []int{6, 7, 5, 11}}, "answers[3]"},
		{"onward without a service", "onward-referrals", map[string]any{"share": []string{"name"}}, "service_id"},
		{"onward to an unknown service", "onward-referrals", map[string]any{"service_id": "NOPE-1", "share": []string{"name"}}, "service_id"},
		{"onward to a signposting-only service", "onward-referrals", map[string]any{"service_id": serviceSignpost, "share": []string{"name"}}, "service_id"},
		{"onward sharing the NHS number", "onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name", "nhs_number"}}, "share[1]"},
		{"onward sharing nothing", "onward-referrals", map[string]any{"service_id": "VCS001-walk"}, "share"},
		{"follow-up not a date", "follow-ups", map[string]string{"due": "next week"}, "due"},
		{"follow-up in the past", "follow-ups", map[string]string{"due": "2020-01-01"}, "due"},
		{"close without a reason", "close", map[string]string{}, "reason"},
		{"close with an unknown reason", "close", map[string]string{"reason": "bored"}, "reason"},
		{"goal status", "goals/whatever", map[string]string{"status": "done"}, "status"},
		{"follow-up measure", "follow-ups/x/complete", map[string]any{"measure": map[string]any{"instrument": "UCLA3", "answers": []int{1, 2, 4}}}, "measure.answers[2]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ae := e.refused("POST", j+"/"+c.path, keyTeam, c.body, http.StatusBadRequest)
			if ae.Error.Code != "invalid_argument" || ae.Error.Field != c.field {
				t.Errorf("got %+v, want invalid_argument on %q", ae.Error, c.field)
			}
		})
	}
	st, _, _ := e.h.Journal().Load(t.Context(), id)
	if st.Version != 3 || st.Measures != 0 || len(st.Onward) != 0 || len(st.FollowUps) != 0 {
		t.Fatalf("bad input appended something: %+v", st)
	}
	ae := e.refused("POST", j+"/goals/no-such-goal", keyTeam, map[string]string{"status": "achieved"}, http.StatusNotFound)
	if ae.Error.Code != "not_found" {
		t.Fatalf("unknown goal: %+v", ae)
	}
	ae = e.refused("GET", "/v1/caseload?status=sleeping", keyTeam, nil, http.StatusBadRequest)
	if ae.Error.Field != "status" {
		t.Fatalf("caseload status filter: %+v", ae)
	}
}

func TestScoringViaTheAPI(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	for _, c := range []struct {
		instrument string
		answers    []int
		raw        int32
		score      float64
	}{
		{"SWEMWBS", []int{1, 1, 1, 1, 1, 1, 1}, 7, 7.00},
		{"SWEMWBS", []int{3, 3, 3, 3, 3, 3, 3}, 21, 19.25},
		{"SWEMWBS", []int{5, 5, 5, 5, 5, 5, 5}, 35, 35.00},
		{"SWEMWBS", []int{4, 4, 4, 4, 4, 4, 4}, 28, 25.03},
		{"WEMWBS", []int{1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4}, 40, 40},
		{"WEMWBS", []int{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, 70, 70},
		{"UCLA3", []int{1, 1, 1}, 3, 3},
		{"UCLA3", []int{3, 2, 3}, 8, 8},
		{"ONS4", []int{0, 10, 5, 6}, 0, 0},
	} {
		var v answer
		e.ok("POST", "/v1/journeys/"+id+"/measures", map[string]any{"instrument": c.instrument, "timepoint": "baseline", "answers": c.answers}, &v)
		if v.Result == nil || v.Result.RawScore != c.raw || v.Result.Score != c.score || v.Result.Instrument != c.instrument || v.Result.Version == "" {
			t.Errorf("%s %v: got %+v, want raw %d score %v", c.instrument, c.answers, v.Result, c.raw, c.score)
		}
		if len(v.Result.Answers) != len(c.answers) {
			t.Errorf("%s: answers not stored: %v", c.instrument, v.Result.Answers)
		}
	}
	var v answer
	e.ok("GET", "/v1/journeys/"+id, nil, &v)
	if len(v.Measures) != 9 {
		t.Fatalf("journey holds %d measures, want 9", len(v.Measures))
	}
	last := v.Measures[8]
	want := []linkwork.ONS4Item{{"life_satisfaction", 0, "low"}, {"worthwhile", 10, "very_high"}, {"happiness", 5, "medium"}, {"anxiety", 6, "high"}}
	if !slices.Equal(last.Items, want) {
		t.Fatalf("ONS4 bands: %+v", last.Items)
	}
	// ONS4 at follow-up is paired item by item with the first baseline.
	e.ok("POST", "/v1/journeys/"+id+"/measures", map[string]any{"instrument": "ONS4", "timepoint": "follow_up", "answers": []int{3, 10, 7, 2}}, &v)
	i := slices.IndexFunc(v.Change, func(c linkwork.MeasureChange) bool { return c.Instrument == "ONS4" })
	if i < 0 || len(v.Change[i].Items) != 4 {
		t.Fatalf("ONS4 change: %+v", v.Change)
	}
	got := v.Change[i].Items
	if got[0].Change != 3 || got[0].Direction != "better" || got[1].Direction != "same" || got[3].Change != -4 || got[3].Direction != "better" {
		t.Fatalf("ONS4 item changes (anxiety down is better): %+v", got)
	}
}

func TestAnotherTeamsJourneyIsNotFound(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	ours := e.contacted(true)
	theirs := e.refer("U99999", true)
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/journeys/" + theirs},
		{"POST", "/v1/journeys/" + theirs + "/assign"},
		{"POST", "/v1/journeys/" + theirs + "/contacts"},
		{"POST", "/v1/journeys/" + theirs + "/close"},
		{"POST", "/v1/journeys/" + theirs + "/onward-referrals"},
		{"GET", "/v1/journeys/00000000-0000-7000-8000-000000000000"},
		{"GET", "/v1/journeys/not-an-id"},
	} {
		var body any
		if c.method == "POST" {
			switch {
			case strings.HasSuffix(c.path, "assign"):
				body = map[string]string{"worker_id": "x", "worker_name": "X"}
			case strings.HasSuffix(c.path, "contacts"):
				body = map[string]string{"outcome": "reached", "method": "phone"}
			case strings.HasSuffix(c.path, "close"):
				body = map[string]string{"reason": "other"}
			default:
				body = map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}
			}
		}
		st, out := e.do(c.method, c.path, keyTeam, body)
		if st != http.StatusNotFound || strings.Contains(string(out), "Jane") {
			t.Errorf("%s %s: %d %s", c.method, c.path, st, out)
		}
	}
	st, theirHistory, err := e.h.Journal().Load(t.Context(), theirs)
	if err != nil || st.Version != 1 || len(theirHistory) != 1 {
		t.Fatalf("another team's journey was changed: version %d", st.Version)
	}
	// The other team sees its own and not ours; nor do other kinds.
	var cl linkwork.Caseload
	st2, out := e.do("GET", "/v1/caseload", keyOther, nil)
	if err := json.Unmarshal(out, &cl); st2 != 200 || err != nil || len(cl.Journeys) != 1 || cl.Journeys[0].JourneyID != theirs {
		t.Fatalf("other team's caseload: %d %s", st2, out)
	}
	if st, _ := e.do("GET", "/v1/journeys/"+ours, keyOther, nil); st != http.StatusNotFound {
		t.Fatalf("other team reads our journey: %d", st)
	}
	for _, key := range []string{keyGP, keyVCS} {
		if st, _ := e.do("GET", "/v1/caseload", key, nil); st != http.StatusForbidden {
			t.Errorf("%s reads the caseload: %d", key, st)
		}
		if st, _ := e.do("GET", "/v1/journeys/"+ours, key, nil); st != http.StatusForbidden {
			t.Errorf("%s reads the journey: %d", key, st)
		}
	}
	if st, _ := e.do("GET", "/v1/caseload", "", nil); st != http.StatusUnauthorized {
		t.Errorf("no key: %d", st)
	}
}

func TestIdempotencyKeyRecordsOnce(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	var a, b answer
	body := map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}
	e.ok("POST", "/v1/journeys/"+id+"/onward-referrals", body, &a, "Idempotency-Key", "retry-123")
	e.ok("POST", "/v1/journeys/"+id+"/onward-referrals", body, &b, "Idempotency-Key", "retry-123")
	if a.OnwardReferralID == "" || a.OnwardReferralID != b.OnwardReferralID || !b.Replayed || len(b.Onward) != 1 {
		t.Fatalf("retry: first %q, second %q replayed %v, %d referrals", a.OnwardReferralID, b.OnwardReferralID, b.Replayed, len(b.Onward))
	}
	contact := map[string]string{"outcome": "no_answer", "method": "phone"}
	e.ok("POST", "/v1/journeys/"+id+"/contacts", contact, nil, "Idempotency-Key", "c-1")
	e.ok("POST", "/v1/journeys/"+id+"/contacts", contact, &a, "Idempotency-Key", "c-1")
	if len(a.Contacts) != 2 { // reached once by contacted(), one attempt
		t.Fatalf("a retried contact was recorded twice: %+v", a.Contacts)
	}
	e.ok("POST", "/v1/journeys/"+id+"/contacts", contact, &a, "Idempotency-Key", "c-2")
	if len(a.Contacts) != 3 {
		t.Fatalf("a new key recorded nothing: %+v", a.Contacts)
	}
}

func TestUncontactableIsFlaggedNotClosed(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 2, Within: time.Hour})
	id := e.refer("U12345", true)
	e.ok("POST", "/v1/journeys/"+id+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, nil)
	var v answer
	e.ok("POST", "/v1/journeys/"+id+"/contacts", map[string]string{"outcome": "no_answer", "method": "phone"}, &v)
	if v.FlaggedUncontactable {
		t.Fatal("flagged after one attempt with a policy of two")
	}
	e.ok("POST", "/v1/journeys/"+id+"/contacts", map[string]string{"outcome": "left_message", "method": "phone"}, &v)
	if !v.FlaggedUncontactable || v.Status != events.StatusAssigned || v.FailedAttempts != 2 {
		t.Fatalf("after two attempts: flagged %v status %s attempts %d", v.FlaggedUncontactable, v.Status, v.FailedAttempts)
	}
	cl := e.caseload("")
	if len(cl.Journeys) != 1 || !cl.Journeys[0].FlaggedUncontactable || cl.Totals.FlaggedUncontactable != 1 || cl.Journeys[0].FailedAttempts != 2 {
		t.Fatalf("caseload flag: %+v totals %+v", cl.Journeys, cl.Totals)
	}
	e.ok("POST", "/v1/journeys/"+id+"/contacts", map[string]string{"outcome": "reached", "method": "text"}, &v)
	if v.FlaggedUncontactable {
		t.Fatal("still flagged once the person was reached")
	}
	e.ok("POST", "/v1/journeys/"+id+"/close", map[string]string{"reason": "uncontactable"}, &v)
	if v.Closure == nil || v.Closure.Reason != "uncontactable" {
		t.Fatalf("closing as uncontactable: %+v", v.Closure)
	}
}

func TestCaseloadFigures(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	now := time.Now().UTC()
	unassigned := e.refer("U12345", true)
	a := e.contacted(true) // lw-7
	b := e.refer("U12345", true)
	e.ok("POST", "/v1/journeys/"+b+"/assign", map[string]string{"worker_id": "lw-9", "worker_name": "Pat Jones"}, nil)
	closed := e.contacted(true)
	e.ok("POST", "/v1/journeys/"+closed+"/close", map[string]string{"reason": "goals_met"}, nil)
	soon := now.AddDate(0, 0, 3).Format(time.DateOnly)
	later := now.AddDate(0, 2, 0).Format(time.DateOnly)
	e.ok("POST", "/v1/journeys/"+a+"/follow-ups", map[string]string{"due": soon}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/follow-ups", map[string]string{"due": later}, nil)
	e.refer("U99999", true) // another team's: never counted

	cl := e.caseload("")
	ids := []string{}
	for _, j := range cl.Journeys {
		ids = append(ids, j.JourneyID)
	}
	slices.Sort(ids)
	want := []string{unassigned, a, b}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("open caseload %v, want %v", ids, want)
	}
	if cl.Totals.Open != 3 || cl.Totals.Unassigned != 1 || cl.Totals.NewThisMonth != 4 || cl.Totals.Waiting != 2 || cl.Totals.ClosedThisMonth != 1 {
		t.Fatalf("totals: %+v", cl.Totals)
	}
	if cl.ByStatus[events.StatusReferred] != 1 || cl.ByStatus[events.StatusAssigned] != 1 || cl.ByStatus[events.StatusInProgress] != 1 {
		t.Fatalf("by status: %+v", cl.ByStatus)
	}
	if len(cl.Due) != 1 || cl.Due[0].JourneyID != a || cl.Due[0].Due != soon || cl.Due[0].State != "due" || cl.Due[0].Days != 3 {
		t.Fatalf("due list: %+v", cl.Due)
	}
	wl := map[string]linkwork.Workload{}
	for _, w := range cl.Workload {
		wl[w.WorkerID] = w
	}
	if wl["lw-7"].OpenCases != 1 || wl["lw-7"].NewThisMonth != 2 || wl["lw-7"].FollowUpsDue != 1 ||
		wl["lw-9"].OpenCases != 1 || wl["lw-9"].Waiting != 1 || wl["lw-9"].WorkerName != "Pat Jones" || len(cl.Workload) != 2 {
		t.Fatalf("workload: %+v", cl.Workload)
	}
	for _, j := range cl.Journeys {
		switch j.JourneyID {
		case a:
			if j.Waiting || j.DaysSinceLastContact == nil || *j.DaysSinceLastContact != 0 || j.NextFollowUp != soon {
				t.Errorf("contacted journey: %+v", j)
			}
		case unassigned:
			if !j.Waiting || j.DaysSinceLastContact != nil || j.WorkerID != "" || j.Name != "Jane Doe" {
				t.Errorf("unassigned journey: %+v", j)
			}
		}
	}

	// A fortnight on: the soon follow-up is overdue, the waiting grows.
	e.clock.Set(now.AddDate(0, 0, 14))
	cl = e.caseload("?worker=lw-7")
	if len(cl.Journeys) != 1 || cl.Journeys[0].JourneyID != a || *cl.Journeys[0].DaysSinceLastContact != 14 ||
		cl.Journeys[0].FollowUpsOverdue != 1 || len(cl.Due) != 1 || cl.Due[0].State != "overdue" || cl.Due[0].Days != -11 {
		t.Fatalf("a fortnight on, worker lw-7: %+v due %+v", cl.Journeys, cl.Due)
	}
	if cl.Totals.Open != 3 {
		t.Fatalf("team totals must not follow the worker filter: %+v", cl.Totals)
	}
	cl = e.caseload("?status=referred")
	if len(cl.Journeys) != 1 || cl.Journeys[0].JourneyID != unassigned || cl.Journeys[0].WaitingDays != 14 {
		t.Fatalf("status=referred a fortnight on: %+v", cl.Journeys)
	}
	cl = e.caseload("?status=closed")
	if len(cl.Journeys) != 1 || cl.Journeys[0].JourneyID != closed || cl.Journeys[0].ClosedReason != "goals_met" {
		t.Fatalf("status=closed: %+v", cl.Journeys)
	}
	cl = e.caseload("?status=all")
	if len(cl.Journeys) != 4 {
		t.Fatalf("status=all: %d journeys", len(cl.Journeys))
	}
}

func TestCaseloadViewRebuildsEqual(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	nhs := e.newNHS()
	a := e.referAs("U12345", nhs, true)
	e.ok("POST", "/v1/journeys/"+a+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/contacts", map[string]string{"outcome": "reached", "method": "phone"}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/follow-ups", map[string]string{"due": "2030-01-02"}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/notes", map[string]string{"text": "Likes mornings."}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/assign", map[string]string{"worker_id": "lw-8", "worker_name": "Ali", "handover_note": "Knows the family."}, nil)
	e.ok("POST", "/v1/journeys/"+a+"/close", map[string]string{"reason": "goals_met"}, nil)
	again := e.referAs("U12345", nhs, true) // the same person: history and a suggested worker
	b := e.contacted(false)
	e.ok("POST", "/v1/journeys/"+b+"/risks", map[string]any{"kind": "self_harm", "detail": "Said so on the phone.", "escalate_to_gp": true}, nil)
	if _, err := e.h.Journal().Execute(t.Context(), b, journal.Meta{}, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	e.refer("U99999", true)
	e.ok("POST", "/v1/supervision", map[string]string{"worker_id": "lw-7", "date": time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), "kind": "peer"}, nil)
	e.settle()
	var v answer
	e.ok("GET", "/v1/journeys/"+again, nil, &v)
	if len(v.History) != 1 || v.SuggestedWorker != "lw-8" {
		t.Fatalf("the second journey: history %+v, suggested %q", v.History, v.SuggestedWorker)
	}

	// Fold the same log into a second, empty view with a reader of its
	// own and compare every key: a view dropped and rebuilt must equal
	// what the live one built as the events came.
	store, err := viewstore.Open(viewstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rc := views.DefaultReaderConfig()
	rc.Decode = e.h.Journal().Decode // personal data is sealed on the log, as the hub's reader reads it
	rd, err := views.NewReader(e.h.JS(), store, []views.Projection{rebuilt{e.svc.Projection()}}, rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = rd.Run(ctx) }()
	info, err := e.h.Journal().Stream().Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	if err := rd.WaitFor(wctx, info.State.LastSeq); err != nil {
		t.Fatalf("the rebuilt view did not catch up: %v", err)
	}
	dump := func(v *viewstore.View) map[string]string {
		out := map[string]string{}
		if err := v.ForEach("", func(k string, val []byte) error { out[k] = string(val); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := dump(e.svc.View()), dump(store.View("caseload_rebuilt"))
	if len(want) < 40 {
		t.Fatalf("the live view holds only %d keys", len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("rebuilt %s = %s\nwant %s", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("rebuilt holds %s, the live view does not", k)
		}
	}
}

// rebuilt is the caseload projection under another name, so a second view
// can be folded beside the live one.
type rebuilt struct{ views.Projection }

func (rebuilt) Name() string { return "caseload_rebuilt" }

// The published SWEMWBS raw-to-metric conversion (Stewart-Brown et al.
// 2009), written out here from the table itself so the code is checked
// against the source, not against itself.
var publishedSWEMWBS = []float64{7.00, 9.51, 11.25, 12.40, 13.33, 14.08, 14.75, 15.32, 15.84, 16.36, 16.88, 17.43,
	17.98, 18.59, 19.25, 19.98, 20.73, 21.54, 22.35, 23.21, 24.11, 25.03, 26.02, 27.03, 28.13, 29.31, 30.70, 32.55, 35.00}

// answersSumming returns n answers in [lo, hi] that add up to sum.
func answersSumming(n int, lo, hi, sum int) []int {
	out := make([]int, n)
	rest := sum - n*lo
	for i := range out {
		add := min(rest, hi-lo)
		out[i], rest = lo+add, rest-add
	}
	return out
}

func TestEveryScoringTableEntryViaTheAPI(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	type entry struct {
		instrument string
		answers    []int
		check      func(linkwork.MeasureResult) bool
	}
	var entries []entry
	for raw := 7; raw <= 35; raw++ {
		entries = append(entries, entry{"SWEMWBS", answersSumming(7, 1, 5, raw), func(r linkwork.MeasureResult) bool {
			return int(r.RawScore) == raw && r.Score == publishedSWEMWBS[raw-7]
		}})
	}
	for _, raw := range []int{14, 15, 42, 69, 70} {
		entries = append(entries, entry{"WEMWBS", answersSumming(14, 1, 5, raw), func(r linkwork.MeasureResult) bool {
			return int(r.RawScore) == raw && r.Score == float64(raw)
		}})
	}
	for raw := 3; raw <= 9; raw++ {
		entries = append(entries, entry{"UCLA3", answersSumming(3, 1, 3, raw), func(r linkwork.MeasureResult) bool {
			return int(r.RawScore) == raw && r.Score == float64(raw)
		}})
	}
	// ONS thresholds: the first three items 0-4 low, 5-6 medium, 7-8 high,
	// 9-10 very high; anxiety 0-1 very low, 2-3 low, 4-5 medium, 6-10 high.
	positive := []string{"low", "low", "low", "low", "low", "medium", "medium", "high", "high", "very_high", "very_high"}
	anxiety := []string{"very_low", "very_low", "low", "low", "medium", "medium", "high", "high", "high", "high", "high"}
	for a := 0; a <= 10; a++ {
		entries = append(entries, entry{"ONS4", []int{a, a, a, a}, func(r linkwork.MeasureResult) bool {
			return len(r.Items) == 4 && r.Items[0].Band == positive[a] && r.Items[1].Band == positive[a] &&
				r.Items[2].Band == positive[a] && r.Items[3].Band == anxiety[a] && r.Items[3].Item == "anxiety" && r.RawScore == 0
		}})
	}
	// Several journeys measured side by side: each write waits for the
	// caseload view, and one journey takes its writes one after another.
	const lanes = 4
	ids := make([]string, lanes)
	for i := range ids {
		ids[i] = e.contacted(true)
	}
	var wg sync.WaitGroup
	for lane := range lanes {
		wg.Go(func() {
			for i := lane; i < len(entries); i += lanes {
				c := entries[i]
				body, _ := json.Marshal(map[string]any{"instrument": c.instrument, "timepoint": "baseline", "answers": c.answers})
				req, _ := http.NewRequest("POST", e.h.Base+"/v1/journeys/"+ids[lane]+"/measures", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+keyTeam)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("%s %v: %v", c.instrument, c.answers, err)
					continue
				}
				var v answer
				err = json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || v.Result == nil || !c.check(*v.Result) {
					t.Errorf("%s %v: status %d, result %+v, err %v", c.instrument, c.answers, resp.StatusCode, v.Result, err)
				}
			}
		})
	}
	wg.Wait()
	id := ids[0]
	// Incomplete or out-of-range questionnaires are refused, never pro-rated.
	for _, c := range []struct {
		instrument string
		answers    []int
		field      string
	}{
		{"SWEMWBS", []int{3, 3, 3, 3, 3, 3, 3, 3}, "answers"},
		{"SWEMWBS", []int{3, 3, 3, 0, 3, 3, 3}, "answers[3]"},
		{"SWEMWBS", []int{3, 3, 3, 3, 3, 3, 6}, "answers[6]"},
		{"WEMWBS", answersSumming(13, 1, 5, 40), "answers"},
		{"WEMWBS", append(answersSumming(13, 1, 5, 40), 6), "answers[13]"},
		{"UCLA3", []int{1, 2}, "answers"},
		{"UCLA3", []int{0, 2, 2}, "answers[0]"},
		{"UCLA3", []int{1, 2, 4}, "answers[2]"},
		{"ONS4", []int{5, 5, 5}, "answers"},
		{"ONS4", []int{5, -1, 5, 5}, "answers[1]"},
		{"ONS4", []int{}, "answers"},
	} {
		ae := e.refused("POST", "/v1/journeys/"+id+"/measures", keyTeam,
			map[string]any{"instrument": c.instrument, "timepoint": "baseline", "answers": c.answers}, http.StatusBadRequest)
		if ae.Error.Field != c.field {
			t.Errorf("%s %v: field %q, want %q", c.instrument, c.answers, ae.Error.Field, c.field)
		}
	}
}

func TestUnknownSubResourcesAreNotFound(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	for _, path := range []string{"onward-referrals/" + events.NewID() + "/withdraw", "follow-ups/" + events.NewID() + "/complete", "goals/" + events.NewID()} {
		var body any
		if strings.HasPrefix(path, "goals") {
			body = map[string]string{"status": "achieved"}
		}
		if ae := e.refused("POST", "/v1/journeys/"+id+"/"+path, keyTeam, body, http.StatusNotFound); ae.Error.Code != "not_found" {
			t.Errorf("%s: %+v", path, ae)
		}
	}
}
