package vcs_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
)

const panelKey = "demo-panel"

// feedbackAnswer is the answer of POST .../feedback.
type feedbackAnswer struct {
	FeedbackID       string `json:"feedback_id"`
	OnwardReferralID string `json:"onward_referral_id"`
	ServiceID        string `json:"service_id"`
	From             string `json:"from"`
	Rating           int    `json:"rating"`
	Comment          string `json:"comment"`
	ShareComment     bool   `json:"share_comment"`
}

func TestFeedbackOnOwnOnwardReferral(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+j.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	path := "/v1/onward-referrals/" + j.OnwardID + "/feedback"

	before := journeyVersion(t, h, j.ID)
	for _, c := range []struct{ name, body, field string }{
		{"no from", `{"rating":5}`, "from"},
		{"from a neighbour", `{"from":"neighbour","rating":5}`, "from"},
		{"no rating", `{"from":"person"}`, "rating"},
		{"a rating of 6", `{"from":"person","rating":6}`, "rating"},
		{"a rating of 0", `{"from":"person","rating":0}`, "rating"},
		{"a rating in words", `{"from":"person","rating":"great"}`, "rating"},
		{"a comment to share that is not there", `{"from":"person","rating":4,"share_comment":true}`, "share_comment"},
		{"too long a comment", `{"from":"person","rating":4,"comment":"` + strings.Repeat("x", 1001) + `"}`, "comment"},
		{"the service named", `{"from":"person","rating":4,"service_id":"VCS002-debt"}`, "service_id"},
	} {
		st, out := h.Do("POST", path, vcs1Key, []byte(c.body))
		if _, field := errorField(t, out); st != 400 || field != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", c.name, st, out, c.field)
		}
	}
	if after := journeyVersion(t, h, j.ID); after != before {
		t.Fatalf("refused feedback was appended: version %d -> %d", before, after)
	}
	// Another organisation's onward referral is not found, whatever is sent.
	for _, body := range []string{`{"from":"person","rating":5}`, `{"from":"nobody"}`} {
		if st, out := h.Do("POST", path, vcs2Key, []byte(body)); st != 404 || strings.Contains(string(out), "Jane") {
			t.Errorf("feedback by VCS002 on VCS001's referral: %d %s, want 404", st, out)
		}
	}
	for _, key := range []string{lwKey, gpKey, panelKey} {
		if st, _ := h.Do("POST", path, key, []byte(`{"from":"person","rating":5}`)); st != 403 {
			t.Errorf("feedback with %s's key: %d, want 403", key, st)
		}
	}

	send := func() (int, feedbackAnswer) {
		t.Helper()
		st, _, out := h.Request("POST", path, vcs1Key, []byte(`{"from":"carer","rating":4,"comment":"She loves the Tuesday walk","share_comment":true}`),
			"Idempotency-Key", "fb-1")
		var fb feedbackAnswer
		if st < 300 {
			if err := json.Unmarshal(out, &fb); err != nil {
				t.Fatal(err)
			}
		}
		return st, fb
	}
	st, fb := send()
	if st != 201 || fb.FeedbackID == "" || fb.OnwardReferralID != j.OnwardID || fb.ServiceID != walk.ID || fb.From != "carer" ||
		fb.Rating != 4 || fb.Comment != "She loves the Tuesday walk" || !fb.ShareComment {
		t.Fatalf("feedback: %d %+v", st, fb)
	}
	// Sent again with the same key: the first answer, nothing appended.
	v := journeyVersion(t, h, j.ID)
	if st2, fb2 := send(); st2 != 200 || fb2.FeedbackID != fb.FeedbackID {
		t.Errorf("the same feedback sent again: %d %+v, want 200 and the first answer", st2, fb2)
	}
	if journeyVersion(t, h, j.ID) != v {
		t.Errorf("a retried feedback was appended twice")
	}
	// The journey holds it, recorded by the organisation, about its service.
	_, hist, err := h.Journal().Load(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got *eventsv1.Envelope
	for _, r := range hist {
		if r.Event.GetFeedbackGiven() != nil {
			got = r.Event
		}
	}
	if got == nil || got.GetFeedbackGiven().GetServiceId() != walk.ID || got.GetActor().GetOrganisationId() != "VCS001" {
		t.Errorf("the journey's feedback event: %v", got)
	}
}

// Feedback a VCS records counts for the community panel like the team's:
// eight ratings of a service are shown, fewer are suppressed.
func TestFeedbackReachesThePanelsCounts(t *testing.T) {
	h := hubtest.Start(t)
	var oids []string
	for range 8 {
		j := toOnward(t, h, debt, "name")
		oids = append(oids, j.OnwardID)
	}
	waitInInbox(t, h, vcs2Key, oids[7])
	for _, oid := range oids {
		h.JSON("POST", "/v1/onward-referrals/"+oid+"/feedback", vcs2Key, map[string]any{"from": "person", "rating": 5}, 201, nil)
	}
	h.Eventually(func() bool {
		var counts struct {
			Total json.RawMessage `json:"total"`
		}
		h.JSON("GET", "/v1/directory/services/"+debt.ID+"/feedback", panelKey, nil, 200, &counts)
		return string(counts.Total) != "0" && string(counts.Total) != `"*"`
	}, "the panel sees the eight ratings counted")
}

func TestWebFeedbackForm(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	b := newBrowser(t, h)
	if st, _ := b.signIn(vcs1Key); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	if _, page := b.get("/vcs/referrals/" + j.OnwardID); strings.Contains(page, `id="record-feedback"`) {
		t.Errorf("feedback is offered before the person was taken on")
	}
	if st, _ := b.post("/vcs/referrals/"+j.OnwardID+"/accept", url.Values{"csrf": {b.csrf()}}); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	if !strings.Contains(b.last, `id="record-feedback"`) {
		t.Fatalf("no feedback form once accepted: %s", b.last)
	}
	if st, page := b.post("/vcs/referrals/"+j.OnwardID+"/feedback", url.Values{"csrf": {b.csrf()}, "from": {"person"}}); st != 400 || !strings.Contains(page, "Choose a rating") {
		t.Errorf("feedback without a rating: %d", st)
	}
	before := journeyVersion(t, h, j.ID)
	st, page := b.post("/vcs/referrals/"+j.OnwardID+"/feedback", url.Values{"csrf": {b.csrf()}, "from": {"person"}, "rating": {"5"},
		"comment": {"Made friends"}})
	if st != 200 || !strings.Contains(page, "Feedback recorded") {
		t.Fatalf("feedback: %d %s", st, page)
	}
	if journeyVersion(t, h, j.ID) != before+1 {
		t.Errorf("the feedback form did not append one event")
	}
}
