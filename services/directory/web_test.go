package directory_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"linkway/services/directory"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/websession/webtest"
)

// browserClient is a cookie-keeping client that does not follow redirects,
// so each answer can be checked.
func browserClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signIn signs c in with key and returns the page's CSRF token.
func signIn(t *testing.T, h *hubtest.Hub, c *http.Client, key string) string {
	t.Helper()
	_, page := fetch(t, c, "GET", h.Base+"/directory/", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in form: %s", page)
	}
	st, _ := fetch(t, c, "POST", h.Base+"/directory/sign-in", url.Values{"csrf": {m[1]}, "key": {key}})
	if st != http.StatusSeeOther {
		t.Fatalf("sign in as %s: %d", key, st)
	}
	_, page = fetch(t, c, "GET", h.Base+"/directory/", nil)
	m = csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "Signed in as") {
		t.Fatalf("not signed in: %s", page)
	}
	return m[1]
}

func TestWebFormsAreGuarded(t *testing.T) {
	h := hubtest.Start(t)
	c := browserClient(t)
	// Signed out: every form sends the caller to sign in, and changes nothing.
	st, _ := fetch(t, c, "POST", h.Base+"/directory/services/VCS001-walk/capacity", url.Values{"capacity": {"full"}})
	if st != http.StatusSeeOther {
		t.Errorf("capacity form signed out: %d, want 303", st)
	}
	// Sign-in without the login form's token is refused.
	st, _ = fetch(t, c, "POST", h.Base+"/directory/sign-in", url.Values{"key": {vcs1}})
	if st != http.StatusForbidden {
		t.Errorf("sign-in without CSRF: %d, want 403", st)
	}
	csrf := signIn(t, h, c, vcs1)
	st, _ = fetch(t, c, "POST", h.Base+"/directory/services/VCS001-walk/capacity", url.Values{"capacity": {"full"}, "csrf": {"0000"}})
	if st != http.StatusForbidden {
		t.Errorf("capacity form with a wrong CSRF token: %d, want 403", st)
	}
	// Another organisation's service: refused, and the page says why.
	st, page := fetch(t, c, "POST", h.Base+"/directory/services/VCS002-debt/capacity", url.Values{"capacity": {"full"}, "csrf": {csrf}})
	if st != http.StatusForbidden || !strings.Contains(page, "own services only") {
		t.Errorf("VCS001 setting VCS002-debt: %d", st)
	}
	// A VCS key may not add or withdraw services.
	st, _ = fetch(t, c, "POST", h.Base+"/directory/services/VCS001-walk/withdraw", url.Values{"csrf": {csrf}})
	if st != http.StatusForbidden {
		t.Errorf("VCS withdrawing: %d, want 403", st)
	}
	st, _ = fetch(t, c, "POST", h.Base+"/directory/services/VCS001-walk/capacity", url.Values{"capacity": {"paused"}, "csrf": {csrf}})
	if st != http.StatusSeeOther {
		t.Errorf("VCS001 setting its own capacity: %d, want 303", st)
	}
	var v directory.ServiceView
	h.JSON("GET", "/v1/directory/services/VCS001-walk", lw, nil, 200, &v)
	if v.Capacity != "paused" {
		t.Errorf("capacity after the form = %q, want paused", v.Capacity)
	}
	h.JSON("GET", "/v1/directory/services/VCS002-debt", lw, nil, 200, &v)
	if v.Capacity != "open" {
		t.Errorf("VCS002-debt = %q after refused forms, want open", v.Capacity)
	}
	// A GP sees the directory but no unmet need and no forms.
	g := browserClient(t)
	signIn(t, h, g, gp)
	_, page = fetch(t, g, "GET", h.Base+"/directory/", nil)
	if !strings.Contains(page, "Sale health walks") || strings.Contains(page, "Unmet need") || strings.Contains(page, "Set capacity") {
		t.Error("a GP's page: want services, no unmet need, no capacity forms")
	}
}

func text[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S) string {
	t.Helper()
	return webtest.Run(t, ctx, fmt.Sprintf("read %v", sel), chromedp.Text(sel))
}

// count is the number of elements matching a CSS selector.
func count(t *testing.T, ctx context.Context, css string) int {
	t.Helper()
	return webtest.Run(t, ctx, "count "+css, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(css)+`).length`))
}

// TestBrowser drives the page in headless Chromium: a VCS organisation
// sets its capacity; a panel adds a service and sees unmet need.
func TestBrowser(t *testing.T) {
	h := hubtest.Start(t)
	ctx := webtest.Chrome(t, 800, 600) // headless Chromium's own size
	walk := chromedp.CSS(`tr[data-id="VCS001-walk"] .badge`)
	webtest.Do(t, ctx, "sign in as VCS001",
		chromedp.Navigate(h.Base+"/directory/"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), vcs1),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("services")),
	)
	if got := text(t, ctx, walk); got != "Open" {
		t.Errorf("VCS001-walk shows %q, want Open", got)
	}
	if n := count(t, ctx, "#save-VCS002-debt"); n != 0 {
		t.Error("VCS001 is offered a capacity form for VCS002-debt")
	}
	webtest.Do(t, ctx, "set capacity to full",
		chromedp.SetValue(chromedp.ID("capacity-VCS001-walk"), "full"),
		chromedp.Click(chromedp.ID("save-VCS001-walk")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if got := text(t, ctx, walk); got != "Full" {
		t.Errorf("after saving, VCS001-walk shows %q, want Full", got)
	}
	var v directory.ServiceView
	h.JSON("GET", "/v1/directory/services/VCS001-walk", lw, nil, 200, &v)
	if v.Capacity != "full" || v.CapacityChangedBy != "VCS001" {
		t.Errorf("the API after the page's change: %+v", v)
	}
	webtest.Do(t, ctx, "search",
		chromedp.SendKeys(chromedp.ID("q"), "debt"),
		chromedp.Click(chromedp.ID("search")),
		// The results page replaces the one that had every service. Waited
		// for by a query (not only a script), so chromedp's nodes are the
		// new page's before the next click.
		chromedp.WaitVisible(chromedp.Search(`//h2[@id="services-h"][contains(., "(1)")]`)),
	)
	if n := count(t, ctx, "tr[data-id]"); n != 1 {
		t.Errorf("searching 'debt' shows %d services, want 1", n)
	}
	if got := text(t, ctx, chromedp.CSS("tr[data-id] strong")); got != "Debt and benefits advice" {
		t.Errorf("searching 'debt' shows %q", got)
	}

	webtest.Do(t, ctx, "sign out, sign in as the panel",
		chromedp.Click(chromedp.ID("sign-out")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), panel),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("unmet")),
	)
	webtest.Do(t, ctx, "add a service",
		chromedp.SendKeys(chromedp.ID("add-org"), "VCS002"),
		chromedp.SendKeys(chromedp.ID("add-name"), "Benefits check clinic"),
		chromedp.SetValue(chromedp.ID("add-category"), "financial_and_debt_advice"),
		chromedp.SendKeys(chromedp.ID("add-areas"), "Sale, Stretford"),
		chromedp.Click(chromedp.ID("add")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-id="VCS002-benefits-check-clinic"]`)),
	)
	h.JSON("GET", "/v1/directory/services/VCS002-benefits-check-clinic", lw, nil, 200, &v)
	if v.OrganisationID != "VCS002" || len(v.Areas) != 2 || !v.AcceptsReferrals {
		t.Errorf("the service added on the page: %+v", v)
	}
	webtest.Do(t, ctx, "an invalid service is refused with its reason",
		chromedp.SendKeys(chromedp.ID("add-org"), "VCS404"),
		chromedp.SendKeys(chromedp.ID("add-name"), "Nowhere"),
		chromedp.Click(chromedp.ID("add")),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if got := text(t, ctx, chromedp.ID("error")); !strings.Contains(got, "organisation_id") {
		t.Errorf("error shown: %q, want it to name organisation_id", got)
	}
	webtest.Do(t, ctx, "record a gap",
		chromedp.SetValue(chromedp.ID("gap-need"), "food"),
		chromedp.SendKeys(chromedp.ID("gap-area"), "Sale West"),
		chromedp.SendKeys(chromedp.ID("gap-detail"), "No lunch club within walking distance"),
		chromedp.Click(chromedp.ID("record-gap")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="flash"][@data-done="gap"]`)),
	)
	if got := text(t, ctx, chromedp.ID("gaps-open")); got != "1" {
		t.Errorf("open gaps after recording one: %q", got)
	}

	webtest.Do(t, ctx, "sign out, find a group on the public page",
		chromedp.Click(chromedp.ID("sign-out")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.Navigate(h.Base+"/directory/public/"),
		chromedp.WaitVisible(chromedp.ID("services")),
		chromedp.SendKeys(chromedp.ID("q"), "walks"),
		chromedp.Click(chromedp.ID("search")),
		chromedp.WaitVisible(chromedp.Search(`//h2[@id="services-h"][contains(., "(1)")]`)),
	)
	if got := text(t, ctx, chromedp.CSS(`li[data-id="VCS001-walk"] h3`)); got != "Sale health walks" {
		t.Errorf("the public search shows %q", got)
	}
}

// TestPublicPage: anyone, with no key, finds the groups, searches them,
// and is shown nothing of what organisations do when signed in.
func TestPublicPage(t *testing.T) {
	h := hubtest.Start(t)
	c := browserClient(t)
	st, page := fetch(t, c, "GET", h.Base+"/directory/public/", nil)
	if st != http.StatusOK {
		t.Fatalf("public page: %d", st)
	}
	for _, want := range []string{"Sale health walks", "Debt and benefits advice", `<label for="q">`, "Taking new people", "Sign in"} {
		if !strings.Contains(page, want) {
			t.Errorf("the public page lacks %q", want)
		}
	}
	for _, not := range []string{`name="csrf"`, "Set capacity", "Withdraw", "Signed in as", "<script"} {
		if strings.Contains(page, not) {
			t.Errorf("the public page shows %q", not)
		}
	}
	// Withdrawn services are not offered.
	h.JSON("POST", "/v1/directory/services/VCS006-garden/withdraw", panel, nil, 200, nil)
	_, page = fetch(t, c, "GET", h.Base+"/directory/public/?q=debt", nil)
	if n := strings.Count(page, `class="card" data-id=`); n != 1 || !strings.Contains(page, `data-id="VCS002-debt"`) {
		t.Errorf("searching debt shows %d services", n)
	}
	_, page = fetch(t, c, "GET", h.Base+"/directory/public/?category=physical_activity", nil)
	if !strings.Contains(page, `data-id="VCS001-walk"`) || strings.Contains(page, `data-id="VCS006-garden"`) || strings.Contains(page, `data-id="VCS002-debt"`) {
		t.Error("the physical activity groups: want the walk, not the withdrawn garden nor debt advice")
	}
	st, page = fetch(t, c, "GET", h.Base+"/directory/public/?category=knitting", nil)
	if st != http.StatusBadRequest || !strings.Contains(page, `role="alert"`) {
		t.Errorf("an unknown category: %d, want 400 with the problem shown", st)
	}
	// A signed-in session changes nothing on the public page.
	signIn(t, h, c, panel)
	_, page = fetch(t, c, "GET", h.Base+"/directory/public/", nil)
	if strings.Contains(page, `name="csrf"`) || strings.Contains(page, "Unmet need") {
		t.Error("the public page shows a signed-in panel's forms")
	}
}
