package directory_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/api"
)

type feedbackAnswer struct {
	ServiceID string `json:"service_id"`
	Total     any    `json:"total"`
	ByRating  []struct {
		Rating int `json:"rating"`
		Count  any `json:"count"`
	} `json:"by_rating"`
	ByFrom   map[string]any `json:"by_from"`
	Average  *float64       `json:"average_rating"`
	Comments []struct {
		Text   string `json:"text"`
		From   string `json:"from"`
		Rating int    `json:"rating"`
	} `json:"comments"`
}

func (f feedbackAnswer) rating(r int) string {
	for _, c := range f.ByRating {
		if c.Rating == r {
			return fmt.Sprint(c.Count)
		}
	}
	return "missing"
}

func feedback(t *testing.T, h *hubtest.Hub, key, svc string) (feedbackAnswer, string) {
	t.Helper()
	var f feedbackAnswer
	st, body := h.Do("GET", "/v1/directory/services/"+svc+"/feedback", key, nil)
	if st != http.StatusOK {
		t.Fatalf("feedback of %s as %s: %d %s", svc, key, st, body)
	}
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	return f, string(body)
}

func (s script) feedback(jid, org, svc, from string, rating int, comment string, share bool) {
	s.t.Helper()
	s.must(jid, org, events.GiveFeedback{FeedbackID: events.NewID(), ServiceID: svc, From: from, Rating: rating,
		Comment: comment, ShareComment: share})
}

// TestFeedbackSuppressedBelowEight: what people and carers said of a
// service is counted by rating, shown as "*" below 8; a comment is shown
// only where the person agreed, only from 8 ratings, publicly too, and it
// goes with the person's data on erasure.
func TestFeedbackSuppressedBelowEight(t *testing.T) {
	// Polled often: no rate limit.
	h := hubtest.Start(t, func(c *hub.Config) { c.RateLimit = api.RateLimit{} })
	s := script{t: t, h: h, dir: reader(t, h)}
	const svc = "VCS002-debt"
	var js []string
	for range 8 {
		j := s.journey("debt")
		if _, err := s.referOn(j, svc, false); err != nil {
			t.Fatal(err)
		}
		js = append(js, j)
	}
	s.feedback(js[0], "U12345", svc, "person", 5, "Lovely people, kept to myself", false)
	s.feedback(js[1], "U12345", svc, "person", 4, "They helped me sort my bills", true)
	s.feedback(js[2], "VCS002", svc, "carer", 5, "", false)

	var f feedbackAnswer
	var body string
	h.Eventually(func() bool {
		f, body = feedback(t, h, panel, svc)
		return fmt.Sprint(f.ByFrom["carer"]) == "*" // the last of the three
	}, "three ratings are counted, suppressed")
	for r, want := range map[int]string{1: "0", 2: "0", 3: "0", 4: "*", 5: "*"} {
		if got := f.rating(r); got != want {
			t.Errorf("3 ratings: rating %d = %s, want %s", r, got, want)
		}
	}
	if fmt.Sprint(f.ByFrom["person"]) != "*" || fmt.Sprint(f.ByFrom["carer"]) != "*" || f.Average != nil || len(f.Comments) != 0 {
		t.Errorf("3 ratings: %+v, want nothing shown", f)
	}
	if strings.Contains(body, "bills") || strings.Contains(body, "Lovely") {
		t.Errorf("3 ratings: a comment is shown: %s", body)
	}
	_, page := fetch(t, browserClient(t), "GET", h.Base+"/directory/public/?q=debt", nil)
	if strings.Contains(page, "Rated") || strings.Contains(page, "bills") {
		t.Error("the public page shows feedback of 3 ratings")
	}

	for _, j := range js[3:] {
		s.feedback(j, "U12345", svc, "person", 5, "", false)
	}
	h.Eventually(func() bool {
		f, body = feedback(t, h, icb, svc)
		return fmt.Sprint(f.Total) == "8"
	}, "eight ratings are shown")
	if f.rating(5) != "*" || f.rating(4) != "*" || f.Average == nil || *f.Average != 4.9 {
		t.Errorf("8 ratings: %+v (average %v)", f.ByRating, f.Average)
	}
	if len(f.Comments) != 1 || f.Comments[0].Text != "They helped me sort my bills" || f.Comments[0].Rating != 4 || f.Comments[0].From != "person" {
		t.Errorf("8 ratings: comments %+v, want the one shared", f.Comments)
	}
	if strings.Contains(body, "Lovely") {
		t.Error("a comment the person did not agree to share is shown")
	}
	_, page = fetch(t, browserClient(t), "GET", h.Base+"/directory/public/?q=debt", nil)
	if !strings.Contains(page, "Rated 4.9 out of 5") || !strings.Contains(page, "They helped me sort my bills") || strings.Contains(page, "Lovely") {
		t.Errorf("the public page of 8 ratings: %s", page)
	}

	// Who may read it: panels and commissioners; others 403; no key 401.
	for _, key := range []string{gp, lw, vcs2, admin} {
		refused(t, h, "GET", "/v1/directory/services/"+svc+"/feedback", key, nil, http.StatusForbidden, "")
	}
	refused(t, h, "GET", "/v1/directory/services/"+svc+"/feedback", "", nil, http.StatusUnauthorized, "")
	refused(t, h, "GET", "/v1/directory/services/VCS404-none/feedback", panel, nil, http.StatusNotFound, "")

	// Erasure: the person's comment goes; the counts stay.
	s.must(js[1], "OPERATOR", events.ErasePersonalData{})
	h.Eventually(func() bool {
		f, body = feedback(t, h, panel, svc)
		return len(f.Comments) == 0
	}, "the erased person's comment goes")
	if fmt.Sprint(f.Total) != "8" || strings.Contains(body, "bills") {
		t.Errorf("after erasure: %s", body)
	}
	_, page = fetch(t, browserClient(t), "GET", h.Base+"/directory/public/?q=debt", nil)
	if strings.Contains(page, "bills") {
		t.Error("the public page still shows an erased person's comment")
	}
}
