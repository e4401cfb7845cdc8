package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
)

// keyMap is a fixed set of keys: the key store itself is tested against
// NATS elsewhere; here the subject is the HTTP edge.
type keyMap map[string]api.Principal

func (k keyMap) Lookup(_ context.Context, key string) (api.Principal, bool, error) {
	p, ok := k[key]
	return p, ok, nil
}

type body struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Inner struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
}

func newServer(t *testing.T, limit api.RateLimit) *httptest.Server {
	t.Helper()
	keys := keyMap{"gp-key": {OrgID: "A81001", Kind: events.KindGP, KeyID: "k1"}, "vcs-key": {OrgID: "VCS001", Kind: events.KindVCS, KeyID: "k2"}}
	s, err := api.NewServer(keys, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.SetRateLimit(limit)
	s.Handle("POST /echo", []events.Kind{events.KindGP}, func(w http.ResponseWriter, r *http.Request, p api.Principal) error {
		var b body
		if err := api.DecodeJSON(w, r, 256, &b); err != nil {
			return err
		}
		api.WriteJSON(w, http.StatusOK, b)
		return nil
	})
	s.Handle("GET /boom", []events.Kind{events.KindGP}, func(w http.ResponseWriter, r *http.Request, p api.Principal) error {
		panic("secret detail")
	})
	s.Handle("GET /fail", []events.Kind{events.KindGP}, func(w http.ResponseWriter, r *http.Request, p api.Principal) error {
		return errors.New("connection to 10.0.0.1 refused: secret detail")
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func call(t *testing.T, ts *httptest.Server, method, path, key, payload string) (int, http.Header, map[string]map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(payload))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(raw), "secret detail") {
		t.Errorf("%s %s leaked an internal detail: %s", method, path, raw)
	}
	var doc map[string]map[string]string
	_ = json.Unmarshal(raw, &doc)
	return resp.StatusCode, resp.Header, doc
}

func TestEdge(t *testing.T) {
	t.Parallel()
	ts := newServer(t, api.RateLimit{})
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code, field                   string
	}{
		{"no key", "POST", "/echo", "", `{}`, 401, "unauthenticated", ""},
		{"unknown key", "POST", "/echo", "nope", `{}`, 401, "unauthenticated", ""},
		{"wrong kind", "POST", "/echo", "vcs-key", `{}`, 403, "permission_denied", ""},
		{"unknown field", "POST", "/echo", "gp-key", `{"name":"a","colour":"blue"}`, 400, "invalid_argument", "colour"},
		{"wrong type", "POST", "/echo", "gp-key", `{"count":"three"}`, 400, "invalid_argument", "count"},
		{"wrong nested type", "POST", "/echo", "gp-key", `{"inner":{"flag":1}}`, 400, "invalid_argument", "inner.flag"},
		{"not JSON", "POST", "/echo", "gp-key", `{"name":`, 400, "invalid_argument", ""},
		{"two values", "POST", "/echo", "gp-key", `{} {}`, 400, "invalid_argument", ""},
		{"too large", "POST", "/echo", "gp-key", `{"name":"` + strings.Repeat("x", 300) + `"}`, 413, "too_large", ""},
		{"panic", "GET", "/boom", "gp-key", ``, 500, "internal", ""},
		{"internal error", "GET", "/fail", "gp-key", ``, 500, "internal", ""},
	}
	for _, tt := range tests {
		st, _, doc := call(t, ts, tt.method, tt.path, tt.key, tt.body)
		if st != tt.status || doc["error"]["code"] != tt.code || doc["error"]["field"] != tt.field {
			t.Errorf("%s: %d %v, want %d %s field %q", tt.name, st, doc, tt.status, tt.code, tt.field)
		}
	}
}

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	ts := newServer(t, api.RateLimit{Rate: 1, Burst: 3})
	for i := range 3 {
		if st, _, _ := call(t, ts, "POST", "/echo", "gp-key", `{}`); st != 200 {
			t.Fatalf("request %d within the burst: %d", i, st)
		}
	}
	st, h, doc := call(t, ts, "POST", "/echo", "gp-key", `{}`)
	if st != 429 || h.Get("Retry-After") == "" || doc["error"]["code"] != "too_many_requests" {
		t.Errorf("over the limit: %d Retry-After %q %v", st, h.Get("Retry-After"), doc)
	}
	// Another key has its own bucket.
	if st, _, _ := call(t, ts, "POST", "/echo", "vcs-key", `{}`); st != 403 {
		t.Errorf("another key: %d, want its own 403", st)
	}
}

func TestStatusOfEveryCode(t *testing.T) {
	t.Parallel()
	want := map[events.Code]int{
		events.CodeInvalid: 400, events.CodeUnauthenticated: 401, events.CodePermissionDenied: 403,
		events.CodeNotFound: 404, events.CodeFailedPrecondition: 409, events.CodeTooLarge: 413,
		events.CodeTooManyRequests: 429, events.CodeUnavailable: 503, events.CodeInternal: 500,
	}
	for code, st := range want {
		if got := api.Status(code); got != st {
			t.Errorf("%s: %d, want %d", code, got, st)
		}
	}
}

// TestIssueTypeOfEveryCode: the FHIR issue type of each code, from the same
// table as its status; an unknown code is a bug (500, exception).
func TestIssueTypeOfEveryCode(t *testing.T) {
	t.Parallel()
	want := map[events.Code]string{
		events.CodeInvalid: "invalid", events.CodeUnauthenticated: "login", events.CodePermissionDenied: "forbidden",
		events.CodeNotFound: "not-found", events.CodeFailedPrecondition: "business-rule", events.CodeTooLarge: "too-costly",
		events.CodeTooManyRequests: "transient", events.CodeUnavailable: "transient", events.CodeInternal: "exception",
		events.Code("no_such_code"): "exception",
	}
	for code, it := range want {
		if got := api.IssueType(code); got != it {
			t.Errorf("%s: %s, want %s", code, got, it)
		}
	}
	if got := api.Status("no_such_code"); got != 500 {
		t.Errorf("an unknown code: %d, want 500", got)
	}
}
