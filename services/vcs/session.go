package vcs

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/api"
)

// Web sessions live in a KV bucket, so that any replica of the service can
// serve a signed-in organisation and signing out ends the session
// everywhere. Only the principal the key named is kept, never the key.
const (
	sessionCookie  = "lw_vcs_session"
	signInCookie   = "lw_vcs_signin"
	sessionTTL     = 12 * time.Hour
	cookiePath     = "/vcs/"
	SessionsBucket = "lw_vcs_sessions"
	// SecretBucket holds the cookie-signing secret shared by the replicas.
	SecretBucket = "lw_vcs_web"
	secretKey    = "session_secret"
)

// session is one signed-in browser.
type session struct {
	id        string
	Principal api.Principal `json:"principal"`
	CSRF      string        `json:"csrf"`
	Expires   time.Time     `json:"expires"`
}

// sessionStore keeps sessions by id.
type sessionStore interface {
	put(ctx context.Context, id string, se session) error
	// get returns found false for an unknown session.
	get(ctx context.Context, id string) (se session, found bool, err error)
	delete(ctx context.Context, id string) error
}

type sessions struct {
	secret []byte
	now    func() time.Time
	store  sessionStore

	mu sync.Mutex
	// failed sign-ins by client address, to slow down guessing keys. Kept
	// per replica: a guesser spread over replicas is slowed a little less.
	failed map[string][]time.Time
}

// Sign-in guessing: after this many failures from one address within the
// window, further attempts from it are refused until the window passes.
const (
	maxFailedSignIns = 10
	failedWindow     = 5 * time.Minute
	maxFailedClients = 10000
)

func newSessions(secret []byte, store sessionStore, now func() time.Time) *sessions {
	return &sessions{secret: secret, now: now, store: store, failed: map[string][]time.Time{}}
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
func (s *sessions) create(ctx context.Context, p api.Principal) (session, error) {
	se := session{id: randomToken(), Principal: p, CSRF: randomToken(), Expires: s.now().Add(sessionTTL)}
	if err := s.store.put(ctx, se.id, se); err != nil {
		return session{}, err
	}
	return se, nil
}

// get returns the request's live session; ok is false when there is none.
func (s *sessions) get(r *http.Request) (se session, ok bool, err error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false, nil
	}
	id, ok := s.verify(c.Value)
	if !ok {
		return session{}, false, nil
	}
	se, found, err := s.store.get(r.Context(), id)
	if err != nil || !found {
		return session{}, false, err
	}
	if s.now().After(se.Expires) {
		return session{}, false, s.store.delete(r.Context(), id)
	}
	se.id = id
	return se, true, nil
}

func (s *sessions) end(ctx context.Context, id string) error { return s.store.delete(ctx, id) }

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

// memoryStore keeps sessions in this process only (unit tests).
type memoryStore struct {
	mu sync.Mutex
	m  map[string]session
}

func newMemoryStore() *memoryStore { return &memoryStore{m: map[string]session{}} }

func (m *memoryStore) put(_ context.Context, id string, se session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[id] = se
	return nil
}

func (m *memoryStore) get(_ context.Context, id string) (session, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	se, ok := m.m[id]
	return se, ok, nil
}

func (m *memoryStore) delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	return nil
}

// kvStore keeps sessions in a KV bucket whose entries expire with the
// sessions (the bucket's TTL), so an abandoned session leaves nothing
// behind. Keys are the SHA-256 of the id: a reader of the bucket cannot
// make a cookie from it.
type kvStore struct{ kv jetstream.KeyValue }

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (k kvStore) put(ctx context.Context, id string, se session) error {
	b, err := json.Marshal(se)
	if err != nil {
		return err
	}
	if _, err := k.kv.Put(ctx, sessionKey(id), b); err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

func (k kvStore) get(ctx context.Context, id string) (session, bool, error) {
	e, err := k.kv.Get(ctx, sessionKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("read session: %w", err)
	}
	var se session
	if err := json.Unmarshal(e.Value(), &se); err != nil {
		return session{}, false, nil // unreadable: treat as signed out
	}
	return se, true, nil
}

func (k kvStore) delete(ctx context.Context, id string) error {
	if err := k.kv.Delete(ctx, sessionKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// openSessions opens the session buckets and the shared signing secret:
// the first replica to start creates it, the others read it.
func openSessions(ctx context.Context, js jetstream.JetStream, replicas int, now func() time.Time) (*sessions, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SessionsBucket, Description: "Linkway VCS web inbox sessions (SHA-256 of the id -> organisation)",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1, TTL: sessionTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("sessions bucket: %w", err)
	}
	web, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SecretBucket, Description: "Linkway VCS web inbox: cookie-signing secret",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("web bucket: %w", err)
	}
	secret := randomBytes(32)
	if _, err := web.Create(ctx, secretKey, secret); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("session secret: %w", err)
		}
		e, err := web.Get(ctx, secretKey)
		if err != nil {
			return nil, fmt.Errorf("session secret: %w", err)
		}
		secret = e.Value()
	}
	return newSessions(secret, kvStore{kv: kv}, now), nil
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
