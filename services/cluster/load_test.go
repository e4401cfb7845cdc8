package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"linkway/events"
)

const (
	gpKey, gpOrg = "demo-gp-a81001", "A81001"
	lwKey        = "demo-lw-u12345"
	vcsKey       = "demo-vcs-001"
	vcsService   = "VCS001-walk"
)

// history is what the load generator attempted and what was acknowledged,
// Jepsen style: an attempt whose answer was lost (timeout, 5xx, a killed
// replica) may or may not have happened; an acknowledged one must have,
// exactly once.
type history struct {
	mu sync.Mutex
	// referrals: source id -> journey id, attempted and acknowledged.
	referralsAttempted map[string]string
	referralsAcked     map[string]bool // by journey id
	// referralsRefused were answered with a definite refusal (4xx) and
	// never acknowledged: such a referral must not be in the log.
	referralsRefused map[string]string // journey id -> the answer
	// onward referrals accepted by the VCS organisation: onward id.
	acceptsAttempted map[string]bool
	acceptsAcked     map[string]bool
	// successes are the times of every acknowledged write.
	successes []time.Time

	requests, failures, retries atomic.Int64
	reasons                     map[string]int // failures by route and answer
}

func (h *history) fail(path, why string) {
	h.failures.Add(1)
	route := path
	if i := strings.LastIndex(path, "/"); i > 0 && strings.Count(path, "/") > 2 {
		route = path[i+1:]
	}
	h.mu.Lock()
	h.reasons[route+": "+why]++
	h.mu.Unlock()
}

func newHistory() *history {
	return &history{referralsAttempted: map[string]string{}, referralsAcked: map[string]bool{}, referralsRefused: map[string]string{},
		acceptsAttempted: map[string]bool{}, acceptsAcked: map[string]bool{}, reasons: map[string]int{}}
}

func (h *history) success(at time.Time) {
	h.mu.Lock()
	h.successes = append(h.successes, at)
	h.mu.Unlock()
}

// longestGap is the longest time within [from, to] with no acknowledged
// write, not counting time within window after any of kills.
func (h *history) longestGap(from, to time.Time, kills []time.Time, window time.Duration) (time.Duration, time.Time) {
	h.mu.Lock()
	ts := slices.Clone(h.successes)
	h.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	// The windows after kills, merged where they overlap.
	var windows [][2]time.Time
	for _, k := range kills { // in time order
		if n := len(windows); n > 0 && !k.After(windows[n-1][1]) {
			windows[n-1][1] = k.Add(window)
			continue
		}
		windows = append(windows, [2]time.Time{k, k.Add(window)})
	}
	prev, gap, at := from, time.Duration(0), from
	for _, t := range append(ts, to) {
		if t.Before(from) || t.After(to) {
			continue
		}
		d := t.Sub(prev)
		for _, w := range windows {
			// overlap of [prev, t] with the window
			lo, hi := max(prev.UnixNano(), w[0].UnixNano()), min(t.UnixNano(), w[1].UnixNano())
			if hi > lo {
				d -= time.Duration(hi - lo)
			}
		}
		if d > gap {
			gap, at = d, prev
		}
		prev = t
	}
	return gap, at
}

// loadGen drives GP referrals and, for every other one, the link-worker
// steps to an onward referral and the VCS organisation's acceptance,
// against whichever hub replica answers.
type loadGen struct {
	hubs   []*hubReplica
	hist   *history
	client *http.Client
	next   atomic.Int64
	max    int64
	// opTimeout bounds the retries of one operation.
	opTimeout time.Duration
	accepts   chan struct{} // bounds the acceptances waiting for the inbox
	pending   sync.WaitGroup
}

// run starts workers that stop by themselves when ctx ends or max
// referrals have been attempted.
func (g *loadGen) run(ctx context.Context, workers int) *sync.WaitGroup {
	g.accepts = make(chan struct{}, 64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for ctx.Err() == nil {
				n := g.next.Add(1)
				if n > g.max {
					return
				}
				g.journey(ctx, r, w, n)
			}
		}()
	}
	return &wg
}

// nhsNumber makes a valid (modulus-11) NHS number from n.
func nhsNumber(n int64) string { return events.NHSNumberFrom(400_000_000 + n*7) }

// referralAnswer is the answer to POST /v1/referrals, or the refusal.
type referralAnswer struct {
	JourneyID string `json:"journey_id"`
	refusal   string // a definite refusal (4xx), set by do
}

func (a *referralAnswer) refused(why string) { a.refusal = why }

func (g *loadGen) journey(ctx context.Context, r *rand.Rand, w int, n int64) {
	sid := fmt.Sprintf("CLUSTER-%06d", n)
	jid := events.ReferralJourneyID(gpOrg, sid)
	g.hist.mu.Lock()
	g.hist.referralsAttempted[sid] = jid
	g.hist.mu.Unlock()
	body := map[string]any{
		"source_id": sid,
		"patient": map[string]any{"nhs_number": nhsNumber(n), "given_name": "Test", "family_name": fmt.Sprintf("Person%d", n),
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX", "phone": "07700 900123"},
		"reasons": []string{"422650009"}, "consent": map[string]any{"share_with_vcs": true},
		"link_work_team": "U12345", "urgency": "routine",
	}
	var ref referralAnswer
	if !g.do(ctx, w, gpKey, "/v1/referrals", "", body, &ref, false) {
		if ref.refusal != "" {
			g.hist.mu.Lock()
			g.hist.referralsRefused[jid] = ref.refusal
			g.hist.mu.Unlock()
		}
		return
	}
	g.hist.mu.Lock()
	g.hist.referralsAcked[jid] = true
	if ref.JourneyID != jid {
		g.hist.referralsAcked["mismatch:"+ref.JourneyID] = true
	}
	g.hist.mu.Unlock()
	if n%2 == 1 {
		return
	}
	jp := "/v1/journeys/" + jid
	if !g.do(ctx, w, lwKey, jp+"/assign", sid+"-assign", map[string]any{"worker_id": "lw-" + strconv.Itoa(r.IntN(5)), "worker_name": "Sam Link"}, nil, true) {
		return
	}
	if !g.do(ctx, w, lwKey, jp+"/contacts", sid+"-contact", map[string]any{"outcome": "reached", "method": "phone"}, nil, true) {
		return
	}
	var onward struct {
		OnwardReferralID string `json:"onward_referral_id"`
	}
	if !g.do(ctx, w, lwKey, jp+"/onward-referrals", sid+"-onward", map[string]any{"service_id": vcsService, "share": []string{"name", "phone"}}, &onward, true) {
		return
	}
	if onward.OnwardReferralID == "" {
		return
	}
	g.hist.mu.Lock()
	g.hist.acceptsAttempted[onward.OnwardReferralID] = true
	g.hist.mu.Unlock()
	// The inbox finds the onward referral once its view has it: until then
	// the accept is 404, and is retried. The worker goes on with the next
	// referral meanwhile (at most 64 acceptances wait at once).
	g.accepts <- struct{}{}
	g.pending.Go(func() {
		defer func() { <-g.accepts }()
		if g.do(ctx, w, vcsKey, "/v1/onward-referrals/"+onward.OnwardReferralID+"/accept", sid+"-accept", nil, nil, true) {
			g.hist.mu.Lock()
			g.hist.acceptsAcked[onward.OnwardReferralID] = true
			g.hist.mu.Unlock()
		}
	})
}

// do POSTs until a 2xx, a refusal, or opTimeout; failures (network, 5xx,
// and 404 when retry404) are retried on the other replica with the same
// idempotency key. It reports whether the write was acknowledged.
func (g *loadGen) do(ctx context.Context, w int, key, path, idem string, body, out any, retry404 bool) bool {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(g.opTimeout)
	for attempt := 0; ctx.Err() == nil && time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			g.hist.retries.Add(1)
		}
		h := g.hubs[(w+attempt)%len(g.hubs)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base()+path, bytes.NewReader(payload))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		g.hist.requests.Add(1)
		resp, err := g.client.Do(req)
		if err != nil {
			why := "network"
			if strings.Contains(err.Error(), "Timeout") || strings.Contains(err.Error(), "deadline") {
				why = "timeout"
			}
			g.hist.fail(path, why)
			pause(ctx, 100*time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			g.hist.success(time.Now())
			if out != nil {
				_ = json.Unmarshal(b, out)
			}
			return true
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || (retry404 && resp.StatusCode == http.StatusNotFound):
			g.hist.fail(path, strconv.Itoa(resp.StatusCode))
			pause(ctx, 100*time.Millisecond)
		default:
			why := strconv.Itoa(resp.StatusCode) + " " + string(b[:min(len(b), 200)])
			g.hist.fail(path, why)
			if r, ok := out.(interface{ refused(string) }); ok {
				r.refused(why)
			}
			return false
		}
	}
	return false
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
