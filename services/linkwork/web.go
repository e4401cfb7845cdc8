package linkwork

import (
	"context"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform"
	"linkway/services/platform/api"
	"linkway/services/platform/websession"
)

// The web page for link workers: server-rendered, no script, so it works
// in any browser a practice allows and on a small laptop. Sign-in takes the
// team's API key and gives an HttpOnly, SameSite=Strict session cookie;
// every form carries the session's CSRF token. Sign-in and sessions are
// services/platform/websession's, the same in every web app.

const cookiePath = "/linkwork/"

func openSessions(ctx context.Context, d platform.Deps) (*websession.Sessions, error) {
	return websession.Open(ctx, d.JS, websession.Config{App: "linkwork", Path: cookiePath,
		Cookie: "lw_linkwork", SignInCookie: "lw_linkwork_pre", Kinds: []events.Kind{events.KindLinkwork},
		ForWhom: "This page is for link-worker teams.",
		Keys:    d.HTTP, Replicas: d.Replicas})
}

//go:embed templates/*.html templates/*.css
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"human": func(s any) string {
		var v string
		switch x := s.(type) {
		case string:
			v = x
		case events.Status:
			v = string(x)
		case events.OnwardStatus:
			v = string(x)
		}
		return strings.ReplaceAll(v, "_", " ")
	},
	"date": func(t any) string {
		switch x := t.(type) {
		case time.Time:
			if x.IsZero() {
				return ""
			}
			return x.UTC().Format("2 Jan 2006")
		case *time.Time:
			if x == nil {
				return ""
			}
			return x.UTC().Format("2 Jan 2006")
		}
		return ""
	},
	"datetime": func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04") },
	"num": func(p *float64) string {
		if p == nil {
			return "–"
		}
		return strconv.FormatFloat(*p, 'f', 2, 64)
	},
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
}).ParseFS(webFiles, "templates/*.html"))

func (s *Service) webRoutes() {
	h := s.d.HTTP
	h.HandlePublic("GET /linkwork/{$}", http.HandlerFunc(s.webHome))
	h.HandlePublic("GET /linkwork/style.css", http.HandlerFunc(webStyle))
	h.HandlePublic("POST /linkwork/signin", http.HandlerFunc(s.webSignIn))
	h.HandlePublic("POST /linkwork/signout", http.HandlerFunc(s.webSignOut))
	h.HandlePublic("GET /linkwork/journeys/{id}", http.HandlerFunc(s.webJourney))
	h.HandlePublic("POST /linkwork/journeys/{id}/{action}", http.HandlerFunc(s.webAction))
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func webStyle(w http.ResponseWriter, r *http.Request) {
	b, err := webFiles.ReadFile("templates/style.css")
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}

// pageData is what every page template gets.
type pageData struct {
	Title    string
	Team     string
	TeamName string
	CSRF     string
	Message  string
	Done     string // the action a confirmation is for
	Error    string
	SignedIn bool
	// Sign-in page.
	PreToken string
	// Caseload page.
	Caseload *Caseload
	Worker   string
	Status   string
	Statuses []string
	// Journey page.
	Journey      *JourneyView
	Nonce        string
	CloseReasons []string
	Methods      []string
	Outcomes     []string
	Today        string
}

func (s *Service) render(w http.ResponseWriter, status int, name string, d pageData) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		s.log.Error("render page", "page", name, "err", err)
	}
}

// signedIn returns the caller's session, or renders the sign-in page.
func (s *Service) signedIn(w http.ResponseWriter, r *http.Request) (websession.Session, bool) {
	sess, ok, err := s.sessions.Get(r)
	if err != nil {
		s.renderError(w, r, err)
		return websession.Session{}, false
	}
	if !ok {
		if r.Method == http.MethodGet && r.URL.Path == cookiePath {
			s.signInPage(w, r, http.StatusOK, "")
		} else {
			http.Redirect(w, r, cookiePath, http.StatusSeeOther)
		}
		return websession.Session{}, false
	}
	return sess, true
}

func (s *Service) base(sess websession.Session) pageData {
	d := pageData{Team: sess.Principal.OrgID, CSRF: sess.CSRF, SignedIn: true, Title: "Caseload"}
	if o, ok := s.d.Orgs.Get(sess.Principal.OrgID); ok {
		d.TeamName = o.Name
	}
	return d
}

func (s *Service) signInPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pre := s.sessions.SignInForm(w, r)
	s.render(w, status, "signin.html", pageData{Title: "Sign in", PreToken: pre, Error: msg})
}

func (s *Service) webHome(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	d := s.base(sess)
	q := r.URL.Query()
	d.Worker, d.Status, d.Statuses = q.Get("worker"), q.Get("status"), statusFilters
	cl, err := s.caseload(sess.Principal.OrgID, d.Worker, d.Status)
	if err == nil {
		err = s.auditCaseload(r.Context(), sess.Principal, r.Pattern, cl)
	}
	if err != nil {
		d.Error = api.Public(err).Message
		s.render(w, api.Status(api.Public(err).Code), "caseload.html", d)
		return
	}
	d.Caseload = &cl
	s.render(w, http.StatusOK, "caseload.html", d)
}

func (s *Service) webSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.signInPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	if key == "" {
		s.signInPage(w, r, http.StatusBadRequest, "Enter your team's API key.")
		return
	}
	sess, err := s.sessions.SignIn(w, r, key, r.PostForm.Get("pre"))
	if err != nil {
		status, msg := s.sessions.Refusal(err)
		if status >= 500 {
			s.log.Error("link-worker sign-in failed", "err", err)
		}
		s.signInPage(w, r, status, msg)
		return
	}
	s.log.Info("link-worker signed in", "org", sess.Principal.OrgID, "key_id", sess.Principal.KeyID)
	http.Redirect(w, r, cookiePath, http.StatusSeeOther)
}

func (s *Service) webSignOut(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if r.ParseForm() != nil || !sess.CheckCSRF(r.PostForm.Get("csrf")) {
		s.render(w, http.StatusForbidden, "error.html", pageData{Title: "Not allowed", Error: "The form had expired. Go back and try again."})
		return
	}
	if err := s.sessions.SignOut(w, r, sess); err != nil {
		s.renderError(w, r, err)
		return
	}
	http.Redirect(w, r, cookiePath, http.StatusSeeOther)
}

func (s *Service) webJourney(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	// Only known confirmations are shown, so a crafted link cannot put
	// words on the page.
	done := r.URL.Query().Get("done")
	if _, known := doneMessages[done]; !known {
		done = ""
	}
	s.journeyPage(w, r, sess, http.StatusOK, done, "")
}

// journeyPage shows a journey; done names the action just carried out.
func (s *Service) journeyPage(w http.ResponseWriter, r *http.Request, sess websession.Session, status int, done, errMsg string) {
	v, err := s.journey(r.Context(), sess.Principal, r.PathValue("id"))
	if err == nil {
		err = s.d.Audit.Journey(r.Context(), sess.Principal, r.Pattern, r.PathValue("id"))
	}
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	d := s.base(sess)
	d.Title, d.Journey, d.Message, d.Done, d.Error = "Journey", v, doneMessages[done], done, errMsg
	d.Nonce = websession.Token()
	d.CloseReasons, d.Methods, d.Outcomes = events.CloseReasons, ContactMethods, events.ContactOutcomes
	d.Today = dateOf(s.now()).Format(time.DateOnly)
	s.render(w, status, "journey.html", d)
}

func (s *Service) renderError(w http.ResponseWriter, r *http.Request, err error) {
	pub := api.Public(err)
	status := api.Status(pub.Code)
	if status >= 500 {
		s.log.Error("web request failed", "route", r.Pattern, "err", err)
	}
	msg := pub.Message
	if pub.Code == events.CodeNotFound {
		msg = "There is no such journey in your team's caseload."
	}
	s.render(w, status, "error.html", pageData{Title: "Problem", Error: msg, SignedIn: false})
}

// doneMessages confirm a web action after its redirect.
var doneMessages = map[string]string{"assign": "Link worker assigned.", "contact": "Contact recorded.",
	"close": "Journey closed.", "reopen": "Journey reopened.", "follow-up": "Follow-up scheduled."}

// webActions are the forms of the journey page and the commands they make.
var webActions = []string{"assign", "contact", "close", "reopen", "follow-up"}

func (s *Service) webAction(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.signedIn(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.journeyPage(w, r, sess, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	if !sess.CheckCSRF(r.PostForm.Get("csrf")) {
		s.render(w, http.StatusForbidden, "error.html", pageData{Title: "Not allowed", Error: "The form had expired. Go back and try again."})
		return
	}
	action := r.PathValue("action")
	if !slices.Contains(webActions, action) {
		s.renderError(w, r, events.ErrNotFound)
		return
	}
	f := r.PostForm
	var cmd events.Command
	var err error
	switch action {
	case "assign":
		b := assignBody{WorkerID: strings.TrimSpace(f.Get("worker_id")), WorkerName: strings.TrimSpace(f.Get("worker_name"))}
		err, cmd = validateAssign(b), events.Assign{WorkerID: b.WorkerID, WorkerName: b.WorkerName}
	case "contact":
		b := contactBody{Outcome: f.Get("outcome"), Method: f.Get("method")}
		err, cmd = validateContact(b), events.RecordContact{Outcome: b.Outcome, Method: b.Method}
	case "close":
		reason := f.Get("reason")
		if !slices.Contains(events.CloseReasons, reason) {
			err = events.Invalid("reason", "choose a reason for closing")
		}
		cmd = events.Close{Reason: reason}
	case "reopen":
		reason := strings.TrimSpace(f.Get("reason"))
		err, cmd = text("reason", reason, maxText, false), events.Reopen{Reason: reason}
	case "follow-up":
		due := f.Get("due")
		err, cmd = s.validateDue(due), events.ScheduleFollowUp{FollowUpID: events.NewID(), Due: due}
	}
	if err == nil {
		// The form's nonce is the idempotency key: pressing the button twice
		// records one contact, not two.
		key := ""
		if n := f.Get("nonce"); n != "" && len(n) <= 100 {
			key = "web:" + n
		}
		_, err = s.execute(r.Context(), sess.Principal, r.PathValue("id"), key, cmd)
	}
	if err != nil {
		pub := api.Public(err)
		if pub.Code == events.CodeNotFound || api.Status(pub.Code) >= 500 {
			s.renderError(w, r, err)
			return
		}
		msg := pub.Message
		if pub.Field != "" {
			msg = strings.ReplaceAll(pub.Field, "_", " ") + ": " + msg
		}
		s.journeyPage(w, r, sess, api.Status(pub.Code), "", msg)
		return
	}
	http.Redirect(w, r, cookiePath+"journeys/"+url.PathEscape(r.PathValue("id"))+"?done="+url.QueryEscape(action), http.StatusSeeOther)
}
