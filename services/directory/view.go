package directory

import (
	"slices"
	"strings"
	"time"

	"linkway/events"
)

// ServiceView is a service as the JSON API shows it.
type ServiceView struct {
	ID               string      `json:"id"`
	OrganisationID   string      `json:"organisation_id"`
	OrganisationName string      `json:"organisation_name"`
	Name             string      `json:"name"`
	Description      string      `json:"description"`
	Category         string      `json:"category"`
	CategoryName     string      `json:"category_name"`
	Areas            []string    `json:"areas"`
	Contact          ContactView `json:"contact"`
	AcceptsReferrals bool        `json:"accepts_referrals"`
	Capacity         string      `json:"capacity"`
	// Accepting: a link worker can refer to it now (takes direct
	// referrals, and is open or keeps a waiting list).
	Accepting bool `json:"accepting"`
	// Status is active or withdrawn.
	Status            string    `json:"status"`
	UpdatedAt         time.Time `json:"updated_at"`
	CapacityChangedAt time.Time `json:"capacity_changed_at"`
	// CapacityChangedBy is the organisation that last set the capacity.
	CapacityChangedBy string `json:"capacity_changed_by,omitempty"`
}

// ContactView is how a service is reached.
type ContactView struct {
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Website string `json:"website,omitempty"`
	Address string `json:"address,omitempty"`
}

// OrganisationView is an organisation as the JSON API shows it.
type OrganisationView struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Website     string   `json:"website,omitempty"`
	Email       string   `json:"email,omitempty"`
	Phone       string   `json:"phone,omitempty"`
	Services    []string `json:"services"`
}

func (s *Service) serviceView(st *events.DirectoryService, orgName string) ServiceView {
	svc := st.Service
	status := "active"
	if st.Withdrawn {
		status = "withdrawn"
	}
	c := svc.GetContact()
	return ServiceView{
		ID: svc.GetId(), OrganisationID: svc.GetOrganisationId(), OrganisationName: orgName,
		Name: svc.GetName(), Description: svc.GetDescription(),
		Category: svc.GetCategory(), CategoryName: categoryName(svc.GetCategory()),
		Areas:            append([]string{}, svc.GetAreas()...),
		Contact:          ContactView{Email: c.GetEmail(), Phone: c.GetPhone(), Website: c.GetWebsite(), Address: c.GetAddress()},
		AcceptsReferrals: svc.GetAcceptsReferrals(), Capacity: svc.GetCapacity(),
		Accepting: !st.Withdrawn && events.ServiceAccepting(svc), Status: status,
		UpdatedAt: st.UpdatedAt, CapacityChangedAt: st.CapacityAt, CapacityChangedBy: st.CapacityBy,
	}
}

// ServiceView returns one service, withdrawn or not.
func (s *Service) ServiceView(id string) (ServiceView, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	org, ok := s.svcOrg[id]
	if !ok {
		return ServiceView{}, false
	}
	o := s.byOrg[org]
	st, ok := o.Services[id]
	if !ok {
		return ServiceView{}, false
	}
	return s.serviceView(st, o.Org.GetName()), true
}

// Organisation returns one registered organisation.
func (s *Service) Organisation(id string) (OrganisationView, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.byOrg[id]
	if o == nil || o.Org == nil {
		return OrganisationView{}, false
	}
	return orgView(o), true
}

func orgView(o *events.DirectoryOrg) OrganisationView {
	v := OrganisationView{ID: o.Org.GetId(), Name: o.Org.GetName(), Description: o.Org.GetDescription(),
		Website: o.Org.GetWebsite(), Email: o.Org.GetEmail(), Phone: o.Org.GetPhone(), Services: []string{}}
	for id, st := range o.Services {
		if !st.Withdrawn {
			v.Services = append(v.Services, id)
		}
	}
	slices.Sort(v.Services)
	return v
}

// Organisations lists the registered organisations by id.
func (s *Service) Organisations() []OrganisationView {
	s.mu.RLock()
	out := []OrganisationView{}
	for _, o := range s.byOrg {
		if o.Org != nil {
			out = append(out, orgView(o))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b OrganisationView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Query selects services.
type Query struct {
	// Text matches name and description (every word, case-insensitive).
	Text         string
	Category     string
	Organisation string
	// Accepting, when set, keeps only services that are (or are not)
	// accepting referrals now.
	Accepting *bool
	// Withdrawn includes withdrawn services.
	Withdrawn bool
}

// Services returns the services that match q, by name then id.
func (s *Service) Services(q Query) []ServiceView {
	words := strings.Fields(strings.ToLower(q.Text))
	s.mu.RLock()
	out := []ServiceView{}
	for _, o := range s.byOrg {
		for _, st := range o.Services {
			if q.match(st, words) {
				out = append(out, s.serviceView(st, o.Org.GetName()))
			}
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b ServiceView) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (q Query) match(st *events.DirectoryService, words []string) bool {
	svc := st.Service
	switch {
	case st.Withdrawn && !q.Withdrawn:
		return false
	case q.Category != "" && svc.GetCategory() != q.Category:
		return false
	case q.Organisation != "" && svc.GetOrganisationId() != q.Organisation:
		return false
	case q.Accepting != nil && events.ServiceAccepting(svc) != *q.Accepting:
		return false
	}
	text := strings.ToLower(svc.GetName() + " " + svc.GetDescription())
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// acceptingCategories counts, per category, the services accepting
// referrals now.
func (s *Service) acceptingCategories() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int{}
	for _, o := range s.byOrg {
		for _, st := range o.Services {
			if !st.Withdrawn && events.ServiceAccepting(st.Service) {
				out[st.Service.GetCategory()]++
			}
		}
	}
	return out
}

// placementAt is where a service stood at a time: its category and first
// area then. Past events are placed by the directory as it was when they
// were recorded, so a rebuilt view equals the live one.
func (s *Service) placementAt(id string, at time.Time) (category, area string) {
	st, ok := s.lookup(id)
	if !ok {
		return "unknown", "unknown"
	}
	return st.PlacementAt(at)
}
