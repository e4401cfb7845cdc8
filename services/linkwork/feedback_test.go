package linkwork_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"linkway/events"
	"linkway/services/linkwork"
)

func TestFeedbackOnAServiceReferredTo(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	j := "/v1/journeys/" + id
	e.ok("POST", j+"/onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}, nil)
	body := map[string]any{"service_id": "VCS001-walk", "from": "person", "rating": 5, "comment": "FeedbackMark: friendly", "share_comment": true}
	var fb linkwork.FeedbackAnswer
	st, out := e.do("POST", j+"/feedback", keyTeam, body, "Idempotency-Key", "fb-1")
	if err := json.Unmarshal(out, &fb); st != http.StatusCreated || err != nil || fb.FeedbackID == "" || fb.Rating != 5 ||
		fb.JourneyID != id || !fb.ShareComment || strings.Contains(string(out), "Jane") {
		t.Fatalf("the team's feedback: %d %s", st, out)
	}
	var again linkwork.FeedbackAnswer
	st, out = e.do("POST", j+"/feedback", keyTeam, body, "Idempotency-Key", "fb-1")
	if err := json.Unmarshal(out, &again); st != http.StatusOK || err != nil || !again.Replayed || again.FeedbackID != fb.FeedbackID {
		t.Fatalf("a retry: %d %s", st, out)
	}
	// The VCS organisation the journey was referred on to, for its own service.
	st, out = e.do("POST", j+"/feedback", keyVCS, map[string]any{"service_id": "VCS001-walk", "from": "carer", "rating": 4})
	if st != http.StatusCreated || strings.Contains(string(out), "Jane") {
		t.Fatalf("the VCS organisation's feedback: %d %s", st, out)
	}
	for _, c := range []struct {
		key    string
		body   map[string]any
		status int
		field  string
	}{
		{keyTeam, map[string]any{"service_id": "VCS001-walk", "from": "person", "rating": 6}, http.StatusBadRequest, "rating"},
		{keyTeam, map[string]any{"service_id": "VCS001-walk", "from": "neighbour", "rating": 3}, http.StatusBadRequest, "from"},
		{keyTeam, map[string]any{"service_id": "VCS001-walk", "from": "person"}, http.StatusBadRequest, "rating"},
		{keyTeam, map[string]any{"from": "person", "rating": 3}, http.StatusBadRequest, "service_id"},
		{keyTeam, map[string]any{"service_id": "VCS002-debt", "from": "person", "rating": 3}, http.StatusConflict, "service_id"},
		{keyOther, map[string]any{"service_id": "VCS001-walk", "from": "person", "rating": 3}, http.StatusNotFound, ""},
		{"demo-vcs-002", map[string]any{"service_id": "VCS001-walk", "from": "person", "rating": 3}, http.StatusNotFound, ""},
		{keyVCS, map[string]any{"service_id": "VCS002-debt", "from": "person", "rating": 3}, http.StatusNotFound, ""},
		{keyGP, map[string]any{"service_id": "VCS001-walk", "from": "person", "rating": 3}, http.StatusForbidden, ""},
	} {
		if ae := e.refused("POST", j+"/feedback", c.key, c.body, c.status); ae.Error.Field != c.field {
			t.Errorf("%s %v: %+v, want field %q", c.key, c.body, ae, c.field)
		}
	}
	var v answer
	e.ok("GET", j, nil, &v)
	n := 0
	for _, te := range v.Timeline {
		if te.Type == "FeedbackGiven" {
			n++
			if strings.Contains(te.Summary+te.Detail, "FeedbackMark") {
				t.Errorf("a comment in the timeline: %+v", te)
			}
		}
	}
	if n != 2 {
		t.Fatalf("feedback in the timeline: %d", n)
	}
}
