package outcomes_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"linkway/services/linkway/hubtest"
	"linkway/services/outcomes"
	"linkway/services/platform/websession/webtest"
)

// browser starts headless Chromium, tall enough for the whole dashboard,
// with a bound on everything the test does in it.
func browser(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(webtest.Chrome(t, 1280, 2400), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// screenshot writes a browser test's screenshot to the documented folder
// (testdata/screenshots/README.md; LINKWAY_SCREENSHOTS to put it
// elsewhere) and returns its path.
func screenshot(t *testing.T, name string, png []byte) string {
	t.Helper()
	dir := os.Getenv("LINKWAY_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDashboardInChromium signs in with the commissioner key, reads the
// charts and their tables, downloads the CSV, and keeps a screenshot.
func TestDashboardInChromium(t *testing.T) {
	h := hubtest.Start(t, alone)
	r := rand.New(rand.NewPCG(5, 6))
	g := &journeyGen{t: t, store: h.Journal(), r: r}
	var secrets []string
	postcodes := outcomes.SamplePostcodes()
	for i := range 60 {
		p := newPerson(r)
		if i%4 != 0 { // most in the bundled sample: deprivation out of the box
			p.postcode = postcodes[r.IntN(len(postcodes))]
		}
		secrets = append(secrets, p.secrets()...)
		g.generate(p, "A81001", "U12345")
	}
	secrets = append(secrets, g.free...)
	ctx := browser(t)

	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must(chromedp.Do(ctx,
		chromedp.Navigate(h.Base+"/commissioner/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	), "open the sign-in page")
	signIn, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	must(err, "read the sign-in page")
	must(chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#key"), icbKey),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#uptake-funnel svg")),
		chromedp.ScrollIntoView(chromedp.CSS("#ethnicity svg")),
	), "sign in")
	page, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	must(err, "read the dashboard")
	svgs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("section svg").length`))
	must(err, "count the charts")
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{h.Base + "/commissioner/"}})
	must(err, "read the cookies")
	cookies := res.Cookies
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(err, "screenshot")
	path := screenshot(t, "commissioner-dashboard.png", shot)
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	for _, part := range []string{"connection", "ethnicity"} { // small ones, for the README
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#"+part)))
		must(err, "screenshot of #"+part)
		screenshot(t, "commissioner-"+part+".png", png)
	}
	if len(shot) < 10_000 {
		t.Errorf("screenshot is only %d bytes", len(shot))
	}

	if !strings.Contains(signIn, `name="csrf"`) {
		t.Error("the sign-in form has no CSRF token")
	}
	if svgs != 8 {
		t.Errorf("%d charts, want 8 (month, funnel, signposted and connected, wellbeing, unmet need, referrals and unmet need by deprivation, ethnicity)", svgs)
	}
	ethnic, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#ethnicity table")))
	must(err, "read the ethnicity table")
	connection, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#connection table")))
	must(err, "read the connection table")
	deciles, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#deprivation tbody tr").length`))
	must(err, "count the decile rows")
	if !strings.Contains(ethnic, "Asian or Asian British: Indian") || !strings.Contains(ethnic, "Not stated") {
		t.Errorf("the ethnicity table does not name the categories: %q", ethnic)
	}
	if !strings.Contains(connection, "signposted only") || !strings.Contains(connection, "connected") {
		t.Errorf("the connection table: %q", connection)
	}
	if deciles < 3 {
		t.Errorf("%d rows by deprivation decile, want the bundled sample's deciles and unknown", deciles)
	}
	for _, want := range []string{"Referrals per month", "Uptake", "referred", "contacted", "connected", "attended",
		"Signposted and connected", "signposted only", "Continuity", "By ethnic category", "Referrals by ethnic category",
		"Risks recorded", "(+3 points)",
		"Wellbeing change", "better by 3+", "Unmet need", "no_capacity", "befriending_and_social_groups", "Declined: not_eligible", "deprivation decile", "summary.csv?by=month",
		"summary.csv?by=ethnicity"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dashboard does not show %q", want)
		}
	}
	for _, s := range secrets {
		if strings.Contains(page, s) {
			t.Errorf("the dashboard shows %q", s)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("the dashboard holds %q: it must need nothing from elsewhere", bad)
		}
	}
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "lw_commissioner_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie %+v, want HttpOnly and SameSite=Strict", session)
	}

	// The CSV behind the charts, with the session.
	get := func(path, cookie string) (int, string, string) {
		req, _ := http.NewRequest("GET", h.Base+path, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: session.Name, Value: cookie})
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	st, ct, body := get("/commissioner/summary.csv?by=deprivation_decile", session.Value)
	if st != http.StatusOK || !strings.HasPrefix(ct, "text/csv") || !strings.HasPrefix(body, "group,referrals,") {
		t.Errorf("CSV download: %d %s %.80q", st, ct, body)
	}
	if st, _, body := get("/commissioner/?from=2026-02-30", session.Value); st != http.StatusBadRequest || !strings.Contains(body, "(from)") {
		t.Errorf("dashboard with a bad date: %d, want 400 naming from", st)
	}
	if st, _, body := get("/commissioner/?from=2027-01-01", session.Value); st != http.StatusOK || !strings.Contains(body, "<td>referred</td><td>0</td>") {
		t.Errorf("dashboard from a date with no referrals: %d, want the funnel at 0", st)
	}
	if st, _, _ := get("/commissioner/summary.csv?by=month", ""); st != http.StatusSeeOther {
		t.Errorf("CSV without a session: %d, want a redirect to sign in", st)
	}

	// Sign-out without the form's CSRF token does nothing; with it, ends the session.
	post := func(path string, form url.Values, cookie string) int {
		req, _ := http.NewRequest("POST", h.Base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: session.Name, Value: cookie})
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post("/commissioner/sign-out", url.Values{"csrf": {"forged"}}, session.Value)
	if st, _, _ := get("/commissioner/summary.csv?by=month", session.Value); st != http.StatusOK {
		t.Errorf("a forged sign-out ended the session (%d)", st)
	}
	// A sign-in posted from elsewhere (no login CSRF cookie) is refused.
	if st := post("/commissioner/sign-in", url.Values{"key": {icbKey}, "csrf": {"x"}}, ""); st != http.StatusForbidden {
		t.Errorf("sign-in without the CSRF cookie: %d, want 403", st)
	}
	must(chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("header button")),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	), "sign out")
	if st, _, _ := get("/commissioner/summary.csv?by=month", session.Value); st != http.StatusSeeOther {
		t.Errorf("after signing out the session still works (%d)", st)
	}

	// A GP key cannot sign in to the commissioners' dashboard.
	must(chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#key"), gpKey),
		chromedp.Click(chromedp.CSS("#sign-in")),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	), "sign in with a GP key")
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error")))
	if err != nil || !strings.Contains(msg, "commissioners") {
		t.Errorf("GP key sign-in: %v %q", err, msg)
	}
}
