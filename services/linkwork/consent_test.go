package linkwork_test

import (
	"net/http"
	"testing"

	"linkway/events"
)

func TestThePersonsOwnConsentWins(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(false) // the referrer sent no consent to share
	j := "/v1/journeys/" + id
	onward := map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}
	if ae := e.refused("POST", j+"/onward-referrals", keyTeam, onward, http.StatusConflict); ae.Error.Field != "consent.share_with_vcs" {
		t.Fatalf("no consent: %+v", ae)
	}
	var v answer
	e.ok("POST", j+"/consent", map[string]any{"share_with_vcs": true, "method": "verbal"}, &v)
	if !v.ConsentVCS || v.Consent == nil || !v.Consent.ByPerson || v.Consent.Method != "verbal" {
		t.Fatalf("the person's consent: %v %+v", v.ConsentVCS, v.Consent)
	}
	e.ok("POST", j+"/onward-referrals", onward, &v)
	if v.OnwardReferralID == "" {
		t.Fatal("no onward referral after the person agreed")
	}
	e.ok("POST", j+"/consent", map[string]any{"share_with_vcs": false, "method": "written"}, &v)
	if v.ConsentVCS || !v.Consent.ByPerson {
		t.Fatalf("withdrawn: %+v", v.Consent)
	}
	ae := e.refused("POST", j+"/onward-referrals", keyTeam, map[string]any{"service_id": "VCS002-debt", "share": []string{"name"}}, http.StatusConflict)
	if ae.Error.Field != "consent.share_with_vcs" {
		t.Fatalf("after withdrawal: %+v", ae)
	}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"method": "verbal"}, "share_with_vcs"},
		{map[string]any{"share_with_vcs": true, "method": "telepathy"}, "method"},
		{map[string]any{"share_with_vcs": "yes", "method": "verbal"}, "share_with_vcs"},
	} {
		if ae := e.refused("POST", j+"/consent", keyTeam, c.body, http.StatusBadRequest); ae.Error.Field != c.field {
			t.Errorf("%v: %+v", c.body, ae)
		}
	}
	if st, _ := e.do("POST", j+"/consent", keyOther, map[string]any{"share_with_vcs": true, "method": "verbal"}); st != http.StatusNotFound {
		t.Fatalf("another team records consent: %d", st)
	}
}

func TestSignposting(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	j := "/v1/journeys/" + id
	var v answer
	e.ok("POST", j+"/signposts", map[string]string{"service_id": serviceSignpost}, &v) // takes no referrals: signposting is what it is for
	if v.SignpostID == "" || len(v.Signposts) != 1 || v.Signposts[0].ServiceID != serviceSignpost || v.Signposts[0].ServiceName == "" ||
		v.Connection != "signposted" {
		t.Fatalf("signposted to a service: %q %+v %s", v.SignpostID, v.Signposts, v.Connection)
	}
	e.ok("POST", j+"/signposts", map[string]string{"description": "Citizens Advice drop-in on Tuesdays"}, &v)
	if len(v.Signposts) != 2 || v.Signposts[1].Description != "Citizens Advice drop-in on Tuesdays" || v.Signposts[1].ServiceID != "" {
		t.Fatalf("signposted elsewhere: %+v", v.Signposts)
	}
	last := v.Timeline[len(v.Timeline)-1]
	if last.Type != "Signposted" || last.Summary != "signposted elsewhere" {
		t.Fatalf("timeline: %+v", last)
	}
	for _, c := range []struct {
		body  map[string]string
		field string
		want  int
	}{
		{map[string]string{}, "service_id", http.StatusBadRequest},
		{map[string]string{"service_id": serviceSignpost, "description": "x"}, "description", http.StatusBadRequest},
		{map[string]string{"service_id": "NOPE-1"}, "service_id", http.StatusBadRequest},
		{map[string]string{"service_id": servicePaused}, "service_id", http.StatusConflict},
	} {
		if ae := e.refused("POST", j+"/signposts", keyTeam, c.body, c.want); ae.Error.Field != c.field {
			t.Errorf("%v: %+v", c.body, ae)
		}
	}
	referred := e.refer("U12345", true)
	if ae := e.refused("POST", "/v1/journeys/"+referred+"/signposts", keyTeam, map[string]string{"service_id": serviceSignpost},
		http.StatusConflict); ae.Error.Code != "failed_precondition" {
		t.Fatalf("signposting before the person is reached: %+v", ae)
	}
	theirs := e.refer("U99999", true)
	if st, _ := e.do("POST", "/v1/journeys/"+theirs+"/signposts", keyTeam, map[string]string{"service_id": "NOPE-1"}); st != http.StatusNotFound {
		t.Fatalf("another team's journey, an unknown service: %d", st)
	}
}
