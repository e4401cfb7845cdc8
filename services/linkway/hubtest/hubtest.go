// Package hubtest is the one test builder of Linkway: it starts a real hub
// (the embedded NATS JetStream server on a random port with a temporary
// store, the services chosen, in demo mode, HTTP on port 0) for any
// party's tests, gives them its parts (journal, JetStream, register,
// parties' service values) and a small HTTP client for its API. NATS
// alone is there too, for the machinery's tests.
package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/linkway/hub"
	"linkway/services/platform/api"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/orgs"
)

// NATS starts an embedded JetStream server for one test; see natsserver.Test.
func NATS(tb testing.TB) (*server.Server, jetstream.JetStream) { return natsserver.Test(tb) }

// Hub is a running hub and a client for it.
type Hub struct {
	*hub.Hub
	tb   testing.TB
	Base string
	Data string
}

// Option changes a test hub's config: any field of hub.Config, such as a
// party's settings (c.Linkwork, c.Outcomes, c.Referrals), the journal's
// (c.Journal) or the data folder.
type Option func(*hub.Config)

// Services runs only the named services; with none, only the directory's
// lookups (which every hub has). The tests of one party run it alone and
// reach the others' effects through the log.
func Services(names ...string) Option {
	return func(c *hub.Config) { c.Services = append([]string{}, names...) }
}

// Config is the config of a test hub: `linkway hub --demo` on port 0, the
// embedded NATS on a random port, a temp data folder, a quiet log, then
// opts.
func Config(tb testing.TB, opts ...Option) hub.Config {
	tb.Helper()
	cfg := hub.DefaultConfig()
	cfg.HTTP = "127.0.0.1:0"
	cfg.Data = tb.TempDir()
	cfg.NATSListen = "127.0.0.1:0"
	cfg.Demo = true
	// Over 5 s: net/http's Shutdown counts a connection that has sent no
	// request yet (one the test's client dialled and then did not need) as
	// idle only once it is 5 s old, so a bound of exactly 5 s could run out
	// on it and fail a test that did nothing wrong.
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Start starts a hub with Config(tb, opts...) and waits until it is
// ready. It stops with the test.
func Start(tb testing.TB, opts ...Option) *Hub {
	tb.Helper()
	cfg := Config(tb, opts...)
	h, err := hub.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	th := &Hub{Hub: h, tb: tb, Base: "http://" + h.Addr(), Data: cfg.Data}
	tb.Cleanup(func() {
		h.Stop()
		if err := h.Wait(); err != nil {
			tb.Errorf("hub stopped with: %v", err)
		}
	})
	th.Eventually(func() bool {
		st, _ := th.Do("GET", "/readyz", "", nil)
		return st == http.StatusOK
	}, "the hub becomes ready")
	return th
}

// AddOrg registers an organisation and gives it an API key, as the
// `linkway keys` tool does: for tests that need organisations beyond the
// demo ones.
func (h *Hub) AddOrg(key string, o orgs.Organisation) {
	h.tb.Helper()
	ctx := context.Background()
	if err := h.Orgs().Put(ctx, o); err != nil {
		h.tb.Fatal(err)
	}
	if err := h.Keys().Create(ctx, key, api.Principal{OrgID: o.ID, Kind: o.Kind, KeyID: key}); err != nil {
		h.tb.Fatal(err)
	}
}

// Do sends a request with key as the bearer (none when empty) and body as
// JSON (none when nil; []byte is sent as is). It returns the status and
// the body.
func (h *Hub) Do(method, path, key string, body any) (int, []byte) {
	h.tb.Helper()
	st, _, out := h.Request(method, path, key, body)
	return st, out
}

// client bounds every test request, so that a stuck handler fails the test
// with its name instead of stalling the run.
var client = &http.Client{Timeout: 30 * time.Second}

// Request is Do with more headers (name, value pairs, set after the bearer
// and the JSON content type; an empty value removes one), returning the
// answer's headers too.
func (h *Hub) Request(method, path, key string, body any, headers ...string) (int, http.Header, []byte) {
	h.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.Base+path, rd)
	if err != nil {
		h.tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		h.tb.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// JSON is Do that expects status and decodes the answer into v (if not nil).
func (h *Hub) JSON(method, path, key string, body any, status int, v any) {
	h.tb.Helper()
	st, out := h.Do(method, path, key, body)
	if st != status {
		h.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, st, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			h.tb.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

// Eventually polls cond every 10 ms for up to 10 s, failing the test with
// what when it never holds.
func (h *Hub) Eventually(cond func() bool, what string) {
	h.tb.Helper()
	Eventually(h.tb, 10*time.Second, cond, what)
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}
