package referrals

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// The public self-referral form at /refer/: a plain HTML form that needs
// no JavaScript and no key. It posts to itself; on a problem it comes back
// with what was typed and each error beside its field; on success it
// shows the reference. Bots are kept out by the per-address rate limit
// and a honeypot field (no third-party captcha, which would send the
// person's visit elsewhere and fail people who cannot solve it).

var (
	//go:embed templates/refer.html
	formTemplates embed.FS
	//go:embed static/refer.css
	formStatic embed.FS
)

// formPage is the parsed form template.
type formPage struct {
	t *template.Template
}

// fieldError is what the "error" template is given.
type fieldError struct {
	Name   string
	Errors map[string]string
}

// textInput is what the "text" template is given.
type textInput struct {
	Name, Label, Hint, Autocomplete, Type, Value, Error string
}

// anchors are the controls an error summary links to, where the field is
// a group (the first control of it).
var anchors = map[string]string{"birth_date": "birth_day", "contact_preference": "contact_preference-phone",
	"share_with_vcs": "share_with_vcs-yes"}

func newFormPage() (*formPage, error) {
	t, err := template.New("refer").Funcs(template.FuncMap{
		"field": func(f *formView, name string) fieldError { return fieldError{Name: name, Errors: f.Errors} },
		"input": func(f *formView, name, label, hint, autocomplete, typ string) textInput {
			return textInput{Name: name, Label: label, Hint: hint, Autocomplete: autocomplete, Type: typ,
				Value: f.Values[name], Error: f.Errors[name]}
		},
		"anchor": func(name string) string {
			if a, ok := anchors[name]; ok {
				return a
			}
			return name
		},
	}).ParseFS(formTemplates, "templates/refer.html")
	if err != nil {
		return nil, fmt.Errorf("self-referral form: %w", err)
	}
	return &formPage{t: t}, nil
}

// option is one choice of a select or radio group.
type option struct{ Value, Label string }

// team is one link-worker team a person may choose.
type team struct{ ID, Name string }

// ethnicity is one ethnic category a person may choose.
type ethnicity struct{ Code, Label string }

// formView is the form page's data.
type formView struct {
	Title  string
	Token  string
	Values map[string]string
	// Errors by field name, and the names in the form's order.
	Errors      map[string]string
	Order       []string
	Teams       []team
	Sexes       []option
	Preferences []option
	Ethnicities []ethnicity
	// Done: the request is recorded; Reference is the person's.
	Done      bool
	Reference string
}

// formFields are the form's fields in page order (for the error summary).
var formFields = []string{"link_work_team", "given_name", "family_name", "birth_date", "nhs_number", "postcode", "sex",
	"ethnicity", "phone", "email", "contact_preference", "what_matters", "share_with_vcs"}

// teams are the registered link-worker teams, by name.
func (s *Service) teams() []team {
	var out []team
	for _, o := range s.cfg.Orgs.All() {
		if o.Kind == events.KindLinkwork && !o.Disabled {
			out = append(out, team{ID: o.ID, Name: o.Name})
		}
	}
	slices.SortFunc(out, func(a, b team) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// routesForm serves the form, its stylesheet, and its posts.
func (s *Service) routesForm() {
	static, _ := fs.Sub(formStatic, "static") // cannot fail: embedded
	files := http.StripPrefix("/refer/static/", http.FileServer(http.FS(static)))
	s.cfg.HTTP.HandlePublic("GET /refer/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		formHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	s.cfg.HTTP.HandlePublic("GET /refer/{$}", http.HandlerFunc(s.getForm))
	s.cfg.HTTP.HandlePublic("POST /refer/{$}", http.HandlerFunc(s.postForm))
}

// formHeaders are every answer's: nothing from elsewhere, no script, not
// framed, no referrer, no sniffing.
func formHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

func (s *Service) getForm(w http.ResponseWriter, r *http.Request) {
	v := s.newFormView(map[string]string{"link_work_team": r.URL.Query().Get("team")})
	s.renderForm(w, http.StatusOK, v)
}

// newFormView is the form with values, a fresh token and its choices.
func (s *Service) newFormView(values map[string]string) *formView {
	token := values["token"]
	if !validToken(token) {
		b := make([]byte, 18)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		token = base64.RawURLEncoding.EncodeToString(b)
	}
	v := &formView{Title: "Refer yourself", Token: token, Values: values, Errors: map[string]string{},
		Sexes: []option{{"", "Choose if you wish"}, {"female", "Female"}, {"male", "Male"}, {"other", "Other"},
			{"unknown", "Prefer not to say"}},
		Preferences: []option{{"phone", "Phone call"}, {"text", "Text message"}, {"email", "Email"}, {"letter", "Letter"}}}
	for _, c := range events.EthnicCategories {
		label := c.Group + ": " + c.Name
		if c.Group == c.Name {
			label = c.Name
		}
		v.Ethnicities = append(v.Ethnicities, ethnicity{c.Code, label})
	}
	v.Teams = s.teams()
	return v
}

// validToken reports whether a form token is one this form could have
// made (so a posted one is kept, and a made-up one is replaced).
func validToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 18
}

func (s *Service) renderForm(w http.ResponseWriter, status int, v *formView) {
	var buf bytes.Buffer
	if err := s.form.t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("self-referral form failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	formHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// postForm takes the form: a problem comes back as the form with each
// error beside its field (400); a recorded request as the reference.
func (s *Service) postForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, api.DefaultBodyLimit)
	if err := r.ParseForm(); err != nil {
		v := s.newFormView(map[string]string{})
		v.Errors["form"] = "The form could not be read; please fill it in again."
		s.renderForm(w, http.StatusBadRequest, v)
		return
	}
	values := map[string]string{}
	for _, k := range append(slices.Clone(formFields), "token", "birth_day", "birth_month", "birth_year") {
		values[k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	v := s.newFormView(values)
	if r.PostForm.Get("website") != "" {
		// The honeypot: a person never sees it, a bot fills it in. It is
		// told what a person would be, and nothing is recorded.
		s.metrics.count("web", false, errHoneypot)
		v.Done, v.Reference = true, newReference()
		s.renderForm(w, http.StatusOK, v)
		return
	}
	req := formRequest(values)
	created := false
	var err error
	if errs := s.checker(true, nil).checkSelf(req); len(errs) > 0 {
		err = errs[0]
		for _, e := range errs {
			name := formField(e.Field)
			if _, seen := v.Errors[name]; !seen {
				v.Errors[name] = sentence(name, e.Message)
			}
		}
		for _, f := range formFields {
			if _, ok := v.Errors[f]; ok {
				v.Order = append(v.Order, f)
			}
		}
	} else if err = s.admitSelf(w, r); err == nil {
		var ref string
		if ref, created, err = s.selfRefer(r.Context(), req, "form:"+v.Token); err == nil {
			v.Done, v.Reference = true, ref
		}
	}
	s.metrics.count("web", created, err)
	switch {
	case v.Done:
		s.renderForm(w, http.StatusOK, v)
	case len(v.Errors) > 0:
		s.renderForm(w, http.StatusBadRequest, v)
	default:
		f := s.cfg.HTTP.Fail(w, r, err)
		v.Errors["form"] = f.Public.Message
		if f.Status == http.StatusTooManyRequests {
			v.Errors["form"] = "We have had too many requests from your connection. Please try again later, or ask your GP practice to refer you."
		}
		v.Order = []string{"form"}
		s.renderForm(w, f.Status, v)
	}
}

// errHoneypot is what a filled honeypot is counted as (never shown).
var errHoneypot = &events.Error{Code: events.CodeInvalid, Field: "website", Message: "honeypot"}

// formRequest is the self-referral the form's values make.
func formRequest(v map[string]string) *SelfReferralRequest {
	req := &SelfReferralRequest{LinkWorkTeam: v["link_work_team"], WhatMatters: v["what_matters"],
		ContactPreference: v["contact_preference"],
		Person: &PatientRequest{NHSNumber: v["nhs_number"], GivenName: v["given_name"], FamilyName: v["family_name"],
			Sex: v["sex"], Postcode: v["postcode"], Phone: v["phone"], Email: v["email"], Ethnicity: v["ethnicity"]}}
	req.Person.BirthDate = formDate(v["birth_day"], v["birth_month"], v["birth_year"])
	switch v["share_with_vcs"] {
	case "yes", "no":
		share := v["share_with_vcs"] == "yes"
		req.Consent = &ConsentRequest{ShareWithVCS: &share}
	}
	return req
}

// formDate is the date of the three boxes, YYYY-MM-DD, or what was typed
// when it is not one (then refused as not a date), or "" for none.
func formDate(day, month, year string) string {
	if day == "" && month == "" && year == "" {
		return ""
	}
	d, err1 := strconv.Atoi(day)
	m, err2 := strconv.Atoi(month)
	y, err3 := strconv.Atoi(year)
	if err1 != nil || err2 != nil || err3 != nil || y < 1000 || y > 9999 {
		return year + "-" + month + "-" + day
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
}

// formField is the form's name of an API field.
func formField(field string) string {
	switch field {
	case "consent", "consent.share_with_vcs":
		return "share_with_vcs"
	}
	return strings.TrimPrefix(field, "person.")
}

// labels name the fields in error messages.
var labels = map[string]string{"link_work_team": "Link-worker team", "given_name": "First name", "family_name": "Last name",
	"birth_date": "Date of birth", "nhs_number": "NHS number", "postcode": "Postcode", "sex": "Sex", "ethnicity": "Ethnic group",
	"phone": "Phone number", "email": "Email address", "contact_preference": "How to contact you",
	"what_matters": "What you would like help with", "share_with_vcs": "Sharing your details"}

// sentence turns an API error message into one for a person filling in
// the form: the field's label, then what is wrong.
func sentence(name, msg string) string {
	switch {
	case name == "link_work_team" && strings.Contains(msg, "required"):
		return "Choose a link-worker team"
	case name == "contact_preference" && strings.Contains(msg, "required"):
		return "Choose how you would like the team to contact you"
	case name == "share_with_vcs":
		return "Say whether the link worker may share your details with community groups"
	}
	if i := strings.Index(msg, ":"); i > 0 && strings.HasPrefix(msg, "is required") {
		msg = msg[:i]
	}
	return labels[name] + " " + msg
}
