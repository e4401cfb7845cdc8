package outcomes

import (
	"embed"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/websession"
)

//go:embed templates/*.html
var templateFS embed.FS

// The dashboard signs a commissioner in with their organisation key once,
// then holds a session (services/platform/websession, as every web app): an
// HttpOnly, SameSite=Strict signed cookie naming a session kept in NATS.
// Forms that change anything (sign-in, sign-out) carry a CSRF token.
const webPath = "/commissioner/"

type web struct {
	s        *Service
	tmpl     *template.Template
	sessions *websession.Sessions
}

func newWeb(s *Service) (*web, error) {
	t, err := template.New("").Funcs(template.FuncMap{"chart": barChart}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	ss, err := websession.Open(s.ctx, s.cfg.JS, websession.Config{App: "commissioner", Path: webPath,
		Cookie: "lw_commissioner_session", SignInCookie: "lw_commissioner_login",
		Kinds: []events.Kind{events.KindCommissioner}, ForWhom: "This dashboard is for commissioners.", Keys: s.cfg.HTTP, Replicas: s.cfg.Replicas, Log: s.cfg.Log})
	if err != nil {
		return nil, err
	}
	return &web{s: s, tmpl: t, sessions: ss}, nil
}

func (wb *web) routes(srv Routes) {
	srv.HandlePublic("GET /commissioner/{$}", http.HandlerFunc(wb.serveDashboard))
	srv.HandlePublic("POST /commissioner/sign-in", wb.sessions.SignInHandler(wb.showSignIn))
	srv.HandlePublic("POST /commissioner/sign-out", wb.sessions.SignOutHandler())
	srv.HandlePublic("GET /commissioner/summary.csv", http.HandlerFunc(wb.serveCSV))
	srv.HandlePublic("GET /commissioner", http.RedirectHandler(webPath, http.StatusMovedPermanently))
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	// Nothing is fetched from anywhere: charts are inline SVG, styles inline.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (wb *web) render(w http.ResponseWriter, status int, name string, data any) {
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := wb.tmpl.ExecuteTemplate(w, name, data); err != nil {
		wb.s.cfg.Log.Error("render page", "page", name, "err", err)
	}
}

type signInPage struct {
	CSRF  string
	Error string
}

func (wb *web) showSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	t := wb.sessions.SignInForm(w, r)
	wb.render(w, status, "signin.html", signInPage{CSRF: t, Error: msg})
}

func (wb *web) serveCSV(w http.ResponseWriter, r *http.Request) {
	se, ok, err := wb.sessions.Current(w, r)
	if err != nil {
		return
	}
	if !ok {
		http.Redirect(w, r, webPath, http.StatusSeeOther)
		return
	}
	q, err := parseQuery(r.URL.Query().Get)
	if err != nil {
		http.Error(w, api.Public(err).Message, api.Status(events.ErrorCode(err)))
		return
	}
	if err := wb.s.caughtUp(r.Context()); err != nil {
		http.Error(w, "the outcomes view is catching up; retry", http.StatusServiceUnavailable)
		return
	}
	writeCSVResponse(w, wb.s.Summary(se.Principal.OrgID, q))
}

// dashboard is what the dashboard page shows.
type dashboard struct {
	Org        string
	CSRF       string
	From, To   string
	Error      string
	Months     []Row
	Funnel     []bar
	Wellbeing  []bar
	Unmet      []bar // declined onward referrals by need category
	Reasons    []bar // ... and by the service's reason
	Deciles    []Row
	MonthBars  []bar
	DecileBars []bar
	UnmetBars  []bar // declined onward referrals by decile
	Declines   []string
	Total      Row
	Note       string
}

func (wb *web) serveDashboard(w http.ResponseWriter, r *http.Request) {
	se, ok, err := wb.sessions.Current(w, r)
	if err != nil {
		return
	}
	if !ok {
		wb.showSignIn(w, r, http.StatusOK, "")
		return
	}
	get := r.URL.Query().Get
	d := dashboard{Org: se.Principal.OrgID, CSRF: se.CSRF, From: get("from"), To: get("to"), Note: suppressionNote}
	if o, ok := wb.s.cfg.Orgs.Get(se.Principal.OrgID); ok {
		d.Org = o.Name + " (" + o.ID + ")"
	}
	q, err := parseQuery(func(k string) string {
		if k == "by" {
			return "month"
		}
		return get(k)
	})
	if err != nil {
		d.Error = api.Public(err).Message + " (" + api.Public(err).Field + ")"
		wb.render(w, http.StatusBadRequest, "dashboard.html", d)
		return
	}
	if err := wb.s.caughtUp(r.Context()); err != nil {
		d.Error = "The figures are catching up with the log; they may be a moment old."
	}
	org := se.Principal.OrgID
	teams := wb.s.teams(org)
	months := wb.s.model.summarise(org, teams, q)
	q.By = "deprivation_decile"
	deciles := wb.s.model.summarise(org, teams, q)
	d.Months, d.Deciles, d.Total = months.Groups, deciles.Groups, months.Total
	for _, g := range months.Groups {
		d.MonthBars = append(d.MonthBars, bar{Label: g.Group, Value: g.Referrals})
	}
	for _, g := range deciles.Groups {
		d.DecileBars = append(d.DecileBars, bar{Label: g.Group, Value: g.Referrals})
		d.UnmetBars = append(d.UnmetBars, bar{Label: g.Group, Value: g.Onward.Declined})
	}
	d.Declines = events.DeclineReasons
	t := months.Total
	d.Funnel = []bar{{"referred", t.Referrals}, {"contacted", t.Contacted}, {"connected", t.Connected}, {"attended", t.AttendedPeople}}
	for _, reason := range events.DeclineReasons {
		d.Reasons = append(d.Reasons, bar{Label: reason, Value: t.Onward.DeclinedByReason[reason]})
	}
	for _, n := range needColumns {
		d.Unmet = append(d.Unmet, bar{Label: n, Value: t.Onward.DeclinedByNeed[n]})
	}
	d.Wellbeing = wb.s.model.changeDistribution(teams, q, "SWEMWBS")
	wb.render(w, http.StatusOK, "dashboard.html", d)
}

// changeBands are the bins of the wellbeing change distribution.
var changeBands = []struct {
	label string
	below float64 // upper bound, exclusive
}{{"worse by 3+", -3 + 1e-9}, {"worse by <3", -1e-9}, {"no change", 1e-9}, {"better by <3", 3 - 1e-9}, {"better by 3+", math.Inf(1)}}

// changeDistribution bins the baseline-to-follow-up changes of a measure.
func (m *model) changeDistribution(teams []string, q Query, measure string) []bar {
	counts := make([]int, len(changeBands))
	var end time.Time
	if !q.To.IsZero() {
		end = q.To.AddDate(0, 0, 1)
	}
	mi := slices.Index(Measures[:], measure)
	m.mu.RLock()
	for _, team := range teams {
		for _, j := range m.byTeam[team] {
			if (!q.From.IsZero() && j.referred.Before(q.From)) || (!end.IsZero() && !j.referred.Before(end)) {
				continue
			}
			c, ok := j.change(mi)
			if !ok {
				continue
			}
			for i, band := range changeBands {
				if c < band.below {
					counts[i]++
					break
				}
			}
		}
	}
	m.mu.RUnlock()
	out := make([]bar, len(changeBands))
	for i, band := range changeBands {
		out[i] = bar{Label: band.label, Value: Count{counts[i]}}
	}
	return out
}

// bar is one bar of a chart: a published (suppressed, rounded) count.
type bar struct {
	Label string
	Value Count
}

// svgBar is a bar laid out for drawing.
type svgBar struct {
	X, Y, W, H, LabelX, TextY float64
	Label, Text               string
	Suppressed                bool
}

type svgChart struct {
	Title         string
	Width, Height float64
	Base, LabelY  float64
	// Slant turns long labels, so they do not run into each other.
	Slant bool
	Bars  []svgBar
}

var chartTmpl = template.Must(template.New("chart").Parse(`<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{{.Title}}" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">` +
	`<title>{{.Title}}</title>` +
	`<text x="4" y="14" font-size="12" fill="#425563">{{.Title}}</text>` +
	`<line x1="0" y1="{{.Base}}" x2="{{.Width}}" y2="{{.Base}}" stroke="#425563"/>` +
	`{{range .Bars}}{{if .Suppressed}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="none" stroke="#768692" stroke-dasharray="3 3"/>` +
	`{{else}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#005eb8"/>{{end}}` +
	`<text x="{{.LabelX}}" y="{{.TextY}}" font-size="11" text-anchor="middle" fill="#212b32">{{.Text}}</text>` +
	`{{if $.Slant}}<text x="{{.LabelX}}" y="{{$.LabelY}}" font-size="10" text-anchor="end" fill="#425563" transform="rotate(-35 {{.LabelX}} {{$.LabelY}})">{{.Label}}</text>` +
	`{{else}}<text x="{{.LabelX}}" y="{{$.LabelY}}" font-size="10" text-anchor="middle" fill="#425563">{{.Label}}</text>{{end}}{{end}}</svg>`))

// barChart draws bars as an inline SVG. Suppressed counts are drawn as a
// dashed outline marked "*", never as a value.
func barChart(title string, bars []bar) (template.HTML, error) {
	const barW, gap, plotH, top = 56.0, 14.0, 160.0, 34.0
	c := svgChart{Title: title}
	bottom, left, longest := 22.0, 0.0, 0
	for _, b := range bars {
		longest = max(longest, len(b.Label))
	}
	if longest > 9 {
		// About 6 px a character at font size 10, slanted at 35 degrees.
		c.Slant, bottom, left = true, 24+3.6*float64(longest), 4.9*float64(longest)-barW/2
	}
	c.Width = max(left+float64(len(bars))*(barW+gap)+gap, 320)
	c.Height = top + plotH + bottom
	c.Base = top + plotH
	c.LabelY = c.Base + 14
	maxV := 1
	for _, b := range bars {
		if !b.Value.Suppressed() {
			maxV = max(maxV, b.Value.Rounded())
		}
	}
	for i, b := range bars {
		x := left + gap + float64(i)*(barW+gap)
		sb := svgBar{X: x, W: barW, LabelX: x + barW/2, Label: b.Label, Text: b.Value.String(), Suppressed: b.Value.Suppressed()}
		if sb.Suppressed {
			sb.H = plotH * 0.05
		} else {
			sb.H = plotH * float64(b.Value.Rounded()) / float64(maxV)
		}
		sb.Y = c.Base - sb.H
		sb.TextY = sb.Y - 4
		c.Bars = append(c.Bars, sb)
	}
	var buf strings.Builder
	if err := chartTmpl.Execute(&buf, c); err != nil {
		return "", err
	}
	return template.HTML(buf.String()), nil // produced by html/template: escaped
}
