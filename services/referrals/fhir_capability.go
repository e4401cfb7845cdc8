package referrals

import "net/http"

// metadata is the CapabilityStatement: public, as FHIR clients read it
// before they authenticate.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	type param struct {
		Name          string `json:"name"`
		Type          string `json:"type"`
		Documentation string `json:"documentation,omitempty"`
	}
	type interaction struct {
		Code string `json:"code"`
	}
	type resource struct {
		Type        string        `json:"type"`
		Profile     string        `json:"profile,omitempty"`
		Interaction []interaction `json:"interaction"`
		SearchParam []param       `json:"searchParam,omitempty"`
	}
	type operation struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-11-21",
		"publisher":    "Linkway",
		"kind":         "instance",
		"software":     map[string]string{"name": "Linkway referrals"},
		"implementation": map[string]string{
			"description": "Linkway social prescribing hub: GP referrals in, referral progress out",
			"url":         baseURL(r),
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"rest": []map[string]any{{
			"mode":          "server",
			"documentation": "Authenticate with Authorization: Bearer <GP practice API key>. Referrals must be social prescribing referrals.",
			"security": map[string]any{
				"description": "Bearer API key bound to one GP practice; a practice sees only its own referrals.",
			},
			"resource": []resource{
				{Type: "ServiceRequest", Profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest",
					Interaction: []interaction{{"create"}, {"read"}}},
				{Type: "Task", Interaction: []interaction{{"read"}, {"search-type"}},
					SearchParam: []param{{Name: "focus", Type: "reference", Documentation: "ServiceRequest/{id}"}}},
			},
			"operation": []operation{{Name: "process-message", Definition: "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}},
		}},
	}
	writeFHIR(w, http.StatusOK, cs)
}
