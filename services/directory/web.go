package directory

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/websession"
)

var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS
)

// The directory page (/directory/) is for community panels, VCS
// organisations and anyone else with a key: browse and search the
// directory; a VCS organisation sets its own services' capacity, a panel
// any service's, adds services and withdraws them; panels and
// commissioners see unmet need. It is server-rendered and needs no
// JavaScript. A key of any kind signs in; sign-in, sessions, CSRF and
// the layout are services/platform/websession's, as in every web app.
const webPath = "/directory/"

type web struct {
	s        *Service
	h        Routes
	sessions *websession.Sessions
}

func newWeb(ctx context.Context, s *Service, cfg Config) (*web, error) {
	pages, _ := fs.Sub(templateFS, "templates") // the embed patterns guarantee the folders
	static, _ := fs.Sub(staticFS, "static")
	ss, err := websession.Open(ctx, cfg.JS, websession.Config{App: "directory", Path: webPath, Title: "Linkway community directory",
		Cookie: "lw_directory_session", SignInCookie: "lw_directory_login",
		Intro: "Sign in with your organisation's Linkway key to browse the directory of community groups and services. " +
			"Community panels keep the directory; groups keep their own capacity up to date. " +
			"Anyone can find a group without a key on the public directory, " + publicPath + ".",
		Home: "Back to the directory", NotFound: "There is no such service in the directory.",
		Templates: pages, Assets: static, Stylesheet: "directory.css",
		Funcs: template.FuncMap{
			"categoryName": categoryName,
			"capacityLabel": func(c string) string {
				return map[string]string{events.CapacityOpen: "Open", events.CapacityWaitingList: "Waiting list",
					events.CapacityFull: "Full", events.CapacityPaused: "Paused"}[c]
			},
			"join":          strings.Join,
			"capacityWords": capacityWords,
		},
		Orgs: cfg.Orgs, Keys: cfg.HTTP, Replicas: cfg.Replicas, Log: s.log})
	if err != nil {
		return nil, err
	}
	return &web{s: s, h: cfg.HTTP, sessions: ss}, nil
}

func (wb *web) routes() {
	wb.sessions.Mount(wb.h)
	wb.h.HandlePublic("GET /directory/{$}", wb.sessions.Page(wb.servePage))
	wb.h.HandlePublic("GET /directory", http.RedirectHandler(webPath, http.StatusMovedPermanently))
	wb.h.HandlePublic("POST /directory/services/{id}/capacity", wb.form(wb.capacity))
	wb.h.HandlePublic("POST /directory/services/{id}/withdraw", wb.form(wb.withdraw))
	wb.h.HandlePublic("POST /directory/services", wb.form(wb.add))
	wb.h.HandlePublic("POST /directory/gaps", wb.form(wb.recordGap))
	wb.h.HandlePublic("POST /directory/gaps/{id}/services", wb.form(wb.linkGap))
	wb.h.HandlePublic("GET "+publicPath+"{$}", http.HandlerFunc(wb.servePublic))
}

// pageView is what the directory page shows.
type pageView struct {
	websession.Page
	Query      string
	Category   string
	Accepting  string
	Categories []events.NeedCategory
	Capacities []string
	Services   []serviceRow
	Panel      bool // may add and withdraw services, record and close gaps
	Unmet      *UnmetNeed
	Gaps       *GapList
	// Linkable are the services a gap may be linked to.
	Linkable []ServiceView
}

type serviceRow struct {
	ServiceView
	CanSetCapacity bool
}

func (wb *web) servePage(w http.ResponseWriter, r *http.Request, se websession.Session) error {
	wb.page(w, r, se, http.StatusOK, r.URL.Query().Get("done"), "")
	return nil
}

func (wb *web) page(w http.ResponseWriter, r *http.Request, se websession.Session, status int, flash, errMsg string) {
	q := r.URL.Query()
	v := pageView{Page: websession.Page{Title: "Directory", Flash: flashText(flash), Error: errMsg},
		Query: q.Get("q"), Category: q.Get("category"), Accepting: q.Get("accepting"),
		Categories: events.NeedCategories, Capacities: events.CapacityStatuses,
		Panel: se.Principal.Kind == events.KindPanel || se.Principal.Kind == events.KindAdmin}
	if v.Flash != "" {
		v.Done = flash // names what was done, for scripts and tests
	}
	query := Query{Text: v.Query}
	if validCategory(v.Category) {
		query.Category = v.Category
	}
	if v.Accepting == "true" || v.Accepting == "false" {
		a := v.Accepting == "true"
		query.Accepting = &a
	}
	for _, sv := range wb.s.Services(query) {
		row := serviceRow{ServiceView: sv, CanSetCapacity: v.Panel || (se.Principal.Kind == events.KindVCS && se.Principal.OrgID == sv.OrganisationID)}
		v.Services = append(v.Services, row)
	}
	if slices.Contains(unmetNeedReaders, se.Principal.Kind) {
		if u, err := wb.s.UnmetNeed(se.Principal); err == nil {
			v.Unmet = &u
		}
		if g, err := wb.s.Gaps(se.Principal, ""); err == nil {
			v.Gaps = &g
		}
		if v.Panel {
			v.Linkable = wb.s.Services(Query{})
		}
	}
	wb.sessions.Render(w, status, "directory.html", &v, &se)
}

// flashText turns the redirect's done= code into a message: the page
// never echoes what a URL says.
func flashText(code string) string {
	return map[string]string{
		"capacity": "Capacity saved.",
		"withdraw": "Service withdrawn.",
		"add":      "Service added.",
		"gap":      "Gap recorded.",
		"gap-link": "Service linked to the gap.",
	}[code]
}

// formFunc carries out one form post for a signed-in caller; it returns
// the done= code of the page to show next, or an error to show.
type formFunc func(r *http.Request, se websession.Session) (string, error)

// form serves a form through websession.Page (session, CSRF); a refusal
// shows the directory page again with the reason.
func (wb *web) form(f formFunc) http.Handler {
	return wb.sessions.Page(func(w http.ResponseWriter, r *http.Request, se websession.Session) error {
		done, err := f(r, se)
		if err != nil {
			pub := api.Public(err)
			msg := pub.Message
			if pub.Field != "" {
				msg = pub.Field + ": " + msg
			}
			if api.Status(pub.Code) >= 500 {
				wb.s.log.Error("directory form failed", "route", r.Pattern, "err", err)
			}
			wb.page(w, r, se, api.Status(pub.Code), "", msg)
			return nil
		}
		http.Redirect(w, r, webPath+"?done="+url.QueryEscape(done), http.StatusSeeOther)
		return nil
	})
}

func (wb *web) capacity(r *http.Request, se websession.Session) (string, error) {
	return "capacity", wb.s.SetCapacity(r.Context(), se.Principal, r.PathValue("id"), r.PostForm.Get("capacity"))
}

func (wb *web) mayEdit(se websession.Session) error {
	if se.Principal.Kind != events.KindPanel && se.Principal.Kind != events.KindAdmin {
		return &events.Error{Code: events.CodePermissionDenied, Message: "only a community panel or an admin may change the directory"}
	}
	return nil
}

func (wb *web) withdraw(r *http.Request, se websession.Session) (string, error) {
	if err := wb.mayEdit(se); err != nil {
		return "", err
	}
	v, ok := wb.s.ServiceView(r.PathValue("id"))
	if !ok {
		return "", events.ErrNotFound
	}
	_, err := wb.s.execute(r.Context(), se.Principal, v.OrganisationID, events.WithdrawService{ServiceID: v.ID, Reason: r.PostForm.Get("reason")})
	return "withdraw", err
}

func (wb *web) add(r *http.Request, se websession.Session) (string, error) {
	if err := wb.mayEdit(se); err != nil {
		return "", err
	}
	f := r.PostForm
	org := strings.TrimSpace(f.Get("organisation_id"))
	var areas []string
	for _, a := range strings.Split(f.Get("areas"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			areas = append(areas, a)
		}
	}
	svc := &directoryv1.Service{Id: serviceID(org, f.Get("name")), OrganisationId: org,
		Name: strings.TrimSpace(f.Get("name")), Description: strings.TrimSpace(f.Get("description")),
		Category: f.Get("category"), Areas: areas, AcceptsReferrals: f.Get("accepts_referrals") == "true",
		Capacity: f.Get("capacity"),
		Contact: &directoryv1.Contact{Email: strings.TrimSpace(f.Get("email")), Phone: strings.TrimSpace(f.Get("phone")),
			Website: strings.TrimSpace(f.Get("website"))}}
	if svc.Capacity == "" {
		svc.Capacity = events.CapacityOpen
	}
	_, err := wb.s.execute(r.Context(), se.Principal, org, events.AddService{Service: svc})
	return "add", err
}

func (wb *web) recordGap(r *http.Request, se websession.Session) (string, error) {
	if err := wb.mayEdit(se); err != nil {
		return "", err
	}
	f := r.PostForm
	_, _, err := wb.s.RecordGap(r.Context(), se.Principal, GapRequest{Need: f.Get("need"), Area: f.Get("area"), Detail: f.Get("detail")}, "")
	return "gap", err
}

func (wb *web) linkGap(r *http.Request, se websession.Session) (string, error) {
	if err := wb.mayEdit(se); err != nil {
		return "", err
	}
	_, _, err := wb.s.LinkGap(r.Context(), se.Principal, r.PathValue("id"), r.PostForm.Get("service_id"))
	return "gap-link", err
}
