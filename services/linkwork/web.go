package linkwork

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
	"linkway/services/platform/websession"
)

// The web page for link workers: server-rendered, no script, so it works
// in any browser a practice allows and on a small laptop. Sign-in takes the
// team's API key and gives an HttpOnly, SameSite=Strict session cookie;
// every form carries the session's CSRF token. Sign-in, sessions and the
// layout are services/platform/websession's, the same in every web app.

const webPath = "/linkwork/"

var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS
)

// openSessions opens the page's sessions; its sign-in and sign-out paths
// are older than the other apps' (signin, signout) and kept.
func openSessions(ctx context.Context, cfg Config) (*websession.Sessions, error) {
	pages, _ := fs.Sub(templateFS, "templates") // the embed patterns guarantee the folders
	static, _ := fs.Sub(staticFS, "static")
	return websession.Open(ctx, cfg.JS, websession.Config{App: "linkwork", Path: webPath, Title: "Linkway link workers",
		Cookie: "lw_linkwork", SignInCookie: "lw_linkwork_pre", SignInPath: webPath + "signin", SignOutPath: webPath + "signout",
		Kinds: []events.Kind{events.KindLinkwork}, ForWhom: "This page is for link-worker teams.",
		KeyLabel: "Your team's API key", Home: "Back to the caseload", NotFound: "There is no such journey in your team's caseload.",
		Templates: pages, Funcs: webFuncs, Assets: static, Stylesheet: "style.css",
		Orgs: cfg.Orgs, Keys: cfg.HTTP, Replicas: cfg.Replicas, Log: cfg.Log})
}

var webFuncs = template.FuncMap{
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
}

func (s *Service) webRoutes() {
	h := s.cfg.HTTP
	s.sessions.Mount(h) // sign-in, sign-out, /linkwork/static/
	h.HandlePublic("GET /linkwork/{$}", s.sessions.Page(s.webHome))
	h.HandlePublic("GET /linkwork/journeys/{id}", s.sessions.Page(s.webJourney))
	h.HandlePublic("POST /linkwork/journeys/{id}/{action}", s.sessions.Page(s.webAction))
}

// pageData is what the pages' bodies get.
type pageData struct {
	websession.Page
	// Caseload page.
	Caseload *Caseload
	Worker   string
	Status   string
	Statuses []string
	// NextPage links to the caseload's next page, if there is one.
	NextPage string
	// Journey page.
	Journey      *JourneyView
	Nonce        string
	CloseReasons []string
	Methods      []string
	Outcomes     []string
	Timepoints   []string
	Today        string
}

func (s *Service) webHome(w http.ResponseWriter, r *http.Request, sess websession.Session) error {
	d := pageData{Page: websession.Page{Title: "Caseload"}}
	q := r.URL.Query()
	d.Worker, d.Status, d.Statuses = q.Get("worker"), q.Get("status"), statusFilters
	cq, err := caseloadParams(r)
	var cl Caseload
	if err == nil {
		cl, err = readCaseload(s.view, sess.Principal.OrgID, cq, s.now())
	}
	if err == nil {
		err = s.auditCaseload(r.Context(), sess.Principal, r.Pattern, cl)
	}
	if err != nil {
		d.Error = api.Public(err).Message
		s.sessions.Render(w, api.Status(api.Public(err).Code), "caseload.html", &d, &sess)
		return nil
	}
	d.Caseload = &cl
	if cl.NextPageToken != "" {
		next := url.Values{"page_token": {cl.NextPageToken}}
		for _, k := range []string{"worker", "status", "page_size"} {
			if v := q.Get(k); v != "" {
				next.Set(k, v)
			}
		}
		d.NextPage = webPath + "?" + next.Encode()
	}
	s.sessions.Render(w, http.StatusOK, "caseload.html", &d, &sess)
	return nil
}

func (s *Service) webJourney(w http.ResponseWriter, r *http.Request, sess websession.Session) error {
	// Only known confirmations are shown, so a crafted link cannot put
	// words on the page.
	done := r.URL.Query().Get("done")
	if _, known := doneMessages[done]; !known {
		done = ""
	}
	return s.journeyPage(w, r, sess, http.StatusOK, done, "")
}

// journeyPage shows a journey; done names the action just carried out.
func (s *Service) journeyPage(w http.ResponseWriter, r *http.Request, sess websession.Session, status int, done, errMsg string) error {
	v, err := s.journey(sess.Principal, r.PathValue("id"))
	if err == nil {
		err = s.cfg.Audit.Journey(r.Context(), sess.Principal, r.Pattern, r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	d := pageData{Page: websession.Page{Title: "Journey", Flash: doneMessages[done], Done: done, Error: errMsg}, Journey: v}
	d.Nonce = websession.Token()
	d.CloseReasons, d.Methods, d.Outcomes, d.Timepoints = events.CloseReasons, ContactMethods, events.ContactOutcomes, events.FollowUpTimepoints
	d.Today = earlier(events.UKDate(s.now()), utcDay(s.now())).Format(time.DateOnly)
	s.sessions.Render(w, status, "journey.html", &d, &sess)
	return nil
}

// doneMessages confirm a web action after its redirect.
var doneMessages = map[string]string{"assign": "Link worker assigned.", "contact": "Contact recorded.",
	"close": "Journey closed.", "reopen": "Journey reopened.", "follow-up": "Follow-up scheduled.", "note": "Case note added."}

// webActions are the forms of the journey page and the commands they make.
var webActions = []string{"assign", "contact", "close", "reopen", "follow-up", "note"}

// webAction carries out a journey page's form (read and checked for its
// CSRF token by websession.Page).
func (s *Service) webAction(w http.ResponseWriter, r *http.Request, sess websession.Session) error {
	action := r.PathValue("action")
	if !slices.Contains(webActions, action) {
		return events.ErrNotFound
	}
	f := r.PostForm
	id := r.PathValue("id")
	var cmd events.Command
	var err error
	switch action {
	case "assign":
		cmd, err = assignCommand(assignBody{WorkerID: strings.TrimSpace(f.Get("worker_id")),
			WorkerName: strings.TrimSpace(f.Get("worker_name")), HandoverNote: f.Get("handover_note")})
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
		cmd, err = s.followUpCommand(sess.Principal, id, followUpBody{Due: f.Get("due"), Timepoint: f.Get("timepoint")})
	case "note":
		note := strings.TrimSpace(f.Get("text"))
		err, cmd = text("text", note, maxNote, true), events.AddCaseNote{NoteID: events.NewID(), Text: note}
	}
	if err == nil {
		// The form's nonce is the idempotency key: pressing the button twice
		// records one contact, not two.
		key := ""
		if n := f.Get("nonce"); n != "" && len(n) <= 100 {
			key = "web:" + n
		}
		var res journal.Result
		res, err = s.execute(r.Context(), sess.Principal, id, key, cmd)
		if err != nil && res.LastSeq > 0 {
			err = nil // recorded; the page shows it once the view has caught up
		}
	}
	if err != nil {
		pub := api.Public(err)
		if pub.Code == events.CodeNotFound || api.Status(pub.Code) >= 500 {
			return err
		}
		msg := pub.Message
		if pub.Field != "" {
			msg = strings.ReplaceAll(pub.Field, "_", " ") + ": " + msg
		}
		return s.journeyPage(w, r, sess, api.Status(pub.Code), "", msg)
	}
	http.Redirect(w, r, webPath+"journeys/"+url.PathEscape(id)+"?done="+url.QueryEscape(action), http.StatusSeeOther)
	return nil
}
