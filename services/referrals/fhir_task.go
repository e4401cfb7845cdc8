package referrals

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"linkway/events"
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
	Note           []Annotation     `json:"note,omitempty"`
	Output         []TaskOutput     `json:"output,omitempty"`
}

// task is the referral's Task, from the referrer's record and the
// person's data: its status is the journey's, in FHIR's workflow terms
// (events.State.Workflow); its outputs the write-back codes, for systems
// that speak FHIR only; its notes the concerns the team escalated to the
// referrer (the kind, never the detail).
func (s *Service) task(rec record, pd personal) *Task {
	id := rec.JourneyID
	t := &Task{
		ResourceType: "Task", ID: id, Meta: &Meta{LastUpdated: fhirTime(rec.RecordedAt)},
		Identifier:     []Identifier{{System: JourneyIDSystem, Value: id}},
		Status:         rec.Workflow.Task,
		BusinessStatus: &CodeableConcept{Text: rec.Status},
		Intent:         "order",
		Code: &CodeableConcept{Coding: []Coding{{System: "http://hl7.org/fhir/CodeSystem/task-code", Code: "fulfill",
			Display: "Fulfill the focal request"}}},
		Focus:        &Reference{Reference: "ServiceRequest/" + id},
		AuthoredOn:   fhirTime(rec.CreatedAt),
		LastModified: fhirTime(rec.RecordedAt),
		Requester:    s.orgRef(rec.Org),
		Owner:        s.orgRef(rec.LinkWorkTeam),
	}
	if rec.ClosureReason != "" {
		t.StatusReason = &CodeableConcept{Text: humanise(rec.ClosureReason)}
	}
	if !rec.Erased && pd.NHSNumber != "" {
		t.For = &Reference{Identifier: &Identifier{System: NHSNumberSystem, Value: pd.NHSNumber}}
	}
	for _, c := range rec.Codes {
		t.Output = append(t.Output, TaskOutput{
			Type:                 CodeableConcept{Text: "SNOMED CT code for the GP record"},
			ValueCodeableConcept: &CodeableConcept{Coding: []Coding{{System: c.System, Code: c.Code, Display: c.Display}}},
		})
	}
	for _, st := range rec.Timeline {
		if st.Type == riskStep {
			t.Note = append(t.Note, Annotation{Text: st.Summary, Time: fhirTime(st.At)})
		}
	}
	return t
}

// riskStep is the timeline step of a risk escalated to the referrer.
const riskStep = "risk_recorded"

// readTask answers GET /fhir/R4/Task/{id}.
func (s *Service) readTask(ctx context.Context, p api.Principal, id string) (*Task, error) {
	rec, pd, err := s.lookup(ctx, p.OrgID, id, true)
	if err != nil {
		return nil, err
	}
	return s.task(rec, pd), nil
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
	t, err := s.readTask(r.Context(), p, id)
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
