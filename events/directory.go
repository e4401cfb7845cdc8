package events

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	directoryv1 "linkway/proto/linkway/directory/v1"
)

// The community directory's rules: its commands, DecideDirectory and
// DirectoryOrg.Evolve, beside the journey's Decide and Evolve. The
// directory is kept per organisation: each organisation's events are one
// subject, so an organisation's state is what a command is decided on.

// Capacity statuses of a directory service. A service is accepting when it
// takes direct referrals and is open or keeps a waiting list.
const (
	CapacityOpen        = "open"
	CapacityWaitingList = "waiting_list"
	CapacityFull        = "full"
	CapacityPaused      = "paused"
)

// ServiceAccepting reports whether a link worker can refer to the service
// now (withdrawal aside, which the service's record does not hold).
func ServiceAccepting(s *directoryv1.Service) bool {
	return s.GetAcceptsReferrals() && (s.GetCapacity() == CapacityOpen || s.GetCapacity() == CapacityWaitingList)
}

// orgCodePattern is what an organisation code may look like: ODS codes and
// the project's own VCS codes. It keeps codes safe inside subjects and keys.
var orgCodePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)

// ValidOrgCode reports whether s can be an organisation code.
func ValidOrgCode(s string) bool { return orgCodePattern.MatchString(s) }

var serviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// ValidServiceID reports whether s can be a directory service id: safe in
// KV keys, subjects and paths.
func ValidServiceID(s string) bool { return serviceIDPattern.MatchString(s) }

// DirectoryOrg is one organisation's part of the directory, as the rules
// need it: the organisation (nil before it is registered) and its services
// by id. Evolve replaces a service's entry rather than changing it, so a
// shallow copy of Services is a snapshot.
type DirectoryOrg struct {
	Org      *directoryv1.Organisation
	Services map[string]*DirectoryService
	// Gaps a panel recorded, by id (on the panel's own subject). Replaced,
	// never changed, by Evolve, as services are.
	Gaps map[string]*DirectoryGap
}

// DirectoryGap is a gap in provision: a need no service meets in an area,
// and the services linked to it since.
type DirectoryGap struct {
	ID, Need, Area, Detail string
	RecordedAt             time.Time
	// RecordedBy is the organisation (panel) that recorded it.
	RecordedBy string
	// Services linked to meet it, in order, each once.
	Services []GapService
}

// GapService is a service linked to a gap.
type GapService struct {
	ServiceID, OrganisationID string
	LinkedAt                  time.Time
}

// Met reports whether a service has been linked to the gap: the gap is
// closed from then (MetAt).
func (g *DirectoryGap) Met() bool { return len(g.Services) > 0 }

// MetAt is when the first service was linked, or the zero time.
func (g *DirectoryGap) MetAt() time.Time {
	if len(g.Services) == 0 {
		return time.Time{}
	}
	return g.Services[0].LinkedAt
}

// DirectoryService is one service and the history of it that readers show.
type DirectoryService struct {
	Service   *directoryv1.Service
	Withdrawn bool
	// Placed is where the service stood (category, area) from each time
	// on, so a view rebuilt later places a past referral as it was then.
	Placed     []Placement
	UpdatedAt  time.Time
	CapacityAt time.Time
	// CapacityBy is the organisation that last set the capacity.
	CapacityBy string
}

// Placement is a service's category and first area from a time on.
type Placement struct {
	From           time.Time
	Category, Area string
}

func placeOf(svc *directoryv1.Service, at time.Time) Placement {
	area := "unknown"
	if a := svc.GetAreas(); len(a) > 0 {
		area = a[0]
	}
	return Placement{From: at, Category: svc.GetCategory(), Area: area}
}

// PlacementAt is where the service stood at a time: its category and first
// area then; before it was added, its first placing.
func (s *DirectoryService) PlacementAt(at time.Time) (category, area string) {
	if len(s.Placed) == 0 {
		return "unknown", "unknown"
	}
	p := s.Placed[0]
	for _, q := range s.Placed[1:] {
		if q.From.After(at) {
			break
		}
		p = q
	}
	return p.Category, p.Area
}

// DirectoryCommand is a request to change an organisation's part of the
// directory; each type is one case of DecideDirectory.
type DirectoryCommand interface{ directoryCommandName() string }

// Commands of the directory.
type (
	RegisterOrganisation struct{ Organisation *directoryv1.Organisation }
	UpdateOrganisation   struct{ Organisation *directoryv1.Organisation }
	AddService           struct{ Service *directoryv1.Service }
	// UpdateService replaces a service's details, keeping its capacity.
	UpdateService   struct{ Service *directoryv1.Service }
	WithdrawService struct{ ServiceID, Reason string }
	SetCapacity     struct{ ServiceID, Capacity string }
	// RecordGap records a gap in provision: Need a taxonomy id, Area a
	// free name, Detail optional (about provision, never a person).
	RecordGap struct{ GapID, Need, Area, Detail string }
	// LinkGapService links a service set up to meet a gap. Service is the
	// service as the caller found it in the directory (any organisation's),
	// nil when there is no such service.
	LinkGapService struct {
		GapID   string
		Service *DirectoryService
	}
)

func (RegisterOrganisation) directoryCommandName() string { return "register_organisation" }
func (UpdateOrganisation) directoryCommandName() string   { return "update_organisation" }
func (AddService) directoryCommandName() string           { return "add_service" }
func (UpdateService) directoryCommandName() string        { return "update_service" }
func (WithdrawService) directoryCommandName() string      { return "withdraw_service" }
func (SetCapacity) directoryCommandName() string          { return "set_capacity" }
func (RecordGap) directoryCommandName() string            { return "record_gap" }
func (LinkGapService) directoryCommandName() string       { return "link_gap_service" }

// DirectoryCommandName is a directory command's stable name, for metrics.
func DirectoryCommandName(c DirectoryCommand) string {
	if c == nil {
		return "unknown"
	}
	return c.directoryCommandName()
}

// DecideDirectory is the directory's pure rule function: the events that
// carry out cmd on an organisation in state s, or an *Error. No events and
// no error means it had already been done. The caller fills in each
// event's id, organisation, time and actor.
func DecideDirectory(s DirectoryOrg, cmd DirectoryCommand) ([]*directoryv1.DirectoryEvent, error) {
	switch c := cmd.(type) {
	case RegisterOrganisation:
		if err := validateOrganisation(c.Organisation); err != nil {
			return nil, err
		}
		if s.Org != nil {
			if proto.Equal(s.Org, c.Organisation) {
				return nil, nil
			}
			return nil, &Error{Code: CodeFailedPrecondition, Field: "id",
				Message: "organisation " + c.Organisation.GetId() + " is already registered; update it instead"}
		}
		return directoryEvent(&directoryv1.DirectoryEvent_OrganisationRegistered{
			OrganisationRegistered: &directoryv1.OrganisationRegistered{Organisation: c.Organisation}}), nil

	case UpdateOrganisation:
		if s.Org == nil {
			return nil, ErrNotFound
		}
		if err := validateOrganisation(c.Organisation); err != nil {
			return nil, err
		}
		if proto.Equal(s.Org, c.Organisation) {
			return nil, nil
		}
		return directoryEvent(&directoryv1.DirectoryEvent_OrganisationUpdated{
			OrganisationUpdated: &directoryv1.OrganisationUpdated{Organisation: c.Organisation}}), nil

	case AddService:
		if s.Org == nil {
			return nil, Invalid("organisation_id", "organisation %s is not registered in the directory", c.Service.GetOrganisationId())
		}
		if err := validateService(c.Service, true); err != nil {
			return nil, err
		}
		if old, ok := s.Services[c.Service.GetId()]; ok {
			if !old.Withdrawn && proto.Equal(old.Service, c.Service) {
				return nil, nil
			}
			return nil, &Error{Code: CodeFailedPrecondition, Field: "id",
				Message: "service " + c.Service.GetId() + " already exists; update it instead"}
		}
		return directoryEvent(&directoryv1.DirectoryEvent_ServiceAdded{ServiceAdded: &directoryv1.ServiceAdded{Service: c.Service}}), nil

	case UpdateService:
		old, err := s.live(c.Service.GetId(), "update it")
		if err != nil {
			return nil, err
		}
		if err := validateService(c.Service, false); err != nil {
			return nil, err
		}
		next := proto.CloneOf(c.Service)
		next.Capacity = old.Service.GetCapacity()
		if proto.Equal(old.Service, next) {
			return nil, nil
		}
		return directoryEvent(&directoryv1.DirectoryEvent_ServiceUpdated{ServiceUpdated: &directoryv1.ServiceUpdated{Service: next}}), nil

	case WithdrawService:
		if len(c.Reason) > maxDirectoryShort {
			return nil, Invalid("reason", "is longer than %d characters", maxDirectoryShort)
		}
		if old, ok := s.Services[c.ServiceID]; ok && old.Withdrawn {
			return nil, nil
		}
		if _, err := s.live(c.ServiceID, "withdraw it"); err != nil {
			return nil, err
		}
		return directoryEvent(&directoryv1.DirectoryEvent_ServiceWithdrawn{
			ServiceWithdrawn: &directoryv1.ServiceWithdrawn{ServiceId: c.ServiceID, Reason: c.Reason}}), nil

	case SetCapacity:
		if !slices.Contains(CapacityStatuses, c.Capacity) {
			return nil, Invalid("capacity", "must be one of %v", CapacityStatuses)
		}
		old, err := s.live(c.ServiceID, "change its capacity")
		if err != nil {
			return nil, err
		}
		if old.Service.GetCapacity() == c.Capacity {
			return nil, nil
		}
		return directoryEvent(&directoryv1.DirectoryEvent_CapacityChanged{CapacityChanged: &directoryv1.CapacityChanged{
			ServiceId: c.ServiceID, Capacity: c.Capacity, Previous: old.Service.GetCapacity()}}), nil

	case RecordGap:
		return s.recordGap(c)

	case LinkGapService:
		return s.linkGapService(c)
	}
	return nil, Errorf(CodeInternal, "unknown directory command %T", cmd)
}

func (s DirectoryOrg) recordGap(c RecordGap) ([]*directoryv1.DirectoryEvent, error) {
	switch {
	case !ValidServiceID(c.GapID):
		return nil, Invalid("gap_id", "must be letters, digits and '-', at most 64")
	case c.Need == "":
		return nil, Invalid("need", "is required")
	case !knownCategory(c.Need):
		return nil, Invalid("need", "must be one of the needs taxonomy's ids (GET /v1/directory/categories)")
	case strings.TrimSpace(c.Area) == "":
		return nil, Invalid("area", "is required")
	case len(c.Area) > maxDirectoryName:
		return nil, Invalid("area", "is longer than %d characters", maxDirectoryName)
	case len(c.Detail) > maxDirectoryDescription:
		return nil, Invalid("detail", "is longer than %d characters", maxDirectoryDescription)
	}
	if old, ok := s.Gaps[c.GapID]; ok {
		if old.Need == c.Need && old.Area == c.Area && old.Detail == c.Detail {
			return nil, nil
		}
		return nil, &Error{Code: CodeFailedPrecondition, Field: "gap_id", Message: "gap " + c.GapID + " is already recorded, differently"}
	}
	return directoryEvent(&directoryv1.DirectoryEvent_GapRecorded{GapRecorded: &directoryv1.GapRecorded{
		GapId: c.GapID, Need: c.Need, Area: c.Area, Detail: c.Detail}}), nil
}

func (s DirectoryOrg) linkGapService(c LinkGapService) ([]*directoryv1.DirectoryEvent, error) {
	gap, ok := s.Gaps[c.GapID]
	if !ok {
		return nil, &Error{Code: CodeNotFound, Field: "gap_id", Message: "no such gap"}
	}
	svc := c.Service
	switch {
	case svc == nil || svc.Service == nil:
		return nil, Invalid("service_id", "is not a service in the directory")
	case svc.Withdrawn:
		return nil, &Error{Code: CodeFailedPrecondition, Field: "service_id",
			Message: "cannot link service " + svc.Service.GetId() + " to the gap: it is withdrawn"}
	}
	id := svc.Service.GetId()
	if slices.ContainsFunc(gap.Services, func(g GapService) bool { return g.ServiceID == id }) {
		return nil, nil
	}
	return directoryEvent(&directoryv1.DirectoryEvent_GapServiceLinked{GapServiceLinked: &directoryv1.GapServiceLinked{
		GapId: c.GapID, ServiceId: id, OrganisationId: svc.Service.GetOrganisationId()}}), nil
}

// live returns a service that exists and is not withdrawn.
func (s DirectoryOrg) live(id, what string) (*DirectoryService, error) {
	old, ok := s.Services[id]
	if !ok {
		return nil, ErrNotFound
	}
	if old.Withdrawn {
		return nil, &Error{Code: CodeFailedPrecondition,
			Message: "cannot " + what + ": service " + id + " is withdrawn"}
	}
	return old, nil
}

// directoryEvent wraps one of the DirectoryEvent oneof's cases. The cases'
// interface is unexported by protoc, hence the switch.
func directoryEvent(e any) []*directoryv1.DirectoryEvent {
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
	case *directoryv1.DirectoryEvent_GapRecorded:
		ev.Event = x
	case *directoryv1.DirectoryEvent_GapServiceLinked:
		ev.Event = x
	}
	return []*directoryv1.DirectoryEvent{ev}
}

func knownCategory(id string) bool {
	_, ok := NeedCategoryByID(id)
	return ok
}

// Lengths the directory's free text may have.
const (
	maxDirectoryName        = 200
	maxDirectoryDescription = 4000
	maxDirectoryShort       = 300
	maxServiceAreas         = 20
)

func validateOrganisation(o *directoryv1.Organisation) error {
	switch {
	case !ValidOrgCode(o.GetId()):
		return Invalid("id", "must be an organisation code: letters, digits and '-', at most 32")
	case strings.TrimSpace(o.GetName()) == "":
		return Invalid("name", "is required")
	case len(o.GetName()) > maxDirectoryName:
		return Invalid("name", "is longer than %d characters", maxDirectoryName)
	case len(o.GetDescription()) > maxDirectoryDescription:
		return Invalid("description", "is longer than %d characters", maxDirectoryDescription)
	case len(o.GetWebsite()) > maxDirectoryShort:
		return Invalid("website", "is longer than %d characters", maxDirectoryShort)
	case len(o.GetEmail()) > maxDirectoryShort:
		return Invalid("email", "is longer than %d characters", maxDirectoryShort)
	case o.GetEmail() != "" && !strings.Contains(o.GetEmail(), "@"):
		return Invalid("email", "is not an email address")
	case len(o.GetPhone()) > maxDirectoryShort:
		return Invalid("phone", "is longer than %d characters", maxDirectoryShort)
	}
	return nil
}

// validateService checks a service's details; withCapacity also checks
// the capacity (set when a service is added, not when it is updated).
func validateService(s *directoryv1.Service, withCapacity bool) error {
	switch {
	case !ValidServiceID(s.GetId()):
		return Invalid("id", "must be letters, digits and '-', at most 64")
	case !strings.HasPrefix(s.GetId(), s.GetOrganisationId()+"-"):
		return Invalid("id", "must start with the organisation code and '-' (%s-...)", s.GetOrganisationId())
	case strings.TrimSpace(s.GetName()) == "":
		return Invalid("name", "is required")
	case len(s.GetName()) > maxDirectoryName:
		return Invalid("name", "is longer than %d characters", maxDirectoryName)
	case len(s.GetDescription()) > maxDirectoryDescription:
		return Invalid("description", "is longer than %d characters", maxDirectoryDescription)
	case !knownCategory(s.GetCategory()):
		return Invalid("category", "must be one of the directory's categories (GET /v1/directory/categories)")
	case len(s.GetAreas()) > maxServiceAreas:
		return Invalid("areas", "at most %d areas", maxServiceAreas)
	case withCapacity && !slices.Contains(CapacityStatuses, s.GetCapacity()):
		return Invalid("capacity", "must be one of %v", CapacityStatuses)
	}
	for i, a := range s.GetAreas() {
		if strings.TrimSpace(a) == "" || len(a) > maxDirectoryName {
			return Invalid("areas["+strconv.Itoa(i)+"]", "must be a name of at most %d characters", maxDirectoryName)
		}
	}
	c := s.GetContact()
	switch {
	case len(c.GetEmail()) > maxDirectoryShort:
		return Invalid("contact.email", "is longer than %d characters", maxDirectoryShort)
	case c.GetEmail() != "" && !strings.Contains(c.GetEmail(), "@"):
		return Invalid("contact.email", "is not an email address")
	case len(c.GetPhone()) > maxDirectoryShort:
		return Invalid("contact.phone", "is longer than %d characters", maxDirectoryShort)
	case len(c.GetWebsite()) > maxDirectoryShort:
		return Invalid("contact.website", "is longer than %d characters", maxDirectoryShort)
	case len(c.GetAddress()) > maxDirectoryShort:
		return Invalid("contact.address", "is longer than %d characters", maxDirectoryShort)
	}
	return nil
}

// Evolve folds one event into an organisation's state, in place. Like the
// journey's Evolve it accepts whatever the log holds.
func (s *DirectoryOrg) Evolve(ev *directoryv1.DirectoryEvent) {
	at := ev.GetOccurredAt().AsTime()
	if s.Services == nil {
		s.Services = map[string]*DirectoryService{}
	}
	if s.Gaps == nil {
		s.Gaps = map[string]*DirectoryGap{}
	}
	switch e := ev.GetEvent().(type) {
	case *directoryv1.DirectoryEvent_OrganisationRegistered:
		s.Org = e.OrganisationRegistered.GetOrganisation()
	case *directoryv1.DirectoryEvent_OrganisationUpdated:
		s.Org = e.OrganisationUpdated.GetOrganisation()
	case *directoryv1.DirectoryEvent_ServiceAdded:
		svc := e.ServiceAdded.GetService()
		s.Services[svc.GetId()] = &DirectoryService{Service: svc, UpdatedAt: at, CapacityAt: at,
			CapacityBy: ev.GetActor().GetOrganisationId(), Placed: []Placement{placeOf(svc, at)}}
	case *directoryv1.DirectoryEvent_ServiceUpdated:
		svc := proto.CloneOf(e.ServiceUpdated.GetService())
		if old, ok := s.Services[svc.GetId()]; ok {
			svc.Capacity = old.Service.GetCapacity()
			next := *old
			next.Service, next.UpdatedAt = svc, at
			next.Placed = append(slices.Clip(old.Placed), placeOf(svc, at))
			s.Services[svc.GetId()] = &next
		}
	case *directoryv1.DirectoryEvent_ServiceWithdrawn:
		if old, ok := s.Services[e.ServiceWithdrawn.GetServiceId()]; ok {
			next := *old
			next.Withdrawn, next.UpdatedAt = true, at
			s.Services[old.Service.GetId()] = &next
		}
	case *directoryv1.DirectoryEvent_CapacityChanged:
		if old, ok := s.Services[e.CapacityChanged.GetServiceId()]; ok {
			next := *old
			next.Service = proto.CloneOf(old.Service)
			next.Service.Capacity = e.CapacityChanged.GetCapacity()
			next.UpdatedAt, next.CapacityAt, next.CapacityBy = at, at, ev.GetActor().GetOrganisationId()
			s.Services[old.Service.GetId()] = &next
		}
	case *directoryv1.DirectoryEvent_GapRecorded:
		g := e.GapRecorded
		if _, ok := s.Gaps[g.GetGapId()]; !ok { // the first record stands
			s.Gaps[g.GetGapId()] = &DirectoryGap{ID: g.GetGapId(), Need: g.GetNeed(), Area: g.GetArea(), Detail: g.GetDetail(),
				RecordedAt: at, RecordedBy: ev.GetActor().GetOrganisationId()}
		}
	case *directoryv1.DirectoryEvent_GapServiceLinked:
		l := e.GapServiceLinked
		if old, ok := s.Gaps[l.GetGapId()]; ok && !slices.ContainsFunc(old.Services, func(g GapService) bool { return g.ServiceID == l.GetServiceId() }) {
			next := *old
			next.Services = append(slices.Clip(old.Services), GapService{ServiceID: l.GetServiceId(), OrganisationID: l.GetOrganisationId(), LinkedAt: at})
			s.Gaps[l.GetGapId()] = &next
		}
	}
}

// Snapshot copies the state for DecideDirectory: service entries are
// replaced by Evolve, never changed, so a shallow copy of the map is enough.
func (s DirectoryOrg) Snapshot() DirectoryOrg {
	out := DirectoryOrg{Org: s.Org, Services: make(map[string]*DirectoryService, len(s.Services)),
		Gaps: make(map[string]*DirectoryGap, len(s.Gaps))}
	for k, v := range s.Services {
		out.Services[k] = v
	}
	for k, v := range s.Gaps {
		out.Gaps[k] = v
	}
	return out
}

// DirectoryEventName is the full protobuf name of the event a
// DirectoryEvent holds (linkway.directory.v1.ServiceAdded), or "".
func DirectoryEventName(ev *directoryv1.DirectoryEvent) string {
	return oneofName(ev.ProtoReflect(), directoryEventOneof)
}

var directoryEventOneof = (&directoryv1.DirectoryEvent{}).ProtoReflect().Descriptor().Oneofs().ByName("event")
