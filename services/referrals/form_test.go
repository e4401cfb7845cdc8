package referrals_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"linkway/events"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/websession/webtest"
)

// postForm posts the self-referral form as a browser without JavaScript
// would, and returns the status and the page.
func postForm(t *testing.T, h *hubtest.Hub, form url.Values) (int, string) {
	t.Helper()
	resp, err := client.Post(h.Base+"/refer/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("the form's answer is %s", ct)
	}
	return resp.StatusCode, string(b)
}

var referenceOnPage = regexp.MustCompile(`id="reference">(SR-[0-9A-Z]{5}-[0-9A-Z]{5})<`)

// filled is the form as a person fills it in.
func filled(family string) url.Values {
	return url.Values{"link_work_team": {"U12345"}, "given_name": {"Robin"}, "family_name": {family},
		"birth_day": {"2"}, "birth_month": {"5"}, "birth_year": {"1971"}, "postcode": {"m33 7xx"}, "phone": {"07700 900456"},
		"contact_preference": {"phone"}, "share_with_vcs": {"yes"}, "what_matters": {"Meeting people"}, "token": {""}}
}

// TestSelfReferralFormWithoutJavaScript: the form is plain HTML: every
// control labelled, no script; a post with problems comes back as the
// form with each error beside its field; a good one gives the reference;
// the same form sent twice records once; the honeypot records nothing.
func TestSelfReferralFormWithoutJavaScript(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	resp, err := client.Get(h.Base + "/refer/?team=U12345")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || strings.Contains(string(page), "<script") || strings.Contains(csp, "script-src") ||
		!strings.Contains(string(page), `<form method="post" action="/refer/"`) || !strings.Contains(string(page), `value="U12345" selected`) {
		t.Fatalf("GET /refer/: %d, CSP %q: %.300s", resp.StatusCode, csp, page)
	}
	// Every control a person fills in has a label.
	ids := regexp.MustCompile(`<(?:input|select|textarea)[^>]*\bid="([^"]+)"[^>]*>`).FindAllStringSubmatch(string(page), -1)
	if len(ids) < 12 {
		t.Fatalf("the form has %d controls", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(string(page), `for="`+m[1]+`"`) {
			t.Errorf("control %s has no label", m[1])
		}
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(string(page))
	if token == nil {
		t.Fatal("no form token")
	}

	// An empty form: the form again, errors tied to their fields.
	st, body := postForm(t, h, url.Values{"token": {token[1]}})
	for _, f := range []string{"link_work_team", "given_name", "family_name", "contact_preference", "share_with_vcs"} {
		if !strings.Contains(body, `id="`+f+`-error"`) || !strings.Contains(body, `aria-describedby="`) {
			t.Errorf("no error beside %s", f)
		}
	}
	if st != http.StatusBadRequest || !strings.Contains(body, `aria-invalid="true"`) || !strings.Contains(body, `id="error-summary"`) ||
		!strings.Contains(body, `href="#birth_day"`) {
		t.Errorf("the empty form's answer: %d %.400s", st, body)
	}
	// What was typed is kept.
	bad := filled("Keeps")
	bad.Set("phone", "")
	st, body = postForm(t, h, bad)
	if st != http.StatusBadRequest || !strings.Contains(body, `value="Keeps"`) || !strings.Contains(body, `id="phone-error"`) {
		t.Errorf("a form without the phone number it needs: %d %.300s", st, body)
	}

	// A good one, sent twice with its token: one referral, one reference.
	good := filled("Formfill")
	good.Set("token", token[1])
	_, first := postForm(t, h, good)
	_, again := postForm(t, h, good)
	m1, m2 := referenceOnPage.FindStringSubmatch(first), referenceOnPage.FindStringSubmatch(again)
	if m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Fatalf("references %v and %v: %.300s", m1, m2, first)
	}
	st2, _, err := h.Journal().Load(context.Background(), events.ReferralJourneyID(events.SourceSelf, m1[1]))
	if err != nil || st2.Referral.GetPerson().GetFamilyName() != "Formfill" || st2.Referral.GetPerson().GetBirthDate() != "1971-05-02" ||
		st2.Referral.GetPerson().GetPostcode() != "M33 7XX" || !st2.ShareWithVCS() || st2.Version != 1 {
		t.Errorf("recorded %v (version %d, %v)", st2.Referral, st2.Version, err)
	}

	// The honeypot: a bot is thanked, and nothing is recorded.
	bot := filled("Botly")
	bot.Set("website", "http://spam.example")
	_, body = postForm(t, h, bot)
	m := referenceOnPage.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the honeypot's answer: %.300s", body)
	}
	if s, _, _ := h.Journal().Load(context.Background(), events.ReferralJourneyID(events.SourceSelf, m[1])); s.Exists() {
		t.Error("a filled honeypot recorded a referral")
	}
}

// TestSelfReferralForm drives the form in headless Chromium, sized like a
// phone: an empty submission shows the problems, each beside its field
// and linked from the summary; the filled form gives a reference, and the
// referral is recorded.
func TestSelfReferralForm(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	ctx := webtest.Chrome(t, 412, 915)
	webtest.Do(t, ctx, "open the form and send it empty",
		chromedp.Navigate(h.Base+"/refer/"),
		chromedp.WaitVisible(chromedp.ID("send")),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("error-summary")),
	)
	if n := webtest.Run(t, ctx, "count the scripts", chromedp.Evaluate[int](`document.scripts.length`)); n != 0 {
		t.Errorf("the page runs %d scripts; it must work without JavaScript", n)
	}
	invalid := webtest.Run(t, ctx, "read the invalid fields", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[aria-invalid="true"]')].filter(e =>
			(e.getAttribute("aria-describedby") || "").split(" ").some(id => document.getElementById(id))).map(e => e.id)`))
	for _, want := range []string{"link_work_team", "given_name", "family_name", "birth_day", "contact_preference-phone", "share_with_vcs-yes"} {
		found := false
		for _, id := range invalid {
			found = found || id == want
		}
		if !found {
			t.Errorf("%s is not marked invalid with its error beside it (marked: %v)", want, invalid)
		}
	}
	summary := webtest.Run(t, ctx, "read the summary", chromedp.Text(chromedp.ID("error-summary")))
	if !strings.Contains(summary, "Choose a link-worker team") || !strings.Contains(summary, "First name is required") {
		t.Errorf("the error summary says %q", summary)
	}

	webtest.Do(t, ctx, "fill it in and send it",
		chromedp.SetValue(chromedp.ID("link_work_team"), "U12345"),
		chromedp.SendKeys(chromedp.ID("given_name"), "Robin"),
		chromedp.SendKeys(chromedp.ID("family_name"), "Browserton"),
		chromedp.SendKeys(chromedp.ID("birth_day"), "2"),
		chromedp.SendKeys(chromedp.ID("birth_month"), "5"),
		chromedp.SendKeys(chromedp.ID("birth_year"), "1971"),
		chromedp.SendKeys(chromedp.ID("phone"), "07700 900456"),
		chromedp.Click(chromedp.ID("contact_preference-text")),
		chromedp.Click(chromedp.ID("share_with_vcs-no")),
		chromedp.SendKeys(chromedp.ID("what_matters"), "Meeting people nearby"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("reference")),
	)
	ref := webtest.Run(t, ctx, "read the reference", chromedp.Text(chromedp.ID("reference")))
	st, _, err := h.Journal().Load(context.Background(), events.ReferralJourneyID(events.SourceSelf, strings.TrimSpace(ref)))
	if err != nil || st.Referral.GetPerson().GetFamilyName() != "Browserton" || st.Referral.GetContactPreference() != "text" ||
		st.ShareWithVCS() || st.Source() != "self" {
		t.Errorf("reference %q recorded %v (%v)", ref, st.Referral, err)
	}
	shot := webtest.Run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), "refer-done.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(shot) < 1000 {
		t.Errorf("the screenshot is empty (%d bytes)", len(shot))
	}
}
