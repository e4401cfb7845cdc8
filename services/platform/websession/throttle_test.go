package websession_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/websession"
)

// orgKeys knows one key per organisation, in NewKey's form.
type orgKeys struct{}

func (orgKeys) LookupKey(_ context.Context, key string) (api.Principal, error) {
	switch key {
	case "lw_VCS001_good":
		return api.Principal{OrgID: "VCS001", Kind: events.KindVCS}, nil
	case "lw_VCS002_good":
		return api.Principal{OrgID: "VCS002", Kind: events.KindVCS}, nil
	}
	return api.Principal{}, &events.Error{Code: events.CodeUnauthenticated, Message: "unknown API key"}
}

// TestThrottlePerClientAndOrganisation: failures are counted per client
// address and organisation attempted: guessing at one organisation's keys
// locks that client out of that organisation only; guessing at many locks
// the client out of all, and never another client.
func TestThrottlePerClientAndOrganisation(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	cfg := config("vcs", c, events.KindVCS)
	cfg.Keys = orgKeys{}
	s := open(t, js, cfg)
	guesser, other := newBrowser("192.0.2.1"), newBrowser("192.0.2.2")
	for range websession.MaxFailures {
		if _, _, err := guesser.signIn(t, s, "lw_VCS001_guess"); !errors.Is(err, websession.ErrUnknownKey) {
			t.Fatalf("guess: %v", err)
		}
	}
	if _, _, err := guesser.signIn(t, s, "lw_VCS001_good"); !errors.Is(err, websession.ErrThrottled) {
		t.Errorf("after %d failures for VCS001: %v, want throttled", websession.MaxFailures, err)
	}
	if _, _, err := guesser.signIn(t, s, "lw_VCS002_good"); err != nil {
		t.Errorf("the same client for another organisation: %v, want signed in", err)
	}
	if _, _, err := other.signIn(t, s, "lw_VCS001_good"); err != nil {
		t.Errorf("another client for VCS001: %v, want signed in", err)
	}
	// Spreading guesses over organisations does not escape the client's cap.
	for i := websession.MaxFailures; i < websession.MaxClientFailures; i++ {
		if _, _, err := guesser.signIn(t, s, "lw_ORG"+strings.Repeat("X", i%20)+"_guess"); !errors.Is(err, websession.ErrUnknownKey) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, _, err := guesser.signIn(t, s, "lw_VCS002_good"); !errors.Is(err, websession.ErrThrottled) {
		t.Errorf("after %d failures over many organisations: %v, want throttled", websession.MaxClientFailures, err)
	}
	if _, _, err := other.signIn(t, s, "lw_VCS002_good"); err != nil {
		t.Errorf("another client: %v", err)
	}
}

// TestBehindAProxy: behind a trusted proxy with an https public URL,
// cookies are Secure, and one client's bad sign-ins do not lock out the
// others who come through the same proxy.
func TestBehindAProxy(t *testing.T) {
	_, js := natsserver.Test(t)
	cfg := config("vcs", &clock{t: time.Now()}, events.KindVCS)
	cfg.Keys = orgKeys{}
	s := open(t, js, cfg)
	srv, err := api.NewServer(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	public, _ := url.Parse("https://linkway.example.org")
	proxies, _ := api.ParseTrustedProxies("10.0.0.0/8")
	srv.SetEdge(api.Edge{PublicURL: public, TrustedProxies: proxies})
	var token string
	srv.HandlePublic("GET /vcs/sign-in", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token = s.SignInForm(w, r)
	}))
	srv.HandlePublic("POST /vcs/sign-in", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.SignIn(w, r, r.Header.Get("X-Key"), token); err != nil {
			status, _ := s.Refusal(err)
			w.WriteHeader(status)
		}
	}))
	// signIn goes through the proxy (10.0.0.5) for client, over plain HTTP
	// between proxy and hub.
	signIn := func(client, key string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/vcs/sign-in", nil)
		r.RemoteAddr, r.Host = "10.0.0.5:3333", "hub.internal"
		r.Header.Set("X-Forwarded-For", client)
		srv.ServeHTTP(w, r)
		form := w.Result().Cookies()
		w = httptest.NewRecorder()
		r = httptest.NewRequest("POST", "/vcs/sign-in", nil)
		r.RemoteAddr = "10.0.0.5:3333"
		r.Header.Set("X-Forwarded-For", client)
		r.Header.Set("X-Key", key)
		for _, c := range form {
			r.AddCookie(c)
		}
		srv.ServeHTTP(w, r)
		return w
	}
	for range websession.MaxFailures + 2 {
		if w := signIn("198.51.100.66", "lw_VCS001_guess"); w.Code != http.StatusUnauthorized && w.Code != http.StatusTooManyRequests {
			t.Fatalf("guess: %d", w.Code)
		}
	}
	if w := signIn("198.51.100.66", "lw_VCS001_good"); w.Code != http.StatusTooManyRequests {
		t.Errorf("the guessing client: %d, want 429", w.Code)
	}
	w := signIn("198.51.100.7", "lw_VCS001_good")
	if w.Code != http.StatusOK {
		t.Fatalf("another client through the same proxy: %d, want signed in", w.Code)
	}
	cookies := w.Result().Cookies()
	if len(cookies) == 0 {
		t.Fatal("no cookies set on sign-in")
	}
	for _, c := range cookies {
		if !c.Secure || !c.HttpOnly {
			t.Errorf("cookie behind an https proxy: %+v, want Secure and HttpOnly", c)
		}
	}
	if w.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS behind an https public URL")
	}
}
