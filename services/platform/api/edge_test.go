package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/services/platform/api"
)

func edgeServer(t *testing.T, publicURL, proxies string) *api.Server {
	t.Helper()
	s, err := api.NewServer(keyMap{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var e api.Edge
	if publicURL != "" {
		if e.PublicURL, err = api.ParsePublicURL(publicURL); err != nil {
			t.Fatal(err)
		}
	}
	if e.TrustedProxies, err = api.ParseTrustedProxies(proxies); err != nil {
		t.Fatal(err)
	}
	s.SetEdge(e)
	s.HandlePublic("GET /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure := "plain"
		if api.Secure(r) {
			secure = "secure"
		}
		_, _ = io.WriteString(w, r.RemoteAddr+" "+api.PublicURL(r)+" "+secure)
	}))
	return s
}

// TestClientAddressFromTrustedProxiesOnly: X-Forwarded-For names the
// client only when the peer is a trusted proxy, read from the right past
// trusted hops; anyone else's header is ignored.
func TestClientAddressFromTrustedProxiesOnly(t *testing.T) {
	s := edgeServer(t, "", "10.0.0.0/8, 192.0.2.7")
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"203.0.113.9:5000", "198.51.100.1", "203.0.113.9:5000"},      // not a proxy: header ignored
		{"10.1.2.3:5000", "198.51.100.1", "198.51.100.1:0"},           // a trusted proxy names the client
		{"10.1.2.3:5000", "6.6.6.6, 198.51.100.1", "198.51.100.1:0"},  // a forged entry on the left is not believed
		{"10.1.2.3:5000", "198.51.100.1, 10.9.9.9", "198.51.100.1:0"}, // past a second trusted hop
		{"192.0.2.7:5000", "198.51.100.1", "198.51.100.1:0"},          // a single trusted address
		{"10.1.2.3:5000", "", "10.1.2.3:5000"},                        // no header: the peer
		{"10.1.2.3:5000", "not-an-ip", "10.1.2.3:5000"},               // garbage: the peer
		{"[::ffff:10.1.2.3]:5000", "2001:db8::1", "[2001:db8::1]:0"},  // IPv4-mapped peer, IPv6 client
	} {
		req := httptest.NewRequest("GET", "/echo", nil)
		req.RemoteAddr = tc.peer
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != tc.want+"  plain" {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want client %s", tc.peer, tc.xff, got, tc.want)
		}
	}
	if _, err := api.ParseTrustedProxies("10.0.0.0/8,banana"); err == nil {
		t.Error("a bad proxy entry was taken")
	}
}

// TestPublicURLNeverHost: answers link to the public URL whatever Host
// the request names; an https public URL makes the request secure (Secure
// cookies) and adds HSTS; a plain one does neither.
func TestPublicURLNeverHost(t *testing.T) {
	for _, tc := range []struct {
		public, base string
		secure       bool
	}{
		{"https://linkway.example.org/", "https://linkway.example.org", true},
		{"https://example.org/linkway", "https://example.org/linkway", true},
		{"http://localhost:8080", "http://localhost:8080", false},
	} {
		s := edgeServer(t, tc.public, "")
		req := httptest.NewRequest("GET", "/echo", nil)
		req.Host = "evil.example"
		req.RemoteAddr = "203.0.113.9:5000"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		want := "203.0.113.9:5000 " + tc.base + map[bool]string{true: " secure", false: " plain"}[tc.secure]
		if rec.Body.String() != want {
			t.Errorf("%s: %q, want %q", tc.public, rec.Body.String(), want)
		}
		if hsts := rec.Header().Get("Strict-Transport-Security"); (hsts != "") != tc.secure {
			t.Errorf("%s: HSTS %q", tc.public, hsts)
		}
	}
	for _, bad := range []string{"linkway.example.org", "ftp://x", "https://", "https://x/?a=1", "https://u:p@x"} {
		if _, err := api.ParsePublicURL(bad); err == nil {
			t.Errorf("public URL %q was taken", bad)
		}
	}
	if u, err := api.DefaultPublicURL("[::]:8080", false); err != nil || u.String() != "http://localhost:8080" {
		t.Errorf("default public URL of [::]:8080: %v %v", u, err)
	}
}
