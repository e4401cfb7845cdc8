package linkwork_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/linkway/hubtest"
	"linkway/services/linkwork"
)

// Erasure through the admin's route (keys destroyed, every journey of the
// person erased): nothing of the person, their case notes or their risks
// is readable afterwards, in the answers or anywhere under the data folder.
func TestErasureLeavesNothingOfNotesAndRisks(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3}, hubtest.Services("linkwork", "admin"))
	nhs := e.newNHS()
	id := e.referAs("U12345", nhs, true)
	j := "/v1/journeys/" + id
	e.ok("POST", j+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, nil)
	e.ok("POST", j+"/contacts", map[string]string{"outcome": "reached", "method": "phone"}, nil)
	e.ok("POST", j+"/assessment", map[string]any{"what_matters": "GardenMark8c1", "needs": []string{"company"},
		"goals": []map[string]string{{"text": "TomatoMark5e2"}}}, nil)
	e.ok("POST", j+"/notes", map[string]string{"text": "NoteMark7f3: worried about her son."}, nil)
	e.ok("POST", j+"/risks", map[string]any{"kind": "domestic_abuse", "detail": "RiskMark9d4: partner controls money", "escalate_to_gp": true}, nil)
	e.ok("POST", j+"/assign", map[string]string{"worker_id": "lw-8", "worker_name": "Ali", "handover_note": "HandoverMark2b6"}, nil)
	e.ok("POST", j+"/signposts", map[string]string{"description": "SignpostMark4a9 drop-in"}, nil)
	e.ok("POST", j+"/close", map[string]string{"reason": "goals_met"}, nil)
	e.ok("POST", j+"/reopen", map[string]string{"reason": "ReopenMark1c7"}, nil)
	second := e.referAs("U12345", nhs, true) // a second journey of the person: its history names the first
	var before answer
	e.ok("GET", "/v1/journeys/"+second, nil, &before)
	if len(before.History) != 1 {
		t.Fatalf("history before erasure: %+v", before.History)
	}
	marks := []string{nhs, "NoteMark7f3", "RiskMark9d4", "GardenMark8c1", "TomatoMark5e2", "HandoverMark2b6", "SignpostMark4a9", "ReopenMark1c7"}
	st, out := e.do("POST", "/v1/admin/erasures", "demo-admin", map[string]string{"nhs_number": nhs})
	if st != http.StatusOK {
		t.Fatalf("erasure: %d %s", st, out)
	}
	e.settle()
	for _, jid := range []string{id, second} {
		st, body := e.do("GET", "/v1/journeys/"+jid, keyTeam, nil)
		var v linkwork.JourneyView
		if err := json.Unmarshal(body, &v); st != http.StatusOK || err != nil || !v.Erased || v.Person != nil {
			t.Fatalf("journey after erasure: %d %s", st, body)
		}
		for _, m := range append(marks, "Jane", "07700", "bereaved") {
			if strings.Contains(string(body), m) {
				t.Errorf("erased %q still shown in %s", m, jid)
			}
		}
		if jid == id && (len(v.CaseNotes) != 1 || v.CaseNotes[0].Text != "" || len(v.Risks) != 1 || v.Risks[0].Detail != "" ||
			v.Risks[0].Kind != "domestic_abuse" || len(v.History) != 0) {
			t.Errorf("the course stays, the words go: notes %+v risks %+v history %+v", v.CaseNotes, v.Risks, v.History)
		}
		if jid == second && len(v.History) != 0 {
			t.Errorf("an erased person's history: %+v", v.History)
		}
	}
	if st, body := e.do("GET", j+"/notes", keyTeam, nil); st != http.StatusOK || strings.Contains(string(body), "NoteMark7f3") {
		t.Fatalf("notes after erasure: %d %s", st, body)
	}
	for _, r := range e.caseload("?status=all").Journeys {
		if r.JourneyID == id && (r.Name != "" || !r.Erased) {
			t.Fatalf("caseload row after erasure: %+v", r)
		}
	}
	// Nothing under the data folder holds them: the log keeps only what the
	// destroyed key sealed, the views compacted what they deleted.
	var files []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if files = hubtest.FilesHolding(t, e.h.Data, marks...); len(files) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if len(files) > 0 {
		t.Fatalf("still on disk: %v", files)
	}
}
