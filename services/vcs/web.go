package vcs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London wherever the server runs

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/ctxwait"
	"linkway/services/platform/viewstore"
	"linkway/services/platform/websession"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Limits of the web inbox.
const (
	sseKeepAlive   = 20 * time.Second
	sseWriteWindow = time.Minute
	webPath        = "/vcs/"
)

// web is the server-rendered inbox at /vcs/. Sign-in, sessions, CSRF and
// the layout are services/platform/websession's, as in every web app.
type web struct {
	s        *Service
	sessions *websession.Sessions
}

func newWeb(s *Service) (*web, error) {
	funcs := template.FuncMap{
		"personName":    func(p Person) string { return cmp.Or(p.Name(), "Name not shared") },
		"statusLabel":   statusLabel,
		"reasonLabel":   reasonLabel,
		"capacityLabel": capacityLabel,
		"needLabel":     needLabel,
		"ratingLabel":   ratingLabel,
		"when":          func(t time.Time) string { return t.In(london).Format("2 Jan 2006 15:04") },
		"duration":      humanDuration,
	}
	pages, _ := fs.Sub(templateFS, "templates") // the embed patterns guarantee the folders
	static, _ := fs.Sub(staticFS, "static")
	ss, err := websession.Open(s.ctx, s.cfg.JS, websession.Config{App: "vcs", Path: webPath, Title: "Linkway referrals",
		Cookie: "lw_vcs_session", SignInCookie: "lw_vcs_signin", Kinds: []events.Kind{events.KindVCS},
		ForWhom: "This page is for VCS organisations.",
		Intro:   "Sign in with your organisation's Linkway key to see the people referred to you.",
		Home:    "Back to all referrals", NotFound: "There is no such referral in your inbox.",
		Templates: pages, Funcs: funcs, Assets: static, Stylesheet: "inbox.css", Script: "inbox.js",
		Orgs: s.cfg.Orgs, OnSignIn: func(result string) { s.metrics.signIns.WithLabelValues(result).Inc() },
		Keys: s.cfg.HTTP, Replicas: s.cfg.Replicas, Now: s.now, Log: s.log})
	if err != nil {
		return nil, fmt.Errorf("vcs web inbox: %w", err)
	}
	return &web{s: s, sessions: ss}, nil
}

// london is the zone times are shown in: the service is for England, and
// a volunteer reads "sent 14:05" as their own clock time. The zone data is
// built in (time/tzdata), so a server without it shows the same.
var london = func() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return loc
}()

func (w *web) routes(srv websession.Router) {
	w.sessions.Mount(srv) // sign-in, sign-out, /vcs/static/
	srv.HandlePublic("GET /vcs/{$}", w.sessions.Page(w.inbox))
	srv.HandlePublic("GET /vcs", http.RedirectHandler("/vcs/", http.StatusMovedPermanently))
	srv.HandlePublic("GET /vcs/referrals/{id}", w.sessions.Page(w.referral))
	srv.HandlePublic("POST /vcs/referrals/{id}/{action}", w.sessions.Page(w.act))
	srv.HandlePublic("POST /vcs/capacity", w.sessions.Page(w.capacity))
	srv.HandlePublic("GET /vcs/events", http.HandlerFunc(w.events))
}

// view is what the inbox's page bodies get.
type view struct {
	websession.Page
	List       listView
	Services   []events.ServiceFacts
	Capacities []string
	Item       Item
	Reasons    []string
	Ratings    []int
	Today      string
	// FormID names one rendering of a referral's forms: sent back as the
	// idempotency key, so a double-clicked or re-sent form acts once.
	FormID string
}

// webPageSize is how many referrals a section of the web page shows at
// once: a phone's screenful or two.
const webPageSize = 20

// listView is the organisation's inbox as the page shows it: each section
// a page of its own (the first, on the inbox page), or one section paged
// on its own (Section set).
type listView struct {
	Section  string
	Sections []sectionView
	// NewCount is how many referrals wait for an answer: the live list
	// announces arrivals by it.
	NewCount int
}

// sectionView is one page of one section.
type sectionView struct {
	Name, Title, Empty string
	Count              int
	Items              []Item
	// More links to the section's next page; MoreLabel says what it is.
	More, MoreLabel string
}

var sectionTitles = map[string][2]string{
	sectionNew:  {"New referrals", "No new referrals."},
	sectionOpen: {"Taken on", "Nobody yet."},
	sectionDone: {"Finished or declined", "None."},
}

// listView reads the page's sections, each a paged prefix scan of the
// view, with the journeys they show (for the read audit, by whoever shows
// it). section names one section to page through on its own ("" for the
// inbox page: the first page of each).
func (w *web) listView(orgID, section string, size int, token string) (listView, []string, error) {
	lv := listView{Section: section}
	var journeys []string
	for _, name := range sections {
		if section != "" && name != section {
			continue
		}
		tok := ""
		if name == section {
			tok = token
		}
		recs, next, err := w.s.page(orgID, sectionListPrefix(orgID, name), size, tok)
		if err != nil {
			return listView{}, nil, err
		}
		n, err := readCount(w.s.view.Get(countPrefix + orgID + "." + name))
		if err != nil {
			return listView{}, nil, viewError(err)
		}
		sv := sectionView{Name: name, Title: sectionTitles[name][0], Empty: sectionTitles[name][1], Count: n}
		now := w.s.now()
		for _, rec := range recs {
			sv.Items = append(sv.Items, rec.item(now))
		}
		if next != "" {
			q := url.Values{"section": {name}, "page_token": {next}}
			if size != webPageSize {
				q.Set("page_size", strconv.Itoa(size))
			}
			sv.More = webPath + "?" + q.Encode()
			sv.MoreLabel = "Next page"
			if section == "" {
				sv.MoreLabel = "Show more: " + strings.ToLower(sv.Title)
			}
		}
		if name == sectionNew {
			lv.NewCount = n
		}
		lv.Sections = append(lv.Sections, sv)
		journeys = append(journeys, journeysOf(recs)...)
	}
	return lv, journeys, nil
}

// webListQuery reads the web page's paging: a section to page through, a
// page size (the default for none or nonsense: a page is forgiving) and
// the token of the page to show.
func webListQuery(r *http.Request) (section string, size int, token string, err error) {
	q := r.URL.Query()
	section, token = q.Get("section"), q.Get("page_token")
	if section != "" && !slices.Contains(sections, section) {
		return "", 0, "", events.ErrNotFound
	}
	if token != "" && section == "" {
		return "", 0, "", events.Invalid("page_token", "a page token belongs to one section")
	}
	return section, webSize(q.Get("page_size")), token, nil
}

// webSize is a page size asked of the web page: the default for none or
// nonsense (a page is forgiving), at most viewstore.MaxPageSize.
func webSize(v string) int {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return viewstore.PageSize(n)
	}
	return webPageSize
}

func (w *web) inbox(rw http.ResponseWriter, r *http.Request, se websession.Session) error {
	section, size, token, err := webListQuery(r)
	if err != nil {
		return err
	}
	lv, journeys, err := w.listView(se.Principal.OrgID, section, size, token)
	if err != nil {
		return err
	}
	if err := w.s.cfg.Audit.List(r.Context(), se.Principal, r.Pattern, journeys); err != nil {
		return err
	}
	done := r.URL.Query().Get("done")
	v := view{Page: websession.Page{Title: "Referrals", Flash: flash(done), Done: doneName(done)}, List: lv, Capacities: events.CapacityStatuses}
	if dir := w.s.cfg.Directory; dir != nil && section == "" {
		svcs, err := dir.ServicesOf(r.Context(), se.Principal.OrgID)
		if err != nil {
			w.s.log.Warn("directory unavailable for the web inbox", "err", err)
			v.Error = "Your services' capacity cannot be shown just now."
		}
		v.Services = svcs
	}
	w.sessions.Render(rw, http.StatusOK, "inbox.html", &v, &se)
	return nil
}

func (w *web) referral(rw http.ResponseWriter, r *http.Request, se websession.Session) error {
	return w.showReferral(rw, r, se, http.StatusOK, r.URL.Query().Get("done"), "")
}

// showReferral shows a referral; done names what was just done to it.
func (w *web) showReferral(rw http.ResponseWriter, r *http.Request, se websession.Session, status int, done, errMsg string) error {
	rec, err := w.s.lookup(se.Principal.OrgID, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := w.s.cfg.Audit.Journey(r.Context(), se.Principal, r.Pattern, rec.JourneyID); err != nil {
		return err
	}
	it := rec.item(w.s.now())
	v := view{Page: websession.Page{Title: cmp.Or(it.Person.Name(), "Referral"), Flash: flash(done), Done: doneName(done), Error: errMsg},
		Item: it, Reasons: events.DeclineReasons, Ratings: []int{5, 4, 3, 2, 1}, Today: w.s.now().In(london).Format(time.DateOnly), FormID: websession.Token()}
	w.sessions.Render(rw, status, "referral.html", &v, &se)
	return nil
}

// act carries out a form's action with the same code as the JSON API.
func (w *web) act(rw http.ResponseWriter, r *http.Request, se websession.Session) error {
	name := r.PathValue("action")
	if name == "feedback" {
		return w.feedback(rw, r, se)
	}
	i := slices.IndexFunc(actions, func(a action) bool { return a.path == name })
	if i < 0 {
		return events.ErrNotFound
	}
	a := actions[i]
	f := r.PostForm
	body := map[string]any{}
	switch a.path {
	case "decline":
		body["reason"], body["detail"] = f.Get("reason"), strings.TrimSpace(f.Get("detail"))
	case "attendance":
		body["date"] = f.Get("date")
		if v := f.Get("attended"); v != "" {
			body["attended"] = v == "yes"
		}
	case "dropped-out":
		body["detail"] = strings.TrimSpace(f.Get("detail"))
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	// The form's id is the idempotency key: a double-clicked button, or a
	// form sent again from the browser's history, replays the first answer.
	var key string
	if f := f.Get("form_id"); f != "" && len(f) <= 64 {
		key = "web-" + f
	}
	if _, _, err := w.s.act(r.Context(), se.Principal, id, a, raw, key, "web"); err != nil {
		pub := api.Public(err)
		if pub.Code == events.CodeInvalid || pub.Code == events.CodeFailedPrecondition {
			return w.showReferral(rw, r, se, api.Status(pub.Code), "", formMessage(pub))
		}
		return err
	}
	http.Redirect(rw, r, "/vcs/referrals/"+id+"?done="+a.name, http.StatusSeeOther)
	return nil
}

// feedback records the person's or carer's feedback from the referral's
// page with the same code as the JSON API.
func (w *web) feedback(rw http.ResponseWriter, r *http.Request, se websession.Session) error {
	f := r.PostForm
	body := map[string]any{"comment": f.Get("comment"), "share_comment": f.Get("share_comment") == "yes"}
	if v := f.Get("from"); v != "" {
		body["from"] = v
	}
	if v := f.Get("rating"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return w.showReferral(rw, r, se, http.StatusBadRequest, "", formMessage(events.Invalid("rating", "is not a number")))
		}
		body["rating"] = n
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var key string
	if id := f.Get("form_id"); id != "" && len(id) <= 64 {
		key = "web-" + id
	}
	id := r.PathValue("id")
	if _, _, err := w.s.feedback(r.Context(), se.Principal, id, raw, key, "web"); err != nil {
		pub := api.Public(err)
		if pub.Code == events.CodeInvalid || pub.Code == events.CodeFailedPrecondition {
			return w.showReferral(rw, r, se, api.Status(pub.Code), "", formMessage(pub))
		}
		return err
	}
	http.Redirect(rw, r, "/vcs/referrals/"+id+"?done=feedback", http.StatusSeeOther)
	return nil
}

func (w *web) capacity(rw http.ResponseWriter, r *http.Request, se websession.Session) error {
	dir := w.s.cfg.Directory
	if dir == nil {
		return &events.Error{Code: events.CodeUnavailable, Message: "the directory is not available"}
	}
	id, capacity := r.PostForm.Get("service_id"), r.PostForm.Get("capacity")
	if !slices.Contains(events.CapacityStatuses, capacity) {
		return events.Invalid("capacity", "must be one of %v", events.CapacityStatuses)
	}
	svcs, err := dir.ServicesOf(r.Context(), se.Principal.OrgID)
	if err != nil {
		return fmt.Errorf("services of %s: %w", se.Principal.OrgID, err)
	}
	if !slices.ContainsFunc(svcs, func(f events.ServiceFacts) bool { return f.ID == id }) {
		return events.ErrNotFound // not this organisation's service
	}
	if err := dir.SetCapacity(r.Context(), se.Principal, id, capacity); err != nil {
		return err
	}
	http.Redirect(rw, r, "/vcs/?done=capacity", http.StatusSeeOther)
	return nil
}

// events streams the organisation's list, rendered by the server, whenever
// the organisation's items change: on connect, then after every commit of
// the inbox view that changed them (the view's per-organisation change
// mark says so; other organisations' changes send nothing).
func (w *web) events(rw http.ResponseWriter, r *http.Request) {
	w.sessions.SecurityHeaders(rw)
	se, ok, err := w.sessions.Get(r)
	if err != nil {
		http.Error(rw, "sessions unavailable", http.StatusServiceUnavailable)
		return
	}
	if !ok {
		http.Error(rw, "sign in first", http.StatusUnauthorized)
		return
	}
	rc := http.NewResponseController(rw)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	w.s.metrics.sseClients.Inc()
	defer w.s.metrics.sseClients.Dec()
	ctx := r.Context()
	org := se.Principal.OrgID
	size := webSize(r.URL.Query().Get("page_size"))
	var last [32]byte
	mark, seen := "", false
	for {
		cp, err := w.s.view.Checkpoint()
		if err != nil {
			return // the store is closing
		}
		now, _, err := w.s.view.Get(changedPrefix + org)
		if err != nil {
			return
		}
		if !seen || string(now) != mark {
			seen, mark = true, string(now)
			if _, live, err := w.sessions.Get(r); !live || err != nil {
				_ = w.send(rc, rw, "event: signed-out\ndata: {}\n\n")
				return
			}
			frag, journeys, err := w.fragment(org, size)
			if err != nil {
				w.s.log.Error("web inbox stream failed", "err", err)
				return
			}
			if sum := sha256.Sum256(frag); sum != last {
				last = sum
				// Each list sent is a read of the people on it.
				if err := w.s.cfg.Audit.List(ctx, se.Principal, r.Pattern, journeys); err != nil {
					w.s.log.Warn("web inbox stream stopped: reads cannot be audited", "err", err)
					return
				}
				if w.send(rc, rw, sseData("inbox", frag)) != nil {
					return
				}
			}
		}
		// The next commit of the view, or a keep-alive.
		wait, cancel := context.WithTimeout(ctx, sseKeepAlive)
		err = w.s.cfg.Views.WaitFor(wait, cp+1, InboxProjection)
		cancel()
		switch {
		case ctx.Err() != nil || w.s.ctx.Err() != nil:
			return
		case err == nil:
			continue
		case !errors.Is(err, context.DeadlineExceeded):
			// No reader (a tool's process): nothing will change.
			if !ctxwait.Sleep(ctx, sseKeepAlive) {
				return
			}
		}
		if _, live, err := w.sessions.Get(r); !live || err != nil {
			_ = w.send(rc, rw, "event: signed-out\ndata: {}\n\n")
			return
		}
		if w.send(rc, rw, ": keep-alive\n\n") != nil {
			return
		}
	}
}

func (w *web) send(rc *http.ResponseController, rw http.ResponseWriter, msg string) error {
	// The hub's server has a write timeout for ordinary requests; a stream
	// extends its own deadline as long as it is being read.
	_ = rc.SetWriteDeadline(time.Now().Add(sseWriteWindow))
	if _, err := rw.Write([]byte(msg)); err != nil {
		return err
	}
	return rc.Flush()
}

// fragment renders the list for a live update, with its journeys.
func (w *web) fragment(orgID string, size int) ([]byte, []string, error) {
	lv, journeys, err := w.listView(orgID, "", size, "")
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := w.sessions.Fragment(&buf, "list", lv); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), journeys, nil
}

// sseData frames a multi-line payload as one server-sent event.
func sseData(event string, data []byte) string {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for line := range strings.SplitSeq(string(data), "\n") {
		b.WriteString("data: " + strings.TrimRight(line, "\r") + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// doneName is done if it is a known action's (shown as data-done), so a
// crafted link cannot put words on the page.
func doneName(done string) string {
	if flash(done) == "" {
		return ""
	}
	return done
}

func flash(done string) string {
	switch done {
	case "accept":
		return "Accepted. The link worker and the GP practice can see it."
	case "decline":
		return "Declined. Thank you for saying why: it helps plan for unmet need."
	case "attendance":
		return "Attendance recorded."
	case "complete":
		return "Marked as finished."
	case "dropped_out":
		return "Recorded that they stopped coming."
	case "capacity":
		return "Capacity updated. Link workers will see it in the directory."
	case "feedback":
		return "Feedback recorded. Thank you: it helps shape what is on offer."
	}
	return ""
}

// formMessage turns a refusal into words for the page.
func formMessage(e *events.Error) string {
	switch e.Field {
	case "reason":
		return "Choose a reason for declining."
	case "date":
		return "Enter the date of the session (it cannot be in the future)."
	case "attended":
		return "Say whether they came."
	case "detail":
		return "The detail is too long: keep it under " + strconv.Itoa(maxDetail) + " characters."
	case "from":
		return "Say whether the feedback is from the person or their carer."
	case "rating":
		return "Choose a rating from 1 to 5."
	case "comment":
		return "The comment is too long: keep it under " + strconv.Itoa(maxDetail) + " characters."
	case "share_comment":
		return "There is no comment to share: write one, or leave the box unticked."
	}
	if e.Code == events.CodeFailedPrecondition {
		return "That cannot be done now: " + strings.TrimPrefix(e.Message, "cannot ") + "."
	}
	return e.Message
}

func statusLabel(s string) string {
	switch events.OnwardStatus(s) {
	case events.OnwardSent:
		return "New"
	case events.OnwardAccepted:
		return "Accepted"
	case events.OnwardAttending:
		return "Attending"
	case events.OnwardDeclined:
		return "Declined"
	case events.OnwardWithdrawn:
		return "Withdrawn by the link worker"
	case events.OnwardCompleted:
		return "Finished"
	case events.OnwardDroppedOut:
		return "Stopped coming"
	}
	return s
}

func reasonLabel(s string) string {
	switch s {
	case "no_capacity":
		return "We have no space"
	case "not_eligible":
		return "Not eligible for this service"
	case "person_declined":
		return "The person said no"
	case "uncontactable":
		return "We could not reach them"
	case "other":
		return "Another reason"
	}
	return s
}

// ratingLabel words a rating (5 best) as a volunteer would ask it.
func ratingLabel(n int) string {
	switch n {
	case 5:
		return "5: very good"
	case 4:
		return "4: good"
	case 3:
		return "3: all right"
	case 2:
		return "2: not good"
	case 1:
		return "1: poor"
	}
	return strconv.Itoa(n)
}

func capacityLabel(s string) string {
	switch s {
	case "open":
		return "Open"
	case "waiting_list":
		return "Waiting list"
	case "full":
		return "Full"
	case "paused":
		return "Paused"
	}
	return s
}

func humanDuration(seconds int64) string {
	d := time.Duration(seconds) * time.Second
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return plural(int64(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int64(d/time.Hour), "hour")
	}
	return plural(int64(d/(24*time.Hour)), "day")
}
