package cluster

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"linkway/services/platform/viewstore"
)

// waitCaughtUp waits until every view of replica h has applied the log up
// to last, read from its /metrics (linkway_reader_view_checkpoint_sequence).
func waitCaughtUp(t *testing.T, h *hubReplica, last uint64, timeout time.Duration) {
	t.Helper()
	behind := func() error {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(h.base() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			rest, ok := strings.CutPrefix(l, "linkway_reader_view_checkpoint_sequence{")
			if !ok {
				continue
			}
			n++
			labels, value, _ := strings.Cut(rest, "} ")
			cp, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return fmt.Errorf("%s: %q: %w", h.name, l, err)
			}
			if uint64(cp) < last {
				return fmt.Errorf("%s: %s at %d of %d", h.name, labels, uint64(cp), last)
			}
		}
		if n == 0 {
			return fmt.Errorf("%s: no view checkpoints in /metrics", h.name)
		}
		return nil
	}
	if err := waitFor(timeout, 200*time.Millisecond, behind); err != nil {
		t.Errorf("the views did not catch up with the log within %s: %v", timeout, err)
	}
}

// notFromTheLog are, per view, the key prefixes a rebuild from the log
// leaves out by design: a feed's outbox holds messages not yet known to be
// published, trimmed a block at a time behind the feed's mark, and a
// rebuild never writes a message the feed has already published
// (services/platform/feeds for vcs and referrals, outcomes record.go).
var notFromTheLog = map[string][]string{
	"inbox":     {"q.", "t", "x."},
	"referrals": {"q.", "t", "x."},
	"outcomes":  {"f.", "f~"},
}

// readViews reads every view of the view store in dir (the machinery's own
// tables, such as the folded journeys, and the feeds' outboxes left out)
// with its checkpoint.
func readViews(t *testing.T, dir string) (map[string]map[string][]byte, map[string]uint64) {
	t.Helper()
	st, err := viewstore.Open(viewstore.DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cps, err := st.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]byte{}
	for name := range cps {
		if strings.HasPrefix(name, "_") {
			delete(cps, name)
			continue
		}
		entries := map[string][]byte{}
		if err := st.View(name).ForEach("", func(k string, v []byte) error {
			if slices.ContainsFunc(notFromTheLog[name], func(p string) bool { return strings.HasPrefix(k, p) }) {
				return nil
			}
			entries[k] = bytes.Clone(v)
			return nil
		}); err != nil {
			t.Fatalf("view %s in %s: %v", name, dir, err)
		}
		out[name] = entries
	}
	return out, cps
}

// compareView reports the first differences between a replica's view and
// the rebuild's, and returns how many keys differ.
func compareView(t *testing.T, what string, got, want map[string][]byte) int {
	t.Helper()
	diff := 0
	for k, v := range want {
		if w, ok := got[k]; !ok || !bytes.Equal(v, w) {
			if diff < 3 {
				t.Errorf("%s key %q differs from a rebuild:\nreplica %s\nrebuild %s", what, k, got[k], v)
			}
			diff++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if diff < 3 {
				t.Errorf("%s key %q is not in a rebuild", what, k)
			}
			diff++
		}
	}
	return diff
}
