// Package websession is the one sign-in flow and the one page layout of
// Linkway's server-rendered web apps (/vcs/, /linkwork/, /commissioner/,
// /directory/). Each app opens its Sessions with its own path, title,
// cookies and the kinds of key that may sign in, mounts the sign-in,
// sign-out and static routes, and serves its pages through Page and
// Render: the app keeps only its page bodies.
//
// Every app gets the same behaviour: people sign in with their
// organisation's API key; sessions live in one KV bucket
// (lw_web_sessions), so they survive a restart, work on any replica, and
// signing out ends them everywhere; the bucket holds the SHA-256 of each
// session id, never the id or the key; a session names the app it was
// made for and opens no other; cookies are signed, HttpOnly,
// SameSite=Strict and Secure over TLS; each session has its CSRF token,
// and the sign-in form its own (double submit); failed sign-ins are
// counted per client address in the same bucket, so guessing keys is
// slowed across every replica and every app. Every page has the same
// layout (templates/websession.html: header, sign-in form, messages and
// errors, the shared stylesheet static/linkway.css then the app's own)
// and the same security headers.
package websession

import (
	"cmp"
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
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/orgs"
)

// Bucket is the KV bucket of every app's sessions, the cookie-signing
// secret and the sign-in failure counts. Its TTL is Lifetime: a session
// nobody signs out of leaves nothing behind.
const Bucket = "lw_web_sessions"

// Lifetime is how long a session lasts from sign-in (a long working day).
const Lifetime = 12 * time.Hour

// Sign-in guessing: after MaxFailures failed sign-ins from one address
// for one organisation (the one the key names, see apikeys.OrgOf), or
// MaxClientFailures from one address for any, within FailureWindow,
// further attempts from it (for that organisation) are refused until the
// window has passed. A client locks out only itself, never others behind
// the same proxy (the address is the client's: api's trusted proxies) nor
// its own colleagues of another organisation.
const (
	MaxFailures       = 10
	MaxClientFailures = 5 * MaxFailures
	FailureWindow     = 5 * time.Minute
)

// A sign-in form may be left open an hour; its body is small. Other
// forms' bodies are bounded by Config.FormLimit, formLimit by default.
const (
	signInFormAge   = time.Hour
	signInFormLimit = 4 << 10
	formLimit       = 16 << 10
)

// secretRecheck is how often at most a cookie that fails against the
// secret makes a replica read the secret again.
const secretRecheck = 10 * time.Second

// Keys in the bucket.
const (
	sessionPrefix  = "session."
	failurePrefix  = "failures."
	secretKey      = "secret"
	maxCookieValue = 200
)

// Errors of SignIn; Refusal turns them into words for the sign-in page.
var (
	// ErrStaleForm is returned when the sign-in form's token does not match
	// its cookie: an old form, or one posted from another site.
	ErrStaleForm = errors.New("websession: the sign-in form is out of date")
	// ErrThrottled is returned when the client address has failed to sign
	// in too often lately; the key was not checked.
	ErrThrottled = errors.New("websession: too many failed sign-ins")
	// ErrUnknownKey is returned for a key that is not known (or revoked).
	ErrUnknownKey = errors.New("websession: unknown key")
	// ErrWrongKind is returned for a known key of a kind the app does not
	// take.
	ErrWrongKind = errors.New("websession: key of the wrong kind")
)

// KeyLookup finds the principal of an API key; *api.Server is one.
type KeyLookup interface {
	LookupKey(ctx context.Context, key string) (api.Principal, error)
}

// Config describes one web app: who may sign in, its cookies, and what
// its pages are made of.
type Config struct {
	// App names the app ("vcs"); a session opens only the app it was made for.
	App string
	// Path is where the app lives ("/vcs/"): its home page, which shows the
	// sign-in form to a browser that is not signed in, and its cookies' path.
	Path string
	// Title names the app in every page's header and title ("Linkway referrals").
	Title string
	// Cookie names the session cookie; SignInCookie the sign-in form's.
	Cookie, SignInCookie string
	// SignInPath and SignOutPath are where the sign-in and sign-out forms
	// post; Path+"sign-in" and Path+"sign-out" when empty.
	SignInPath, SignOutPath string
	// Kinds are the kinds of key that may sign in; none means any.
	Kinds []events.Kind
	// ForWhom tells the holder of a key of another kind whom the app is
	// for ("This page is for VCS organisations.").
	ForWhom string
	// KeyLabel labels the sign-in form's key field ("Organisation key");
	// Intro is said above the form.
	KeyLabel, Intro string
	// Home is the words of the link from a message page back to Path
	// ("Back to all referrals").
	Home string
	// NotFound is what a page says when what it names is not found, or is
	// not the caller's ("There is no such referral in your inbox.").
	NotFound string
	// Templates holds the app's page bodies, one *.html file a page, named
	// by its file name in Render; each is shown inside the layout and may
	// use the templates the others define. Funcs are the functions they use.
	Templates fs.FS
	Funcs     template.FuncMap
	// Assets holds the app's static files, served at Path+"static/".
	// Stylesheet names the app's stylesheet in it, linked from every page
	// after the shared one; Script a script for signed-in pages.
	Assets             fs.FS
	Stylesheet, Script string
	// FormLimit bounds a form's body (16 KiB when 0).
	FormLimit int64
	// Orgs names the signed-in organisation in the header; its code is
	// shown when nil.
	Orgs OrgNames
	// OnSignIn is told each sign-in's result (ok, unknown_key, wrong_kind,
	// throttled), for the app's metrics; may be nil.
	OnSignIn func(result string)
	// Keys looks up API keys.
	Keys KeyLookup
	// Replicas of the bucket (1 on a single server).
	Replicas int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives what failed (never a key); nothing is logged when nil.
	Log *slog.Logger
}

// OrgNames finds an organisation by its code; *orgs.Registry is one.
type OrgNames interface {
	Get(id string) (orgs.Organisation, bool)
}

// Session is one signed-in browser.
type Session struct {
	// ID is the session's secret id (in the cookie, signed); never stored.
	ID        string        `json:"-"`
	App       string        `json:"app"`
	Principal api.Principal `json:"principal"`
	// CSRF is the token every form of the session carries.
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// Sessions are one web app's sessions, sign-in flow and pages.
type Sessions struct {
	cfg Config
	kv  jetstream.KeyValue

	site      Site
	csp       string
	pages     map[string]*template.Template
	fragments *template.Template // every template of the app's files
	assets    fs.FS

	mu     sync.Mutex
	secret []byte
	loaded time.Time // when the secret was last read
}

// Open opens (creating if need be) the sessions bucket for one app, and
// parses its pages.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Sessions, error) {
	if cfg.App == "" || cfg.Path == "" || cfg.Cookie == "" || cfg.SignInCookie == "" || cfg.Keys == nil {
		return nil, errors.New("websession: App, Path, Cookie, SignInCookie and Keys are required")
	}
	if !strings.HasPrefix(cfg.Path, "/") || !strings.HasSuffix(cfg.Path, "/") {
		return nil, fmt.Errorf("websession: Path %q must begin and end with /", cfg.Path)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.SignInPath = cmp.Or(cfg.SignInPath, cfg.Path+"sign-in")
	cfg.SignOutPath = cmp.Or(cfg.SignOutPath, cfg.Path+"sign-out")
	cfg.FormLimit = cmp.Or(cfg.FormLimit, formLimit)
	cfg.Title = cmp.Or(cfg.Title, "Linkway")
	cfg.KeyLabel = cmp.Or(cfg.KeyLabel, "Organisation key")
	cfg.Home = cmp.Or(cfg.Home, "Back to "+cfg.Title)
	s := &Sessions{cfg: cfg}
	if err := s.parse(); err != nil {
		return nil, fmt.Errorf("websession %s pages: %w", cfg.App, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Linkway web sessions (SHA-256 of the id -> app and organisation), cookie secret, failed sign-ins",
		Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1), History: 1, TTL: Lifetime,
	})
	if err != nil {
		return nil, fmt.Errorf("web sessions bucket: %w", err)
	}
	s.kv = kv
	if _, err := s.loadSecret(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Token is a fresh random token (256 bits, hex), for CSRF and form ids.
func Token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return hex.EncodeToString(b)
}

// SameToken compares tokens in constant time; an empty token never matches.
func SameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// The secret signs cookies. It lives in the bucket, so every replica has
// it; as the bucket ages entries out, each sign-in writes it again, so it
// outlives every session signed with it. Should it expire (no sign-in for
// a whole Lifetime: no live session either), the next replica makes a new
// one and the others pick it up when a cookie fails against theirs.
func (s *Sessions) loadSecret(ctx context.Context) (jetstream.KeyValueEntry, error) {
	for range 5 {
		e, err := s.kv.Get(ctx, secretKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			fresh := make([]byte, 32)
			_, _ = rand.Read(fresh)
			if _, err := s.kv.Create(ctx, secretKey, fresh); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, fmt.Errorf("web session secret: %w", err)
			}
			continue // read back whichever replica's secret won
		}
		if err != nil {
			return nil, fmt.Errorf("web session secret: %w", err)
		}
		s.mu.Lock()
		s.secret, s.loaded = slices.Clone(e.Value()), s.cfg.Now()
		s.mu.Unlock()
		return e, nil
	}
	return nil, errors.New("web session secret: could not be settled")
}

// refreshSecret rewrites the secret (same value), restarting its age. A
// write by another replica since it was read (a refresh, or a new secret)
// restarted its age as well: then the secret is only read again.
func (s *Sessions) refreshSecret(ctx context.Context) error {
	e, err := s.loadSecret(ctx)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, secretKey, e.Value(), e.Revision())
	if errors.Is(err, jetstream.ErrKeyExists) { // wrong last revision: written since
		_, err = s.loadSecret(ctx)
		return err
	}
	if err != nil {
		return fmt.Errorf("web session secret: %w", err)
	}
	return nil
}

func (s *Sessions) mac(secret []byte, id string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s.cfg.App + "\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sign is the cookie value of a session id: the id and its HMAC (keyed
// for this app), so a forged, guessed or other app's cookie is refused
// before any lookup.
func (s *Sessions) sign(id string) string {
	s.mu.Lock()
	secret := s.secret
	s.mu.Unlock()
	return id + "." + s.mac(secret, id)
}

func (s *Sessions) verify(ctx context.Context, value string) (string, bool, error) {
	id, sig, ok := strings.Cut(value, ".")
	if !ok || id == "" || len(value) > maxCookieValue {
		return "", false, nil
	}
	s.mu.Lock()
	secret, fresh := s.secret, s.cfg.Now().Sub(s.loaded) < secretRecheck
	s.mu.Unlock()
	if hmac.Equal([]byte(sig), []byte(s.mac(secret, id))) {
		return id, true, nil
	}
	if fresh {
		return "", false, nil
	}
	// Another replica may have made a new secret since this one read it;
	// read it again, though not for every forged cookie.
	e, err := s.loadSecret(ctx)
	if err != nil {
		return "", false, err
	}
	if slices.Equal(e.Value(), secret) {
		return "", false, nil
	}
	return id, hmac.Equal([]byte(sig), []byte(s.mac(e.Value(), id))), nil
}

// key is where a session is kept: the SHA-256 of its id, so a reader of
// the bucket cannot make a cookie from it.
func key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return sessionPrefix + hex.EncodeToString(sum[:])
}

// Get returns the request's live session of this app; ok is false when
// there is none. err is only for a bucket that cannot be read.
func (s *Sessions) Get(r *http.Request) (se Session, ok bool, err error) {
	c, err := r.Cookie(s.cfg.Cookie)
	if err != nil {
		return Session{}, false, nil
	}
	ctx := r.Context()
	id, ok, err := s.verify(ctx, c.Value)
	if err != nil || !ok {
		return Session{}, false, err
	}
	e, err := s.kv.Get(ctx, key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("read web session: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &se); err != nil || se.App != s.cfg.App {
		return Session{}, false, nil // unreadable or another app's: signed out here
	}
	if !s.cfg.Now().Before(se.Expires) {
		return Session{}, false, s.delete(ctx, id)
	}
	se.ID = id
	return se, true, nil
}

// CheckCSRF reports whether a form's token is the session's.
func (se Session) CheckCSRF(token string) bool { return SameToken(token, se.CSRF) }

// SignInForm starts a sign-in form: it sets the form's cookie and returns
// the token the form must send back (double submit: there is no session
// to tie it to yet).
func (s *Sessions) SignInForm(w http.ResponseWriter, r *http.Request) string {
	t := Token()
	http.SetCookie(w, s.cookie(r, s.cfg.SignInCookie, t, int(signInFormAge/time.Second)))
	return t
}

// SignIn signs a browser in with an API key, given the sign-in form's
// token: it checks the form, the client's recent failures, the key and its
// kind, then stores a new session (a fresh id, never one the browser sent)
// and sets its cookie. Its errors are ErrStaleForm, ErrThrottled,
// ErrUnknownKey, ErrWrongKind, or another error when keys or sessions
// cannot be reached (an *events.Error with CodeUnavailable).
func (s *Sessions) SignIn(w http.ResponseWriter, r *http.Request, apiKey, formToken string) (Session, error) {
	c, err := r.Cookie(s.cfg.SignInCookie)
	if err != nil || !SameToken(formToken, c.Value) {
		return Session{}, ErrStaleForm
	}
	ctx := r.Context()
	client, org := ClientAddr(r), apikeys.OrgOf(strings.TrimSpace(apiKey))
	throttled, err := s.throttled(ctx, client, org)
	if err != nil {
		return Session{}, unavailable(err)
	}
	if throttled {
		return Session{}, ErrThrottled
	}
	p, err := s.cfg.Keys.LookupKey(ctx, strings.TrimSpace(apiKey))
	switch {
	case events.ErrorCode(err) == events.CodeUnauthenticated:
		if err := s.countFailure(ctx, client, org); err != nil {
			return Session{}, unavailable(err)
		}
		return Session{}, ErrUnknownKey
	case err != nil:
		return Session{}, err
	case len(s.cfg.Kinds) > 0 && !slices.Contains(s.cfg.Kinds, p.Kind):
		return Session{}, ErrWrongKind
	}
	if err := s.refreshSecret(ctx); err != nil {
		return Session{}, unavailable(err)
	}
	se := Session{ID: Token(), App: s.cfg.App, Principal: p, CSRF: Token(), Expires: s.cfg.Now().Add(Lifetime)}
	b, err := json.Marshal(se)
	if err != nil {
		return Session{}, err
	}
	if _, err := s.kv.Put(ctx, key(se.ID), b); err != nil {
		return Session{}, unavailable(fmt.Errorf("store web session: %w", err))
	}
	http.SetCookie(w, s.cookie(r, s.cfg.SignInCookie, "", -1))
	http.SetCookie(w, s.cookie(r, s.cfg.Cookie, s.sign(se.ID), int(Lifetime/time.Second)))
	return se, nil
}

// Refusal is what the sign-in page says when SignIn refuses, and with
// which status: the same words in every app.
func (s *Sessions) Refusal(err error) (status int, message string) {
	switch {
	case errors.Is(err, ErrStaleForm):
		return http.StatusForbidden, "The sign-in form was out of date. Please try again."
	case errors.Is(err, ErrThrottled):
		return http.StatusTooManyRequests, "Too many attempts to sign in. Wait a few minutes and try again."
	case errors.Is(err, ErrUnknownKey):
		return http.StatusUnauthorized, "That key was not recognised. Check it and try again."
	case errors.Is(err, ErrWrongKind):
		return http.StatusForbidden, strings.TrimSpace("That key cannot sign in here. " + s.cfg.ForWhom)
	}
	return api.Status(api.Public(err).Code), "Sign-in is not available just now. Please try again in a moment."
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", &events.Error{Code: events.CodeUnavailable, Message: "sign-in is not available just now"}, err)
}

// SignOut ends a session everywhere and clears its cookie.
func (s *Sessions) SignOut(w http.ResponseWriter, r *http.Request, se Session) error {
	if err := s.delete(r.Context(), se.ID); err != nil {
		return err
	}
	http.SetCookie(w, s.cookie(r, s.cfg.Cookie, "", -1))
	return nil
}

func (s *Sessions) delete(ctx context.Context, id string) error {
	if err := s.kv.Delete(ctx, key(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete web session: %w", err)
	}
	return nil
}

// cookie is one of the app's cookies: HttpOnly, SameSite=Strict, and
// Secure whenever the browser reaches the hub over https (TLS here, or a
// proxy at an https --public-url).
func (s *Sessions) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: s.cfg.Path, MaxAge: maxAge,
		HttpOnly: true, Secure: api.Secure(r), SameSite: http.SameSiteStrictMode}
}

// ClientAddr is the address sign-in failures are counted against: the
// connection's, or the client a trusted proxy names (api's edge sets
// RemoteAddr so), never a forwarded header anyone else sent.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// failureLog is a client's latest failed sign-ins, oldest first.
type failureLog struct {
	At []time.Time `json:"at"`
	// revision of the entry it was read from (0: none).
	revision uint64
}

func (f failureLog) recent(now time.Time) []time.Time {
	cut := now.Add(-FailureWindow)
	i := slices.IndexFunc(f.At, func(t time.Time) bool { return t.After(cut) })
	if i < 0 {
		return nil
	}
	return f.At[i:]
}

func failureKey(client string) string {
	sum := sha256.Sum256([]byte(client)) // an address is not a valid key, and is kept out of sight
	return failurePrefix + hex.EncodeToString(sum[:])
}

func (s *Sessions) failures(ctx context.Context, client string) (failureLog, error) {
	e, err := s.kv.Get(ctx, failureKey(client))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return failureLog{}, nil
	}
	if err != nil {
		return failureLog{}, fmt.Errorf("read failed sign-ins: %w", err)
	}
	var f failureLog
	_ = json.Unmarshal(e.Value(), &f) // unreadable: start again
	f.revision = e.Revision()
	return f, nil
}

// signInFailed counts a failed sign-in, with optimistic concurrency so
// replicas counting the same client at once both count.
func (s *Sessions) signInFailed(ctx context.Context, client string) error {
	k := failureKey(client)
	for range 5 {
		f, err := s.failures(ctx, client)
		if err != nil {
			return err
		}
		now := s.cfg.Now()
		at := append(slices.Clone(f.recent(now)), now)
		if len(at) > MaxClientFailures {
			at = at[len(at)-MaxClientFailures:] // only the latest matter
		}
		b, err := json.Marshal(failureLog{At: at})
		if err != nil {
			return err
		}
		if f.revision == 0 {
			_, err = s.kv.Create(ctx, k, b)
		} else {
			_, err = s.kv.Update(ctx, k, b, f.revision)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("count failed sign-in: %w", err)
		}
	}
	return errors.New("count failed sign-in: too much contention")
}
