package referrals

import (
	"encoding/json"
	"strings"
)

// FHIR data types, as far as Linkway reads them. Unknown elements are
// ignored: UK Core and BaRS resources carry much that a referral does not need.
type (
	Identifier struct {
		System string `json:"system,omitempty"`
		Value  string `json:"value,omitempty"`
	}
	Reference struct {
		Reference  string      `json:"reference,omitempty"`
		Identifier *Identifier `json:"identifier,omitempty"`
		Display    string      `json:"display,omitempty"`
	}
	Coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code,omitempty"`
		Display string `json:"display,omitempty"`
	}
	CodeableConcept struct {
		Coding []Coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}
	HumanName struct {
		Use    string   `json:"use,omitempty"`
		Text   string   `json:"text,omitempty"`
		Family string   `json:"family,omitempty"`
		Given  []string `json:"given,omitempty"`
	}
	ContactPoint struct {
		System string `json:"system,omitempty"`
		Value  string `json:"value,omitempty"`
		Use    string `json:"use,omitempty"`
	}
	Address struct {
		Use        string `json:"use,omitempty"`
		PostalCode string `json:"postalCode,omitempty"`
	}
	Extension struct {
		URL                  string           `json:"url"`
		ValueBoolean         *bool            `json:"valueBoolean,omitempty"`
		ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
		ValueReference       *Reference       `json:"valueReference,omitempty"`
	}
	Annotation struct {
		Time string `json:"time,omitempty"`
		Text string `json:"text"`
	}
	Meta struct {
		LastUpdated string   `json:"lastUpdated,omitempty"`
		Profile     []string `json:"profile,omitempty"`
	}
	PatientContact struct {
		Telecom []ContactPoint `json:"telecom,omitempty"`
	}
	// Patient is the UK Core Patient, as far as a referral needs it.
	Patient struct {
		ResourceType string           `json:"resourceType"`
		ID           string           `json:"id,omitempty"`
		Identifier   []Identifier     `json:"identifier,omitempty"`
		Name         []HumanName      `json:"name,omitempty"`
		Telecom      []ContactPoint   `json:"telecom,omitempty"`
		Gender       string           `json:"gender,omitempty"`
		BirthDate    string           `json:"birthDate,omitempty"`
		Address      []Address        `json:"address,omitempty"`
		Contact      []PatientContact `json:"contact,omitempty"`
		Extension    []Extension      `json:"extension,omitempty"`
	}
	// Organization is an ODS-identified organisation.
	Organization struct {
		ResourceType string       `json:"resourceType"`
		ID           string       `json:"id,omitempty"`
		Identifier   []Identifier `json:"identifier,omitempty"`
		Name         string       `json:"name,omitempty"`
		// Organization of a PractitionerRole.
		Organization *Reference `json:"organization,omitempty"`
		// ProvidedBy of a HealthcareService.
		ProvidedBy *Reference `json:"providedBy,omitempty"`
		// Status of a Consent.
		Status string `json:"status,omitempty"`
	}
	// ServiceRequest is the UK Core ServiceRequest.
	ServiceRequest struct {
		ResourceType   string            `json:"resourceType"`
		ID             string            `json:"id,omitempty"`
		Meta           *Meta             `json:"meta,omitempty"`
		Contained      []json.RawMessage `json:"contained,omitempty"`
		Extension      []Extension       `json:"extension,omitempty"`
		Identifier     []Identifier      `json:"identifier,omitempty"`
		Status         string            `json:"status"`
		Intent         string            `json:"intent"`
		Category       []CodeableConcept `json:"category,omitempty"`
		Priority       string            `json:"priority,omitempty"`
		Code           *CodeableConcept  `json:"code,omitempty"`
		Subject        *Reference        `json:"subject,omitempty"`
		AuthoredOn     string            `json:"authoredOn,omitempty"`
		Requester      *Reference        `json:"requester,omitempty"`
		Performer      []Reference       `json:"performer,omitempty"`
		ReasonCode     []CodeableConcept `json:"reasonCode,omitempty"`
		SupportingInfo []Reference       `json:"supportingInfo,omitempty"`
		Note           []Annotation      `json:"note,omitempty"`
	}
)

// resolver finds a referenced resource: a contained one (#id) or, in a
// Bundle, an entry by fullUrl or Type/id.
type resolver func(ref string) (json.RawMessage, bool)

func resourceType(raw json.RawMessage) string {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	_ = json.Unmarshal(raw, &head)
	return head.ResourceType
}

func sameSystem(a, b string) bool { return strings.EqualFold(a, b) } // BaRS examples spell Id as id

// odsOf finds the ODS code a reference names: by identifier, or through
// the Organization, PractitionerRole or HealthcareService it points to.
func odsOf(ref *Reference, resolve resolver, depth int) string {
	if ref == nil || depth > 3 {
		return ""
	}
	if ref.Identifier != nil && sameSystem(ref.Identifier.System, ODSSystem) {
		return strings.TrimSpace(ref.Identifier.Value)
	}
	raw, ok := resolve(ref.Reference)
	if !ok {
		return ""
	}
	var o Organization
	if json.Unmarshal(raw, &o) != nil {
		return ""
	}
	switch o.ResourceType {
	case "Organization":
		for _, id := range o.Identifier {
			if sameSystem(id.System, ODSSystem) {
				return strings.TrimSpace(id.Value)
			}
		}
	case "PractitionerRole":
		return odsOf(o.Organization, resolve, depth+1)
	case "HealthcareService":
		for _, id := range o.Identifier {
			if sameSystem(id.System, ODSSystem) {
				return strings.TrimSpace(id.Value)
			}
		}
		return odsOf(o.ProvidedBy, resolve, depth+1)
	}
	return ""
}

func containedResolver(contained []json.RawMessage) resolver {
	return func(ref string) (json.RawMessage, bool) {
		id, ok := strings.CutPrefix(ref, "#")
		if !ok || id == "" {
			return nil, false
		}
		for _, raw := range contained {
			var head struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &head) == nil && head.ID == id {
				return raw, true
			}
		}
		return nil, false
	}
}
