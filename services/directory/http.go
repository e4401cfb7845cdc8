package directory

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/orgs"
)

var (
	readers = events.Kinds
	editors = []events.Kind{events.KindPanel, events.KindAdmin}
	// capacityEditors: VCS keys too, for their own services (SetCapacity).
	capacityEditors = []events.Kind{events.KindPanel, events.KindAdmin, events.KindVCS}
	// unmetNeedReaders see where new groups are needed.
	unmetNeedReaders = []events.Kind{events.KindPanel, events.KindAdmin, events.KindCommissioner}
)

// bodyLimit bounds directory write bodies: descriptions are short texts.
const bodyLimit = 32 << 10

// serve adds the directory's projections of the journey log, its routes
// and its web pages.
func (s *Service) serve(ctx context.Context, cfg Config) error {
	s.views.Add(unmetNeed{dir: s})
	s.views.Add(feedbackView{})
	h := cfg.HTTP
	h.Handle("GET /v1/directory/services", readers, s.listServices)
	h.Handle("GET /v1/directory/services/{id}", readers, s.getService)
	h.Handle("GET /v1/directory/organisations", readers, s.listOrganisations)
	h.Handle("GET /v1/directory/organisations/{id}", readers, s.getOrganisation)
	h.Handle("GET /v1/directory/categories", readers, s.listCategories)
	h.Handle("POST /v1/directory/organisations", editors, s.registerOrganisation)
	h.Handle("PUT /v1/directory/organisations/{id}", editors, s.updateOrganisation)
	h.Handle("POST /v1/directory/services", editors, s.addService)
	h.Handle("PUT /v1/directory/services/{id}", editors, s.updateService)
	h.Handle("POST /v1/directory/services/{id}/withdraw", editors, s.withdrawService)
	h.Handle("POST /v1/directory/services/{id}/capacity", capacityEditors, s.changeCapacity)
	s.serveUnmetNeed(h)
	s.serveFeedback(h)
	s.serveGaps(h)
	s.serveOpenReferral(h)
	wb, err := newWeb(ctx, s, cfg)
	if err != nil {
		return fmt.Errorf("directory web page: %w", err)
	}
	wb.routes()
	return nil
}

func (s *Service) listServices(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	q := r.URL.Query()
	query := Query{Text: q.Get("q"), Category: q.Get("category"), Organisation: q.Get("organisation")}
	if len(query.Text) > 200 {
		return events.Invalid("q", "is longer than 200 characters")
	}
	if query.Category != "" && !validCategory(query.Category) {
		return events.Invalid("category", "must be one of the directory's categories (GET /v1/directory/categories)")
	}
	if a := q.Get("accepting"); a != "" {
		v, err := strconv.ParseBool(a)
		if err != nil {
			return events.Invalid("accepting", "must be true or false")
		}
		query.Accepting = &v
	}
	if wd := q.Get("include_withdrawn"); wd != "" {
		v, err := strconv.ParseBool(wd)
		if err != nil {
			return events.Invalid("include_withdrawn", "must be true or false")
		}
		query.Withdrawn = v
	}
	list := s.Services(query)
	api.WriteJSON(w, http.StatusOK, map[string]any{"services": list, "total": len(list)})
	return nil
}

func (s *Service) getService(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	v, ok := s.ServiceView(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Service) listOrganisations(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	api.WriteJSON(w, http.StatusOK, map[string]any{"organisations": s.Organisations()})
	return nil
}

func (s *Service) getOrganisation(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	v, ok := s.Organisation(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Service) listCategories(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	api.WriteJSON(w, http.StatusOK, map[string]any{"categories": events.NeedCategories, "capacities": events.CapacityStatuses})
	return nil
}

// orgBody is an organisation as written.
type orgBody struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Website     string `json:"website"`
	Email       string `json:"email"`
	Phone       string `json:"phone"`
}

func (b orgBody) proto() *directoryv1.Organisation {
	return &directoryv1.Organisation{Id: b.ID, Name: strings.TrimSpace(b.Name), Description: b.Description,
		Website: b.Website, Email: b.Email, Phone: b.Phone}
}

func (s *Service) registerOrganisation(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b orgBody
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	if !orgs.ValidCode(b.ID) {
		return events.Invalid("id", "must be an organisation code: letters, digits and '-', at most 32")
	}
	// A code Linkway knows as a practice, team, commissioner or panel is
	// not a community organisation: onward referrals to its services would
	// go to an organisation that has no inbox.
	if s.orgs != nil {
		if o, ok := s.orgs.Get(b.ID); ok && o.Kind != events.KindVCS {
			return events.Invalid("id", "%s is registered as a %s organisation, not a community one", b.ID, o.Kind)
		}
	}
	changed, err := s.execute(r.Context(), p, b.ID, events.RegisterOrganisation{Organisation: b.proto()})
	if err != nil {
		return err
	}
	v, _ := s.Organisation(b.ID)
	api.WriteJSON(w, created(changed), v)
	return nil
}

func (s *Service) updateOrganisation(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	id := r.PathValue("id")
	if _, ok := s.Organisation(id); !ok {
		return events.ErrNotFound
	}
	var b orgBody
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	if b.ID == "" {
		b.ID = id
	}
	if b.ID != id {
		return events.Invalid("id", "must be the organisation of the path (%s)", id)
	}
	if _, err := s.execute(r.Context(), p, id, events.UpdateOrganisation{Organisation: b.proto()}); err != nil {
		return err
	}
	v, _ := s.Organisation(id)
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

// contactBody is a service's public contact.
type contactBody struct {
	Email   string `json:"email"`
	Phone   string `json:"phone"`
	Website string `json:"website"`
	Address string `json:"address"`
}

// serviceBody is a service as updated: everything but its capacity,
// which has a route of its own.
type serviceBody struct {
	ID               string      `json:"id"`
	OrganisationID   string      `json:"organisation_id"`
	Name             string      `json:"name"`
	Description      string      `json:"description"`
	Category         string      `json:"category"`
	Areas            []string    `json:"areas"`
	Contact          contactBody `json:"contact"`
	AcceptsReferrals *bool       `json:"accepts_referrals"`
}

// newServiceBody is a service as added, with its first capacity.
type newServiceBody struct {
	serviceBody
	Capacity string `json:"capacity"`
}

func (b serviceBody) proto(capacity string) *directoryv1.Service {
	return &directoryv1.Service{Id: b.ID, OrganisationId: b.OrganisationID, Name: strings.TrimSpace(b.Name),
		Description: b.Description, Category: b.Category, Areas: b.Areas,
		Contact:          &directoryv1.Contact{Email: b.Contact.Email, Phone: b.Contact.Phone, Website: b.Contact.Website, Address: b.Contact.Address},
		AcceptsReferrals: b.AcceptsReferrals != nil && *b.AcceptsReferrals, Capacity: capacity}
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

// serviceID makes an id from the organisation and the service's name when
// the caller gives none.
func serviceID(org, name string) string {
	slug := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if slug == "" {
		slug = "service"
	}
	id := org + "-" + slug
	if len(id) > 64 {
		id = strings.TrimRight(id[:64], "-")
	}
	return id
}

func (s *Service) addService(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b newServiceBody
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	if !orgs.ValidCode(b.OrganisationID) {
		return events.Invalid("organisation_id", "must be an organisation code")
	}
	if b.AcceptsReferrals == nil {
		return events.Invalid("accepts_referrals", "is required: true if link workers may refer people directly, false for signposting only")
	}
	if b.ID == "" {
		b.ID = serviceID(b.OrganisationID, b.Name)
	}
	if b.Capacity == "" {
		b.Capacity = events.CapacityOpen
	}
	changed, err := s.execute(r.Context(), p, b.OrganisationID, events.AddService{Service: b.proto(b.Capacity)})
	if err != nil {
		return err
	}
	v, _ := s.ServiceView(b.ID)
	api.WriteJSON(w, created(changed), v)
	return nil
}

func (s *Service) updateService(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	old, ok := s.ServiceView(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	var b serviceBody
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	if b.ID == "" {
		b.ID = old.ID
	}
	if b.OrganisationID == "" {
		b.OrganisationID = old.OrganisationID
	}
	switch {
	case b.ID != old.ID:
		return events.Invalid("id", "must be the service of the path (%s)", old.ID)
	case b.OrganisationID != old.OrganisationID:
		return events.Invalid("organisation_id", "a service cannot move to another organisation; withdraw it and add a new one")
	case b.AcceptsReferrals == nil:
		return events.Invalid("accepts_referrals", "is required")
	}
	if _, err := s.execute(r.Context(), p, old.OrganisationID, events.UpdateService{Service: b.proto("")}); err != nil {
		return err
	}
	v, _ := s.ServiceView(old.ID)
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Service) withdrawService(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	old, ok := s.ServiceView(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	var b struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
			return err
		}
	}
	if _, err := s.execute(r.Context(), p, old.OrganisationID, events.WithdrawService{ServiceID: old.ID, Reason: b.Reason}); err != nil {
		return err
	}
	v, _ := s.ServiceView(old.ID)
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Service) changeCapacity(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	id := r.PathValue("id")
	var b struct {
		Capacity string `json:"capacity"`
	}
	if err := api.DecodeJSON(w, r, bodyLimit, &b); err != nil {
		return err
	}
	if err := s.SetCapacity(r.Context(), p, id, b.Capacity); err != nil {
		return err
	}
	v, _ := s.ServiceView(id)
	api.WriteJSON(w, http.StatusOK, v)
	return nil
}

// created is 201 when a write added something, 200 when it was already so.
func created(changed bool) int {
	if changed {
		return http.StatusCreated
	}
	return http.StatusOK
}
