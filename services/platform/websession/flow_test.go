package websession_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"linkway/events"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/orgs"
	"linkway/services/platform/websession"
)

// mux is a Router over http.ServeMux.
type mux struct{ *http.ServeMux }

func (m mux) HandlePublic(pattern string, h http.Handler) { m.Handle(pattern, h) }

type names map[string]string

func (n names) Get(id string) (orgs.Organisation, bool) {
	name, ok := n[id]
	return orgs.Organisation{ID: id, Name: name}, ok
}

// homeView is the test app's page: its own fields beside the layout's.
type homeView struct {
	websession.Page
	Note string
}

// app is a small web app on the shared flow: a home page that shows a
// note, a form that records what it was sent, and pages that fail.
type app struct {
	s    *websession.Sessions
	srv  *httptest.Server
	mu   sync.Mutex
	got  []string // what the form was sent
	seen []string // sign-in results
}

func newApp(t *testing.T, cfg websession.Config) *app {
	t.Helper()
	_, js := natsserver.Test(t)
	a := &app{}
	cfg.OnSignIn = func(result string) { a.mu.Lock(); a.seen = append(a.seen, result); a.mu.Unlock() }
	s, err := websession.Open(t.Context(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.s = s
	m := mux{http.NewServeMux()}
	s.Mount(m)
	m.Handle("GET /app/{$}", s.Page(func(w http.ResponseWriter, r *http.Request, se websession.Session) error {
		s.Render(w, http.StatusOK, "home.html", &homeView{Page: websession.Page{Title: "Home", Flash: r.URL.Query().Get("flash")},
			Note: `<script>alert("x")</script>`}, &se)
		return nil
	}))
	m.Handle("POST /app/note", s.Page(func(w http.ResponseWriter, r *http.Request, se websession.Session) error {
		a.mu.Lock()
		a.got = append(a.got, r.PostForm.Get("note"))
		a.mu.Unlock()
		http.Redirect(w, r, "/app/", http.StatusSeeOther)
		return nil
	}))
	m.Handle("GET /app/things/{id}", s.Page(func(http.ResponseWriter, *http.Request, websession.Session) error {
		return events.ErrNotFound
	}))
	m.Handle("GET /app/broken", s.Page(func(http.ResponseWriter, *http.Request, websession.Session) error {
		return errors.New("nats: the secret detail of a bug")
	}))
	a.srv = httptest.NewServer(m)
	t.Cleanup(a.srv.Close)
	return a
}

func appConfig() websession.Config {
	return websession.Config{App: "app", Path: "/app/", Title: "Test app", Cookie: "lw_app", SignInCookie: "lw_app_signin",
		Kinds: []events.Kind{events.KindVCS}, ForWhom: "This page is for VCS organisations.",
		KeyLabel: "Organisation key", Intro: "Sign in to see the notes.", NotFound: "There is no such thing here.",
		Templates: fstest.MapFS{
			"home.html":  {Data: []byte(`<h1>Notes</h1><p id="note">{{.Note}}</p>{{template "form" .}}`)},
			"parts.html": {Data: []byte(`{{define "form"}}<form method="post" action="/app/note"><input type="hidden" name="csrf" value="{{.CSRF}}"></form>{{end}}`)},
		},
		Assets:     fstest.MapFS{"app.css": {Data: []byte("main { color: black; }")}, "app.js": {Data: []byte("'use strict';")}},
		Stylesheet: "app.css", Script: "app.js",
		Orgs: names{"VCS001": "Sale Walking Group"}, Keys: keys{}, Now: time.Now}
}

// client is a browser without JavaScript that does not follow redirects.
type client struct {
	t    *testing.T
	a    *app
	c    *http.Client
	last string
}

func (a *app) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, a: a, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values) *http.Response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.a.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.last = string(b)
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) token() string {
	c.t.Helper()
	m := csrfField.FindStringSubmatch(c.last)
	if m == nil {
		c.t.Fatalf("no token on the page: %s", c.last)
	}
	return m[1]
}

func (c *client) signIn(key string) *http.Response {
	c.t.Helper()
	if resp := c.do("GET", "/app/", nil); resp.StatusCode != 200 {
		c.t.Fatalf("GET /app/: %d", resp.StatusCode)
	}
	return c.do("POST", "/app/sign-in", url.Values{"key": {key}, "csrf": {c.token()}})
}

func TestAppSignInFlow(t *testing.T) {
	a := newApp(t, appConfig())
	b := a.client(t)

	// Signed out: the home page is the sign-in form, in the layout, with
	// the headers; any other page sends the browser there.
	resp := b.do("GET", "/app/", nil)
	for _, want := range []string{`<title>Sign in · Test app</title>`, `href="/app/static/linkway.css"`, `href="/app/static/app.css"`,
		`<label for="key">Organisation key</label>`, `action="/app/sign-in"`, "Sign in to see the notes.", `href="#main"`} {
		if !strings.Contains(b.last, want) {
			t.Errorf("the sign-in page lacks %s: %s", want, b.last)
		}
	}
	if strings.Contains(b.last, "app.js") || strings.Contains(b.last, "Sign out") {
		t.Error("signed out, the page has the app's script or a sign-out form")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" ||
		resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", resp.Header)
	}
	for _, p := range []string{"/app/things/1", "/app/broken"} {
		if resp := b.do("GET", p, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
			t.Errorf("GET %s signed out: %d %s", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := b.do("POST", "/app/note", url.Values{"note": {"hi"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a form signed out: %d", resp.StatusCode)
	}

	// Refusals show the form again, with the status and the words.
	for _, c := range []struct {
		form   url.Values
		status int
		says   string
	}{
		{url.Values{"key": {"vcs-key"}, "csrf": {"forged"}}, http.StatusForbidden, "out of date"},
		{url.Values{"key": {" "}}, http.StatusBadRequest, "Enter your key"},
		{url.Values{"key": {"gp-key"}}, http.StatusForbidden, "This page is for VCS organisations."},
		{url.Values{"key": {"nobody"}}, http.StatusUnauthorized, "not recognised"},
	} {
		b.do("GET", "/app/", nil)
		if _, ok := c.form["csrf"]; !ok {
			c.form.Set("csrf", b.token())
		}
		resp := b.do("POST", "/app/sign-in", c.form)
		if resp.StatusCode != c.status || !strings.Contains(b.last, c.says) || !strings.Contains(b.last, `role="alert"`) ||
			!strings.Contains(b.last, `<label for="key">`) {
			t.Errorf("sign-in with %v: %d, want %d saying %q: %s", c.form, resp.StatusCode, c.status, c.says, b.last)
		}
	}

	// Signed in: the page, its org's name, the script, every form's token.
	resp = b.signIn("vcs-key")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "lw_app" && (!c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/app/" || c.Secure) {
			t.Errorf("session cookie: %+v", c)
		}
	}
	b.do("GET", "/app/?flash=Saved", nil)
	for _, want := range []string{"Signed in as Sale Walking Group (VCS001)", `action="/app/sign-out"`, `src="/app/static/app.js"`,
		`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`, `<p class="flash" role="status" id="flash">Saved</p>`, "<h1>Notes</h1>"} {
		if !strings.Contains(b.last, want) {
			t.Errorf("the signed-in page lacks %s: %s", want, b.last)
		}
	}
	if strings.Contains(b.last, `<script>alert`) {
		t.Error("the page does not escape what it shows")
	}
	token := b.token()
	if strings.Count(b.last, token) != 2 {
		t.Errorf("the sign-out form and the page's form should carry the session's token")
	}

	// A form without the session's token does nothing; with it, it is read.
	if resp := b.do("POST", "/app/note", url.Values{"note": {"forged"}, "csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden ||
		!strings.Contains(b.last, "Nothing was changed") {
		t.Errorf("a forged form: %d %s", resp.StatusCode, b.last)
	}
	if resp := b.do("POST", "/app/note", url.Values{"note": {strings.Repeat("x", 20<<10)}, "csrf": {token}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a form over the limit: %d", resp.StatusCode)
	}
	if resp := b.do("POST", "/app/note", url.Values{"note": {"hello"}, "csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the form: %d", resp.StatusCode)
	}
	if a.got == nil || len(a.got) != 1 || a.got[0] != "hello" {
		t.Errorf("the form handler got %q, want only the good form's", a.got)
	}

	// Errors are pages with the API's status; a bug's detail is not shown.
	if resp := b.do("GET", "/app/things/1", nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(b.last, "There is no such thing here.") ||
		!strings.Contains(b.last, "Back to Test app") || !strings.Contains(b.last, "Sign out") {
		t.Errorf("not found: %d %s", resp.StatusCode, b.last)
	}
	if resp := b.do("GET", "/app/broken", nil); resp.StatusCode != http.StatusInternalServerError || strings.Contains(b.last, "nats") ||
		!strings.Contains(b.last, "Something went wrong") {
		t.Errorf("a bug: %d %s", resp.StatusCode, b.last)
	}

	// A forged sign-out changes nothing and says nothing; a real one ends it.
	if resp := b.do("POST", "/app/sign-out", url.Values{"csrf": {"forged"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("forged sign-out: %d", resp.StatusCode)
	}
	if b.do("GET", "/app/", nil); !strings.Contains(b.last, "Sign out") {
		t.Fatal("a forged sign-out ended the session")
	}
	if resp := b.do("POST", "/app/sign-out", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %d", resp.StatusCode)
	}
	if b.do("GET", "/app/", nil); !strings.Contains(b.last, `<label for="key">`) {
		t.Error("still signed in after signing out")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.Join(a.seen, " ") != "wrong_kind unknown_key ok" {
		t.Errorf("sign-in results told: %v", a.seen)
	}
}

func TestAppStaticFiles(t *testing.T) {
	a := newApp(t, appConfig())
	b := a.client(t)
	for path, want := range map[string]int{
		"/app/static/linkway.css": 200, "/app/static/app.css": 200, "/app/static/app.js": 200,
		"/app/static/": 404, "/app/static/nope.css": 404, "/app/static/home.html": 404,
	} {
		resp := b.do("GET", path, nil)
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 200 && (resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-cache") {
			t.Errorf("GET %s: headers %v", path, resp.Header)
		}
	}
	if resp := b.do("GET", "/app/static/linkway.css", nil); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(b.last, ".sign-in") {
		t.Errorf("the shared stylesheet: %s %.80q", resp.Header.Get("Content-Type"), b.last)
	}
}

func TestAppWithoutScriptAllowsNone(t *testing.T) {
	cfg := appConfig()
	cfg.Script, cfg.SignInPath, cfg.SignOutPath = "", "/app/signin", "/app/signout"
	a := newApp(t, cfg)
	b := a.client(t)
	resp := b.do("GET", "/app/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("an app with no script: CSP %q", csp)
	}
	if !strings.Contains(b.last, `action="/app/signin"`) {
		t.Errorf("the form does not post to the app's own sign-in path: %s", b.last)
	}
	if resp := b.do("POST", "/app/signin", url.Values{"key": {"vcs-key"}, "csrf": {b.token()}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in at the app's own path: %d", resp.StatusCode)
	}
	if b.do("GET", "/app/", nil); !strings.Contains(b.last, `action="/app/signout"`) {
		t.Errorf("the sign-out form does not post to the app's own path: %s", b.last)
	}
}

func TestOpenRefusesABrokenApp(t *testing.T) {
	_, js := natsserver.Test(t)
	for name, change := range map[string]func(*websession.Config){
		"a page named like the layout": func(c *websession.Config) {
			c.Templates = fstest.MapFS{"websession.html": {Data: []byte("x")}}
		},
		"a page that does not parse": func(c *websession.Config) {
			c.Templates = fstest.MapFS{"home.html": {Data: []byte("{{.Note")}}
		},
		"a stylesheet not in Assets": func(c *websession.Config) { c.Stylesheet = "missing.css" },
		"a path without its slash":   func(c *websession.Config) { c.Path = "/app" },
	} {
		cfg := appConfig()
		change(&cfg)
		if _, err := websession.Open(t.Context(), js, cfg); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
