package linkwork

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/api"
	"linkway/services/platform"
)

// Web sessions live in a KV bucket (not in process memory) so that every
// replica of the service knows them, and they expire on their own. The
// cookie holds a random token; the bucket holds only its hash, so reading
// the bucket does not let anyone sign in.
const (
	sessionBucket = "lw_linkwork_sessions"
	sessionCookie = "lw_linkwork"
	preCookie     = "lw_linkwork_pre" // double-submit token of the sign-in form
	sessionTTL    = 12 * time.Hour
	cookiePath    = "/linkwork/"
)

type session struct {
	OrgID   string    `json:"org_id"`
	KeyID   string    `json:"key_id"`
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
}

func (s session) principal() api.Principal {
	return api.Principal{OrgID: s.OrgID, Kind: api.KindLinkwork, KeyID: s.KeyID}
}

type sessions struct {
	kv jetstream.KeyValue
}

func openSessions(ctx context.Context, d platform.Deps) (*sessions, error) {
	kv, err := d.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: sessionBucket, Description: "Linkway link-worker web sessions (hash of the cookie token)",
		Storage: jetstream.FileStorage, Replicas: max(d.Replicas, 1), History: 1, TTL: sessionTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("sessions bucket: %w", err)
	}
	return &sessions{kv: kv}, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// create starts a session for p and sets its cookie.
func (ss *sessions) create(ctx context.Context, w http.ResponseWriter, r *http.Request, p api.Principal) error {
	token := randomToken()
	b, err := json.Marshal(session{OrgID: p.OrgID, KeyID: p.KeyID, CSRF: randomToken(), Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := ss.kv.Put(ctx, tokenHash(token), b); err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: cookiePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	return nil
}

// get returns the request's session; ok is false when there is none.
func (ss *sessions) get(ctx context.Context, r *http.Request) (session, string, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return session{}, "", false, nil
	}
	e, err := ss.kv.Get(ctx, tokenHash(c.Value))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return session{}, "", false, nil
	}
	if err != nil {
		return session{}, "", false, fmt.Errorf("read session: %w", err)
	}
	var s session
	if err := json.Unmarshal(e.Value(), &s); err != nil || time.Since(s.Created) > sessionTTL {
		return session{}, "", false, nil
	}
	return s, c.Value, true, nil
}

// end deletes the session and its cookie.
func (ss *sessions) end(ctx context.Context, w http.ResponseWriter, token string) {
	if token != "" {
		_ = ss.kv.Delete(ctx, tokenHash(token)) // it expires anyway
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: cookiePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
