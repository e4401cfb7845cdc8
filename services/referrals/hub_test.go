package referrals_test

import (
	"net/http"
	"testing"

	"linkway/services/hub"
	"linkway/services/hub/hubtest"
)

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
