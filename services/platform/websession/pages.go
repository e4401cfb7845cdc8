package websession

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// The shared layout and pages, and the shared stylesheet.
var (
	//go:embed templates/websession.html
	sharedTemplates embed.FS
	//go:embed static/linkway.css
	sharedStatic embed.FS
)

// sharedCSS is the shared stylesheet's name under Path+"static/".
const sharedCSS = "linkway.css"

// The shared pages' names in Render.
const (
	signInPage  = "websession.signin"
	messagePage = "websession.message"
)

// Site is what every page's layout shows of its app.
type Site struct {
	Title, Path             string
	SignInPath, SignOutPath string
	// Static is where the app's static files are served (Path+"static/").
	Static             string
	Stylesheet, Script string
	KeyLabel, Intro    string
	Home               string
}

// Page is what the layout shows around a page's body. An app's view of
// a page embeds it, so the body sees its own fields and these alike.
type Page struct {
	// Title is the page's: the layout adds the app's.
	Title string
	// Flash confirms what was just done (role=status); Done names it, for
	// scripts and tests (data-done).
	Flash, Done string
	// Error says what went wrong (role=alert).
	Error string

	// Set by Render.
	App      *Site
	SignedIn bool
	OrgID    string
	OrgName  string
	// CSRF is the session's token, which every form of the page sends
	// back (on the sign-in page: the sign-in form's own).
	CSRF string
}

func (p *Page) page() *Page { return p }

// View is a page's data: a struct that embeds Page, given by pointer.
type View interface{ page() *Page }

// parse makes one template a page: the shared layout and pages, and every
// file of the app's Templates, each page with its file as the layout's
// content.
func (s *Sessions) parse() error {
	cfg := s.cfg
	s.site = Site{Title: cfg.Title, Path: cfg.Path, SignInPath: cfg.SignInPath, SignOutPath: cfg.SignOutPath,
		Static: cfg.Path + "static/", Stylesheet: cfg.Stylesheet, Script: cfg.Script,
		KeyLabel: cfg.KeyLabel, Intro: cfg.Intro, Home: cfg.Home}
	s.csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if cfg.Script != "" {
		s.csp += "; script-src 'self'; connect-src 'self'"
	}
	base, err := template.New("").Funcs(cfg.Funcs).ParseFS(sharedTemplates, "templates/*.html")
	if err != nil {
		return err
	}
	names := []string{signInPage, messagePage}
	if cfg.Templates != nil {
		files, err := fs.Glob(cfg.Templates, "*.html")
		if err != nil {
			return err
		}
		for _, f := range files {
			if strings.HasPrefix(f, "websession") {
				return fmt.Errorf("%s: the name is the shared layout's", f)
			}
		}
		if len(files) > 0 {
			if base, err = base.ParseFS(cfg.Templates, files...); err != nil {
				return err
			}
		}
		names = append(names, files...)
	}
	s.pages = map[string]*template.Template{}
	for _, name := range names {
		t, err := base.Clone()
		if err == nil {
			_, err = t.Parse(`{{define "content"}}{{template "` + name + `" .}}{{end}}`)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		s.pages[name] = t
	}
	s.fragments = base
	s.assets = assets{app: cfg.Assets}
	for _, f := range []string{cfg.Stylesheet, cfg.Script} {
		if f == "" {
			continue
		}
		if f == sharedCSS {
			return fmt.Errorf("%s: the name is the shared stylesheet's", f)
		}
		if st, err := fs.Stat(s.assets, f); err != nil || st.IsDir() {
			return fmt.Errorf("%s is not a file of Assets", f)
		}
	}
	return nil
}

// SecurityHeaders are every answer's: no inline script or style, nothing
// from elsewhere, not framed, no referrer, no sniffing, not cached.
func (s *Sessions) SecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

// Render shows one of the app's pages (its file name in Templates) in the
// layout, to se (nil: to a browser that is not signed in), with status.
func (s *Sessions) Render(w http.ResponseWriter, status int, page string, v View, se *Session) {
	p := v.page()
	p.App = &s.site
	if se != nil {
		p.SignedIn, p.CSRF = true, se.CSRF
		p.OrgID, p.OrgName = se.Principal.OrgID, se.Principal.OrgID
		if s.cfg.Orgs != nil {
			if o, ok := s.cfg.Orgs.Get(se.Principal.OrgID); ok && o.Name != "" {
				p.OrgName = o.Name
			}
		}
	}
	s.SecurityHeaders(w)
	t, ok := s.pages[page]
	var buf bytes.Buffer
	err := errors.New("no such page")
	if ok {
		err = t.ExecuteTemplate(&buf, "layout", v)
	}
	if err != nil {
		s.cfg.Log.Error("web page failed", "app", s.cfg.App, "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// Fragment renders one template the app's files define, without the
// layout: a part of a page sent on its own (a live update).
func (s *Sessions) Fragment(w io.Writer, name string, data any) error {
	if s.fragments.Lookup(name) == nil || strings.HasPrefix(name, "websession") || name == "layout" {
		return fmt.Errorf("websession %s: no template %q", s.cfg.App, name)
	}
	return s.fragments.ExecuteTemplate(w, name, data)
}

// message shows a page with a title, what went wrong (if anything), and
// a link back to the app's home.
func (s *Sessions) message(w http.ResponseWriter, status int, title, msg string, se *Session) {
	s.Render(w, status, messagePage, &Page{Title: title, Error: msg}, se)
}

// signInForm shows the sign-in form, with a fresh token for it.
func (s *Sessions) signInForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := s.SignInForm(w, r)
	s.Render(w, status, signInPage, &Page{Title: "Sign in", Error: msg, CSRF: token}, nil)
}

// Fail shows err as a page, with the status the API would give it; a
// failure of ours (5xx) is logged and its detail never shown.
func (s *Sessions) Fail(w http.ResponseWriter, r *http.Request, se *Session, err error) {
	pub := api.Public(err)
	status := api.Status(pub.Code)
	if status >= 500 {
		s.cfg.Log.Error("web request failed", "app", s.cfg.App, "route", r.Pattern, "status", status, "err", err)
	}
	title, msg := "Something went wrong", pub.Message
	if pub.Code == events.CodeNotFound {
		title = "Not found"
		if s.cfg.NotFound != "" {
			msg = s.cfg.NotFound
		}
	}
	s.message(w, status, title, msg, se)
}

// assets are the files served at Path+"static/": the shared stylesheet
// and the app's Assets.
type assets struct{ app fs.FS }

func (a assets) Open(name string) (fs.File, error) {
	if name == sharedCSS {
		return sharedStatic.Open("static/" + sharedCSS)
	}
	if a.app == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return a.app.Open(name)
}

// static serves the app's static files (never a folder's listing).
func (s *Sessions) static(w http.ResponseWriter, r *http.Request) {
	s.SecurityHeaders(w)
	name := strings.TrimPrefix(r.URL.Path, s.site.Static)
	if name == "" || !fs.ValidPath(name) || path.Clean(name) != name {
		http.NotFound(w, r)
		return
	}
	st, err := fs.Stat(s.assets, name)
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	// Small files that change with a release: the browser asks again.
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, s.assets, name)
}
