package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/datadir"
)

// TestViewsWaitOutAFullDisk (issue 15, finding 5, the view store's part):
// the views' disk (--views) falls under the store's reserve while the log
// has room. Referrals are still taken and read back (folded from the log
// while the view is behind), nothing fails with a 500 and the hub does not
// stop; once space is freed the views catch up by themselves, in the same
// process.
func TestViewsWaitOutAFullDisk(t *testing.T) {
	const gp = "demo-gp-a81001"
	// The view store keeps a reserve of twice its memtables' bound (128
	// MiB by default): a 160 MiB disk, filled to under it, holds it short.
	disk := datadir.SmallDiskForTest(t, 160<<20)
	h := hubtest.Start(t, func(c *hub.Config) { c.ViewsDir = filepath.Join(disk, "views") })
	body := func(source string) map[string]any {
		return map[string]any{"source_id": source,
			"patient":        map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe", "birth_date": "1956-03-14"},
			"reasons":        []string{"422650009"},
			"consent":        map[string]any{"share_with_vcs": true},
			"link_work_team": "U12345"}
	}
	listed := func(id string) bool {
		st, b := h.Do("GET", "/v1/referrals", gp, nil)
		if st != http.StatusOK {
			t.Fatalf("the list: %d %s", st, b)
		}
		return strings.Contains(string(b), id)
	}
	var before struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", gp, body("VIEWDISK-1"), http.StatusCreated, &before)
	h.Eventually(func() bool { return listed(before.JourneyID) }, "the list holds the first referral")

	// Fill the disk to 100 MiB free (an allocated file: no data written).
	var fs syscall.Statfs_t
	if err := syscall.Statfs(disk, &fs); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(fs.Bavail)*fs.Bsize-100<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var during struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", gp, body("VIEWDISK-2"), http.StatusCreated, &during)
	var v struct {
		JourneyID string `json:"journey_id"`
		Status    string `json:"status"`
	}
	h.JSON("GET", "/v1/referrals/"+during.JourneyID, gp, nil, http.StatusOK, &v)
	if v.JourneyID != during.JourneyID || v.Status != "referred" {
		t.Errorf("read back while the views cannot write: %+v", v)
	}
	// The view stays behind while the disk is short (the reader is
	// refused and retries, the hub runs on): seen over a second.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if listed(during.JourneyID) {
			t.Fatal("the view was written on a disk under its reserve")
		}
		if st, _ := h.Do("GET", "/healthz", "", nil); st != http.StatusOK {
			t.Fatalf("/healthz %d while the views wait", st)
		}
		if st, b := h.Do("GET", "/readyz", "", nil); st != http.StatusServiceUnavailable || !strings.Contains(string(b), "view store cannot write") {
			t.Fatalf("/readyz while the views cannot write: %d %s, want 503 naming the view store", st, b)
		}
		time.Sleep(50 * time.Millisecond) // observing that nothing changes
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 20*time.Second, func() bool { return listed(during.JourneyID) },
		"the views catch up once the disk has room")
	if st, b := h.Do("GET", "/readyz", "", nil); st != http.StatusOK {
		t.Errorf("/readyz after the disk has room: %d %s", st, b)
	}
	h.JSON("POST", "/v1/referrals", gp, body("VIEWDISK-3"), http.StatusCreated, nil)
}
