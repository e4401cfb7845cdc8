package referrals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// FHIR R4 (application/fhir+json), UK Core shaped: GP systems that speak
// FHIR post a ServiceRequest, or a BaRS-style message Bundle, and track the
// referral through a Task. The same rules as the JSON route apply: one
// intake, one set of checks, one journey per practice and source id.

// Systems of the identifiers Linkway reads and writes.
const (
	NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"
	ODSSystem       = "https://fhir.nhs.uk/Id/ods-organization-code"
	// SourceIDSystem names the referring system's own referral id when it
	// is given back: the id is only unique within one practice, so the
	// practice's ODS code is appended to the system.
	SourceIDSystem  = "https://linkway.example.org/fhir/Id/referrer-source-id"
	JourneyIDSystem = "https://linkway.example.org/fhir/Id/journey-id"
	// ConsentExtension carries the person's consent to share their details
	// with community organisations: ServiceRequest has no element for it.
	// A contained or bundled active Consent resource means the same.
	ConsentExtension = "https://linkway.example.org/fhir/StructureDefinition/consent-share-with-vcs"
	barsEvents       = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	barsCategory     = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
	fhirContentType  = "application/fhir+json; charset=utf-8"
	// fhirBodyLimit is larger than the JSON routes': FHIR is verbose and a
	// BaRS bundle with its Organizations and Practitioners runs to tens of KiB.
	fhirBodyLimit = 256 << 10
)

func (s *Service) routesFHIR() {
	h := s.d.HTTP
	h.HandlePublic("POST /fhir/R4/ServiceRequest", s.fhirRoute(s.postServiceRequest))
	h.HandlePublic("GET /fhir/R4/ServiceRequest/{id}", s.fhirRoute(s.getServiceRequest))
	h.HandlePublic("GET /fhir/R4/Task", s.fhirRoute(s.searchTasks))
	h.HandlePublic("GET /fhir/R4/Task/{id}", s.fhirRoute(s.getTask))
	h.HandlePublic("POST /fhir/R4/$process-message", s.fhirRoute(s.processMessage))
	h.HandlePublic("GET /fhir/R4/metadata", http.HandlerFunc(s.metadata))
}

// fhirRoute authenticates and rate-limits like api.Server.Handle (Bearer key, kind gp) but
// answers every error, including 401 and 403, as an OperationOutcome.
func (s *Service) fhirRoute(h api.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.d.HTTP.Authenticate(r)
		if err == nil && p.Kind != events.KindGP {
			err = &events.Error{Code: events.CodePermissionDenied, Message: "a " + string(p.Kind) + " key may not call this route"}
		}
		if err == nil {
			err = s.d.HTTP.Admit(w, p) // the key's rate limit, as on every JSON route
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeOutcome(w, r, err)
		}
	})
}

// Issue is one problem in an OperationOutcome.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// OperationOutcome is FHIR's error answer.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// outcomeError is a refusal with several issues; Code decides the status.
type outcomeError struct {
	Code   events.Code
	Issues []Issue
}

func (e *outcomeError) Error() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strings.Join(is.Expression, ",") + ": " + is.Diagnostics)
	}
	return string(e.Code) + ": " + b.String()
}

// issueType is the FHIR issue type of an error code.
func issueType(c events.Code) string {
	switch c {
	case events.CodeInvalid:
		return "invalid"
	case events.CodeUnauthenticated:
		return "login"
	case events.CodePermissionDenied:
		return "forbidden"
	case events.CodeNotFound:
		return "not-found"
	case events.CodeFailedPrecondition:
		return "business-rule"
	case events.CodeTooLarge:
		return "too-costly"
	case events.CodeUnavailable, events.CodeTooManyRequests:
		return "transient"
	}
	return "exception"
}

// writeOutcome answers err as an OperationOutcome with the status api.Status
// gives its code: the same mapping as the JSON routes.
func (s *Service) writeOutcome(w http.ResponseWriter, r *http.Request, err error) {
	var oe *outcomeError
	if errors.As(err, &oe) {
		writeFHIR(w, api.Status(oe.Code), OperationOutcome{ResourceType: "OperationOutcome", Issue: oe.Issues})
		return
	}
	pub := api.Public(err)
	status := api.Status(pub.Code)
	if status >= 500 {
		s.log.Error("FHIR request failed", "method", r.Method, "route", r.Pattern, "status", status, "err", err)
	}
	if (pub.Code == events.CodeUnavailable || pub.Code == events.CodeTooManyRequests) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	is := Issue{Severity: "error", Code: issueType(pub.Code), Diagnostics: pub.Message}
	if pub.Field != "" {
		is.Expression = []string{pub.Field}
	}
	writeFHIR(w, status, OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{is}})
}

func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", fhirContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing more to do
}

// readFHIR reads a FHIR JSON body into v, refusing other formats, bodies
// over the limit and malformed JSON with an OperationOutcome naming where.
func readFHIR(w http.ResponseWriter, r *http.Request, root string, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
			return events.Invalid("Content-Type", "send FHIR as application/fhir+json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fhirBodyLimit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &events.Error{Code: events.CodeTooLarge, Message: fmt.Sprintf("the body is over %d bytes", fhirBodyLimit)}
		}
		return &events.Error{Code: events.CodeInvalid, Message: "the body could not be read"}
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return events.Invalid(root+"."+typeErr.Field, "must be a FHIR %s", jsonKind(typeErr.Type.Kind().String()))
		}
		return &outcomeError{Code: events.CodeInvalid, Issues: []Issue{{Severity: "error", Code: "structure",
			Diagnostics: "the body is not valid JSON: " + jsonProblem(err)}}}
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object (a complex type)"
	}
	return k
}

// jsonProblem describes a JSON syntax error without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected end") {
		return "it ends too soon"
	}
	return "it cannot be read as a FHIR resource"
}

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
		URL          string `json:"url"`
		ValueBoolean *bool  `json:"valueBoolean,omitempty"`
	}
	Annotation struct {
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

// intake turns a FHIR ServiceRequest into a checked referral, or the
// issues that stop it. senderODS is the message sender's ODS code, the
// requester when the ServiceRequest names only a Practitioner (BaRS).
func (s *Service) intake(sr *ServiceRequest, resolve resolver, senderODS string, p api.Principal) (*ReferralRequest, error) {
	var issues []Issue
	add := func(code, expr, format string, args ...any) {
		issues = append(issues, Issue{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...), Expression: []string{expr}})
	}
	if sr.ResourceType != "ServiceRequest" {
		return nil, events.Invalid("resourceType", "must be ServiceRequest")
	}
	// Is it a social-prescribing referral at all? A BaRS validation request
	// or a request for another service is valid FHIR that Linkway cannot act on.
	for i, c := range sr.Category {
		for _, cd := range c.Coding {
			if sameSystem(cd.System, barsCategory) && cd.Code != "referral" {
				add("not-supported", fmt.Sprintf("ServiceRequest.category[%d]", i),
					"this is a BaRS %q request, not a referral: Linkway takes social-prescribing referrals only", cd.Code)
			}
		}
	}
	if sr.Code != nil {
		for _, cd := range sr.Code.Coding {
			if cd.System == events.SNOMEDSystem && cd.Code != events.CodeReferredToSocialPrescribing {
				add("not-supported", "ServiceRequest.code",
					"requests SNOMED CT %s, not %s Referral to social prescribing service: Linkway takes social-prescribing referrals only", cd.Code, events.CodeReferredToSocialPrescribing)
			}
		}
	}
	switch sr.Status {
	case "active":
	case "":
		add("required", "ServiceRequest.status", "is required and must be active for a referral to act on")
	default:
		add("business-rule", "ServiceRequest.status", "is %q: only an active request is a referral to act on", sr.Status)
	}
	intents := []string{"proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}
	if !slices.Contains(intents, sr.Intent) {
		add("required", "ServiceRequest.intent", "is required: one of %v", intents)
	}

	req := &ReferralRequest{Patient: &PatientRequest{}}
	for _, id := range sr.Identifier {
		if strings.TrimSpace(id.Value) != "" {
			req.SourceID = id.Value
			break
		}
	}

	// The patient: by NHS number in subject.identifier, or a Patient
	// resource (contained, referenced, or in the Bundle).
	patientExpr := "ServiceRequest.subject.identifier"
	var pat *Patient
	if sr.Subject == nil {
		add("required", "ServiceRequest.subject", "a social-prescribing referral is for one patient: give subject.identifier (NHS number) or a Patient")
	} else {
		if sr.Subject.Reference != "" {
			raw, ok := resolve(sr.Subject.Reference)
			if !ok || resourceType(raw) != "Patient" {
				add("invalid", "ServiceRequest.subject.reference", "does not resolve to a Patient in this resource or bundle")
			} else {
				pat = &Patient{}
				if err := json.Unmarshal(raw, pat); err != nil {
					add("structure", "Patient", "cannot be read as a FHIR Patient")
					pat = nil
				}
			}
		} else {
			// A contained Patient that the subject does not reference: the
			// UK Core example shape of subject.identifier plus a contained Patient.
			for _, raw := range sr.Contained {
				if resourceType(raw) == "Patient" {
					pat = &Patient{}
					if err := json.Unmarshal(raw, pat); err != nil {
						add("structure", "ServiceRequest.contained", "holds a Patient that cannot be read")
						pat = nil
					}
					break
				}
			}
		}
		if id := sr.Subject.Identifier; id != nil {
			if !sameSystem(id.System, NHSNumberSystem) {
				add("invalid", "ServiceRequest.subject.identifier.system", "must be %s: Linkway identifies patients by NHS number", NHSNumberSystem)
			}
			req.Patient.NHSNumber = strings.TrimSpace(id.Value)
		}
	}
	if pat != nil {
		for _, id := range pat.Identifier {
			if sameSystem(id.System, NHSNumberSystem) {
				n := strings.TrimSpace(id.Value)
				if req.Patient.NHSNumber != "" && n != req.Patient.NHSNumber {
					add("invalid", "Patient.identifier", "the Patient's NHS number differs from subject.identifier's")
				}
				req.Patient.NHSNumber = n
				patientExpr = "Patient.identifier"
			}
		}
		if len(pat.Name) > 0 {
			n := pat.Name[0]
			for _, hn := range pat.Name {
				if hn.Use == "official" {
					n = hn
					break
				}
			}
			req.Patient.FamilyName = n.Family
			if len(n.Given) > 0 {
				req.Patient.GivenName = n.Given[0]
			}
		}
		req.Patient.BirthDate = pat.BirthDate
		req.Patient.Sex = pat.Gender
		for _, a := range pat.Address {
			if a.PostalCode != "" {
				req.Patient.Postcode = a.PostalCode
				break
			}
		}
		telecom := slices.Clone(pat.Telecom)
		for _, c := range pat.Contact {
			telecom = append(telecom, c.Telecom...)
		}
		for _, t := range telecom {
			switch {
			case t.System == "phone" && req.Patient.Phone == "":
				req.Patient.Phone = t.Value
			case t.System == "email" && req.Patient.Email == "":
				req.Patient.Email = t.Value
			}
		}
	} else if sr.Subject != nil && sr.Subject.Display != "" {
		// Identified by NHS number only: the display is the name the
		// practice gave, all there is until the link worker speaks to them.
		f := strings.Fields(sr.Subject.Display)
		if len(f) > 0 {
			req.Patient.GivenName, req.Patient.FamilyName = f[0], strings.Join(f[1:], " ")
		}
	}
	if sr.Subject != nil && req.Patient.NHSNumber == "" {
		add("required", "ServiceRequest.subject.identifier", "the patient's NHS number (system %s) is required", NHSNumberSystem)
	}

	// The requester must be the calling practice: a practice refers its own
	// patients. Another ODS code is a 403, not a 400: the request may be
	// well formed, but this key may not make it.
	requester := odsOf(sr.Requester, resolve, 0)
	if requester == "" {
		requester = senderODS
	}
	switch {
	case requester == "":
		add("required", "ServiceRequest.requester", "must identify the referring GP practice by ODS code (system %s)", ODSSystem)
	case !strings.EqualFold(requester, p.OrgID):
		add("forbidden", "ServiceRequest.requester",
			"the requester %s is not the practice this API key belongs to: a practice can only refer its own patients", requester)
	}
	if len(sr.Performer) > 0 {
		req.LinkWorkTeam = odsOf(&sr.Performer[0], resolve, 0)
		if req.LinkWorkTeam == "" {
			add("invalid", "ServiceRequest.performer[0]", "must identify a link-worker team by ODS code (system %s)", ODSSystem)
		}
	}

	for i, rc := range sr.ReasonCode {
		j := slices.IndexFunc(rc.Coding, func(c Coding) bool { return c.System == events.SNOMEDSystem })
		if j < 0 {
			add("code-invalid", fmt.Sprintf("ServiceRequest.reasonCode[%d]", i), "needs a SNOMED CT coding (system %s)", events.SNOMEDSystem)
			continue
		}
		req.Reasons = append(req.Reasons, rc.Coding[j].Code)
	}

	switch sr.Priority {
	case "", "routine":
		req.Urgency = "routine"
	case "urgent", "asap", "stat":
		req.Urgency = "urgent"
	default:
		add("code-invalid", "ServiceRequest.priority", "must be routine, urgent, asap or stat")
	}
	var notes []string
	for _, n := range sr.Note {
		if t := strings.TrimSpace(n.Text); t != "" {
			notes = append(notes, t)
		}
	}
	req.Notes = strings.Join(notes, "\n\n")

	// Consent to share with community organisations: absent means no, so
	// nothing is shared until the person has said yes to the link worker.
	share := false
	for _, e := range sr.Extension {
		if e.URL == ConsentExtension && e.ValueBoolean != nil {
			share = *e.ValueBoolean
		}
	}
	consents := append([]json.RawMessage(nil), sr.Contained...)
	for _, ref := range sr.SupportingInfo {
		if raw, ok := resolve(ref.Reference); ok {
			consents = append(consents, raw)
		}
	}
	for _, raw := range consents {
		var c Organization
		if resourceType(raw) == "Consent" && json.Unmarshal(raw, &c) == nil && c.Status == "active" {
			share = true
		}
	}
	req.Consent = &ConsentRequest{ShareWithVCS: &share}

	for _, e := range s.checker(pat != nil).check(req) {
		code := "invalid"
		if strings.Contains(e.Message, "required") {
			code = "required"
		}
		if e.Field == "reasons" {
			code = "code-invalid"
		}
		issues = append(issues, Issue{Severity: "error", Code: code, Diagnostics: fhirMessage(e), Expression: []string{fhirPath(e.Field, patientExpr)}})
	}
	// Every problem is reported at once, so a sender can fix them in one go.
	// A request whose only fault is being sent for another practice is
	// forbidden (403); with anything else wrong it is invalid (400).
	if len(issues) > 0 {
		code := events.CodePermissionDenied
		if slices.ContainsFunc(issues, func(is Issue) bool { return is.Code != "forbidden" }) {
			code = events.CodeInvalid
		}
		return nil, &outcomeError{Code: code, Issues: dedupe(issues)}
	}
	return req, nil
}

// fhirPath names the FHIR element of a JSON field.
func fhirPath(field, patientExpr string) string {
	switch field {
	case "source_id":
		return "ServiceRequest.identifier"
	case "patient.nhs_number":
		return patientExpr
	case "patient.given_name":
		return "Patient.name.given"
	case "patient.family_name":
		return "Patient.name.family"
	case "patient.birth_date":
		return "Patient.birthDate"
	case "patient.sex":
		return "Patient.gender"
	case "patient.postcode":
		return "Patient.address.postalCode"
	case "patient.phone", "patient.email":
		return "Patient.telecom"
	case "reasons":
		return "ServiceRequest.reasonCode"
	case "notes":
		return "ServiceRequest.note"
	case "link_work_team":
		return "ServiceRequest.performer"
	case "urgency":
		return "ServiceRequest.priority"
	}
	return "ServiceRequest"
}

func fhirMessage(e *events.Error) string {
	switch e.Field {
	case "patient.nhs_number":
		return "the NHS number " + e.Message
	case "reasons":
		return strings.Replace(e.Message, "reasons", "reasonCode", 1)
	case "link_work_team":
		return "the performer " + e.Message
	case "source_id":
		return "an identifier with the referring system's own referral id is required"
	}
	return e.Message
}

func dedupe(issues []Issue) []Issue {
	var out []Issue
	for _, is := range issues {
		if !slices.ContainsFunc(out, func(o Issue) bool {
			return slices.Equal(o.Expression, is.Expression) && o.Diagnostics == is.Diagnostics
		}) {
			out = append(out, is)
		}
	}
	return out
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

func (s *Service) postServiceRequest(w http.ResponseWriter, r *http.Request, p api.Principal) (err error) {
	created := false
	defer func() { s.metrics.count("fhir", created, err) }()
	var sr ServiceRequest
	if err := readFHIR(w, r, "ServiceRequest", &sr); err != nil {
		return err
	}
	req, err := s.intake(&sr, containedResolver(sr.Contained), "", p)
	if err != nil {
		return err
	}
	out, created, err := s.referFHIR(r.Context(), p, req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/fhir/R4/ServiceRequest/"+out.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeFHIR(w, status, out)
	return nil
}

// referFHIR records a checked referral and returns it as a ServiceRequest.
func (s *Service) referFHIR(ctx context.Context, p api.Principal, req *ReferralRequest) (*ServiceRequest, bool, error) {
	v, created, err := s.refer(ctx, p, req, "gp")
	if err != nil {
		return nil, false, err
	}
	sr, err := s.serviceRequest(ctx, p, v.JourneyID)
	return sr, created, err
}

// journeyOf loads a journey the practice referred, or not_found.
// It returns the journey's state and history, when it was referred and
// when it last changed.
func (s *Service) journeyOf(ctx context.Context, p api.Principal, id string) (st events.State, hist []journal.Recorded, authored, updated time.Time, err error) {
	if err := events.ParseID(id); err != nil {
		return st, nil, authored, updated, err
	}
	st, hist, err = s.d.Store.Load(ctx, id)
	if err != nil {
		return st, nil, authored, updated, err
	}
	if !st.Exists() || st.Referral.GetReferrerOrganisationId() != p.OrgID || len(hist) == 0 {
		return events.State{}, nil, authored, updated, events.ErrNotFound
	}
	return st, hist, hist[0].Event.GetOccurredAt().AsTime(), hist[len(hist)-1].Event.GetRecordedAt().AsTime(), nil
}

func (s *Service) serviceRequest(ctx context.Context, p api.Principal, id string) (*ServiceRequest, error) {
	st, _, authored, updated, err := s.journeyOf(ctx, p, id)
	if err != nil {
		return nil, err
	}
	rr := st.Referral
	sr := &ServiceRequest{
		ResourceType: "ServiceRequest", ID: id,
		Meta: &Meta{LastUpdated: fhirTime(updated), Profile: []string{"https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"}},
		Identifier: []Identifier{
			{System: SourceIDSystem + "/" + rr.GetReferrerOrganisationId(), Value: rr.GetSourceId()},
			{System: JourneyIDSystem, Value: id},
		},
		Status: "active", Intent: "order", Priority: rr.GetUrgency(),
		Code: &CodeableConcept{Coding: []Coding{{System: events.SNOMEDSystem, Code: events.CodeReferredToSocialPrescribing,
			Display: s.term(s.terms.WriteBack, events.CodeReferredToSocialPrescribing)}}},
		AuthoredOn: fhirTime(authored),
		Requester:  s.orgRef(rr.GetReferrerOrganisationId()),
		Performer:  []Reference{*s.orgRef(rr.GetLinkWorkTeam())},
	}
	switch st.Status() {
	case events.StatusClosed:
		sr.Status = "completed"
	case events.StatusDeclined:
		sr.Status = "revoked"
	}
	if st.Erased {
		// Erased: the request stays, the person does not.
		sr.Subject = &Reference{Display: "personal data erased"}
	} else {
		pd := rr.GetPerson()
		sr.Subject = &Reference{Identifier: &Identifier{System: NHSNumberSystem, Value: pd.GetNhsNumber()},
			Display: strings.TrimSpace(pd.GetGivenName() + " " + pd.GetFamilyName())}
		if t := rr.GetNotes().GetText(); t != "" {
			sr.Note = []Annotation{{Text: t}}
		}
	}
	for _, r := range rr.GetReasons() {
		sr.ReasonCode = append(sr.ReasonCode, CodeableConcept{Coding: []Coding{{System: events.SNOMEDSystem, Code: r, Display: s.term(s.terms.Reasons, r)}}})
	}
	return sr, nil
}

func (s *Service) term(vs *events.ValueSet, code string) string {
	c, _ := vs.Get(code)
	return c.Term
}

func (s *Service) orgRef(ods string) *Reference {
	ref := &Reference{Identifier: &Identifier{System: ODSSystem, Value: ods}}
	if o, ok := s.d.Orgs.Get(ods); ok {
		ref.Display = o.Name
	}
	return ref
}

func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Service) getServiceRequest(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	sr, err := s.serviceRequest(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeFHIR(w, http.StatusOK, sr)
	return nil
}

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

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir/R4"
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

func (s *Service) getTask(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	t, err := s.task(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeFHIR(w, http.StatusOK, t)
	return nil
}

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
	Identifier string `json:"identifier"`
	Code       string `json:"code"`
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
	req, reqID, err := s.messageIntake(&b, p)
	if err != nil {
		return err
	}
	out, created, err := s.referFHIR(r.Context(), p, req)
	if err != nil {
		return err
	}
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
	hdrJSON, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	resp := Bundle{ResourceType: "Bundle", ID: events.NewID(), Type: "message", Timestamp: fhirTime(s.now()),
		Entry: []BundleEntry{{FullURL: "urn:uuid:" + hdrID, Resource: hdrJSON}, {FullURL: srURL, Resource: srJSON}}}
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
func (s *Service) messageIntake(b *messageBundle, p api.Principal) (*ReferralRequest, string, error) {
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
	req, err := s.intake(&sr, both, odsOf(mh.Sender, resolve, 0), p)
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
