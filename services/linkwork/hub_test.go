package linkwork_test

import (
	"net/http"
	"strings"
	"testing"

	"linkway/services/linkway/hubtest"
	"linkway/services/linkwork"
)

// The service as the real hub runs it: demo keys, the GP-facing referrals
// service and the real directory (demo services VCS001-walk, VCS002-debt).
func TestInTheDemoHub(t *testing.T) {
	h := hubtest.Start(t)
	const gp, lw = "demo-gp-a81001", "demo-lw-u12345"
	var ref struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", gp, map[string]any{
		"source_id": "EMIS-LW-1",
		"patient": map[string]string{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe",
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX", "phone": "07700 900123"},
		"reasons": []string{"422650009"}, "notes": "Recently bereaved.", "consent": map[string]bool{"share_with_vcs": true},
		"link_work_team": "U12345", "urgency": "routine",
	}, http.StatusCreated, &ref)
	id := ref.JourneyID
	h.Eventually(func() bool {
		st, body := h.Do("GET", "/v1/caseload", lw, nil)
		return st == http.StatusOK && strings.Contains(string(body), id)
	}, "the referral reaches the team's caseload")

	h.JSON("POST", "/v1/journeys/"+id+"/assign", lw, map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, http.StatusOK, nil)
	h.JSON("POST", "/v1/journeys/"+id+"/contacts", lw, map[string]string{"outcome": "reached", "method": "phone"}, http.StatusOK, nil)
	var on struct {
		linkwork.JourneyView
		OnwardReferralID string `json:"onward_referral_id"`
	}
	h.JSON("POST", "/v1/journeys/"+id+"/onward-referrals", lw,
		map[string]any{"service_id": "VCS001-walk", "share": []string{"name", "phone"}}, http.StatusOK, &on)
	if on.OnwardReferralID == "" || len(on.Onward) != 1 || on.Onward[0].OrganisationID != "VCS001" || on.Onward[0].ServiceName == "" {
		t.Fatalf("onward referral through the real directory: %+v", on.Onward)
	}
	// The event carries the team's contact from the register, so the VCS
	// organisation can reach the link worker.
	_, hist, err := h.Journal().Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	made := hist[len(hist)-1].Event.GetOnwardReferralMade()
	if made == nil || !strings.Contains(made.GetLinkWorkerContact(), "Sam Link") || !strings.Contains(made.GetLinkWorkerContact(), "0161 496 0000") ||
		made.GetShared().GetPerson().GetNhsNumber() != "" || made.GetShared().GetPerson().GetPhone() != "07700 900123" {
		t.Fatalf("onward referral event: %v", made)
	}
	if st, _ := h.Do("POST", "/v1/journeys/"+id+"/onward-referrals", lw,
		map[string]any{"service_id": "NO-SUCH-SERVICE", "share": []string{"name"}}); st != http.StatusBadRequest {
		t.Fatalf("unknown service: %d", st)
	}
	if st, _ := h.Do("GET", "/v1/journeys/"+id, gp, nil); st != http.StatusForbidden {
		t.Fatalf("a GP key reads the team's journey: %d", st)
	}
	if st, body := h.Do("GET", "/linkwork/", "", nil); st != http.StatusOK || !strings.Contains(string(body), "/linkwork/signin") {
		t.Fatalf("web page: %d", st)
	}
}
