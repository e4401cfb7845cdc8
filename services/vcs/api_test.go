package vcs_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
)

func TestInboxHoldsOnlyWhatWasShared(t *testing.T) {
	h := hubtest.Start(t)
	cases := []struct {
		name   string
		share  []string
		want   func(it inboxItem) bool
		absent []string // values that must not appear
	}{
		{"name only", []string{"name"}, func(it inboxItem) bool {
			return it.Person.GivenName == "Jane" && it.Person.Phone == "" && it.Person.Email == "" && len(it.Needs) == 0
		}, []string{"07700 900123", "jane@example.org"}},
		{"name, phone, needs", []string{"name", "phone", "needs"}, func(it inboxItem) bool {
			return it.Person.Phone == "07700 900123" && it.Person.Email == "" && len(it.Needs) == 1
		}, []string{"jane@example.org"}},
		{"email only", []string{"email"}, func(it inboxItem) bool {
			return it.Person.GivenName == "" && it.Person.Email == "jane@example.org"
		}, []string{"Walker", "07700 900123"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := toOnward(t, h, walk, c.share...)
			waitInInbox(t, h, vcs1Key, j.OnwardID)
			st, body := h.Do("GET", "/v1/onward-referrals/"+j.OnwardID, vcs1Key, nil)
			if st != 200 {
				t.Fatalf("GET onward referral: %d %s", st, body)
			}
			var it inboxItem
			if err := json.Unmarshal(body, &it); err != nil {
				t.Fatal(err)
			}
			if !c.want(it) {
				t.Errorf("item does not hold exactly what was shared: %s", body)
			}
			if l := leaks(string(body)); len(l) > 0 {
				t.Errorf("item leaks %v: %s", l, body)
			}
			for _, a := range c.absent {
				if strings.Contains(string(body), a) {
					t.Errorf("item holds %q, which was not shared: %s", a, body)
				}
			}
			if strings.Contains(string(body), j.ID) || strings.Contains(string(body), "journey") {
				t.Errorf("item exposes the journey: %s", body)
			}
			if it.LinkWorkerContact == "" || it.WaitingSeconds == nil || it.Status != "sent" {
				t.Errorf("item lacks the link worker's contact, waiting time or status: %s", body)
			}
		})
	}
	t.Run("notes only when shared", func(t *testing.T) {
		j := toOnward(t, h, walk, "notes")
		waitInInbox(t, h, vcs1Key, j.OnwardID)
		_, body := h.Do("GET", "/v1/onward-referrals/"+j.OnwardID, vcs1Key, nil)
		if !strings.Contains(string(body), gpNotes) {
			t.Errorf("shared notes are missing: %s", body)
		}
		if l := leaks(string(body), gpNotes); len(l) > 0 {
			t.Errorf("item leaks %v", l)
		}
	})
}

func TestAnotherOrganisationGetsNotFound(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name", "phone")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	_, other := inbox(t, h, vcs2Key, "")
	if strings.Contains(other, j.OnwardID) {
		t.Fatalf("VCS002's inbox holds VCS001's referral: %s", other)
	}
	before := journeyVersion(t, h, j.ID)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/onward-referrals/" + j.OnwardID, ""},
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/accept", `{}`},
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/decline", `{"reason":"no_capacity"}`},
		// Invalid input for another organisation's id is still 404: the
		// answer must not depend on whether the id exists elsewhere.
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/decline", `{"reason":"nonsense"}`},
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/attendance", `{"date":"2026-11-20","attended":true}`},
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/complete", ``},
		{"POST", "/v1/onward-referrals/" + j.OnwardID + "/dropped-out", `{}`},
		// The journey id is not an onward referral id either.
		{"POST", "/v1/onward-referrals/" + j.ID + "/accept", `{}`},
		{"GET", "/v1/onward-referrals/not-a-uuid", ""},
		{"GET", "/v1/onward-referrals/..%2F..%2Fx", ""},
	} {
		var body any
		if r.body != "" {
			body = []byte(r.body)
		}
		st, out := h.Do(r.method, r.path, vcs2Key, body)
		if st != 404 {
			t.Errorf("%s %s as VCS002: %d, want 404: %s", r.method, r.path, st, out)
		}
		if strings.Contains(string(out), "Jane") || strings.Contains(string(out), j.ID) {
			t.Errorf("%s %s: the 404 leaks data: %s", r.method, r.path, out)
		}
	}
	if after := journeyVersion(t, h, j.ID); after != before {
		t.Errorf("another organisation changed the journey: version %d -> %d", before, after)
	}
}

func TestWhoMayCall(t *testing.T) {
	h := hubtest.Start(t)
	cases := []struct {
		method, path, key string
		want              int
	}{
		{"GET", "/v1/inbox", "", 401},
		{"GET", "/v1/inbox", "not-a-key", 401},
		{"GET", "/v1/inbox", gpKey, 403},
		{"GET", "/v1/inbox", lwKey, 403},
		{"GET", "/v1/inbox", vcs1Key, 200},
		{"POST", "/v1/onward-referrals/0193a0b6-0000-7000-8000-000000000000/accept", "", 401},
		{"POST", "/v1/onward-referrals/0193a0b6-0000-7000-8000-000000000000/accept", lwKey, 403},
		{"POST", "/v1/onward-referrals/0193a0b6-0000-7000-8000-000000000000/accept", vcs1Key, 404},
	}
	for _, c := range cases {
		var body any
		if c.method == "POST" {
			body = map[string]any{}
		}
		if st, out := h.Do(c.method, c.path, c.key, body); st != c.want {
			t.Errorf("%s %s with %q: %d, want %d: %s", c.method, c.path, c.key, st, c.want, out)
		}
	}
}

func TestTakeUpFollowsTheRules(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name", "phone", "needs")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	base := "/v1/onward-referrals/" + j.OnwardID
	steps := []struct {
		name, path string
		body       string
		status     int
		wantStatus string // the item's status after, for 200s
		code       string // the error code, otherwise
	}{
		{"attendance before accepting", "/attendance", `{"date":"2026-11-20","attended":true}`, 409, "", "failed_precondition"},
		{"complete before attending", "/complete", ``, 409, "", "failed_precondition"},
		{"accept", "/accept", `{}`, 200, "accepted", ""},
		{"accept again", "/accept", `{}`, 409, "", "failed_precondition"},
		{"decline once accepted", "/decline", `{"reason":"no_capacity"}`, 409, "", "failed_precondition"},
		{"did not attend", "/attendance", `{"date":"2026-11-13","attended":false}`, 200, "accepted", ""},
		{"attended", "/attendance", `{"date":"2026-11-20","attended":true}`, 200, "attending", ""},
		// A session written up after the fact, dated before the onward
		// referral was made (2026-11-02, toOnward), is kept, with a warning.
		{"attended before the referral was made", "/attendance", `{"date":"2026-10-28","attended":true}`, 200, "attending", ""},
		{"complete", "/complete", `{}`, 200, "completed", ""},
		{"drop out once completed", "/dropped-out", `{}`, 409, "", "failed_precondition"},
	}
	for _, s := range steps {
		st, out := h.Do("POST", base+s.path, vcs1Key, []byte(s.body))
		if st != s.status {
			t.Fatalf("%s: %d, want %d: %s", s.name, st, s.status, out)
		}
		if s.status == 200 {
			var it inboxItem
			if err := json.Unmarshal(out, &it); err != nil {
				t.Fatal(err)
			}
			// Read-your-writes: the answer already shows the change.
			if it.Status != s.wantStatus {
				t.Errorf("%s: item status %q, want %q", s.name, it.Status, s.wantStatus)
			}
			before := s.name == "attended before the referral was made"
			if warned := slices.ContainsFunc(it.Warnings, func(w string) bool { return strings.Contains(w, "before the onward referral") }); warned != before {
				t.Errorf("%s: warnings %q, want a session before the referral warned of: %v", s.name, it.Warnings, before)
			}
		} else if code, _ := errorField(t, out); code != s.code {
			t.Errorf("%s: code %q, want %q", s.name, code, s.code)
		}
	}
	var it inboxItem
	h.JSON("GET", base, vcs1Key, nil, 200, &it)
	if len(it.Attendance) != 3 || it.Attendance[0].Attended || !it.Attendance[1].Attended {
		t.Errorf("attendance not kept in order: %+v", it.Attendance)
	}
	// The link worker's and the GP practice's views show the take-up.
	for _, v := range []struct{ path, key string }{{"/v1/journeys/" + j.ID, lwKey}, {"/v1/referrals/" + j.ID, gpKey}} {
		h.Eventually(func() bool {
			st, out := h.Do("GET", v.path, v.key, nil)
			return st == 200 && strings.Contains(string(out), `"status":"completed"`)
		}, v.path+" shows the onward referral completed")
	}
	st, _, err := h.Journal().Load(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := st.OnwardByID(j.OnwardID); !ok || o.Status != "completed" {
		t.Errorf("the journey's onward referral is %+v, want completed", o)
	}
}

func TestRefusedInputNamesTheFieldAndAppendsNothing(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	base := "/v1/onward-referrals/" + j.OnwardID
	long := strings.Repeat("x", 1001)
	cases := []struct {
		name, path, body, field string
		status                  int
	}{
		{"decline without a reason", "/decline", `{}`, "reason", 400},
		{"decline with an unknown reason", "/decline", `{"reason":"sometime"}`, "reason", 400},
		{"decline with a reason of the wrong type", "/decline", `{"reason":3}`, "reason", 400},
		{"decline with too long a detail", "/decline", `{"reason":"other","detail":"` + long + `"}`, "detail", 400},
		{"decline with an unknown field", "/decline", `{"reason":"other","nhs_number":"1"}`, "nhs_number", 400},
		{"accept with an unknown field", "/accept", `{"why":"x"}`, "why", 400},
		{"attendance without a date", "/attendance", `{"attended":true}`, "date", 400},
		{"attendance with a bad date", "/attendance", `{"date":"20/11/2026","attended":true}`, "date", 400},
		{"attendance in the future", "/attendance", `{"date":"2999-01-01","attended":true}`, "date", 400},
		{"attendance without attended", "/attendance", `{"date":"2026-11-20"}`, "attended", 400},
		{"attendance with attended a string", "/attendance", `{"date":"2026-11-20","attended":"yes"}`, "attended", 400},
		{"not JSON", "/decline", `{"reason":`, "", 400},
		{"too large", "/decline", `{"reason":"other","detail":"` + strings.Repeat("y", 9000) + `"}`, "", 413},
	}
	before := journeyVersion(t, h, j.ID)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := h.Do("POST", base+c.path, vcs1Key, []byte(c.body))
			if st != c.status {
				t.Fatalf("%d, want %d: %s", st, c.status, out)
			}
			if _, field := errorField(t, out); field != c.field {
				t.Errorf("field %q, want %q: %s", field, c.field, out)
			}
		})
	}
	if after := journeyVersion(t, h, j.ID); after != before {
		t.Errorf("refused input was appended: version %d -> %d", before, after)
	}
	// And a good decline still works afterwards, with its detail kept.
	var it inboxItem
	h.JSON("POST", base+"/decline", vcs1Key, map[string]string{"reason": "no_capacity", "detail": "waiting list full"}, 200, &it)
	if it.Status != "declined" || it.DeclineReason != "no_capacity" || it.Detail != "waiting list full" {
		t.Errorf("declined item: %+v", it)
	}
}

func TestInboxListIsNewestFirstAndFilters(t *testing.T) {
	h := hubtest.Start(t)
	a := toOnward(t, h, walk, "name")
	b := toOnward(t, h, walk, "name")
	c := toOnward(t, h, debt, "name")
	waitInInbox(t, h, vcs1Key, b.OnwardID)
	waitInInbox(t, h, vcs2Key, c.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	items, body := inbox(t, h, vcs1Key, "")
	if len(items) != 2 || items[0].OnwardReferralID != b.OnwardID || items[1].OnwardReferralID != a.OnwardID {
		t.Fatalf("want [b a] newest first, got %s", body)
	}
	if strings.Contains(body, c.OnwardID) {
		t.Errorf("VCS001's inbox holds VCS002's referral")
	}
	sent, _ := inbox(t, h, vcs1Key, "?status=sent")
	if len(sent) != 1 || sent[0].OnwardReferralID != b.OnwardID {
		t.Errorf("status=sent: %+v", sent)
	}
	acc, _ := inbox(t, h, vcs1Key, "?status=accepted")
	if len(acc) != 1 || acc[0].OnwardReferralID != a.OnwardID {
		t.Errorf("status=accepted: %+v", acc)
	}
	st, out := h.Do("GET", "/v1/inbox?status=maybe", vcs1Key, nil)
	if _, field := errorField(t, out); st != 400 || field != "status" {
		t.Errorf("status=maybe: %d %s", st, out)
	}
}

func TestIdempotencyKeyReplaysTheAnswer(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	send := func() (int, []byte) {
		req := []byte(`{}`)
		return doWithHeader(t, h, "POST", "/v1/onward-referrals/"+j.OnwardID+"/accept", vcs1Key, req, "Idempotency-Key", "retry-1")
	}
	st1, out1 := send()
	st2, out2 := send()
	if st1 != 200 || st2 != 200 {
		t.Fatalf("a retried accept with the same key: %d then %d (%s)", st1, st2, out2)
	}
	if !strings.Contains(string(out1), `"accepted"`) || !strings.Contains(string(out2), `"accepted"`) {
		t.Errorf("answers: %s / %s", out1, out2)
	}
	// Without the key, the same request is a second accept: refused.
	if st, _ := h.Do("POST", "/v1/onward-referrals/"+j.OnwardID+"/accept", vcs1Key, []byte(`{}`)); st != 409 {
		t.Errorf("a second accept without the key: %d, want 409", st)
	}
}

func TestWithdrawnByTheLinkWorker(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	lw := journal.Meta{Actor: &eventsv1.Actor{OrganisationId: "U12345", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK}}
	if _, err := h.Journal().Execute(t.Context(), j.ID, lw, events.WithdrawOnward{OnwardReferralID: j.OnwardID, Reason: "the person moved away, to Leeds"}); err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		items, _ := inbox(t, h, vcs1Key, "?status=withdrawn")
		return len(items) == 1 && items[0].OnwardReferralID == j.OnwardID
	}, "the inbox shows the referral withdrawn")
	_, body := h.Do("GET", "/v1/onward-referrals/"+j.OnwardID, vcs1Key, nil)
	if strings.Contains(string(body), "Leeds") {
		t.Errorf("the link worker's reason reached the organisation: %s", body)
	}
	st, out := h.Do("POST", "/v1/onward-referrals/"+j.OnwardID+"/accept", vcs1Key, []byte(`{}`))
	if code, _ := errorField(t, out); st != 409 || code != "failed_precondition" {
		t.Errorf("accepting a withdrawn referral: %d %s", st, out)
	}
}

func TestInboxPages(t *testing.T) {
	h := hubtest.Start(t)
	var ids []string
	for range 5 {
		ids = append(ids, toOnward(t, h, walk, "name").OnwardID)
	}
	other := toOnward(t, h, debt, "name")
	waitInInbox(t, h, vcs1Key, ids[4])
	waitInInbox(t, h, vcs2Key, other.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+ids[1]+"/accept", vcs1Key, nil, 200, nil)

	type page struct {
		OnwardReferrals []inboxItem `json:"onward_referrals"`
		NextPageToken   string      `json:"next_page_token"`
	}
	pages := func(query string) (sizes []int, got []string, tokens []string) {
		t.Helper()
		token := ""
		for range 10 {
			var p page
			q := query
			if token != "" {
				q += "&page_token=" + token
			}
			h.JSON("GET", "/v1/inbox?"+q, vcs1Key, nil, 200, &p)
			sizes = append(sizes, len(p.OnwardReferrals))
			for _, it := range p.OnwardReferrals {
				got = append(got, it.OnwardReferralID)
			}
			if p.NextPageToken == "" {
				return sizes, got, tokens
			}
			token = p.NextPageToken
			tokens = append(tokens, token)
		}
		t.Fatalf("%s: the pages never end", query)
		return nil, nil, nil
	}
	sizes, got, tokens := pages("page_size=2")
	newestFirst := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(got, newestFirst) {
		t.Errorf("pages of 2: sizes %v, ids %v, want [2 2 1] and %v", sizes, got, newestFirst)
	}
	if _, sent, _ := pages("status=sent&page_size=3"); len(sent) != 4 || slices.Contains(sent, ids[1]) {
		t.Errorf("status=sent paged: %v", sent)
	}
	// A token names a place in one organisation's one list: another
	// organisation, or another list, cannot use it to read further.
	for _, c := range []struct{ key, query string }{
		{vcs2Key, "page_token=" + tokens[0]},
		{vcs1Key, "status=sent&page_token=" + tokens[0]},
		{vcs1Key, "page_token=bm90LWEtdG9rZW4"},
	} {
		st, out := h.Do("GET", "/v1/inbox?"+c.query, c.key, nil)
		if _, field := errorField(t, out); st != 400 || field != "page_token" {
			t.Errorf("%s with %s: %d %s, want 400 naming page_token", c.query, c.key, st, out)
		}
		if strings.Contains(string(out), "Jane") {
			t.Errorf("a refused token shows a person: %s", out)
		}
	}
	for _, q := range []string{"page_size=0", "page_size=lots", "page_size=-1"} {
		st, out := h.Do("GET", "/v1/inbox?"+q, vcs1Key, nil)
		if _, field := errorField(t, out); st != 400 || field != "page_size" {
			t.Errorf("%s: %d %s, want 400 naming page_size", q, st, out)
		}
	}
	if st, out := h.Do("GET", "/v1/inbox?colour=red", vcs1Key, nil); st != 400 {
		t.Errorf("an unknown parameter: %d %s", st, out)
	}
	// The most a page holds is 500, whatever is asked.
	var big page
	h.JSON("GET", "/v1/inbox?page_size=100000", vcs1Key, nil, 200, &big)
	if len(big.OnwardReferrals) != 5 || big.NextPageToken != "" {
		t.Errorf("page_size=100000: %d items, next %q", len(big.OnwardReferrals), big.NextPageToken)
	}
}
