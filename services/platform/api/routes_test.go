package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
)

// TestRoutesAndUnmatched: Routes lists what was registered; a request no
// route matches is answered in the JSON error shape with the headers every
// route has; a redirect to the canonical path still happens; an API key
// over its rate limit is refused by Admit as by Handle.
func TestRoutesAndUnmatched(t *testing.T) {
	s, err := api.NewServer(keyMap{"gp-key": {OrgID: "A81001", Kind: events.KindGP, KeyID: "k1"}},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, r *http.Request, p api.Principal) error { return nil }
	s.Handle("GET /v1/things/{id}", []events.Kind{events.KindGP}, ok)
	s.HandlePublic("GET /static/", http.NotFoundHandler())
	if got := s.Routes(); !slices.Equal(got, []string{"GET /v1/things/{id}", "GET /static/"}) {
		t.Errorf("Routes() = %v", got)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/nothing", 404, "not_found"},
		{"DELETE", "/v1/things/1", 405, "method_not_allowed"},
		{"GET", "/static", http.StatusTemporaryRedirect, ""},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.status || e.Error.Code != c.code {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, resp.StatusCode, e.Error.Code, c.status, c.code)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s: headers %v", c.method, c.path, resp.Header)
		}
		if c.status == 405 && (!strings.Contains(resp.Header.Get("Allow"), "GET") ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")) {
			t.Errorf("405: Allow %q, Content-Type %q: want the route's methods and the JSON error shape",
				resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
		}
	}
	s.SetRateLimit(api.RateLimit{Rate: 0.001, Burst: 1})
	p := api.Principal{OrgID: "A81001", Kind: events.KindGP, KeyID: "k9"}
	if err := s.Admit(httptest.NewRecorder(), p); err != nil {
		t.Fatalf("first request refused: %v", err)
	}
	rec := httptest.NewRecorder()
	if err := s.Admit(rec, p); err == nil || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second request within the burst of 1: %v, Retry-After %q", err, rec.Header().Get("Retry-After"))
	}
}
