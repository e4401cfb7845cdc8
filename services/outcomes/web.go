package outcomes

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/websession"
)

var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS
)

// The dashboard signs a commissioner in with their organisation key once,
// then holds a session: sign-in, sessions, CSRF and the layout are
// services/platform/websession's, as in every web app. It needs nothing
// from elsewhere and no script: the charts are inline SVG.
const webPath = "/commissioner/"

type web struct {
	s        *Service
	sessions *websession.Sessions
}

func newWeb(s *Service) (*web, error) {
	pages, _ := fs.Sub(templateFS, "templates") // the embed patterns guarantee the folders
	static, _ := fs.Sub(staticFS, "static")
	ss, err := websession.Open(s.ctx, s.cfg.JS, websession.Config{App: "commissioner", Path: webPath,
		Title: "Linkway outcomes for commissioners", Cookie: "lw_commissioner_session", SignInCookie: "lw_commissioner_login",
		Kinds: []events.Kind{events.KindCommissioner}, ForWhom: "This dashboard is for commissioners.",
		KeyLabel:  "Your organisation's commissioner key",
		Intro:     "The figures here are pseudonymised and small numbers are suppressed: no one person can be picked out.",
		Home:      "Back to the dashboard",
		Templates: pages, Funcs: template.FuncMap{"chart": barChart, "ethnicName": ethnicName}, Assets: static, Stylesheet: "dashboard.css",
		Orgs: s.cfg.Orgs, Keys: s.cfg.HTTP, Replicas: s.cfg.Replicas, Log: s.cfg.Log})
	if err != nil {
		return nil, err
	}
	return &web{s: s, sessions: ss}, nil
}

func (wb *web) routes(srv Routes) {
	wb.sessions.Mount(srv) // sign-in, sign-out, /commissioner/static/
	srv.HandlePublic("GET /commissioner/{$}", wb.sessions.Page(wb.serveDashboard))
	srv.HandlePublic("GET /commissioner/summary.csv", wb.sessions.Page(wb.serveCSV))
	srv.HandlePublic("GET /commissioner", http.RedirectHandler(webPath, http.StatusMovedPermanently))
}

func (wb *web) serveCSV(w http.ResponseWriter, r *http.Request, se websession.Session) error {
	q, err := parseQuery(r.URL.Query().Get)
	if err != nil {
		http.Error(w, api.Public(err).Message, api.Status(events.ErrorCode(err)))
		return nil
	}
	if _, err := wb.s.caughtUp(r.Context()); err != nil {
		http.Error(w, "the outcomes view is catching up; retry", http.StatusServiceUnavailable)
		return nil
	}
	sum, err := wb.s.Summary(r.Context(), se.Principal.OrgID, q)
	if err != nil {
		return err
	}
	writeCSVResponse(w, sum)
	return nil
}

// dashboard is what the dashboard page shows.
type dashboard struct {
	websession.Page
	From, To   string
	Months     []Row
	Funnel     []bar
	Connection []bar // connected, signposted only, neither
	Wellbeing  []bar
	Unmet      []bar // declined onward referrals by need category
	Reasons    []bar // ... and by the service's reason
	Deciles    []Row
	MonthBars  []bar
	DecileBars []bar
	UnmetBars  []bar // declined onward referrals by decile
	Ethnicity  []Row
	EthnicBars []bar
	Declines   []string
	Total      Row
	Note       string
}

func (wb *web) serveDashboard(w http.ResponseWriter, r *http.Request, se websession.Session) error {
	get := r.URL.Query().Get
	d := dashboard{Page: websession.Page{Title: "Dashboard"}, From: get("from"), To: get("to"), Note: suppressionNote}
	q, err := parseQuery(func(k string) string {
		if k == "by" {
			return "month"
		}
		return get(k)
	})
	if err != nil {
		d.Error = api.Public(err).Message + " (" + api.Public(err).Field + ")"
		wb.sessions.Render(w, http.StatusBadRequest, "dashboard.html", &d, &se)
		return nil
	}
	if _, err := wb.s.caughtUp(r.Context()); err != nil {
		d.Error = "The figures are catching up with the log; they may be a moment old."
	}
	org := se.Principal.OrgID
	// One walk over the journeys for every chart.
	months, deciles, ethnic := newSummary("month"), newSummary("deprivation_decile"), newSummary("ethnicity")
	err = wb.s.walk(r.Context(), wb.s.teams(org), q, func(x *dated) {
		months.add(x)
		deciles.add(x)
		ethnic.add(x)
	})
	if err != nil {
		return err
	}
	m, dec, eth := months.publish(org, q), deciles.publish(org, q), ethnic.publish(org, q)
	d.Months, d.Deciles, d.Ethnicity, d.Total = m.Groups, dec.Groups, eth.Groups, m.Total
	for _, g := range m.Groups {
		d.MonthBars = append(d.MonthBars, bar{Label: g.Group, Value: g.Referrals})
	}
	for _, g := range dec.Groups {
		d.DecileBars = append(d.DecileBars, bar{Label: g.Group, Value: g.Referrals})
		d.UnmetBars = append(d.UnmetBars, bar{Label: g.Group, Value: g.Onward.Declined})
	}
	for _, g := range eth.Groups {
		d.EthnicBars = append(d.EthnicBars, bar{Label: g.Group, Value: g.Referrals})
	}
	d.Declines = events.DeclineReasons
	t := m.Total
	d.Funnel = []bar{{"referred", t.Referrals}, {"contacted", t.Contacted}, {"connected", t.Connected}, {"attended", t.AttendedPeople}}
	neither := months.total.referrals - months.total.connected - months.total.signposted
	d.Connection = []bar{{"connected", t.Connected}, {"signposted only", t.Signposted}, {"neither yet", Count{neither}}}
	for _, reason := range events.DeclineReasons {
		d.Reasons = append(d.Reasons, bar{Label: reason, Value: t.Onward.DeclinedByReason[reason]})
	}
	for _, n := range needColumns {
		d.Unmet = append(d.Unmet, bar{Label: n, Value: t.Onward.DeclinedByNeed[n]})
	}
	for i, band := range changeBands {
		d.Wellbeing = append(d.Wellbeing, bar{Label: band.label, Value: Count{months.swemwbs[i]}})
	}
	wb.sessions.Render(w, http.StatusOK, "dashboard.html", &d, &se)
	return nil
}

// ethnicName is the NHS Data Dictionary name of an ethnic category group.
func ethnicName(code string) string {
	if c, ok := events.EthnicCategoryByCode(code); ok {
		if c.Group == c.Name {
			return c.Name
		}
		return c.Group + ": " + c.Name
	}
	return "Not recorded"
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
