package linkwork_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"linkway/events"
	"linkway/services/platform/websession/webtest"
)

// browserish is a cookie-keeping client that does not follow redirects, so
// tests see each answer.
type browserish struct {
	t *testing.T
	c *http.Client
	e *env
}

func newBrowserish(e *env) *browserish {
	jar, _ := cookiejar.New(nil)
	return &browserish{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browserish) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.h.Base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browserish) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.e.h.Base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var hiddenPattern = regexp.MustCompile(`name="(csrf|nonce)" value="([^"]+)"`)

func hidden(page, name string) string {
	for _, m := range hiddenPattern.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}

// signIn signs in with key and returns the caseload page.
func (b *browserish) signIn(key string) (*http.Response, string) {
	b.t.Helper()
	_, page := b.get("/linkwork/")
	resp, body := b.post("/linkwork/signin", url.Values{"csrf": {hidden(page, "csrf")}, "key": {key}})
	return resp, body
}

func TestWebSignInSessionAndCSRF(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	ours := e.refer("U12345", true)
	theirs := e.refer("U99999", true)

	b := newBrowserish(e)
	resp, page := b.get("/linkwork/")
	if resp.StatusCode != 200 || !strings.Contains(page, `action="/linkwork/signin"`) || hidden(page, "csrf") == "" {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("no content security policy: %q", csp)
	}
	// A sign-in form posted without its own token (a login CSRF) is refused.
	if resp, _ := newBrowserish(e).post("/linkwork/signin", url.Values{"key": {keyTeam}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the form token: %d", resp.StatusCode)
	}
	for key, status := range map[string]int{"not-a-key": http.StatusUnauthorized, keyGP: http.StatusForbidden, "": http.StatusBadRequest} {
		if resp, _ := newBrowserish(e).signIn(key); resp.StatusCode != status {
			t.Errorf("sign in with %q: %d, want %d", key, resp.StatusCode, status)
		}
	}

	resp, _ = b.signIn(keyTeam)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "lw_linkwork" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Value == keyTeam {
		t.Fatalf("session cookie: %+v", session)
	}
	resp, page = b.get("/linkwork/")
	if resp.StatusCode != 200 || !strings.Contains(page, ours) || strings.Contains(page, theirs) || !strings.Contains(page, "Jane Doe") {
		t.Fatalf("caseload page: %d, ours %v theirs %v", resp.StatusCode, strings.Contains(page, ours), strings.Contains(page, theirs))
	}
	if resp, _ := b.get("/linkwork/journeys/" + theirs); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another team's journey page: %d", resp.StatusCode)
	}

	_, page = b.get("/linkwork/journeys/" + ours)
	csrf, nonce := hidden(page, "csrf"), hidden(page, "nonce")
	if csrf == "" || nonce == "" {
		t.Fatalf("journey page has no csrf or nonce: %s", page)
	}
	assign := url.Values{"worker_id": {"lw-3"}, "worker_name": {"Kim Lee"}, "nonce": {nonce}}
	if resp, _ := b.post("/linkwork/journeys/"+ours+"/assign", assign); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form without the CSRF token: %d", resp.StatusCode)
	}
	if st, _, _ := e.h.Journal().Load(t.Context(), ours); st.WorkerID != "" {
		t.Fatal("a form without the CSRF token changed the journey")
	}
	assign.Set("csrf", csrf)
	resp, _ = b.post("/linkwork/journeys/"+ours+"/assign", assign)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("assign: %d", resp.StatusCode)
	}
	// Pressing the button twice (same form nonce) records one contact.
	contact := url.Values{"csrf": {csrf}, "nonce": {nonce + "c"}, "outcome": {"no_answer"}, "method": {"phone"}}
	b.post("/linkwork/journeys/"+ours+"/contact", contact)
	b.post("/linkwork/journeys/"+ours+"/contact", contact)
	st, _, _ := e.h.Journal().Load(t.Context(), ours)
	if st.WorkerName != "Kim Lee" || len(st.FailedAttempts) != 1 {
		t.Fatalf("after the forms: worker %q, %d attempts", st.WorkerName, len(st.FailedAttempts))
	}
	// A refused action shows the reason on the page, with the rule's status.
	resp, page = b.post("/linkwork/journeys/"+ours+"/reopen", url.Values{"csrf": {csrf}, "nonce": {"r1"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "cannot reopen it") {
		t.Fatalf("reopening an open journey: %d", resp.StatusCode)
	}

	resp, _ = b.post("/linkwork/signout", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/linkwork/journeys/" + ours); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out the journey page answers %d, want a redirect to sign in", resp.StatusCode)
	}
	// The old cookie is dead on the server too, not just in this browser.
	stolen := newBrowserish(e)
	u, _ := url.Parse(e.h.Base + "/linkwork/")
	stolen.c.Jar.SetCookies(u, []*http.Cookie{{Name: "lw_linkwork", Value: session.Value, Path: "/linkwork/"}})
	if resp, page := stolen.get("/linkwork/"); resp.StatusCode != 200 || !strings.Contains(page, `action="/linkwork/signin"`) {
		t.Fatalf("a signed-out session still works: %d", resp.StatusCode)
	}
}

func TestWebPageInHeadlessChromium(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.refer("U12345", true)
	e.refer("U12345", true)

	ctx := webtest.Chrome(t, 1280, 720) // a small laptop
	tctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	webtest.Do(t, tctx, "open the page", chromedp.Navigate(e.h.Base+"/linkwork/"))
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return v
	}
	step("sign in",
		chromedp.WaitVisible(css("#key")),
		chromedp.SendKeys(css("#key"), keyTeam),
		chromedp.Click(css("#sign-in")),
		chromedp.WaitVisible(css("#caseload")))
	caseload := text("#caseload")
	listShot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	step("open the journey and assign",
		chromedp.Click(css(`a[href="/linkwork/journeys/`+id+`"]`)),
		chromedp.WaitVisible(css("#form-assign")),
		chromedp.SendKeys(css("#worker_id"), "lw-7"),
		chromedp.SendKeys(css("#worker_name"), "Sam Link"),
		chromedp.Click(css("#do-assign")),
		chromedp.WaitVisible(css(`#flash[data-done="assign"]`)))
	step("record a contact",
		chromedp.SetValue(css("#outcome"), "reached"),
		chromedp.SetValue(css("#method"), "phone"),
		chromedp.Click(css("#do-contact")),
		chromedp.WaitVisible(css(`#flash[data-done="contact"]`)))
	status, worker := text("#status"), text("#worker")
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	step("close",
		chromedp.SetValue(css("#reason"), "goals_met"),
		chromedp.Click(css("#do-close")),
		chromedp.WaitVisible(css("#form-reopen")))
	notice, timeline := text("#flash"), text("#timeline")
	path := filepath.Join(t.TempDir(), "journey.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "caseload.png"), listShot, 0o600); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("LINKWORK_KEEP_SCREENSHOT"); keep != "" { // to look at them by eye
		_ = os.WriteFile(keep, shot, 0o600)
		_ = os.WriteFile(keep+".caseload.png", listShot, 0o600)
	}
	if !strings.Contains(caseload, "Jane Doe") || !strings.Contains(caseload, "unassigned") {
		t.Errorf("caseload table: %q", caseload)
	}
	if status != "in progress" || worker != "Sam Link" {
		t.Errorf("after assign and contact: status %q worker %q", status, worker)
	}
	if notice != "Journey closed." || !strings.Contains(timeline, "assigned to Sam Link") || !strings.Contains(timeline, "reached by phone") ||
		!strings.Contains(timeline, "closed: goals met") {
		t.Errorf("after closing: notice %q timeline %q", notice, timeline)
	}
	st, _, err := e.h.Journal().Load(t.Context(), id)
	if err != nil || st.Status() != events.StatusClosed || st.WorkerName != "Sam Link" || !st.Contacted {
		t.Fatalf("the log after the browser session: %+v %v", st.Status(), err)
	}
	if len(shot) < 1000 || len(listShot) < 1000 {
		t.Fatalf("screenshot is %d bytes", len(shot))
	}
}

func TestWebJourneyPageShowsMeasuresAndChange(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	id := e.contacted(true)
	for _, m := range []map[string]any{
		{"instrument": "SWEMWBS", "timepoint": "baseline", "answers": []int{3, 3, 3, 3, 3, 3, 3}},
		{"instrument": "SWEMWBS", "timepoint": "follow_up", "answers": []int{4, 4, 4, 4, 3, 3, 3}},
		{"instrument": "ONS4", "timepoint": "baseline", "answers": []int{4, 6, 8, 7}},
		{"instrument": "ONS4", "timepoint": "follow_up", "answers": []int{6, 6, 7, 3}},
	} {
		e.ok("POST", "/v1/journeys/"+id+"/measures", m, nil)
	}
	b := newBrowserish(e)
	b.signIn(keyTeam)
	resp, page := b.get("/linkwork/journeys/" + id)
	if resp.StatusCode != 200 {
		t.Fatalf("journey page: %d", resp.StatusCode)
	}
	for _, want := range []string{"raw 21, metric 19.25", "raw 25, metric 22.35", "19.25 → 22.35 (better)",
		"life satisfaction 4 (low)", "anxiety 7→3 (better)", "happiness 8→7 (worse)", "phone: reached"} {
		if !strings.Contains(page, want) {
			t.Errorf("journey page lacks %q", want)
		}
	}
}

// The web caseload shows each worker's year and supervision, check-ins
// after closure in the due list, and pages; the journey page shows the
// person's earlier journeys and takes case notes and check-ins.
func TestWebCaseloadShowsTheYearCheckInsAndPages(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	nhs := e.newNHS()
	first := e.referAs("U12345", nhs, true)
	e.ok("POST", "/v1/journeys/"+first+"/assign", map[string]string{"worker_id": "lw-web", "worker_name": "Webb Worker"}, nil)
	e.ok("POST", "/v1/journeys/"+first+"/close", map[string]string{"reason": "goals_met"}, nil)
	e.ok("POST", "/v1/journeys/"+first+"/follow-ups", map[string]string{"due": time.Now().UTC().Format(time.DateOnly)}, nil)
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	e.ok("POST", "/v1/supervision", map[string]string{"worker_id": "lw-web", "date": yesterday, "kind": "clinical"}, nil)
	second := e.referAs("U12345", nhs, true)
	for range 3 {
		e.refer("U12345", true)
	}

	b := newBrowserish(e)
	if resp, _ := b.signIn(keyTeam); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	_, page := b.get("/linkwork/?status=all")
	for _, want := range []string{"Closed in 12 months", "Last supervision", yesterday, "check-in after closure", "known to Webb Worker"} {
		if !strings.Contains(page, want) {
			t.Errorf("the caseload page lacks %q", want)
		}
	}
	_, page = b.get("/linkwork/?page_size=2")
	next := regexp.MustCompile(`href="(/linkwork/\?[^"]*page_token=[^"]+)" id="next-page"`).FindStringSubmatch(page)
	if next == nil {
		t.Fatal("no next page link with page_size=2")
	}
	resp, page := b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	if resp.StatusCode != 200 || !strings.Contains(page, `id="caseload"`) {
		t.Fatalf("the next page: %d", resp.StatusCode)
	}

	_, page = b.get("/linkwork/journeys/" + second)
	if !strings.Contains(page, `id="history"`) || !strings.Contains(page, "/linkwork/journeys/"+first) {
		t.Fatal("the journey page lacks the person's earlier journey")
	}
	csrf, nonce := hidden(page, "csrf"), hidden(page, "nonce")
	resp, _ = b.post("/linkwork/journeys/"+second+"/note", url.Values{"csrf": {csrf}, "nonce": {nonce}, "text": {"WebNote: call after 10."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a case note from the page: %d", resp.StatusCode)
	}
	_, page = b.get("/linkwork/journeys/" + second)
	if !strings.Contains(page, "WebNote: call after 10.") {
		t.Fatal("the note is not on the journey page")
	}
	// A check-in on the closed journey, three months after its closure.
	_, page = b.get("/linkwork/journeys/" + first)
	if !strings.Contains(page, "Schedule a check-in after closure") {
		t.Fatal("the closed journey offers no check-in")
	}
	resp, _ = b.post("/linkwork/journeys/"+first+"/follow-up", url.Values{"csrf": {hidden(page, "csrf")}, "nonce": {hidden(page, "nonce")},
		"timepoint": {"3_months"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a check-in from the page: %d", resp.StatusCode)
	}
	var v answer
	e.ok("GET", "/v1/journeys/"+first, nil, &v)
	if len(v.FollowUps) != 2 || v.Status != events.StatusClosed {
		t.Fatalf("after the check-in form: %s %+v", v.Status, v.FollowUps)
	}
}
