package linkwork_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/linkwork"
	"linkway/services/platform/journal"
)

func TestASecondReferralShowsTheFirstAndItsWorker(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	nhs := e.newNHS()
	first := e.referAs("U12345", nhs, true)
	e.ok("POST", "/v1/journeys/"+first+"/assign", map[string]string{"worker_id": "lw-pat", "worker_name": "Pat Continuity"}, nil)
	e.ok("POST", "/v1/journeys/"+first+"/close", map[string]string{"reason": "goals_met"}, nil)
	second := e.referAs("U12345", nhs, true)
	elsewhere := e.referAs("U99999", nhs, true) // the same person with another team: not this team's history
	fresh := e.refer("U12345", true)

	var v answer
	e.ok("GET", "/v1/journeys/"+second, nil, &v)
	if len(v.History) != 1 {
		t.Fatalf("history of the second journey: %+v", v.History)
	}
	h := v.History[0]
	if h.JourneyID != first || h.Status != events.StatusClosed || h.ClosedAt == nil || h.ReferredAt.IsZero() ||
		h.WorkerName != "Pat Continuity" || h.ClosedReason != "goals_met" {
		t.Fatalf("history item: %+v", h)
	}
	raw, _ := json.Marshal(v.History)
	if strings.Contains(string(raw), nhs) || strings.Contains(string(raw), second) || strings.Contains(string(raw), elsewhere) {
		t.Fatalf("history shows the NHS number, the journey itself or another team's: %s", raw)
	}
	if v.SuggestedWorker != "lw-pat" || v.SuggestedWorkerName != "Pat Continuity" {
		t.Fatalf("suggested worker on the journey: %q %q", v.SuggestedWorker, v.SuggestedWorkerName)
	}
	e.ok("GET", "/v1/journeys/"+first, nil, &v)
	if len(v.History) != 0 {
		t.Fatalf("the first journey has no earlier one: %+v", v.History)
	}
	rows := map[string]linkwork.CaseSummary{}
	for _, r := range e.caseload("?status=all").Journeys {
		rows[r.JourneyID] = r
	}
	if rows[second].SuggestedWorker != "lw-pat" || rows[second].SuggestedWorkerName != "Pat Continuity" {
		t.Fatalf("caseload row of the re-referral: %+v", rows[second])
	}
	if rows[fresh].SuggestedWorker != "" || rows[first].SuggestedWorker != "" {
		t.Fatalf("a person new to the team has no suggested worker: %+v %+v", rows[fresh], rows[first])
	}

	// A handover to another worker carries a note for them, in the timeline.
	e.ok("POST", "/v1/journeys/"+second+"/assign", map[string]string{"worker_id": "lw-pat", "worker_name": "Pat Continuity"}, nil)
	ae := e.refused("POST", "/v1/journeys/"+fresh+"/assign", keyTeam,
		map[string]string{"worker_id": "lw-1", "worker_name": "Sam", "handover_note": "No one to hand over from."}, http.StatusBadRequest)
	if ae.Error.Field != "handover_note" {
		t.Fatalf("a handover note with no worker before: %+v", ae)
	}
	e.ok("POST", "/v1/journeys/"+second+"/assign",
		map[string]string{"worker_id": "lw-alex", "worker_name": "Alex Handover", "handover_note": "Prefers mornings."}, &v)
	last := v.Timeline[len(v.Timeline)-1]
	if v.Worker == nil || v.Worker.ID != "lw-alex" || !strings.Contains(last.Summary, "handover from Pat Continuity to Alex Handover") ||
		last.Detail != "Prefers mornings." {
		t.Fatalf("handover: worker %+v, timeline %+v", v.Worker, last)
	}

	// A person closed more than 12 months before is offered nobody.
	old := e.newNHS()
	long := e.referAs("U12345", old, true)
	e.ok("POST", "/v1/journeys/"+long+"/assign", map[string]string{"worker_id": "lw-gone", "worker_name": "Gone"}, nil)
	ago := time.Now().AddDate(-1, -1, 0)
	if _, err := e.h.Journal().Execute(t.Context(), long, journal.Meta{OccurredAt: ago}, events.Close{Reason: "goals_met"}); err != nil {
		t.Fatal(err)
	}
	later := e.referAs("U12345", old, true)
	e.ok("GET", "/v1/journeys/"+later, nil, &v)
	if v.SuggestedWorker != "" || len(v.History) != 1 {
		t.Fatalf("closed 13 months ago: suggested %q, history %+v", v.SuggestedWorker, v.History)
	}
}

func TestCheckInsAfterClosure(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	e.ok("POST", "/v1/journeys/"+id+"/close", map[string]string{"reason": "goals_met"}, nil)
	today := time.Now().UTC().Format(time.DateOnly)
	var v answer
	e.ok("POST", "/v1/journeys/"+id+"/follow-ups", map[string]string{"due": today}, &v)
	if v.Status != events.StatusClosed || v.FollowUpID == "" || len(v.FollowUps) != 1 || !v.FollowUps[0].AfterClosure {
		t.Fatalf("a check-in after closure: status %s, %+v", v.Status, v.FollowUps)
	}
	checkIn := v.FollowUpID
	cl := e.caseload("") // open journeys only: the check-in is due all the same
	if len(cl.Due) != 1 || cl.Due[0].JourneyID != id || !cl.Due[0].AfterClosure || cl.Due[0].State != "due" || cl.Totals.FollowUpsDue != 1 {
		t.Fatalf("due list: %+v totals %+v", cl.Due, cl.Totals)
	}
	e.ok("POST", "/v1/journeys/"+id+"/follow-ups", map[string]string{"timepoint": "3_months"}, &v)
	want, _ := events.FollowUpDue(v.Closure.At, "3_months")
	i := slices.IndexFunc(v.FollowUps, func(f linkwork.FollowUpView) bool { return f.FollowUpID == v.FollowUpID })
	if i < 0 || v.FollowUps[i].Due != want || v.FollowUps[i].Timepoint != "3_months" || !v.FollowUps[i].AfterClosure {
		t.Fatalf("a check-in three months after closure (%s): %+v", want, v.FollowUps)
	}
	e.ok("POST", "/v1/journeys/"+id+"/follow-ups", map[string]string{"due": time.Now().UTC().AddDate(0, 0, 700).Format(time.DateOnly)}, nil)
	ae := e.refused("POST", "/v1/journeys/"+id+"/follow-ups", keyTeam,
		map[string]string{"due": time.Now().UTC().AddDate(0, 0, 770).Format(time.DateOnly)}, http.StatusBadRequest)
	if ae.Error.Field != "due" {
		t.Fatalf("a check-in beyond 24 months: %+v", ae)
	}
	if ae := e.refused("POST", "/v1/journeys/"+id+"/follow-ups", keyTeam, map[string]string{"timepoint": "2_weeks"},
		http.StatusBadRequest); ae.Error.Field != "timepoint" {
		t.Fatalf("an unknown timepoint: %+v", ae)
	}
	// Held, with a measure: the journey stays closed.
	e.ok("POST", "/v1/journeys/"+id+"/follow-ups/"+checkIn+"/complete",
		map[string]any{"measure": map[string]any{"instrument": "UCLA3", "answers": []int{1, 2, 1}}}, &v)
	i = slices.IndexFunc(v.FollowUps, func(f linkwork.FollowUpView) bool { return f.FollowUpID == checkIn })
	if v.Status != events.StatusClosed || v.Result == nil || v.Result.RawScore != 4 || i < 0 || !v.FollowUps[i].Done ||
		v.FollowUps[i].MeasureID != v.Result.MeasureID {
		t.Fatalf("a check-in held with a measure: status %s, result %+v, %+v", v.Status, v.Result, v.FollowUps)
	}
	if cl := e.caseload(""); len(cl.Due) != 0 {
		t.Fatalf("a held check-in is not due: %+v", cl.Due)
	}
}

func TestCaseNotesAndRisks(t *testing.T) {
	var logs hubtest.LogBuffer
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3}, func(c *hub.Config) {
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	id := e.contacted(true)
	var v answer
	e.ok("POST", "/v1/journeys/"+id+"/notes", map[string]string{"text": "NoteMark: worried about her son."}, &v)
	if v.NoteID == "" || len(v.CaseNotes) != 1 || v.CaseNotes[0].Text != "NoteMark: worried about her son." || v.CaseNotes[0].By != "U12345" {
		t.Fatalf("a case note: %q %+v", v.NoteID, v.CaseNotes)
	}
	for _, te := range v.Timeline {
		if strings.Contains(te.Summary+te.Detail, "NoteMark") {
			t.Fatalf("the note's words in the timeline: %+v", te)
		}
	}
	var notes struct {
		JourneyID string              `json:"journey_id"`
		Notes     []linkwork.CaseNote `json:"notes"`
	}
	e.ok("GET", "/v1/journeys/"+id+"/notes", nil, &notes)
	if notes.JourneyID != id || len(notes.Notes) != 1 || notes.Notes[0].NoteID != v.NoteID {
		t.Fatalf("GET notes: %+v", notes)
	}
	if st, _ := e.do("GET", "/v1/journeys/"+id+"/notes", keyOther, nil); st != http.StatusNotFound {
		t.Fatalf("another team reads the notes: %d", st)
	}
	if st, _ := e.do("GET", "/v1/journeys/"+id+"/notes", keyGP, nil); st != http.StatusForbidden {
		t.Fatalf("a GP reads the notes: %d", st)
	}
	for _, c := range []struct {
		path  string
		body  any
		field string
	}{
		{"notes", map[string]string{"text": " "}, "text"},
		{"notes", map[string]string{"text": strings.Repeat("x", 8001)}, "text"},
		{"risks", map[string]any{"kind": "rumour", "detail": "x"}, "kind"},
		{"risks", map[string]any{"kind": "self_harm"}, "detail"},
		{"risks", map[string]any{"kind": "self_harm", "detail": "x", "escalate_to_gp": "yes"}, "escalate_to_gp"},
	} {
		if ae := e.refused("POST", "/v1/journeys/"+id+"/"+c.path, keyTeam, c.body, http.StatusBadRequest); ae.Error.Field != c.field {
			t.Errorf("%s %v: %+v, want field %s", c.path, c.body, ae, c.field)
		}
	}
	e.ok("POST", "/v1/journeys/"+id+"/risks", map[string]any{"kind": "safeguarding_adult", "detail": "RiskMark: neighbour takes her money",
		"escalate_to_gp": true}, &v)
	if v.RiskID == "" || len(v.Risks) != 1 || v.Risks[0].Kind != "safeguarding_adult" || !v.Risks[0].EscalatedToGP ||
		v.Risks[0].Detail != "RiskMark: neighbour takes her money" {
		t.Fatalf("a risk: %q %+v", v.RiskID, v.Risks)
	}
	last := v.Timeline[len(v.Timeline)-1]
	if last.Type != "RiskRecorded" || !strings.Contains(last.Summary, "escalated to the GP") || strings.Contains(last.Summary+last.Detail, "RiskMark") {
		t.Fatalf("the risk in the timeline: %+v", last)
	}
	cl := e.caseload("")
	if len(cl.Journeys) != 1 || cl.Journeys[0].Risks != 1 || cl.Journeys[0].EscalatedToGP != 1 {
		t.Fatalf("the caseload counts the risk: %+v", cl.Journeys)
	}
	// The onward referral a VCS organisation receives carries neither,
	// whatever is shared.
	e.ok("POST", "/v1/journeys/"+id+"/assessment", map[string]any{"needs": []string{"company"}}, nil)
	e.ok("POST", "/v1/journeys/"+id+"/onward-referrals", map[string]any{"service_id": "VCS001-walk",
		"share": []string{"name", "phone", "email", "needs", "notes"}}, &v)
	_, hist, err := e.h.Journal().Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	made, _ := json.Marshal(hist[len(hist)-1].Event.GetOnwardReferralMade())
	if !strings.Contains(string(made), "Jane") || strings.Contains(string(made), "NoteMark") || strings.Contains(string(made), "RiskMark") ||
		strings.Contains(string(made), "safeguarding") {
		t.Fatalf("the onward referral carries a note or a risk: %s", made)
	}
	if l := logs.String(); strings.Contains(l, "NoteMark") || strings.Contains(l, "RiskMark") || strings.Contains(l, "Jane") {
		t.Fatalf("the log holds a note, a risk or a name")
	}
}

func TestSupervisionAndTheWorkersYear(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	robin := map[string]string{"worker_id": "lw-robin", "worker_name": "Robin Supervised"}
	done := e.refer("U12345", true)
	e.ok("POST", "/v1/journeys/"+done+"/assign", robin, nil)
	e.ok("POST", "/v1/journeys/"+done+"/close", map[string]string{"reason": "goals_met"}, nil)
	open := e.refer("U12345", true)
	e.ok("POST", "/v1/journeys/"+open+"/assign", robin, nil)

	row := func() linkwork.Workload {
		t.Helper()
		for _, w := range e.caseload("").Workload {
			if w.WorkerID == "lw-robin" {
				return w
			}
		}
		t.Fatal("no workload row for lw-robin")
		return linkwork.Workload{}
	}
	if w := row(); w.LastSupervision != "" || w.Closed12m != 1 || w.OpenCases != 1 || w.People12m != 2 || w.CaseloadBand != "below" || w.OverSafeRange {
		t.Fatalf("before supervision: %+v", w)
	}
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	today := time.Now().UTC().Format(time.DateOnly)
	var ans linkwork.SupervisionAnswer
	st, out := e.do("POST", "/v1/supervision", keyTeam, map[string]string{"worker_id": "lw-robin", "date": yesterday, "kind": "clinical"},
		"Idempotency-Key", "sup-1")
	if err := json.Unmarshal(out, &ans); st != http.StatusOK || err != nil || ans.SupervisionID == "" || ans.LastSupervision != yesterday {
		t.Fatalf("record supervision: %d %s", st, out)
	}
	if w := row(); w.LastSupervision != yesterday {
		t.Fatalf("the workload shows it at once: %+v", w)
	}
	var again linkwork.SupervisionAnswer
	_, out = e.do("POST", "/v1/supervision", keyTeam, map[string]string{"worker_id": "lw-robin", "date": yesterday, "kind": "clinical"},
		"Idempotency-Key", "sup-1")
	if err := json.Unmarshal(out, &again); err != nil || !again.Replayed || again.SupervisionID != ans.SupervisionID {
		t.Fatalf("a retry records nothing more: %s", out)
	}
	e.ok("POST", "/v1/supervision", map[string]string{"worker_id": "lw-robin", "date": today, "kind": "peer"}, &ans)
	if w := row(); w.LastSupervision != today {
		t.Fatalf("the latest session: %+v", w)
	}
	for _, c := range []struct {
		body  map[string]string
		field string
	}{
		{map[string]string{"worker_id": "lw-robin", "date": today, "kind": "casual"}, "kind"},
		{map[string]string{"worker_id": "lw robin/x", "date": today, "kind": "peer"}, "worker_id"},
		{map[string]string{"date": today, "kind": "peer"}, "worker_id"},
		{map[string]string{"worker_id": "lw-robin", "date": "yesterday", "kind": "peer"}, "date"},
		{map[string]string{"worker_id": "lw-robin", "date": time.Now().UTC().AddDate(0, 0, 3).Format(time.DateOnly), "kind": "peer"}, "date"},
	} {
		if ae := e.refused("POST", "/v1/supervision", keyTeam, c.body, http.StatusBadRequest); ae.Error.Field != c.field {
			t.Errorf("%v: %+v, want field %s", c.body, ae, c.field)
		}
	}
	if st, _ := e.do("POST", "/v1/supervision", keyGP, map[string]string{"worker_id": "lw-robin", "date": today, "kind": "peer"}); st != http.StatusForbidden {
		t.Fatalf("a GP records supervision: %d", st)
	}
	// Another team never sees this team's supervision.
	var other linkwork.Caseload
	st, out = e.do("GET", "/v1/caseload", keyOther, nil)
	if err := json.Unmarshal(out, &other); st != 200 || err != nil || len(other.Workload) != 0 {
		t.Fatalf("another team's workload: %d %s", st, out)
	}
}

func TestAWorkersYearAboveTheSafeRangeIsFlagged(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	// 251 people this year: 240 closed, 11 open, straight on the log.
	const n = 251
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id := events.NewID()
			ctx := context.Background()
			meta := journal.Meta{Actor: &eventsv1.Actor{OrganisationId: "U12345", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK}}
			cmds := []events.Command{
				events.Refer{Referral: &eventsv1.ReferralReceived{Source: "gp", ReferrerOrganisationId: "A81001", SourceId: fmt.Sprint("Y-", i),
					Person: &eventsv1.PersonalData{NhsNumber: e.newNHS(), GivenName: "P", FamilyName: fmt.Sprint(i)}, Reasons: []string{"422650009"},
					LinkWorkTeam: "U12345", Urgency: "routine"}},
				events.Assign{WorkerID: "lw-busy", WorkerName: "Busy Worker"},
			}
			if i < 240 {
				cmds = append(cmds, events.Close{Reason: "goals_met"})
			}
			for _, c := range cmds {
				if _, err := e.h.Journal().Execute(ctx, id, meta, c); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var w linkwork.Workload
	for _, r := range e.caseload("").Workload {
		if r.WorkerID == "lw-busy" {
			w = r
		}
	}
	if w.OpenCases != 11 || w.Closed12m != 240 || w.People12m != 251 || !w.OverSafeRange || w.CaseloadBand != "above" || w.NewThisMonth != 251 {
		t.Fatalf("a year of 251: %+v", w)
	}
}

func TestCaseloadPages(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	var ids []string
	for range 7 {
		ids = append(ids, e.refer("U12345", true))
	}
	e.refer("U99999", true)
	for _, id := range ids[:4] {
		e.ok("POST", "/v1/journeys/"+id+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, nil)
	}
	e.settle()
	read := func(query string) ([]string, []string) {
		t.Helper()
		var got, tokens []string
		token := ""
		for range 10 {
			q := query
			if token != "" {
				q += "&page_token=" + token
			}
			var cl linkwork.Caseload
			e.ok("GET", "/v1/caseload?"+q, nil, &cl)
			for _, j := range cl.Journeys {
				got = append(got, j.JourneyID)
			}
			if cl.Totals.Open != 7 {
				t.Fatalf("every page carries the team's totals: %+v", cl.Totals)
			}
			if token = cl.NextPageToken; token == "" {
				return got, tokens
			}
			tokens = append(tokens, token)
		}
		t.Fatal("the pages never end")
		return nil, nil
	}
	got, tokens := read("page_size=3")
	if !slices.Equal(got, ids) || len(tokens) != 2 {
		t.Fatalf("three pages of 3, 3 and 1, oldest referral first: %v (tokens %d), want %v", got, len(tokens), ids)
	}
	if got, tokens := read("page_size=3&worker=lw-7"); !slices.Equal(got, ids[:4]) || len(tokens) != 1 {
		t.Fatalf("one worker's pages: %v", got)
	}
	if got, _ := read("page_size=500&status=referred"); !slices.Equal(got, ids[4:]) {
		t.Fatalf("referred: %v", got)
	}
	for _, c := range []struct{ query, field string }{
		{"page_size=0", "page_size"},
		{"page_size=ten", "page_size"},
		{"page_token=bm90LWEtdG9rZW4", "page_token"},
		{"page_token=" + tokens[0] + "&status=all", "page_token"}, // a token of another list
	} {
		if ae := e.refused("GET", "/v1/caseload?"+c.query, keyTeam, nil, http.StatusBadRequest); ae.Error.Field != c.field {
			t.Errorf("%s: %+v", c.query, ae)
		}
	}
	// Another team's token lists nothing of ours.
	if ae := e.refused("GET", "/v1/caseload?page_token="+tokens[0], keyOther, nil, http.StatusBadRequest); ae.Error.Field != "page_token" {
		t.Errorf("another team's token: %+v", ae)
	}
	var cl linkwork.Caseload
	e.ok("GET", "/v1/caseload?page_size=1000", nil, &cl)
	if len(cl.Journeys) != 7 || cl.NextPageToken != "" {
		t.Fatalf("page_size above 500 is 500: %d, %q", len(cl.Journeys), cl.NextPageToken)
	}
}
