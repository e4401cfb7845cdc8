package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
)

// runHub starts a hub with cfg, waits until /readyz is 200, runs fn on it
// and stops it.
func runHub(t *testing.T, cfg hub.Config, fn func(h *hub.Hub, base string)) {
	t.Helper()
	h, err := hub.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + h.Addr()
	hubtest.Eventually(t, 2*time.Minute, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "the hub becomes ready")
	fn(h, base)
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
}

// getJSON reads a JSON answer with a key.
func getJSON(t *testing.T, base, path, key string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// TestDemoHistory: the first --demo start writes the demo history and is
// ready only once the views hold it (the caseload, the GP list and the
// inbox read it at once); a second start on the same folder writes none;
// without --demo none is written.
func TestDemoHistory(t *testing.T) {
	const n = 60
	var log hubtest.LogBuffer
	cfg := hubtest.Config(t, func(c *hub.Config) {
		c.DemoHistory = n
		c.Log = slog.New(slog.NewTextHandler(&log, nil))
	})
	var seq uint64
	runHub(t, cfg, func(h *hub.Hub, base string) {
		var cl struct {
			Journeys []struct {
				JourneyID string `json:"journey_id"`
			} `json:"journeys"`
		}
		getJSON(t, base, "/v1/caseload?status=all&page_size=500", "demo-lw-u12345", &cl)
		if len(cl.Journeys) != n {
			t.Errorf("ready with %d journeys in the caseload: want the history's %d", len(cl.Journeys), n)
		}
		var list struct {
			Referrals []json.RawMessage `json:"referrals"`
		}
		getJSON(t, base, "/v1/referrals", "demo-gp-a81002", &list)
		if len(list.Referrals) == 0 {
			t.Error("Hillside (A81002) lists none of the history's referrals")
		}
		getJSON(t, base, "/v1/referrals", "demo-gp-a81001", &list)
		if len(list.Referrals) != 0 {
			t.Errorf("Riverside (A81001) lists %d referrals: its list is left for the visitor's own", len(list.Referrals))
		}
		var inbox struct {
			OnwardReferrals []json.RawMessage `json:"onward_referrals"`
		}
		getJSON(t, base, "/v1/inbox", "demo-vcs-001", &inbox)
		if len(inbox.OnwardReferrals) == 0 {
			t.Error("the Sale Walking Group's inbox is empty after the history")
		}
		info, err := h.Journal().Stream().Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		seq = info.State.LastSeq
	})
	if !strings.Contains(log.String(), fmt.Sprintf("demo history: %d journeys, ", n)) {
		t.Errorf("no 'demo history: %d journeys, M events in Xs' line in the log:\n%s", n, log.String())
	}

	var again hubtest.LogBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&again, nil))
	runHub(t, cfg, func(h *hub.Hub, base string) {
		info, err := h.Journal().Stream().Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.LastSeq != seq {
			t.Errorf("a second --demo start moved the log from %d to %d", seq, info.State.LastSeq)
		}
	})
	if strings.Contains(again.String(), "demo history") {
		t.Errorf("a second --demo start wrote history:\n%s", again.String())
	}

	plain := hubtest.Config(t, func(c *hub.Config) {
		c.Demo, c.DemoHistory = false, n
		c.MasterKey = bytes.Repeat([]byte{7}, 32)
		c.Outcomes.PseudonymKey = "test-pseudonym-secret"
	})
	runHub(t, plain, func(h *hub.Hub, base string) {
		info, err := h.Journal().Stream().Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 0 {
			t.Errorf("a hub without --demo wrote %d events of history", info.State.Msgs)
		}
	})
}
