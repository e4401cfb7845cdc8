package vcs

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"linkway/services/api"
)

// Web sessions are held in memory: signing in again after a restart is a
// small cost for a page used a few times a day, and it keeps the API key
// itself out of any store (only the principal it named is kept).
const (
	sessionCookie = "lw_vcs_session"
	signInCookie  = "lw_vcs_signin"
	sessionTTL    = 12 * time.Hour
	maxSessions   = 10000
	cookiePath    = "/vcs/"
)

type session struct {
	id        string
	principal api.Principal
	csrf      string
	expires   time.Time
}

type sessions struct {
	secret []byte
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]*session
	gauge  func(float64)
	// failed sign-ins by client address, to slow down guessing keys.
	failed map[string][]time.Time
}

// Sign-in guessing: after this many failures from one address within the
// window, further attempts from it are refused until the window passes.
const (
	maxFailedSignIns = 10
	failedWindow     = 5 * time.Minute
	maxFailedClients = 10000
)

func newSessions(now func() time.Time, gauge func(float64)) *sessions {
	return &sessions{secret: randomBytes(32), now: now, m: map[string]*session{}, gauge: gauge, failed: map[string][]time.Time{}}
}

// recentFailures prunes and returns the client's failures in the window.
func (s *sessions) recentFailures(client string) []time.Time {
	cut := s.now().Add(-failedWindow)
	var kept []time.Time
	for _, t := range s.failed[client] {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	if kept == nil {
		delete(s.failed, client)
	} else {
		s.failed[client] = kept
	}
	return kept
}

// throttled reports whether a client has failed to sign in too often.
func (s *sessions) throttled(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recentFailures(client)) >= maxFailedSignIns
}

// signInFailed counts a failed sign-in.
func (s *sessions) signInFailed(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) >= maxFailedClients {
		clear(s.failed) // bounded memory; forgetting is safe, only slower to throttle
	}
	s.failed[client] = append(s.recentFailures(client), s.now())
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return b
}

func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// sign is the cookie value of a session id: the id and its HMAC, so a
// forged or guessed cookie is refused before any lookup.
func (s *sessions) sign(id string) string {
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(id))
	return id + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *sessions) verify(value string) (string, bool) {
	id, _, ok := strings.Cut(value, ".")
	if !ok || id == "" {
		return "", false
	}
	return id, hmac.Equal([]byte(s.sign(id)), []byte(value))
}

// create starts a session with a fresh id (never one the browser sent, so
// a planted cookie cannot become a signed-in session).
func (s *sessions) create(p api.Principal) *session {
	now := s.now()
	se := &session{id: randomToken(), principal: p, csrf: randomToken(), expires: now.Add(sessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.m {
		if now.After(old.expires) {
			delete(s.m, id)
		}
	}
	if len(s.m) >= maxSessions {
		// Bounded memory: drop the session closest to expiring.
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.expires.Before(oldest.expires) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[se.id] = se
	s.gauge(float64(len(s.m)))
	return se
}

// get returns the request's live session.
func (s *sessions) get(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	id, ok := s.verify(c.Value)
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if s.now().After(se.expires) {
		delete(s.m, id)
		s.gauge(float64(len(s.m)))
		return nil, false
	}
	return se, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	s.gauge(float64(len(s.m)))
}

// cookie is a session-scoped cookie: HttpOnly, SameSite=Strict, and
// Secure whenever the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
}

// sameToken compares tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
