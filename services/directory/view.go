package directory

import (
	"slices"
	"strings"
	"time"
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

func (s *Service) serviceView(st *serviceState, orgName string) ServiceView {
	svc := st.svc
	status := "active"
	if st.withdrawn {
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
		Accepting: !st.withdrawn && accepting(svc), Status: status,
		UpdatedAt: st.updatedAt, CapacityChangedAt: st.capacityAt, CapacityChangedBy: st.capacityBy,
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
	st, ok := o.services[id]
	if !ok {
		return ServiceView{}, false
	}
	return s.serviceView(st, o.org.GetName()), true
}

// Organisation returns one registered organisation.
func (s *Service) Organisation(id string) (OrganisationView, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.byOrg[id]
	if o == nil || o.org == nil {
		return OrganisationView{}, false
	}
	return orgView(o), true
}

func orgView(o *orgState) OrganisationView {
	v := OrganisationView{ID: o.org.GetId(), Name: o.org.GetName(), Description: o.org.GetDescription(),
		Website: o.org.GetWebsite(), Email: o.org.GetEmail(), Phone: o.org.GetPhone(), Services: []string{}}
	for id, st := range o.services {
		if !st.withdrawn {
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
		if o.org != nil {
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
		for _, st := range o.services {
			if q.match(st, words) {
				out = append(out, s.serviceView(st, o.org.GetName()))
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

func (q Query) match(st *serviceState, words []string) bool {
	svc := st.svc
	switch {
	case st.withdrawn && !q.Withdrawn:
		return false
	case q.Category != "" && svc.GetCategory() != q.Category:
		return false
	case q.Organisation != "" && svc.GetOrganisationId() != q.Organisation:
		return false
	case q.Accepting != nil && accepting(svc) != *q.Accepting:
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
		for _, st := range o.services {
			if !st.withdrawn && accepting(st.svc) {
				out[st.svc.GetCategory()]++
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
	if !ok || len(st.placed) == 0 {
		return "unknown", "unknown"
	}
	p := st.placed[0]
	for _, q := range st.placed[1:] {
		if q.from.After(at) {
			break
		}
		p = q
	}
	return p.category, p.area
}
