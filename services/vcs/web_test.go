package vcs_test

import (
	"bufio"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/vcs"
)

// browser is a plain HTTP client with cookies: the web inbox as a browser
// without JavaScript uses it.
type browser struct {
	t    *testing.T
	h    *hubtest.Hub
	c    *http.Client
	last string // the last page's body
}

func newBrowser(t *testing.T, h *hubtest.Hub) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, h: h, c: &http.Client{Jar: jar}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	b.last = string(body)
	return resp, b.last
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.h.Base+path, nil)
	resp, body := b.do(req)
	return resp.StatusCode, body
}

func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.h.Base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := b.do(req)
	return resp.StatusCode, body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token of the last page's forms.
func (b *browser) csrf() string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("no CSRF token on the page: %s", b.last)
	}
	return m[1]
}

func (b *browser) signIn(key string) (int, string) {
	b.t.Helper()
	if st, _ := b.get("/vcs/"); st != 200 {
		b.t.Fatalf("GET /vcs/: %d", st)
	}
	return b.post("/vcs/sign-in", url.Values{"key": {key}, "csrf": {b.csrf()}})
}

func TestWebInboxWithoutJavaScript(t *testing.T) {
	h := hubtest.Start(t)
	a := toOnward(t, h, walk, "name", "phone", "needs")
	d := toOnward(t, h, walk, "name")
	other := toOnward(t, h, debt, "name")
	waitInInbox(t, h, vcs1Key, d.OnwardID)
	waitInInbox(t, h, vcs2Key, other.OnwardID)

	b := newBrowser(t, h)
	st, page := b.get("/vcs/")
	if st != 200 || !strings.Contains(page, `<label for="key">`) || strings.Contains(page, "Jane") {
		t.Fatalf("signed out, /vcs/ should be the sign-in form: %d %s", st, page)
	}
	for _, c := range []struct {
		key  string
		want int
	}{{"not-a-key", 401}, {gpKey, 403}} {
		if st, page := b.signIn(c.key); st != c.want || strings.Contains(page, "Jane") {
			t.Errorf("signing in with %s: %d, want %d", c.key, st, c.want)
		}
	}
	// Sign-in without the sign-in form's token is refused.
	if st, _ := b.post("/vcs/sign-in", url.Values{"key": {vcs1Key}, "csrf": {"forged"}}); st != 403 {
		t.Errorf("sign-in with a forged token: %d, want 403", st)
	}

	st, page = b.signIn(vcs1Key)
	if st != 200 || !strings.Contains(page, "Sale Walking Group") || !strings.Contains(page, a.OnwardID) {
		t.Fatalf("after sign-in, the inbox: %d %s", st, page)
	}
	if strings.Contains(page, other.OnwardID) || len(leaks(page)) > 0 || strings.Contains(page, a.ID) {
		t.Errorf("the inbox page shows another organisation's referral, personal data or a journey id: %s", page)
	}
	u, _ := url.Parse(h.Base + "/vcs/")
	var session *http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "lw_vcs_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	// The jar does not keep the attributes: check the Set-Cookie header.
	checkSessionCookie(t, h)

	// New referrals first.
	if strings.Index(page, "New referrals") > strings.Index(page, "Taken on") {
		t.Errorf("new referrals are not listed first")
	}
	// Another organisation's referral page is not found.
	if st, page := b.get("/vcs/referrals/" + other.OnwardID); st != 404 || strings.Contains(page, "Jane") {
		t.Errorf("another organisation's referral page: %d", st)
	}

	// A form without the session's CSRF token changes nothing.
	before := journeyVersion(t, h, a.ID)
	if st, _ := b.post("/vcs/referrals/"+a.OnwardID+"/accept", url.Values{"csrf": {"forged"}}); st != 403 {
		t.Errorf("accept with a forged CSRF token: %d, want 403", st)
	}
	if journeyVersion(t, h, a.ID) != before {
		t.Fatal("a forged form changed the journey")
	}

	// Accept, attendance, and a decline with its reason.
	st, page = b.get("/vcs/referrals/" + a.OnwardID)
	if st != 200 || !strings.Contains(page, "07700 900123") || !strings.Contains(page, "Sam Link") || !strings.Contains(page, "Befriending and social groups") {
		t.Fatalf("the referral page: %d %s", st, page)
	}
	if st, page = b.post("/vcs/referrals/"+a.OnwardID+"/accept", url.Values{"csrf": {b.csrf()}}); st != 200 || !strings.Contains(page, "Accepted") {
		t.Fatalf("accept: %d %s", st, page)
	}
	if st, page = b.post("/vcs/referrals/"+a.OnwardID+"/attendance", url.Values{"csrf": {b.csrf()}, "date": {"2026-11-20"}}); st != 400 || !strings.Contains(page, "Say whether they came") {
		t.Errorf("attendance without saying whether they came: %d", st)
	}
	if st, page = b.post("/vcs/referrals/"+a.OnwardID+"/attendance", url.Values{"csrf": {b.csrf()}, "date": {"2026-11-20"}, "attended": {"yes"}}); st != 200 || !strings.Contains(page, "2026-11-20: came") {
		t.Fatalf("attendance: %d %s", st, page)
	}
	if st, page = b.post("/vcs/referrals/"+d.OnwardID+"/decline", url.Values{"csrf": {b.csrf()}, "reason": {""}}); st != 400 || !strings.Contains(page, "Choose a reason") {
		t.Errorf("decline without a reason: %d", st)
	}
	if st, page = b.post("/vcs/referrals/"+d.OnwardID+"/decline", url.Values{"csrf": {b.csrf()}, "reason": {"no_capacity"}, "detail": {"full until March"}}); st != 200 || !strings.Contains(page, "We have no space: full until March") {
		t.Fatalf("decline: %d %s", st, page)
	}
	if st, _ = b.post("/vcs/referrals/"+d.OnwardID+"/accept", url.Values{"csrf": {b.csrf()}}); st != 409 {
		t.Errorf("accepting a declined referral from the page: %d, want 409", st)
	}
	js, _, _ := h.Journal().Load(context.Background(), a.ID)
	if o, _ := js.OnwardByID(a.OnwardID); o.Status != "attending" {
		t.Errorf("the journey's onward referral is %q, want attending", o.Status)
	}

	// Sign out ends the session: the old cookie no longer works.
	b.get("/vcs/")
	if st, _ := b.post("/vcs/sign-out", url.Values{"csrf": {b.csrf()}}); st != 200 {
		t.Errorf("sign out: %d", st)
	}
	replay := &http.Client{}
	req, _ := http.NewRequest("GET", h.Base+"/vcs/", nil)
	req.AddCookie(session)
	resp, err := replay.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), a.OnwardID) || !strings.Contains(string(body), `<label for="key">`) {
		t.Errorf("the signed-out session still shows the inbox")
	}
}

// checkSessionCookie signs in without a jar to read the cookie's attributes.
func checkSessionCookie(t *testing.T, h *hubtest.Hub) {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(h.Base + "/vcs/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the page has no strict CSP: %q", csp)
	}
	var pre *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "lw_vcs_signin" {
			pre = c
		}
	}
	token := csrfField.FindStringSubmatch(string(body))
	if pre == nil || token == nil {
		t.Fatal("the sign-in form has no token")
	}
	req, _ := http.NewRequest("POST", h.Base+"/vcs/sign-in", strings.NewReader(url.Values{"key": {vcs1Key}, "csrf": {token[1]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre)
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d, want 303", resp.StatusCode)
	}
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name == "lw_vcs_session" {
			found = true
			// Plain HTTP here, so not Secure; over TLS it is (cookie()).
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
				t.Errorf("session cookie attributes: %+v", c)
			}
			if strings.Contains(c.Value, vcs1Key) {
				t.Errorf("the session cookie holds the key")
			}
		}
	}
	if !found {
		t.Error("sign-in set no session cookie")
	}
}

func TestWebInboxStreamsNewReferrals(t *testing.T) {
	h := hubtest.Start(t)
	b := newBrowser(t, h)
	if st, _ := b.signIn(vcs1Key); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.Base+"/vcs/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	await := func(what string, cond func(string) bool) {
		t.Helper()
		for {
			select {
			case l := <-lines:
				if cond(l) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the stream never sent %s", what)
			}
		}
	}
	await("the current list", func(l string) bool { return strings.Contains(l, `id="inbox-list"`) })
	other := toOnward(t, h, debt, "name")
	j := toOnward(t, h, walk, "name")
	await("the new referral", func(l string) bool {
		if strings.Contains(l, other.OnwardID) {
			t.Errorf("VCS001's stream carried VCS002's referral")
		}
		return strings.Contains(l, j.OnwardID)
	})
	// Without a session the stream is refused.
	anon, err := http.Get(h.Base + "/vcs/events")
	if err != nil {
		t.Fatal(err)
	}
	anon.Body.Close()
	if anon.StatusCode != 401 {
		t.Errorf("events without a session: %d, want 401", anon.StatusCode)
	}
}

func TestWebCapacityUpdatesTheDirectory(t *testing.T) {
	h := hubtest.Start(t)
	b := newBrowser(t, h)
	st, page := b.signIn(vcs1Key)
	if st != 200 || !strings.Contains(page, `name="service_id" value="VCS001-walk"`) || strings.Contains(page, "VCS002-debt") {
		t.Fatalf("the inbox shows the organisation's own services only: %d %s", st, page)
	}
	token := b.csrf()
	cases := []struct {
		name, service, capacity string
		want                    int
	}{
		{"unknown capacity", "VCS001-walk", "overflowing", 400},
		{"another organisation's service", "VCS002-debt", "full", 404},
		{"no such service", "nope", "full", 404},
		{"own service", "VCS001-walk", "full", 200},
	}
	for _, c := range cases {
		st, page := b.post("/vcs/capacity", url.Values{"csrf": {token}, "service_id": {c.service}, "capacity": {c.capacity}})
		if st != c.want {
			t.Errorf("%s: %d, want %d", c.name, st, c.want)
		}
		if c.want == 200 && !strings.Contains(page, "Capacity updated") {
			t.Errorf("%s: no confirmation: %s", c.name, page)
		}
	}
	// The directory (read as a link worker would) shows the change, and
	// only that one.
	for svc, want := range map[string]string{"VCS001-walk": "full", "VCS002-debt": "open"} {
		var got struct {
			Capacity string `json:"capacity"`
		}
		h.JSON("GET", "/v1/directory/services/"+svc, lwKey, nil, 200, &got)
		if got.Capacity != want {
			t.Errorf("directory: %s capacity %q, want %q", svc, got.Capacity, want)
		}
	}
}

func TestWebFormSentTwiceActsOnce(t *testing.T) {
	h := hubtest.Start(t)
	j := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, j.OnwardID)
	b := newBrowser(t, h)
	if st, _ := b.signIn(vcs1Key); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	b.get("/vcs/referrals/" + j.OnwardID)
	formID := regexp.MustCompile(`name="form_id" value="([^"]+)"`).FindStringSubmatch(b.last)
	if formID == nil {
		t.Fatalf("the referral's forms carry no form id: %s", b.last)
	}
	form := url.Values{"csrf": {b.csrf()}, "form_id": {formID[1]}, "date": {"2026-11-20"}, "attended": {"yes"}}
	if st, _ := b.post("/vcs/referrals/"+j.OnwardID+"/accept", form); st != 200 {
		t.Fatalf("accept: %d", st)
	}
	// The same form again (a double click, or sent again from history).
	if st, page := b.post("/vcs/referrals/"+j.OnwardID+"/accept", form); st != 200 || !strings.Contains(page, "Accepted") {
		t.Errorf("the same accept form sent again: %d, want 200 showing the first answer", st)
	}
	before := journeyVersion(t, h, j.ID)
	for range 2 {
		if st, _ := b.post("/vcs/referrals/"+j.OnwardID+"/attendance", form); st != 200 {
			t.Fatalf("attendance: %d", st)
		}
	}
	if after := journeyVersion(t, h, j.ID); after != before+1 {
		t.Errorf("one attendance form sent twice appended %d events, want 1", after-before)
	}
}

func TestWebSessionIsSharedThroughNATS(t *testing.T) {
	h := hubtest.Start(t)
	b := newBrowser(t, h)
	if st, page := b.signIn(vcs1Key); st != 200 || !strings.Contains(page, "Sign out") {
		t.Fatalf("sign in: %d", st)
	}
	// Another process on the same NATS (here: the hub restarted) knows
	// the session: it lives in a KV bucket with a shared signing secret.
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	h2 := hubtest.Start(t, func(c *hub.Config) { c.Data = h.Data })
	b.h = h2
	st, page := b.get("/vcs/")
	if st != 200 || !strings.Contains(page, "Sign out") || !strings.Contains(page, "Sale Walking Group") {
		t.Fatalf("after a restart, the session is gone: %d %s", st, page)
	}
	// Signing out there ends it everywhere.
	if st, _ := b.post("/vcs/sign-out", url.Values{"csrf": {b.csrf()}}); st != 200 {
		t.Fatalf("sign out: %d", st)
	}
	if _, page := b.get("/vcs/"); strings.Contains(page, "Sign out") {
		t.Error("still signed in after signing out")
	}
}

var moreLink = regexp.MustCompile(`<a href="([^"]+)" id="more-(\w+)"`)

// itemIDs are the onward referrals a page lists, in order.
func itemIDs(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`data-id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestWebInboxPages(t *testing.T) {
	h := hubtest.Start(t)
	var ids []string
	for range 5 {
		ids = append(ids, toOnward(t, h, walk, "name").OnwardID)
	}
	waitInInbox(t, h, vcs1Key, ids[4])
	h.JSON("POST", "/v1/onward-referrals/"+ids[2]+"/decline", vcs1Key, map[string]string{"reason": "no_capacity"}, 200, nil)
	b := newBrowser(t, h)
	if st, _ := b.signIn(vcs1Key); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	st, page := b.get("/vcs/?page_size=2")
	if st != 200 {
		t.Fatalf("GET /vcs/?page_size=2: %d", st)
	}
	// Each section shows its first page and says how many it holds.
	if !strings.Contains(page, "New referrals <span class=\"count\">(4)</span>") ||
		!strings.Contains(page, "Finished or declined <span class=\"count\">(1)</span>") {
		t.Errorf("the sections' counts are missing: %s", page)
	}
	if got := itemIDs(page); !slices.Equal(got, []string{ids[0], ids[1], ids[2]}) {
		t.Errorf("first pages: %v, want the two longest waiting new ones, then the declined one", got)
	}
	m := moreLink.FindStringSubmatch(page)
	if m == nil || m[2] != "new" {
		t.Fatalf("no link to more new referrals: %s", page)
	}
	// Following the section's pages lists each new referral once, the
	// longest waiting first, and ends.
	seen := itemIDs(page)[:2]
	next := html.UnescapeString(m[1])
	for range 5 {
		st, page = b.get(next)
		if st != 200 || strings.Contains(page, `id="inbox-list"`) {
			t.Fatalf("GET %s: %d (a section's page is not the live list)", next, st)
		}
		seen = append(seen, itemIDs(page)...)
		m = moreLink.FindStringSubmatch(page)
		if m == nil {
			break
		}
		next = html.UnescapeString(m[1])
	}
	if want := []string{ids[0], ids[1], ids[3], ids[4]}; !slices.Equal(seen, want) {
		t.Errorf("new referrals page by page: %v, want %v", seen, want)
	}
	if !strings.Contains(page, "That is the last page.") {
		t.Errorf("the last page does not say so: %s", page)
	}
	for path, want := range map[string]int{
		"/vcs/?section=elsewhere":             404,
		"/vcs/?page_token=abc":                400,
		"/vcs/?section=new&page_token=xyz":    400,
		"/vcs/?section=done&page_size=banana": 200,
	} {
		if st, _ := b.get(path); st != want {
			t.Errorf("GET %s: %d, want %d", path, st, want)
		}
	}
}

// A busy organisation's inbox (10,000 onward referrals) answers as fast
// as an empty one: every list is a page of a prefix scan, and the counts
// are kept, never counted.
func TestInboxOfTenThousandStaysQuick(t *testing.T) {
	h := hubtest.Start(t)
	// 200 journeys, each referred on to 50 of the organisation's services
	// (a journey may be referred to each service once at a time), written
	// at once.
	const journeys, each = 200, 50
	ctx := context.Background()
	var wg sync.WaitGroup
	start := time.Now()
	errs := make(chan error, journeys)
	for i := range journeys {
		wg.Go(func() {
			steps := onwardSteps(walk, "name")
			for k := 1; k < each; k++ {
				svc := walk
				svc.ID = fmt.Sprintf("VCS001-s%d-%d", i, k)
				steps = append(steps, step{linkWorker, events.ReferOnward{OnwardReferralID: events.NewID(), Service: svc, Share: []string{"name"}}})
			}
			jid := events.ReferralJourneyID("A81001", "VCS-BULK-"+events.NewID())
			for _, s := range steps {
				if _, err := h.Journal().Execute(ctx, jid, s.meta, s.cmd); err != nil {
					errs <- fmt.Errorf("%s: %w", events.CommandName(s.cmd), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d onward referrals written in %v", journeys*each, time.Since(start))
	b := newBrowser(t, h)
	if st, _ := b.signIn(vcs1Key); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	// Generous: under the race detector the reader applies every party's
	// views several times slower.
	hubtest.Eventually(t, 5*time.Minute, func() bool {
		_, page := b.get("/vcs/")
		return strings.Contains(page, fmt.Sprintf("(%d)", journeys*each))
	}, "the inbox holds every onward referral")
	t.Logf("the inbox holds them all %v after the first was written", time.Since(start))

	timed := func(what string, do func() (int, string)) {
		t.Helper()
		best := time.Hour
		var size int
		for range 5 {
			start := time.Now()
			st, body := do()
			if st != 200 {
				t.Fatalf("%s: %d", what, st)
			}
			best, size = min(best, time.Since(start)), len(body)
		}
		t.Logf("%s with %d onward referrals: %v, %d bytes", what, journeys*each, best, size)
		// A page, not the whole inbox: a few hundred KB at most, and quick
		// even on a loaded machine.
		if best > 500*time.Millisecond || size > 400<<10 {
			t.Errorf("%s: %v, %d bytes: not a page", what, best, size)
		}
	}
	timed("GET /vcs/", func() (int, string) { return b.get("/vcs/") })
	_, page := b.get("/vcs/")
	m := moreLink.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no link to the next page")
	}
	timed("GET /vcs/ next page", func() (int, string) { return b.get(html.UnescapeString(m[1])) })
	timed("GET /v1/inbox", func() (int, string) {
		st, body := h.Do("GET", "/v1/inbox", vcs1Key, nil)
		return st, string(body)
	})
	timed("GET /v1/inbox?status=sent&page_size=500", func() (int, string) {
		st, body := h.Do("GET", "/v1/inbox?status=sent&page_size=500", vcs1Key, nil)
		return st, string(body)
	})

	// The feed publishes them all, and the outbox keeps only what is not
	// yet published: once the feed is past a block of the log, the next
	// change trims it.
	stream, err := h.JS().Stream(ctx, vcs.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 5*time.Minute, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == journeys*each
	}, "the feed holds every onward referral")
	t.Logf("the feed holds all %d messages %v after the first was written", journeys*each, time.Since(start))
	one := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, one.OnwardID)
	outbox := 0
	if err := h.Views().View(vcs.InboxProjection).ForEach("q.", func(string, []byte) error { outbox++; return nil }); err != nil {
		t.Fatal(err)
	}
	if outbox > 256 {
		t.Errorf("the outbox still holds %d messages once the feed has published them", outbox)
	}
}
