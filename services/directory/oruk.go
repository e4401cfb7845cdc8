package directory

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"linkway/events"
	"linkway/services/platform/api"
)

// Open Referral UK 3.0 read API (HSDS 3.0 UK profile): /openreferral/...
// Services keep the directory's readable ids (VCS001-walk), as API.md
// fixes them; the records ORUK nests inside a service (areas, attributes)
// get stable UUIDv5 ids derived from the service, as the profile asks.

// TaxonomyID is the id of the directory's category taxonomy in ORUK
// documents (a UUID, as the profile asks); TaxonomyName is its name.
var TaxonomyID = nestedID("taxonomy", "linkway-directory-categories")

// TaxonomyName names the taxonomy in each term's taxonomy field.
const TaxonomyName = "linkway-directory-categories"

// orukNamespace scopes the UUIDv5 ids of nested ORUK records.
var orukNamespace = uuid.MustParse("0b7f0f6e-5f0a-4c55-9a0e-3c1d2b9e4a71")

func nestedID(parts ...string) string {
	return uuid.NewSHA1(orukNamespace, []byte(strings.Join(parts, "\x00"))).String()
}

// ORUK documents. Optional fields are omitted rather than sent empty:
// several carry formats (uri, email) that an empty string would break.
type (
	orukPage[T any] struct {
		TotalItems int  `json:"total_items"`
		TotalPages int  `json:"total_pages"`
		PageNumber int  `json:"page_number"`
		Size       int  `json:"size"`
		FirstPage  bool `json:"first_page"`
		LastPage   bool `json:"last_page"`
		Empty      bool `json:"empty"`
		Contents   []T  `json:"contents"`
	}
	orukOrganization struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Email       string `json:"email,omitempty"`
		Website     string `json:"website,omitempty"`
	}
	orukServiceArea struct {
		ID          string `json:"id"`
		ServiceID   string `json:"service_id"`
		Name        string `json:"name"`
		ServiceArea string `json:"service_area"`
		ExtentType  string `json:"extent_type"`
	}
	orukTaxonomyTerm struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Taxonomy    string `json:"taxonomy"`
		TaxonomyID  string `json:"taxonomy_id"`
		Term        string `json:"term"`
	}
	orukAttribute struct {
		ID             string           `json:"id"`
		LinkID         string           `json:"link_id"`
		LinkType       string           `json:"link_type"`
		TaxonomyTermID string           `json:"taxonomy_term_id"`
		TaxonomyTerm   orukTaxonomyTerm `json:"taxonomy_term"`
	}
	orukContact struct {
		ID        string `json:"id"`
		ServiceID string `json:"service_id"`
		Name      string `json:"name"`
		Title     string `json:"title,omitempty"`
	}
	// orukServiceItem is a service in a list: one-to-one fields only.
	orukServiceItem struct {
		ID             string            `json:"id"`
		OrganizationID string            `json:"organization_id"`
		Name           string            `json:"name"`
		Description    string            `json:"description,omitempty"`
		URL            string            `json:"url,omitempty"`
		Email          string            `json:"email,omitempty"`
		Status         string            `json:"status"`
		Alert          string            `json:"alert,omitempty"`
		LastModified   string            `json:"last_modified"`
		Organization   *orukOrganization `json:"organization,omitempty"`
	}
	// orukService is a fully nested service.
	orukService struct {
		orukServiceItem
		ServiceAreas []orukServiceArea `json:"service_areas"`
		Attributes   []orukAttribute   `json:"attributes"`
		Contacts     []orukContact     `json:"contacts"`
	}
	orukTaxonomy struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
		URI         string `json:"uri,omitempty"`
		Version     string `json:"version"`
	}
)

// serveOpenReferral serves the ORUK read API with no key (API.md version
// 2): the community can read its own directory. Everything in these
// documents is public: names, descriptions, areas, public contact points
// and status; nothing of any person, nothing of who changed what.
func (s *Service) serveOpenReferral(h Routes) {
	h.HandlePublic("GET /openreferral/{$}", s.public(h, s.orukInfo))
	h.HandlePublic("GET /openreferral/services", s.public(h, s.orukServices))
	h.HandlePublic("GET /openreferral/services/{id}", s.public(h, s.orukService))
	h.HandlePublic("GET /openreferral/taxonomies", s.public(h, s.orukTaxonomies))
	h.HandlePublic("GET /openreferral/taxonomies/{id}", s.public(h, s.orukTaxonomy))
	h.HandlePublic("GET /openreferral/taxonomy_terms", s.public(h, s.orukTaxonomyTerms))
	h.HandlePublic("GET /openreferral/taxonomy_terms/{id}", s.public(h, s.orukTaxonomyTerm))
}

// publicRead serves one public JSON read.
type publicRead func(w http.ResponseWriter, r *http.Request) error

// public serves a public read, answering its errors in the JSON error
// shape. A key sent with the request is not looked at: the answer is the
// same for everyone.
func (s *Service) public(h Routes, f publicRead) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			h.WriteError(w, r, err)
		}
	})
}

func (s *Service) orukInfo(w http.ResponseWriter, r *http.Request) error {
	api.WriteJSON(w, http.StatusOK, map[string]string{
		"version": "3.0",
		"profile": "https://github.com/openreferral/uk-profile",
	})
	return nil
}

// orukStatus maps a service's state onto ORUK's service status.
func orukStatus(v ServiceView) string {
	switch {
	case v.Status == "withdrawn":
		return "defunct"
	case v.Capacity == events.CapacityPaused:
		return "temporarily closed"
	}
	return "active"
}

// orukAlert tells an ORUK reader what the directory knows of capacity,
// which the profile has no field for.
func orukAlert(v ServiceView) string {
	var parts []string
	switch v.Capacity {
	case events.CapacityWaitingList:
		parts = append(parts, "Waiting list: new referrals join a waiting list.")
	case events.CapacityFull:
		parts = append(parts, "Full: not taking new referrals at present.")
	case events.CapacityPaused:
		parts = append(parts, "Paused: the service is not running at present.")
	}
	if !v.AcceptsReferrals {
		parts = append(parts, "Signposting only: people can contact the service themselves; no direct referrals.")
	}
	return strings.Join(parts, " ")
}

func (s *Service) orukItem(v ServiceView) orukServiceItem {
	item := orukServiceItem{
		ID: v.ID, OrganizationID: v.OrganisationID, Name: v.Name, Description: v.Description,
		URL: v.Contact.Website, Email: v.Contact.Email, Status: orukStatus(v), Alert: orukAlert(v),
		LastModified: v.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	if o, ok := s.Organisation(v.OrganisationID); ok {
		desc := o.Description
		if desc == "" {
			desc = o.Name
		}
		item.Organization = &orukOrganization{ID: o.ID, Name: o.Name, Description: desc, Email: o.Email, Website: o.Website}
	}
	return item
}

func (s *Service) orukFull(v ServiceView) orukService {
	out := orukService{orukServiceItem: s.orukItem(v), ServiceAreas: []orukServiceArea{}, Attributes: []orukAttribute{}, Contacts: []orukContact{}}
	for _, a := range v.Areas {
		out.ServiceAreas = append(out.ServiceAreas, orukServiceArea{ID: nestedID(v.ID, "area", a), ServiceID: v.ID,
			Name: a, ServiceArea: a, ExtentType: "text"})
	}
	if t, ok := termOf(v.Category); ok {
		out.Attributes = append(out.Attributes, orukAttribute{ID: nestedID(v.ID, "category", v.Category),
			LinkID: v.ID, LinkType: "service", TaxonomyTermID: t.ID, TaxonomyTerm: t})
	}
	if out.Organization != nil {
		out.Contacts = append(out.Contacts, orukContact{ID: nestedID(v.ID, "contact"), ServiceID: v.ID, Name: out.Organization.Name})
	}
	return out
}

func termOf(category string) (orukTaxonomyTerm, bool) {
	for _, c := range events.NeedCategories {
		if c.ID == category {
			return orukTaxonomyTerm{ID: c.ID, Name: c.Name, Description: c.Description,
				Taxonomy: TaxonomyName, TaxonomyID: TaxonomyID, Term: c.Name}, true
		}
	}
	return orukTaxonomyTerm{}, false
}

// paging reads ORUK's page (from 1) and per_page (default 50, at most 500).
func paging(r *http.Request) (page, perPage int, err error) {
	page, perPage = 1, 50
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			return 0, 0, events.Invalid("page", "must be a whole number from 1")
		}
	}
	if v := q.Get("per_page"); v != "" {
		if perPage, err = strconv.Atoi(v); err != nil || perPage < 1 || perPage > 500 {
			return 0, 0, events.Invalid("per_page", "must be a whole number from 1 to 500")
		}
	}
	return page, perPage, nil
}

// paged cuts one page out of all.
func paged[T any](all []T, page, perPage int) orukPage[T] {
	total := len(all)
	pages := (total + perPage - 1) / perPage
	from := min((page-1)*perPage, total)
	to := min(from+perPage, total)
	contents := append([]T{}, all[from:to]...)
	return orukPage[T]{TotalItems: total, TotalPages: pages, PageNumber: page, Size: len(contents),
		FirstPage: page == 1, LastPage: page >= pages, Empty: len(contents) == 0, Contents: contents}
}

func (s *Service) orukServices(w http.ResponseWriter, r *http.Request) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	query := Query{Text: q.Get("search"), Category: q.Get("taxonomy_term_id")}
	if len(query.Text) > 200 {
		return events.Invalid("search", "is longer than 200 characters")
	}
	if query.Category != "" && !validCategory(query.Category) {
		return events.Invalid("taxonomy_term_id", "is not a term of the directory's taxonomy")
	}
	if t := q.Get("taxonomy_id"); t != "" && t != TaxonomyID {
		return events.Invalid("taxonomy_id", "must be %s", TaxonomyID)
	}
	var items []orukServiceItem
	for _, v := range s.Services(query) {
		items = append(items, s.orukItem(v))
	}
	api.WriteJSON(w, http.StatusOK, paged(items, page, perPage))
	return nil
}

func (s *Service) orukService(w http.ResponseWriter, r *http.Request) error {
	v, ok := s.ServiceView(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	api.WriteJSON(w, http.StatusOK, s.orukFull(v))
	return nil
}

func taxonomy() orukTaxonomy {
	return orukTaxonomy{ID: TaxonomyID, Name: "Linkway community directory categories",
		Description: "The small taxonomy of social-prescribing community services used by Linkway's directory.", Version: "1"}
}

func (s *Service) orukTaxonomies(w http.ResponseWriter, r *http.Request) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, paged([]orukTaxonomy{taxonomy()}, page, perPage))
	return nil
}

func (s *Service) orukTaxonomy(w http.ResponseWriter, r *http.Request) error {
	if r.PathValue("id") != TaxonomyID {
		return events.ErrNotFound
	}
	api.WriteJSON(w, http.StatusOK, taxonomy())
	return nil
}

func (s *Service) orukTaxonomyTerms(w http.ResponseWriter, r *http.Request) error {
	page, perPage, err := paging(r)
	if err != nil {
		return err
	}
	var terms []orukTaxonomyTerm
	for _, c := range events.NeedCategories {
		t, _ := termOf(c.ID)
		terms = append(terms, t)
	}
	api.WriteJSON(w, http.StatusOK, paged(terms, page, perPage))
	return nil
}

func (s *Service) orukTaxonomyTerm(w http.ResponseWriter, r *http.Request) error {
	t, ok := termOf(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	api.WriteJSON(w, http.StatusOK, t)
	return nil
}
