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
)

// chromium is Debian's headless browser, installed by .ci/run.
const chromium = "/usr/bin/chromium"

// newChrome starts a headless Chromium with a fresh profile, sized like a
// phone, for the length of the test.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the browser tests need %s (Debian package chromium): %v", chromium, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first call starts the browser; it must have no timeout of its
	// own, or the timeout would stop the browser (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// step runs browser actions with a bound, so a broken page fails the test
// instead of hanging it.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// read runs one browser action that returns a value, with a bound.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

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
	ctx := newChrome(t)
	declined := toOnward(t, h, walk, "name", "phone")
	waitInInbox(t, h, vcs1Key, declined.OnwardID)

	// Sign in with the organisation's key.
	step(t, ctx, "sign in",
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
	step(t, ctx, "the new referral appears", chromedp.WaitVisible(link))
	if mark := read(t, ctx, "read the mark", chromedp.Evaluate[string](`window.lwNoReload || ""`)); mark != "still here" {
		t.Errorf("the page was reloaded to show the new referral")
	}
	if live := read(t, ctx, "read the live region", chromedp.Text(chromedp.ID("live"))); !strings.Contains(live, "new referral") {
		t.Errorf("the live region did not announce the arrival: %q", live)
	}
	shot := read(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), "vcs-inbox.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(shot) < 1000 {
		t.Errorf("the screenshot is empty (%d bytes)", len(shot))
	}
	t.Logf("inbox screenshot: %s", path)

	// Accept it.
	step(t, ctx, "accept",
		chromedp.Click(link),
		chromedp.WaitVisible(chromedp.ID("accept")),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if flash := read(t, ctx, "read the message", chromedp.Text(chromedp.CSS(".flash"))); !strings.Contains(flash, "Accepted") {
		t.Errorf("after accepting, the page says %q", flash)
	}
	gpSees(t, h, accepted.ID, "accepted", "the GP sees the acceptance")

	// Record that they came to a session.
	step(t, ctx, "record attendance",
		chromedp.WaitVisible(chromedp.ID("record-attendance")),
		chromedp.Click(chromedp.ID("attended-yes")),
		chromedp.Click(chromedp.ID("record-attendance")),
		chromedp.WaitVisible(chromedp.ID("attendance")),
	)
	if sessions := read(t, ctx, "read the sessions", chromedp.Text(chromedp.ID("attendance"))); !strings.Contains(sessions, "came") {
		t.Errorf("the sessions list says %q", sessions)
	}
	gpSees(t, h, accepted.ID, "attend", "the GP sees the attendance")

	// Decline another, saying why.
	step(t, ctx, "decline",
		chromedp.Navigate(h.Base+"/vcs/referrals/"+declined.OnwardID),
		chromedp.WaitVisible(chromedp.ID("decline")),
		chromedp.SetValue(chromedp.ID("reason"), "no_capacity"),
		chromedp.SendKeys(chromedp.ID("detail"), "Our walks are full until March"),
		chromedp.Click(chromedp.ID("decline")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	if status := read(t, ctx, "read the status", chromedp.Text(chromedp.ID("status"))); status != "Declined" {
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
