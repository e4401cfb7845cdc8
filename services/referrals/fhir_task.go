package referrals

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
)

// Task: the referral's progress for the practice, read or searched by focus.

// Task tracks a referral for the practice (FHIR workflow): its status
// follows the journey.
type Task struct {
	ResourceType   string           `json:"resourceType"`
	ID             string           `json:"id"`
	Meta           *Meta            `json:"meta,omitempty"`
	Identifier     []Identifier     `json:"identifier,omitempty"`
	Status         string           `json:"status"`
	StatusReason   *CodeableConcept `json:"statusReason,omitempty"`
	BusinessStatus *CodeableConcept `json:"businessStatus,omitempty"`
	Intent         string           `json:"intent"`
	Code           *CodeableConcept `json:"code,omitempty"`
	Focus          *Reference       `json:"focus,omitempty"`
	For            *Reference       `json:"for,omitempty"`
	AuthoredOn     string           `json:"authoredOn,omitempty"`
	LastModified   string           `json:"lastModified,omitempty"`
	Requester      *Reference       `json:"requester,omitempty"`
	Owner          *Reference       `json:"owner,omitempty"`
	Output         []TaskOutput     `json:"output,omitempty"`
}

// TaskStatus maps a journey to a FHIR Task status: referred is requested;
// a named link worker has accepted it; working with the person is
// in-progress; closed with goals met is completed; closed for clinical
// reasons is rejected (the team judged it not for them); declined by the
// person, uncontactable, moved away or other are cancelled.
func TaskStatus(st events.State) string {
	switch st.Status() {
	case events.StatusReferred:
		return "requested"
	case events.StatusAssigned:
		return "accepted"
	case events.StatusInProgress, events.StatusConnected:
		return "in-progress"
	case events.StatusClosed:
		switch st.ClosedReason {
		case "goals_met":
			return "completed"
		case "clinical":
			return "rejected"
		}
		return "cancelled"
	case events.StatusDeclined:
		return "cancelled"
	}
	return "requested"
}

func (s *Service) task(ctx context.Context, p api.Principal, id string) (*Task, error) {
	st, hist, authored, updated, err := s.journeyOf(ctx, p, id)
	if err != nil {
		return nil, err
	}
	rr := st.Referral
	t := &Task{
		ResourceType: "Task", ID: id, Meta: &Meta{LastUpdated: fhirTime(updated)},
		Identifier:     []Identifier{{System: JourneyIDSystem, Value: id}},
		Status:         TaskStatus(st),
		BusinessStatus: &CodeableConcept{Text: string(st.Status())},
		Intent:         "order",
		Code: &CodeableConcept{Coding: []Coding{{System: "http://hl7.org/fhir/CodeSystem/task-code", Code: "fulfill",
			Display: "Fulfill the focal request"}}},
		Focus:        &Reference{Reference: "ServiceRequest/" + id},
		AuthoredOn:   fhirTime(authored),
		LastModified: fhirTime(updated),
		Requester:    s.orgRef(rr.GetReferrerOrganisationId()),
		Owner:        s.orgRef(rr.GetLinkWorkTeam()),
	}
	if st.ClosedReason != "" && st.Closed {
		t.StatusReason = &CodeableConcept{Text: humanise(st.ClosedReason)}
	}
	if !st.Erased {
		t.For = &Reference{Identifier: &Identifier{System: NHSNumberSystem, Value: rr.GetPerson().GetNhsNumber()}}
	}
	// The write-back codes, as Task outputs, for GP systems that speak FHIR
	// only. Folded from the log, like the status, so Task and codes agree.
	var history []*eventsv1.Envelope
	for _, r := range hist {
		history = append(history, r.Event)
	}
	if rec, ok := (&projector{terms: s.terms}).replay(history); ok {
		for _, c := range rec.Codes {
			t.Output = append(t.Output, TaskOutput{
				Type:                 CodeableConcept{Text: "SNOMED CT code for the GP record"},
				ValueCodeableConcept: &CodeableConcept{Coding: []Coding{{System: c.System, Code: c.Code, Display: c.Display}}},
			})
		}
	}
	return t, nil
}

// TaskOutput is one output of a Task.
type TaskOutput struct {
	Type                 CodeableConcept  `json:"type"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept"`
}

// Bundle is a FHIR Bundle (searchset or message).
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *Meta         `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp,omitempty"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleLink is a Bundle's link.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one entry of a Bundle.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *struct {
		Mode string `json:"mode"`
	} `json:"search,omitempty"`
}

// searchTasks answers GET /fhir/R4/Task?focus=ServiceRequest/{id}: a
// searchset with the referral's Task, or none when the id is not one of
// this practice's (a search finds nothing; it never says why).
func (s *Service) searchTasks(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	q := r.URL.Query()
	for k := range q {
		if k != "focus" && k != "_format" {
			return events.Invalid(k, "unsupported search parameter: Task supports focus=ServiceRequest/{id}")
		}
	}
	focus := q.Get("focus")
	id, ok := strings.CutPrefix(focus, "ServiceRequest/")
	if !ok {
		id, ok = strings.CutPrefix(focus, baseURL(r)+"/ServiceRequest/")
	}
	if !ok || id == "" {
		return events.Invalid("focus", "is required: focus=ServiceRequest/{id}")
	}
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Link: []BundleLink{{Relation: "self", URL: baseURL(r) + "/Task?focus=" + focus}}}
	t, err := s.task(r.Context(), p, id)
	switch {
	case errors.Is(err, events.ErrNotFound):
	case err != nil:
		return err
	default:
		raw, err := json.Marshal(t)
		if err != nil {
			return err
		}
		// The Task names the patient (NHS number): audited as a read.
		if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, id); err != nil {
			return err
		}
		e := BundleEntry{FullURL: baseURL(r) + "/Task/" + id, Resource: raw}
		e.Search = &struct {
			Mode string `json:"mode"`
		}{"match"}
		b.Entry = append(b.Entry, e)
	}
	n := len(b.Entry)
	b.Total = &n
	writeFHIR(w, http.StatusOK, b)
	return nil
}
