package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/sealing"
)

// TestOnePersonReferredFromManyClients (issue 14): one person referred by
// one practice from 64 clients at once, each with its own source id. Every
// request is taken (201, none failing: no 503 from a contended key record),
// the practice reads all 64 journeys, and the person has one data key: the
// person index knows one key and 64 journeys, and every journey's first
// event on the log is sealed under that same key.
func TestOnePersonReferredFromManyClients(t *testing.T) {
	const n, nhs, gp = 64, "9434765919", "demo-gp-a81001"
	h := hubtest.Start(t)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}

	type answer struct {
		status  int
		body    string
		journey string
		err     error
	}
	answers := make([]answer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{
				"source_id": fmt.Sprintf("MANY-%02d", i),
				"patient": map[string]any{"nhs_number": nhs, "given_name": "Mary", "family_name": "Often",
					"birth_date": "1948-11-02", "sex": "female", "postcode": "M33 7XX"},
				"reasons":        []string{"422650009"},
				"consent":        map[string]any{"share_with_vcs": true},
				"link_work_team": "U12345",
			})
			req, err := http.NewRequest("POST", h.Base+"/v1/referrals", bytes.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+gp)
			<-start // every client ready before the first is sent
			resp, err := client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			var v struct {
				JourneyID string `json:"journey_id"`
			}
			_ = json.Unmarshal(out, &v)
			answers[i] = answer{status: resp.StatusCode, body: string(out), journey: v.JourneyID, err: err}
		})
	}
	close(start)
	wg.Wait()

	journeys := map[string]bool{}
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("client %d: %v", i, a.err)
		case a.status != http.StatusCreated || a.journey == "":
			t.Errorf("client %d: status %d, want 201: %.300s", i, a.status, a.body)
		default:
			journeys[a.journey] = true
		}
	}
	if len(journeys) != n {
		t.Fatalf("%d distinct journeys from %d referrals with distinct source ids", len(journeys), n)
	}

	// The practice reads every journey (a read waits for its own writes).
	for j := range journeys {
		var v struct {
			JourneyID string `json:"journey_id"`
			Status    string `json:"status"`
		}
		h.JSON("GET", "/v1/referrals/"+j, gp, nil, http.StatusOK, &v)
		if v.JourneyID != j || v.Status != "referred" {
			t.Errorf("GET %s: %+v", j, v)
		}
	}

	// One key for the person: in the person index...
	ctx := t.Context()
	p, err := h.Keyring().Person(ctx, h.Keyring().PersonRef(nhs))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 1 || len(p.Journeys) != n {
		t.Errorf("the person index holds keys %v and %d journeys; want one key and %d", p.Keys, len(p.Journeys), n)
	}
	for _, j := range p.Journeys {
		if !journeys[j] {
			t.Errorf("the person index lists journey %s, which no client was given", j)
		}
	}
	// ...and on the log: each referral sealed under it.
	stream, err := h.JS().Stream(ctx, events.JourneyStream)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for j := range journeys {
		msg, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(events.JourneyFilter(j)))
		if err != nil {
			t.Fatalf("journey %s on the log: %v", j, err)
		}
		keys[msg.Header.Get(sealing.HeaderKey)]++
	}
	if len(keys) != 1 || keys[""] > 0 {
		t.Errorf("the referrals on the log are sealed under %v; want one key for all %d", keys, n)
	}
	if len(p.Keys) == 1 && keys[p.Keys[0]] != n {
		t.Errorf("the index's key %s sealed %d of %d referrals on the log", p.Keys[0], keys[p.Keys[0]], n)
	}
}
