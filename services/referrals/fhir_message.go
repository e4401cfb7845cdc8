package referrals

import (
	"encoding/json"
	"net/http"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// $process-message: BaRS-style message Bundles carrying a ServiceRequest.

// MessageHeader is a FHIR message's header, as far as BaRS needs it.
type MessageHeader struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id,omitempty"`
	EventCoding  *Coding     `json:"eventCoding,omitempty"`
	Sender       *Reference  `json:"sender,omitempty"`
	Source       *msgSource  `json:"source,omitempty"`
	Focus        []Reference `json:"focus,omitempty"`
	Response     *msgResp    `json:"response,omitempty"`
	Definition   string      `json:"definition,omitempty"`
}

type msgSource struct {
	Name     string `json:"name,omitempty"`
	Software string `json:"software,omitempty"`
	Endpoint string `json:"endpoint"`
}

type msgResp struct {
	Identifier string     `json:"identifier"`
	Code       string     `json:"code"`
	Details    *Reference `json:"details,omitempty"`
}

// processMessage takes a BaRS-style message Bundle (servicerequest-request)
// and answers with a response message Bundle acknowledging it, the
// ServiceRequest as recorded in its focus.
func (s *Service) processMessage(w http.ResponseWriter, r *http.Request, p api.Principal) (err error) {
	created := false
	defer func() { s.metrics.count("message", created, err) }()
	var b messageBundle
	if err := readFHIR(w, r, "Bundle", &b); err != nil {
		return err
	}
	source, teams, err := s.referrer(p)
	if err != nil {
		return err
	}
	req, reqID, err := s.messageIntake(&b, p, teams)
	if err != nil {
		return err
	}
	ans, err := s.refer(r.Context(), p, req, source)
	if err != nil {
		return err
	}
	created = ans.created
	out := s.serviceRequest(ans.rec, ans.pd)
	srJSON, err := json.Marshal(out)
	if err != nil {
		return err
	}
	srURL := baseURL(r) + "/ServiceRequest/" + out.ID
	hdrID := events.NewID()
	hdr := MessageHeader{ResourceType: "MessageHeader", ID: hdrID,
		// FHIR messaging: a response carries the request's event code and
		// says what it answers in response.
		EventCoding: &Coding{System: barsEvents, Code: "servicerequest-request"},
		Source:      &msgSource{Name: "Linkway", Software: "Linkway", Endpoint: baseURL(r)},
		Response:    &msgResp{Identifier: reqID, Code: "ok"},
		Focus:       []Reference{{Reference: srURL}},
	}
	var extra []BundleEntry
	if oo := warningOutcome(ans.warnings); oo != nil {
		// Accepted with warnings: the response's details (FHIR messaging).
		ooID := events.NewID()
		oo.ID = ooID
		raw, err := json.Marshal(oo)
		if err != nil {
			return err
		}
		hdr.Response.Details = &Reference{Reference: "urn:uuid:" + ooID}
		extra = append(extra, BundleEntry{FullURL: "urn:uuid:" + ooID, Resource: raw})
	}
	hdrJSON, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	resp := Bundle{ResourceType: "Bundle", ID: events.NewID(), Type: "message", Timestamp: fhirTime(s.now()),
		Entry: append([]BundleEntry{{FullURL: "urn:uuid:" + hdrID, Resource: hdrJSON}, {FullURL: srURL, Resource: srJSON}}, extra...)}
	// The answer names the patient (its ServiceRequest): audited as a read.
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, out.ID); err != nil {
		return err
	}
	w.Header().Set("Location", "/fhir/R4/ServiceRequest/"+out.ID)
	writeFHIR(w, http.StatusOK, resp)
	return nil
}

// messageBundle is a FHIR message Bundle as $process-message reads it.
type messageBundle struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// messageIntake checks a servicerequest-request message and returns the
// referral it carries and the id the response answers, or why not. It
// reads only the Bundle (no store), so it can be fuzzed on its own.
func (s *Service) messageIntake(b *messageBundle, p api.Principal, teams []string) (*ReferralRequest, string, error) {
	if b.ResourceType != "Bundle" || b.Type != "message" {
		return nil, "", events.Invalid("Bundle.type", "$process-message takes a Bundle of type message")
	}
	if len(b.Entry) == 0 || resourceType(b.Entry[0].Resource) != "MessageHeader" {
		return nil, "", events.Invalid("Bundle.entry[0]", "a message Bundle starts with its MessageHeader")
	}
	var mh MessageHeader
	if err := json.Unmarshal(b.Entry[0].Resource, &mh); err != nil {
		return nil, "", events.Invalid("MessageHeader", "cannot be read as a FHIR MessageHeader")
	}
	if mh.EventCoding == nil || mh.EventCoding.Code != "servicerequest-request" {
		return nil, "", &outcomeError{Code: events.CodeInvalid, Issues: []Issue{{Severity: "error", Code: "not-supported",
			Diagnostics: "only the BaRS servicerequest-request event (" + barsEvents + ") is accepted",
			Expression:  []string{"MessageHeader.eventCoding"}}}}
	}
	resolve := func(ref string) (json.RawMessage, bool) {
		if ref == "" {
			return nil, false
		}
		for _, e := range b.Entry {
			if e.FullURL == ref {
				return e.Resource, true
			}
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if json.Unmarshal(e.Resource, &head) == nil && head.ID != "" &&
				(ref == head.ResourceType+"/"+head.ID || strings.HasSuffix(ref, "/"+head.ResourceType+"/"+head.ID)) {
				return e.Resource, true
			}
		}
		return nil, false
	}
	var srRaw json.RawMessage
	for _, f := range mh.Focus {
		if raw, ok := resolve(f.Reference); ok && resourceType(raw) == "ServiceRequest" {
			srRaw = raw
			break
		}
	}
	if srRaw == nil {
		return nil, "", events.Invalid("MessageHeader.focus", "must reference the ServiceRequest in the Bundle")
	}
	var sr ServiceRequest
	if err := json.Unmarshal(srRaw, &sr); err != nil {
		return nil, "", events.Invalid("ServiceRequest", "cannot be read as a FHIR ServiceRequest")
	}
	// Contained resources of the ServiceRequest resolve as well as entries.
	inner := containedResolver(sr.Contained)
	both := func(ref string) (json.RawMessage, bool) {
		if raw, ok := inner(ref); ok {
			return raw, true
		}
		return resolve(ref)
	}
	req, err := s.intake(&sr, both, odsOf(mh.Sender, resolve, 0), p, teams)
	if err != nil {
		return nil, "", err
	}
	reqID := mh.ID
	if reqID == "" {
		reqID = strings.TrimPrefix(b.Entry[0].FullURL, "urn:uuid:")
	}
	if reqID == "" {
		reqID = b.ID
	}
	return req, reqID, nil
}
