package hub_test

import (
	"bytes"
	"image"
	"image/color/palette"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/websession/webtest"
)

// TestDemoPagesInChromium opens the pages a visitor of `make run` is sent
// to by the README, on a --demo hub with a demo history, in headless
// Chromium: each shows the history, and its screenshot is written to
// $LINKWAY_SCREENSHOTS (ops/screenshots/README.md says how the README's
// pictures are made) or, unset, to the test's temporary folder.
func TestDemoPagesInChromium(t *testing.T) {
	// A small year in a test run; the demo's own when making the
	// README's pictures, so that they show what `make run` shows.
	history, dir := 300, os.Getenv("LINKWAY_SCREENSHOTS")
	if dir != "" {
		history = 2000
	} else {
		dir = t.TempDir()
	}
	// runHub (demohistory_test.go) waits as long as a demo's start takes.
	runHub(t, hubtest.Config(t, func(c *hub.Config) { c.DemoHistory = history }), func(_ *hub.Hub, base string) {
		pages(t, base, dir)
	})
}

// pages opens each page, checks it shows the history and keeps its
// screenshot in dir.
func pages(t *testing.T, base, dir string) {
	ctx := webtest.Chrome(t, 1100, 760)
	yearAgo := time.Now().UTC().AddDate(0, -11, 0).Format("2006-01") // a month of the history
	for _, p := range []struct {
		name, path, key, ready, shows string
	}{
		{"commissioner-dashboard", "/commissioner/", "demo-icb-qyg", "#uptake-funnel svg", yearAgo},
		{"linkwork-caseload", "/linkwork/", "demo-lw-u12345", "#caseload", "Link worker"},
		{"vcs-inbox", "/vcs/", "demo-vcs-001", "#inbox-list", "Sale health walks"},
		{"directory-public", "/directory/public/", "", "#services", "Sale health walks"},
	} {
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + p.path)}
		if p.key != "" {
			steps = append(steps, chromedp.WaitVisible(chromedp.ID("key")), chromedp.SendKeys(chromedp.ID("key"), p.key),
				chromedp.Click(chromedp.ID("sign-in")))
		}
		steps = append(steps, chromedp.WaitVisible(chromedp.CSS(p.ready)))
		webtest.Do(t, ctx, "open "+p.path, steps...)
		text := webtest.Run(t, ctx, "read "+p.path, chromedp.Text(chromedp.CSS("body")))
		if !strings.Contains(text, p.shows) {
			t.Errorf("%s does not show %q on a demo with history: %.300s", p.path, p.shows, text)
		}
		shot := webtest.Run(t, ctx, "screenshot "+p.path, chromedp.CaptureScreenshot())
		small, err := smallPNG(shot)
		if err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		path := filepath.Join(dir, p.name+".png")
		if err := os.WriteFile(path, small, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s (%d bytes)", p.path, path, len(small))
		if p.key != "" {
			webtest.Do(t, ctx, "sign out of "+p.path, chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("key")))
		}
	}
}

// smallPNG re-encodes a screenshot with 256 colours (pages are flat
// colours and text): a README picture of a few tens of kilobytes.
func smallPNG(shot []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		return nil, err
	}
	pal := image.NewPaletted(img.Bounds(), palette.Plan9)
	draw.Draw(pal, pal.Rect, img, img.Bounds().Min, draw.Src)
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&out, pal); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
