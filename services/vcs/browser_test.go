package vcs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"linkway/services/linkway/hubtest"
	"linkway/services/platform/websession/webtest"
)

// gpSees polls the GP practice's view of a journey until it holds want.
func gpSees(t *testing.T, h *hubtest.Hub, journeyID, want, what string) {
	t.Helper()
	var last string
	hubtest.Eventually(t, 10*time.Second, func() bool {
		st, body := h.Do("GET", "/v1/referrals/"+journeyID, gpKey, nil)
		last = string(body)
		return st == 200 && strings.Contains(last, want)
	}, what+" (GP view: "+trim(last)+")")
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func TestBrowserInbox(t *testing.T) {
	h := hubtest.Start(t)
	ctx := webtest.Chrome(t, 412, 915) // a phone
	declined := toOnward(t, h, walk, "name", "phone")
	waitInInbox(t, h, vcs1Key, declined.OnwardID)

	// Sign in with the organisation's key.
	webtest.Do(t, ctx, "sign in",
		chromedp.Navigate(h.Base+"/vcs/"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), vcs1Key),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("inbox-list")),
		// A mark that a reload would wipe.
		chromedp.Evaluate[chromedp.Void](`window.lwNoReload = "still here"`),
	)

	// A new referral appears without a reload (server-sent events).
	accepted := toOnward(t, h, walk, "name", "phone", "needs")
	link := chromedp.CSS(`a[data-id="` + accepted.OnwardID + `"]`)
	webtest.Do(t, ctx, "the new referral appears", chromedp.WaitVisible(link))
	if mark := webtest.Run(t, ctx, "read the mark", chromedp.Evaluate[string](`window.lwNoReload || ""`)); mark != "still here" {
		t.Errorf("the page was reloaded to show the new referral")
	}
	if live := webtest.Run(t, ctx, "read the live region", chromedp.Text(chromedp.ID("live"))); !strings.Contains(live, "new referral") {
		t.Errorf("the live region did not announce the arrival: %q", live)
	}
	shot := webtest.Run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), "vcs-inbox.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(shot) < 1000 {
		t.Errorf("the screenshot is empty (%d bytes)", len(shot))
	}
	t.Logf("inbox screenshot: %s", path)

	// The inbox pages: one new referral a page, the longest waiting first;
	// the next page holds the new arrival.
	first := chromedp.CSS(`a[data-id="` + declined.OnwardID + `"]`)
	webtest.Do(t, ctx, "page through new referrals",
		chromedp.Navigate(h.Base+"/vcs/?page_size=1"),
		chromedp.WaitVisible(first),
		chromedp.Click(chromedp.ID("more-new")),
		chromedp.WaitVisible(chromedp.ID("inbox-section")),
		chromedp.WaitVisible(link),
	)
	if ids := webtest.Run(t, ctx, "read the page's referrals", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("a[data-id]")].map(a => a.dataset.id)`)); len(ids) != 1 || ids[0] != accepted.OnwardID {
		t.Errorf("the second page of new referrals lists %v, want only %s", ids, accepted.OnwardID)
	}

	// Accept it.
	webtest.Do(t, ctx, "accept",
		chromedp.Click(link),
		chromedp.WaitVisible(chromedp.ID("accept")),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if flash := webtest.Run(t, ctx, "read the message", chromedp.Text(chromedp.CSS(".flash"))); !strings.Contains(flash, "Accepted") {
		t.Errorf("after accepting, the page says %q", flash)
	}
	gpSees(t, h, accepted.ID, "accepted", "the GP sees the acceptance")

	// Record that they came to a session.
	webtest.Do(t, ctx, "record attendance",
		chromedp.WaitVisible(chromedp.ID("record-attendance")),
		chromedp.Click(chromedp.ID("attended-yes")),
		chromedp.Click(chromedp.ID("record-attendance")),
		chromedp.WaitVisible(chromedp.ID("attendance")),
	)
	if sessions := webtest.Run(t, ctx, "read the sessions", chromedp.Text(chromedp.ID("attendance"))); !strings.Contains(sessions, "came") {
		t.Errorf("the sessions list says %q", sessions)
	}
	gpSees(t, h, accepted.ID, "attend", "the GP sees the attendance")

	// Decline another, saying why.
	webtest.Do(t, ctx, "decline",
		chromedp.Navigate(h.Base+"/vcs/referrals/"+declined.OnwardID),
		chromedp.WaitVisible(chromedp.ID("decline")),
		chromedp.SetValue(chromedp.ID("reason"), "no_capacity"),
		chromedp.SendKeys(chromedp.ID("detail"), "Our walks are full until March"),
		chromedp.Click(chromedp.ID("decline")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if status := webtest.Run(t, ctx, "read the status", chromedp.Text(chromedp.ID("status"))); status != "Declined" {
		t.Errorf("after declining, the status says %q", status)
	}
	gpSees(t, h, declined.ID, "declined", "the GP sees the decline")

	// The journeys themselves hold each answer.
	for _, c := range []struct {
		j    journey
		want string
	}{{accepted, "attending"}, {declined, "declined"}} {
		s, _, err := h.Journal().Load(context.Background(), c.j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := s.OnwardByID(c.j.OnwardID); string(o.Status) != c.want {
			t.Errorf("onward referral %s is %q, want %q", c.j.OnwardID, o.Status, c.want)
		}
	}
}
