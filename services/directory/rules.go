package directory

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/orgs"
)

// Capacity statuses. A service is accepting when it takes direct
// referrals and is open or keeps a waiting list.
const (
	CapacityOpen        = "open"
	CapacityWaitingList = "waiting_list"
	CapacityFull        = "full"
	CapacityPaused      = "paused"
)

func validCategory(id string) bool {
	_, ok := events.NeedCategoryByID(id)
	return ok
}

func categoryName(id string) string {
	c, _ := events.NeedCategoryByID(id)
	return c.Name
}

// accepting reports whether a link worker can refer to the service now.
func accepting(s *directoryv1.Service) bool {
	return s.GetAcceptsReferrals() && (s.GetCapacity() == CapacityOpen || s.GetCapacity() == CapacityWaitingList)
}

var serviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// ValidServiceID reports whether s can be a service id: safe in KV keys,
// subjects and paths.
func ValidServiceID(s string) bool { return serviceIDPattern.MatchString(s) }

// orgState is one organisation's part of the directory, as the rules need
// it: the organisation (nil before it is registered) and its services.
type orgState struct {
	org      *directoryv1.Organisation
	services map[string]*serviceState
}

// serviceState is one service and its history that readers show.
type serviceState struct {
	svc       *directoryv1.Service
	withdrawn bool
	// placed is where the service stood (category, area) from each time
	// on, so a view rebuilt later places a past referral as it was then.
	placed     []placement
	updatedAt  time.Time
	capacityAt time.Time
	capacityBy string
}

// placement is a service's category and first area from a time on.
type placement struct {
	from           time.Time
	category, area string
}

func placeOf(svc *directoryv1.Service, at time.Time) placement {
	area := "unknown"
	if a := svc.GetAreas(); len(a) > 0 {
		area = a[0]
	}
	return placement{from: at, category: svc.GetCategory(), area: area}
}

// Commands of the directory.
type (
	registerOrg struct{ org *directoryv1.Organisation }
	updateOrg   struct{ org *directoryv1.Organisation }
	addService  struct{ svc *directoryv1.Service }
	// updateService replaces a service's details, keeping its capacity.
	updateService   struct{ svc *directoryv1.Service }
	withdrawService struct{ id, reason string }
	setCapacity     struct{ id, capacity string }
)

// decide is the directory's pure rule function: the events that carry out
// cmd on an organisation in state s, or an *events.Error. No events and no
// error means it had already been done.
func decide(s orgState, cmd any) ([]*directoryv1.DirectoryEvent, error) {
	switch c := cmd.(type) {
	case registerOrg:
		if err := validateOrg(c.org); err != nil {
			return nil, err
		}
		if s.org != nil {
			if proto.Equal(s.org, c.org) {
				return nil, nil
			}
			return nil, &events.Error{Code: events.CodeFailedPrecondition, Field: "id",
				Message: "organisation " + c.org.GetId() + " is already registered; update it instead"}
		}
		return wrap(&directoryv1.DirectoryEvent_OrganisationRegistered{
			OrganisationRegistered: &directoryv1.OrganisationRegistered{Organisation: c.org}}), nil

	case updateOrg:
		if s.org == nil {
			return nil, events.ErrNotFound
		}
		if err := validateOrg(c.org); err != nil {
			return nil, err
		}
		if proto.Equal(s.org, c.org) {
			return nil, nil
		}
		return wrap(&directoryv1.DirectoryEvent_OrganisationUpdated{
			OrganisationUpdated: &directoryv1.OrganisationUpdated{Organisation: c.org}}), nil

	case addService:
		if s.org == nil {
			return nil, events.Invalid("organisation_id", "organisation %s is not registered in the directory", c.svc.GetOrganisationId())
		}
		if err := validateService(c.svc, true); err != nil {
			return nil, err
		}
		if old, ok := s.services[c.svc.GetId()]; ok {
			if !old.withdrawn && proto.Equal(old.svc, c.svc) {
				return nil, nil
			}
			return nil, &events.Error{Code: events.CodeFailedPrecondition, Field: "id",
				Message: "service " + c.svc.GetId() + " already exists; update it instead"}
		}
		return wrap(&directoryv1.DirectoryEvent_ServiceAdded{ServiceAdded: &directoryv1.ServiceAdded{Service: c.svc}}), nil

	case updateService:
		old, err := s.live(c.svc.GetId(), "update it")
		if err != nil {
			return nil, err
		}
		if err := validateService(c.svc, false); err != nil {
			return nil, err
		}
		next := proto.CloneOf(c.svc)
		next.Capacity = old.svc.GetCapacity()
		if proto.Equal(old.svc, next) {
			return nil, nil
		}
		return wrap(&directoryv1.DirectoryEvent_ServiceUpdated{ServiceUpdated: &directoryv1.ServiceUpdated{Service: next}}), nil

	case withdrawService:
		if old, ok := s.services[c.id]; ok && old.withdrawn {
			return nil, nil
		}
		if _, err := s.live(c.id, "withdraw it"); err != nil {
			return nil, err
		}
		return wrap(&directoryv1.DirectoryEvent_ServiceWithdrawn{
			ServiceWithdrawn: &directoryv1.ServiceWithdrawn{ServiceId: c.id, Reason: c.reason}}), nil

	case setCapacity:
		if !slices.Contains(events.CapacityStatuses, c.capacity) {
			return nil, events.Invalid("capacity", "must be one of %v", events.CapacityStatuses)
		}
		old, err := s.live(c.id, "change its capacity")
		if err != nil {
			return nil, err
		}
		if old.svc.GetCapacity() == c.capacity {
			return nil, nil
		}
		return wrap(&directoryv1.DirectoryEvent_CapacityChanged{CapacityChanged: &directoryv1.CapacityChanged{
			ServiceId: c.id, Capacity: c.capacity, Previous: old.svc.GetCapacity()}}), nil
	}
	return nil, events.Errorf(events.CodeInternal, "unknown directory command %T", cmd)
}

// live returns a service that exists and is not withdrawn.
func (s orgState) live(id, what string) (*serviceState, error) {
	old, ok := s.services[id]
	if !ok {
		return nil, events.ErrNotFound
	}
	if old.withdrawn {
		return nil, &events.Error{Code: events.CodeFailedPrecondition,
			Message: "cannot " + what + ": service " + id + " is withdrawn"}
	}
	return old, nil
}

func wrap(e any) []*directoryv1.DirectoryEvent {
	ev := &directoryv1.DirectoryEvent{}
	switch x := e.(type) {
	case *directoryv1.DirectoryEvent_OrganisationRegistered:
		ev.Event = x
	case *directoryv1.DirectoryEvent_OrganisationUpdated:
		ev.Event = x
	case *directoryv1.DirectoryEvent_ServiceAdded:
		ev.Event = x
	case *directoryv1.DirectoryEvent_ServiceUpdated:
		ev.Event = x
	case *directoryv1.DirectoryEvent_ServiceWithdrawn:
		ev.Event = x
	case *directoryv1.DirectoryEvent_CapacityChanged:
		ev.Event = x
	}
	return []*directoryv1.DirectoryEvent{ev}
}

const (
	maxName        = 200
	maxDescription = 4000
	maxShort       = 300
)

func validateOrg(o *directoryv1.Organisation) error {
	switch {
	case !orgs.ValidCode(o.GetId()):
		return events.Invalid("id", "must be an organisation code: letters, digits and '-', at most 32")
	case strings.TrimSpace(o.GetName()) == "":
		return events.Invalid("name", "is required")
	case len(o.GetName()) > maxName:
		return events.Invalid("name", "is longer than %d characters", maxName)
	case len(o.GetDescription()) > maxDescription:
		return events.Invalid("description", "is longer than %d characters", maxDescription)
	case len(o.GetWebsite()) > maxShort:
		return events.Invalid("website", "is longer than %d characters", maxShort)
	case len(o.GetEmail()) > maxShort:
		return events.Invalid("email", "is longer than %d characters", maxShort)
	case o.GetEmail() != "" && !strings.Contains(o.GetEmail(), "@"):
		return events.Invalid("email", "is not an email address")
	case len(o.GetPhone()) > maxShort:
		return events.Invalid("phone", "is longer than %d characters", maxShort)
	}
	return nil
}

// validateService checks a service's details; withCapacity also checks
// the capacity (set when a service is added, not when it is updated).
func validateService(s *directoryv1.Service, withCapacity bool) error {
	switch {
	case !ValidServiceID(s.GetId()):
		return events.Invalid("id", "must be letters, digits and '-', at most 64")
	case !strings.HasPrefix(s.GetId(), s.GetOrganisationId()+"-"):
		return events.Invalid("id", "must start with the organisation code and '-' (%s-...)", s.GetOrganisationId())
	case strings.TrimSpace(s.GetName()) == "":
		return events.Invalid("name", "is required")
	case len(s.GetName()) > maxName:
		return events.Invalid("name", "is longer than %d characters", maxName)
	case len(s.GetDescription()) > maxDescription:
		return events.Invalid("description", "is longer than %d characters", maxDescription)
	case !validCategory(s.GetCategory()):
		return events.Invalid("category", "must be one of the directory's categories (GET /v1/directory/categories)")
	case len(s.GetAreas()) > 20:
		return events.Invalid("areas", "at most 20 areas")
	case withCapacity && !slices.Contains(events.CapacityStatuses, s.GetCapacity()):
		return events.Invalid("capacity", "must be one of %v", events.CapacityStatuses)
	}
	for i, a := range s.GetAreas() {
		if strings.TrimSpace(a) == "" || len(a) > maxName {
			return events.Invalid("areas["+strconv.Itoa(i)+"]", "must be a name of at most %d characters", maxName)
		}
	}
	c := s.GetContact()
	switch {
	case len(c.GetEmail()) > maxShort:
		return events.Invalid("contact.email", "is longer than %d characters", maxShort)
	case c.GetEmail() != "" && !strings.Contains(c.GetEmail(), "@"):
		return events.Invalid("contact.email", "is not an email address")
	case len(c.GetPhone()) > maxShort:
		return events.Invalid("contact.phone", "is longer than %d characters", maxShort)
	case len(c.GetWebsite()) > maxShort:
		return events.Invalid("contact.website", "is longer than %d characters", maxShort)
	case len(c.GetAddress()) > maxShort:
		return events.Invalid("contact.address", "is longer than %d characters", maxShort)
	}
	return nil
}

// evolve folds one event into an organisation's state, in place. Like the
// journey's Evolve it accepts whatever the log holds.
func (s *orgState) evolve(ev *directoryv1.DirectoryEvent) {
	at := ev.GetOccurredAt().AsTime()
	if s.services == nil {
		s.services = map[string]*serviceState{}
	}
	switch e := ev.GetEvent().(type) {
	case *directoryv1.DirectoryEvent_OrganisationRegistered:
		s.org = e.OrganisationRegistered.GetOrganisation()
	case *directoryv1.DirectoryEvent_OrganisationUpdated:
		s.org = e.OrganisationUpdated.GetOrganisation()
	case *directoryv1.DirectoryEvent_ServiceAdded:
		svc := e.ServiceAdded.GetService()
		s.services[svc.GetId()] = &serviceState{svc: svc, updatedAt: at, capacityAt: at,
			capacityBy: ev.GetActor().GetOrganisationId(), placed: []placement{placeOf(svc, at)}}
	case *directoryv1.DirectoryEvent_ServiceUpdated:
		svc := proto.CloneOf(e.ServiceUpdated.GetService())
		if old, ok := s.services[svc.GetId()]; ok {
			svc.Capacity = old.svc.GetCapacity()
			next := *old
			next.svc, next.updatedAt = svc, at
			next.placed = append(slices.Clip(old.placed), placeOf(svc, at))
			s.services[svc.GetId()] = &next
		}
	case *directoryv1.DirectoryEvent_ServiceWithdrawn:
		if old, ok := s.services[e.ServiceWithdrawn.GetServiceId()]; ok {
			next := *old
			next.withdrawn, next.updatedAt = true, at
			s.services[old.svc.GetId()] = &next
		}
	case *directoryv1.DirectoryEvent_CapacityChanged:
		if old, ok := s.services[e.CapacityChanged.GetServiceId()]; ok {
			next := *old
			next.svc = proto.CloneOf(old.svc)
			next.svc.Capacity = e.CapacityChanged.GetCapacity()
			next.updatedAt, next.capacityAt, next.capacityBy = at, at, ev.GetActor().GetOrganisationId()
			s.services[old.svc.GetId()] = &next
		}
	}
}
