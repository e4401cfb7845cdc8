package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/referrals"
)

type created struct {
	referrals.View
	Created bool `json:"created"`
}

func referral(t *testing.T) map[string]any {
	return map[string]any{
		"source_id": "E2E-" + time.Now().Format("20060102T150405.000000000"),
		"patient": map[string]any{"nhs_number": "9000000009", "given_name": "Jane", "family_name": "Doe",
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX"},
		"reasons":        []string{"422650009"},
		"consent":        map[string]any{"share_with_vcs": false},
		"link_work_team": "U12345",
	}
}

// TestHubRestart runs the whole hub: a referral acknowledged before a
// restart is there after it, and a resend after the restart (the stream's
// in-memory state gone) is still 200 with the original journey.
func TestHubRestart(t *testing.T) {
	data := t.TempDir()
	onData := func(c *hub.Config) { c.Data = data }
	body := referral(t)

	h := hubtest.Start(t, onData)
	var first created
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", body, http.StatusCreated, &first)
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}

	h = hubtest.Start(t, onData)
	var v created
	h.JSON("GET", "/v1/referrals/"+first.JourneyID, "demo-gp-a81001", nil, http.StatusOK, &v)
	if v.JourneyID != first.JourneyID || v.Status != "referred" {
		t.Errorf("after restart: %+v", v)
	}
	var again created
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", body, http.StatusOK, &again)
	if again.JourneyID != first.JourneyID || again.Created {
		t.Errorf("resend after restart: %+v", again)
	}
	if st, _ := h.Do("GET", "/v1/referrals/"+first.JourneyID, "demo-gp-a81002", nil); st != http.StatusNotFound {
		t.Errorf("another practice: %d", st)
	}
}
