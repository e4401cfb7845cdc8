package e2e_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
)

// TestReferredAgainAfterErasureSurvivesARestart (issue 14; issue 15's
// finding 3): a person is referred, erased, and referred again; the hub is
// restarted on the same data folder. It becomes ready (the old journey's
// ciphertext, whose key is destroyed, reads as erased and does not stop
// the views or the person index catching up), the new journey shows the
// person, and the old one answers with the person masked, never a 500.
func TestReferredAgainAfterErasureSurvivesARestart(t *testing.T) {
	const nhs, gp, lw, admin = "9476719931", "demo-gp-a81001", "demo-lw-u12345", "demo-admin"
	data := t.TempDir()
	onData := func(c *hub.Config) { c.Data = data }
	body := func(source string) map[string]any {
		return map[string]any{
			"source_id": source,
			"patient": map[string]any{"nhs_number": nhs, "given_name": "Ernest", "family_name": "Againby",
				"birth_date": "1959-04-21", "sex": "male", "postcode": "M33 6ZZ", "phone": "07700 900777"},
			"reasons":        []string{"422650009"},
			"notes":          "Moved in with his daughter.",
			"consent":        map[string]any{"share_with_vcs": true},
			"link_work_team": "U12345",
		}
	}
	// What of the person a masked answer must not hold.
	personal := []string{nhs, "Ernest", "Againby", "1959-04-21", "M33 6ZZ", "07700 900777", "Moved in with"}
	holds := func(b []byte) []string {
		var out []string
		for _, s := range personal {
			if strings.Contains(string(b), s) {
				out = append(out, s)
			}
		}
		return out
	}
	var ref struct {
		JourneyID string `json:"journey_id"`
	}

	h := hubtest.Start(t, onData)
	h.JSON("POST", "/v1/referrals", gp, body("AGAIN-1"), http.StatusCreated, &ref)
	old := ref.JourneyID
	var erased struct {
		Journeys int `json:"journeys"`
	}
	h.JSON("POST", "/v1/admin/erasures", admin, map[string]string{"nhs_number": nhs}, http.StatusOK, &erased)
	if erased.Journeys != 1 {
		t.Fatalf("the erasure reached %d journeys, want 1", erased.Journeys)
	}
	h.JSON("POST", "/v1/referrals", gp, body("AGAIN-2"), http.StatusCreated, &ref)
	fresh := ref.JourneyID
	if fresh == old {
		t.Fatal("the new referral was given the erased journey")
	}
	checkJourneys := func(h *hubtest.Hub, when string) {
		t.Helper()
		// The new journey shows the person: to the practice (FHIR, the
		// route that names the patient) and to the link-worker team.
		st, b := h.Do("GET", "/fhir/R4/ServiceRequest/"+fresh, gp, nil)
		if st != http.StatusOK || !strings.Contains(string(b), "Againby") || !strings.Contains(string(b), nhs) {
			t.Errorf("%s: the new journey's ServiceRequest: %d %.400s", when, st, b)
		}
		st, b = h.Do("GET", "/v1/journeys/"+fresh, lw, nil)
		if st != http.StatusOK || !strings.Contains(string(b), `"given_name":"Ernest"`) {
			t.Errorf("%s: the new journey for the team: %d %.400s", when, st, b)
		}
		h.JSON("GET", "/v1/referrals/"+fresh, gp, nil, http.StatusOK, nil)
		// The old one is there, masked: no name, no NHS number, no notes.
		st, b = h.Do("GET", "/v1/referrals/"+old, gp, nil)
		if st != http.StatusOK || !strings.Contains(string(b), "personal data was erased") || holds(b) != nil {
			t.Errorf("%s: the old journey for the practice: %d (holds %v) %.400s", when, st, holds(b), b)
		}
		st, b = h.Do("GET", "/fhir/R4/ServiceRequest/"+old, gp, nil)
		if st != http.StatusOK || !strings.Contains(string(b), "personal data erased") || holds(b) != nil {
			t.Errorf("%s: the old journey's ServiceRequest: %d (holds %v) %.400s", when, st, holds(b), b)
		}
		st, b = h.Do("GET", "/v1/journeys/"+old, lw, nil)
		if st != http.StatusOK || !strings.Contains(string(b), `"personal_data_erased":true`) || holds(b) != nil {
			t.Errorf("%s: the old journey for the team: %d (holds %v) %.400s", when, st, holds(b), b)
		}
	}
	checkJourneys(h, "before the restart")

	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}

	// Started again on the same folder: ready within a bound (Start
	// itself waits 10 s for /readyz; this says so in the test).
	begun := time.Now()
	h = hubtest.Start(t, onData)
	if st, b := h.Do("GET", "/readyz", "", nil); st != http.StatusOK {
		t.Fatalf("/readyz after the restart: %d %s", st, b)
	}
	t.Logf("ready %v after the restart", time.Since(begun).Round(time.Millisecond))
	checkJourneys(h, "after the restart")

	// The person index, rebuilt from the log, knows both keys (the
	// destroyed one too, so a later erasure misses nothing) and only the
	// live journey.
	p, err := h.Keyring().Person(t.Context(), h.Keyring().PersonRef(nhs))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 2 || len(p.Journeys) != 1 || p.Journeys[0] != fresh {
		t.Errorf("the person after the restart: %+v; want 2 keys and journey %s", p, fresh)
	}
	// The journey is worked on after the restart, and erased again.
	h.JSON("POST", "/v1/journeys/"+fresh+"/assign", lw, map[string]any{"worker_id": "lw-7", "worker_name": "Sam Link"}, http.StatusOK, nil)
	h.JSON("POST", "/v1/admin/erasures", admin, map[string]string{"nhs_number": nhs}, http.StatusOK, &erased)
	if erased.Journeys != 1 {
		t.Errorf("the second erasure reached %d journeys, want 1", erased.Journeys)
	}
	st, b := h.Do("GET", "/v1/journeys/"+fresh, lw, nil)
	if st != http.StatusOK || holds(b) != nil {
		t.Errorf("the second journey after its erasure: %d (holds %v)", st, holds(b))
	}
}
