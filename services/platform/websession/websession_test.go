package websession_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/websession"
)

// keys is a key register of two organisations.
type keys struct{}

func (keys) LookupKey(_ context.Context, key string) (api.Principal, error) {
	switch key {
	case "vcs-key":
		return api.Principal{OrgID: "VCS001", Kind: events.KindVCS, KeyID: "k1"}, nil
	case "gp-key":
		return api.Principal{OrgID: "A81001", Kind: events.KindGP, KeyID: "k2"}, nil
	}
	return api.Principal{}, &events.Error{Code: events.CodeUnauthenticated, Message: "unknown API key"}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func config(app string, c *clock, kinds ...events.Kind) websession.Config {
	return websession.Config{App: app, Path: "/" + app + "/", Cookie: "lw_" + app + "_session", ForWhom: "This page is for VCS organisations.",
		SignInCookie: "lw_" + app + "_signin", Kinds: kinds, Keys: keys{}, Now: c.now}
}

func open(t *testing.T, js jetstream.JetStream, cfg websession.Config) *websession.Sessions {
	t.Helper()
	s, err := websession.Open(t.Context(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// browser keeps the cookies a browser would for one app.
type browser struct {
	addr    string
	tls     bool
	cookies map[string]*http.Cookie
}

func newBrowser(addr string) *browser {
	return &browser{addr: addr, cookies: map[string]*http.Cookie{}}
}

func (b *browser) request() *http.Request {
	r := httptest.NewRequest("POST", "/app/sign-in", nil)
	r.RemoteAddr = b.addr + ":4711"
	if b.tls {
		r.TLS = &tls.ConnectionState{}
	}
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	return r
}

// keep stores what a response set, as a browser does.
func (b *browser) keep(t *testing.T, w *httptest.ResponseRecorder) []*http.Cookie {
	t.Helper()
	set := w.Result().Cookies()
	for _, c := range set {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	return set
}

// signIn opens the form and posts key with its token.
func (b *browser) signIn(t *testing.T, s *websession.Sessions, key string) (websession.Session, []*http.Cookie, error) {
	t.Helper()
	w := httptest.NewRecorder()
	token := s.SignInForm(w, b.request())
	b.keep(t, w)
	w = httptest.NewRecorder()
	se, err := s.SignIn(w, b.request(), key, token)
	return se, b.keep(t, w), err
}

func (b *browser) session(t *testing.T, s *websession.Sessions) (websession.Session, bool) {
	t.Helper()
	se, ok, err := s.Get(b.request())
	if err != nil {
		t.Fatal(err)
	}
	return se, ok
}

func TestSignInSignOutAndCSRF(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	s := open(t, js, config("vcs", c, events.KindVCS))
	b := newBrowser("192.0.2.1")

	if _, ok := b.session(t, s); ok {
		t.Fatal("signed in before signing in")
	}
	se, set, err := b.signIn(t, s, " vcs-key ")
	if err != nil {
		t.Fatal(err)
	}
	if se.Principal.OrgID != "VCS001" || se.App != "vcs" || se.CSRF == "" {
		t.Errorf("session %+v", se)
	}
	var cookie *http.Cookie
	for _, ck := range set {
		switch ck.Name {
		case "lw_vcs_session":
			cookie = ck
		case "lw_vcs_signin":
			if ck.MaxAge >= 0 {
				t.Error("the sign-in form's cookie is kept after signing in")
			}
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/vcs/" || cookie.Secure ||
		cookie.MaxAge != int(websession.Lifetime/time.Second) {
		t.Errorf("session cookie over plain HTTP: %+v", cookie)
	}
	if strings.Contains(cookie.Value, "vcs-key") || strings.Contains(cookie.Value, "VCS001") {
		t.Error("the cookie holds the key or the organisation")
	}

	got, ok := b.session(t, s)
	if !ok || got.Principal != se.Principal || got.CSRF != se.CSRF {
		t.Fatalf("session read back: %+v %v", got, ok)
	}
	for token, want := range map[string]bool{se.CSRF: true, "": false, "forged": false, se.CSRF + "x": false} {
		if got.CheckCSRF(token) != want {
			t.Errorf("CheckCSRF(%q) = %v", token, !want)
		}
	}

	// Tampered cookies, and one signed by another deployment, are refused.
	_, elsewhere := natsserver.Test(t)
	for name, value := range map[string]string{
		"another secret":     websession.SignForTest(open(t, elsewhere, config("vcs", c)), se.ID),
		"no signature":       se.ID,
		"tampered id":        "x" + cookie.Value,
		"tampered signature": cookie.Value[:len(cookie.Value)-2] + "AA",
		"empty":              "",
	} {
		r := httptest.NewRequest("GET", "/vcs/", nil)
		r.AddCookie(&http.Cookie{Name: "lw_vcs_session", Value: value})
		if _, ok, err := s.Get(r); ok || err != nil {
			t.Errorf("%s: signed in %v (%v)", name, ok, err)
		}
	}

	// Sign-out deletes the session: the old cookie no longer opens it.
	w := httptest.NewRecorder()
	if err := s.SignOut(w, b.request(), got); err != nil {
		t.Fatal(err)
	}
	cleared := false
	for _, ck := range w.Result().Cookies() {
		cleared = cleared || (ck.Name == "lw_vcs_session" && ck.MaxAge < 0)
	}
	if !cleared {
		t.Error("sign-out left the cookie")
	}
	r := httptest.NewRequest("GET", "/vcs/", nil)
	r.AddCookie(cookie)
	if _, ok, _ := s.Get(r); ok {
		t.Error("a signed-out session still opens")
	}
}

func TestSignInOverTLSSetsSecureCookies(t *testing.T) {
	_, js := natsserver.Test(t)
	s := open(t, js, config("directory", &clock{t: time.Now()}))
	b := newBrowser("192.0.2.1")
	b.tls = true
	// Any kind may sign in where the app names none.
	_, set, err := b.signIn(t, s, "gp-key")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range set {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/directory/" {
			t.Errorf("cookie over TLS: %+v", c)
		}
	}
	if len(set) != 2 {
		t.Errorf("cookies set on sign-in: %d, want the session's and the cleared form's", len(set))
	}
}

func TestSignInRefusals(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Now()}
	s := open(t, js, config("vcs", c, events.KindVCS))
	b := newBrowser("192.0.2.1")

	// A key of a kind the app does not take.
	if _, set, err := b.signIn(t, s, "gp-key"); !errors.Is(err, websession.ErrWrongKind) || len(set) != 0 {
		t.Errorf("GP key on the VCS app: %v, cookies %v", err, set)
	}
	if _, _, err := b.signIn(t, s, "nobody"); !errors.Is(err, websession.ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	// A form posted without its cookie (from another site) or with another
	// token is refused before the key is looked at.
	w := httptest.NewRecorder()
	if _, err := s.SignIn(w, newBrowser("192.0.2.1").request(), "vcs-key", "token"); !errors.Is(err, websession.ErrStaleForm) {
		t.Errorf("no form cookie: %v", err)
	}
	s.SignInForm(httptest.NewRecorder(), b.request())
	if _, err := s.SignIn(httptest.NewRecorder(), b.request(), "vcs-key", "forged"); !errors.Is(err, websession.ErrStaleForm) {
		t.Errorf("forged form token: %v", err)
	}
	if _, ok := b.session(t, s); ok {
		t.Error("a refused sign-in left a session")
	}
	// Every app says the same, with the status the API would give.
	for err, want := range map[error]int{
		websession.ErrStaleForm: http.StatusForbidden, websession.ErrThrottled: http.StatusTooManyRequests,
		websession.ErrUnknownKey: http.StatusUnauthorized, websession.ErrWrongKind: http.StatusForbidden,
		&events.Error{Code: events.CodeUnavailable, Message: "keys cannot be checked now"}: http.StatusServiceUnavailable,
	} {
		if status, msg := s.Refusal(err); status != want || msg == "" {
			t.Errorf("Refusal(%v) = %d %q, want %d", err, status, msg, want)
		}
	}
	if _, msg := s.Refusal(websession.ErrWrongKind); !strings.Contains(msg, "VCS organisations") {
		t.Errorf("a key of the wrong kind is told %q", msg)
	}
}

func TestSignInGuessingIsThrottledOnEveryReplica(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	// Two apps (or two replicas) count the same client's failures together.
	vcs := open(t, js, config("vcs", c, events.KindVCS))
	dir := open(t, js, config("directory", c))
	guesser, other := newBrowser("192.0.2.1"), newBrowser("192.0.2.2")
	for i := range websession.MaxFailures {
		s := vcs
		if i%2 == 1 {
			s = dir
		}
		if _, _, err := guesser.signIn(t, s, "guess"); !errors.Is(err, websession.ErrUnknownKey) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	for _, s := range []*websession.Sessions{vcs, dir} {
		// Even the right key is not looked at now.
		if _, _, err := guesser.signIn(t, s, "vcs-key"); !errors.Is(err, websession.ErrThrottled) {
			t.Errorf("after %d failures: %v, want throttled", websession.MaxFailures, err)
		}
	}
	if _, _, err := other.signIn(t, vcs, "vcs-key"); err != nil {
		t.Errorf("another address is throttled too: %v", err)
	}
	c.add(websession.FailureWindow + time.Second)
	if _, _, err := guesser.signIn(t, vcs, "vcs-key"); err != nil {
		t.Errorf("still throttled after the window: %v", err)
	}
}

func TestSessionOfAnotherAppIsRefused(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Now()}
	vcs := open(t, js, config("vcs", c))
	dir := open(t, js, config("directory", c))
	b := newBrowser("192.0.2.1")
	se, set, err := b.signIn(t, vcs, "vcs-key")
	if err != nil {
		t.Fatal(err)
	}
	// The VCS cookie's value presented to the directory, under its name.
	r := httptest.NewRequest("GET", "/directory/", nil)
	r.AddCookie(&http.Cookie{Name: "lw_directory_session", Value: set[len(set)-1].Value})
	if _, ok, err := dir.Get(r); ok || err != nil {
		t.Errorf("a VCS session opens the directory: %v %v", ok, err)
	}
	// Even signed for the directory, the stored session names its app.
	forged := websession.SignForTest(dir, se.ID)
	r = httptest.NewRequest("GET", "/directory/", nil)
	r.AddCookie(&http.Cookie{Name: "lw_directory_session", Value: forged})
	if _, ok, err := dir.Get(r); ok || err != nil {
		t.Errorf("a VCS session re-signed for the directory opens it: %v %v", ok, err)
	}
}

func TestSessionsExpire(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	s := open(t, js, config("vcs", c))
	b := newBrowser("192.0.2.1")
	if _, _, err := b.signIn(t, s, "vcs-key"); err != nil {
		t.Fatal(err)
	}
	c.add(websession.Lifetime - time.Second)
	if _, ok := b.session(t, s); !ok {
		t.Fatal("the session ended early")
	}
	c.add(2 * time.Second)
	if _, ok := b.session(t, s); ok {
		t.Error("an expired session still opens")
	}
	// The bucket forgets sessions on its own too.
	info, err := js.KeyValue(t.Context(), websession.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := info.Status(t.Context())
	if err != nil || st.TTL() != websession.Lifetime {
		t.Errorf("bucket TTL %v (%v), want %v", st.TTL(), err, websession.Lifetime)
	}
}

func TestSessionSurvivesANewProcess(t *testing.T) {
	ns, js := natsserver.Test(t)
	c := &clock{t: time.Now()}
	first := open(t, js, config("linkwork", c, events.KindVCS))
	b := newBrowser("192.0.2.1")
	se, _, err := b.signIn(t, first, "vcs-key")
	if err != nil {
		t.Fatal(err)
	}
	// Another process (another replica, or this one restarted): its own
	// connection and its own Sessions, the same NATS.
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js2, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	second := open(t, js2, config("linkwork", c, events.KindVCS))
	got, ok := b.session(t, second)
	if !ok || got.Principal != se.Principal || got.CSRF != se.CSRF {
		t.Fatalf("the new process does not know the session: %+v %v", got, ok)
	}
	// Signing out there ends it here too.
	if err := second.SignOut(httptest.NewRecorder(), b.request(), got); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.session(t, first); ok {
		t.Error("signed out on one process, still signed in on the other")
	}
}

func TestReplicasShareTheSecretAsItChanges(t *testing.T) {
	_, js := natsserver.Test(t)
	c := &clock{t: time.Now()}
	one, two := open(t, js, config("vcs", c)), open(t, js, config("vcs", c))
	// Sign-ins at once on both replicas all succeed, and each replica
	// knows the other's sessions.
	var wg sync.WaitGroup
	browsers := make([]*browser, 16)
	errs := make([]error, len(browsers))
	for i := range browsers {
		browsers[i] = newBrowser(fmt.Sprintf("192.0.2.%d", i+1))
		wg.Go(func() {
			s := one
			if i%2 == 1 {
				s = two
			}
			_, _, errs[i] = browsers[i].signIn(t, s, "vcs-key")
		})
	}
	wg.Wait()
	for i, b := range browsers {
		if errs[i] != nil {
			t.Fatalf("sign-in %d: %v", i, errs[i])
		}
		for _, s := range []*websession.Sessions{one, two} {
			if _, ok := b.session(t, s); !ok {
				t.Errorf("sign-in %d is not known to both replicas", i)
			}
		}
	}
	// The secret gone (no sign-in for a whole lifetime), the next sign-in
	// makes a new one, and the other replica picks it up.
	kv, err := js.KeyValue(t.Context(), websession.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(t.Context(), "secret"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser("198.51.100.1")
	if _, _, err := b.signIn(t, one, "vcs-key"); err != nil {
		t.Fatal(err)
	}
	c.add(time.Minute) // the other replica reads the secret again at most every few seconds
	if _, ok := b.session(t, two); !ok {
		t.Error("the other replica refuses a session signed with the new secret")
	}
}
