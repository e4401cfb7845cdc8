package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Edge is how the hub is reached from outside: the URL people and systems
// use (behind a TLS-terminating proxy, not the address the hub listens
// on), and the proxies whose X-Forwarded-For is believed.
type Edge struct {
	// PublicURL is the hub's base URL ("https://linkway.example.nhs.uk").
	// URLs in answers (FHIR fullUrl and links) are built on it, never on
	// the request's Host header, which the caller chooses. When it is
	// https, cookies are Secure and answers carry HSTS.
	PublicURL *url.URL
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (for throttling and logs); anyone else's is ignored, since a client
	// can send any header it likes.
	TrustedProxies []netip.Prefix
}

// hstsMaxAge is a year: browsers then refuse plain HTTP to the hub even if
// a link or a network tries it.
const hstsMaxAge = "max-age=31536000"

// ParsePublicURL checks a --public-url: absolute http or https, with a
// host, no query or fragment; a trailing '/' is dropped.
func ParsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("--public-url %q: want an absolute http(s) URL such as https://linkway.example.org, without query or user", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// ParseTrustedProxies reads a --trusted-proxies list: addresses or CIDR
// ranges, comma-separated ("10.0.0.0/8,192.0.2.7").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither an address nor a CIDR range", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// SetEdge sets the hub's public URL and trusted proxies (at start-up,
// before serving).
func (s *Server) SetEdge(e Edge) { s.edge = e }

type edgeKey struct{}

// edgeInfo is what the edge found out about a request.
type edgeInfo struct {
	base   string // public base URL, no trailing '/'
	secure bool
}

// atEdge prepares a request as it enters: the client's address from a
// trusted proxy's X-Forwarded-For (RemoteAddr is set to it, so everything
// that counts or logs clients sees the client, not the proxy), HSTS when
// the hub is reached over https, and the public base URL for answers.
func (s *Server) atEdge(w http.ResponseWriter, r *http.Request) *http.Request {
	if len(s.edge.TrustedProxies) > 0 {
		if client, ok := forwardedClient(r, s.edge.TrustedProxies); ok {
			r.RemoteAddr = net.JoinHostPort(client.String(), "0")
		}
	}
	info := edgeInfo{secure: r.TLS != nil}
	if u := s.edge.PublicURL; u != nil {
		info.base = u.String()
		info.secure = info.secure || u.Scheme == "https"
	}
	if info.secure {
		w.Header().Set("Strict-Transport-Security", hstsMaxAge)
	}
	return r.WithContext(context.WithValue(r.Context(), edgeKey{}, info))
}

// forwardedClient is the client a trusted proxy names: X-Forwarded-For
// read from the right (the entries the nearest proxies appended), past
// every trusted hop, to the first address that is not a trusted proxy.
// ok is false when the peer itself is not trusted, or the header names no
// usable address there.
func forwardedClient(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !isTrusted(peer.Addr(), trusted) {
		return netip.Addr{}, false
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // garbage where a trusted proxy writes: believe no one
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) || i == 0 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PublicURL is the hub's base URL for links in an answer (no trailing
// '/'): the configured public URL, or the address the hub was started on;
// never the request's Host header.
func PublicURL(r *http.Request) string {
	if info, ok := r.Context().Value(edgeKey{}).(edgeInfo); ok && info.base != "" {
		return info.base
	}
	return ""
}

// Secure reports whether the client reaches the hub over https (directly,
// or through a proxy at an https public URL): cookies are then Secure.
func Secure(r *http.Request) bool {
	if info, ok := r.Context().Value(edgeKey{}).(edgeInfo); ok {
		return info.secure
	}
	return r.TLS != nil
}

// ErrNoPublicURL is returned by DefaultPublicURL for an address it cannot
// make a URL of.
var ErrNoPublicURL = errors.New("no public URL")

// DefaultPublicURL is the base URL of a hub listening on addr without a
// configured public URL: its scheme and listen address, with "localhost"
// for an unspecified host (":8080", "0.0.0.0:8080").
func DefaultPublicURL(addr string, tls bool) (*url.URL, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoPublicURL, addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}
