// Package webtest drives the web apps in headless Chromium for their
// browser tests: one way to start the browser (Debian's, a fresh profile
// a test, sized like the device the page is for) and to run its steps
// with a bound, so a broken page fails a test instead of hanging it.
package webtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is Debian's headless browser (package chromium, installed by .ci/run).
const Path = "/usr/bin/chromium"

// StepTimeout bounds each Do and Run.
const StepTimeout = 30 * time.Second

// Chrome starts headless Chromium with a fresh profile and a window of
// width by height pixels for the length of the test, and returns its
// context. The test fails at once when the browser is not installed.
func Chrome(t testing.TB, width, height int) context.Context {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		t.Fatalf("the browser tests need %s (Debian package chromium): %v", Path, err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(Path),
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
		chromedp.WindowSize(width, height),
	)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first call starts the browser; it must have no timeout of its
	// own, or the timeout would stop the browser (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Do runs browser actions within StepTimeout; the test fails, naming
// what, if they do not succeed.
func Do(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Run runs one browser action that returns a value, within StepTimeout.
func Run[T any](t testing.TB, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}
