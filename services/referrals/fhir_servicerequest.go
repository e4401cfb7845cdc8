package referrals

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// ServiceRequest: a practice's referral in (intake and create) and read back.

// intake turns a FHIR ServiceRequest into a checked referral, or the
// issues that stop it. senderODS is the message sender's ODS code, the
// requester when the ServiceRequest names only a Practitioner (BaRS).
func (s *Service) intake(sr *ServiceRequest, resolve resolver, senderODS string, p api.Principal, teams []string) (*ReferralRequest, error) {
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
		for i, e := range pat.Extension {
			if e.URL != EthnicCategoryExtension {
				continue
			}
			var code string
			if e.ValueCodeableConcept != nil {
				for _, c := range e.ValueCodeableConcept.Coding {
					if c.System == EthnicCategorySystem {
						code = c.Code
					}
				}
			}
			if code == "" {
				add("code-invalid", fmt.Sprintf("Patient.extension[%d]", i),
					"the ethnic category needs a valueCodeableConcept coded in %s", EthnicCategorySystem)
			}
			req.Patient.Ethnicity = code
		}
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

	for _, e := range s.checker(pat != nil, teams).check(req) {
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
	case "patient.ethnicity":
		return "Patient.extension"
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

func (s *Service) postServiceRequest(w http.ResponseWriter, r *http.Request, p api.Principal) (err error) {
	created := false
	defer func() { s.metrics.count("fhir", created, err) }()
	var sr ServiceRequest
	if err := readFHIR(w, r, "ServiceRequest", &sr); err != nil {
		return err
	}
	source, teams, err := s.referrer(p)
	if err != nil {
		return err
	}
	req, err := s.intake(&sr, containedResolver(sr.Contained), "", p, teams)
	if err != nil {
		return err
	}
	ans, err := s.refer(r.Context(), p, req, source)
	if err != nil {
		return err
	}
	created = ans.created
	out := s.serviceRequest(ans.rec, ans.pd)
	w.Header().Set("Location", "/fhir/R4/ServiceRequest/"+out.ID)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	warnings := warningOutcome(ans.warnings)
	if warnings != nil && preferOutcome(r) {
		// Prefer: return=OperationOutcome (FHIR RESTful API): the outcome
		// of the create, its warnings included, instead of the resource.
		warnings.Issue = append([]Issue{{Severity: "information", Code: "informational",
			Diagnostics: "ServiceRequest/" + out.ID + " recorded"}}, warnings.Issue...)
		writeFHIR(w, status, warnings)
		return nil
	}
	if warnings != nil {
		out.attachWarnings(warnings)
	}
	// The answer names the patient (NHS number, name, notes): audited as a read.
	if err := s.cfg.Audit.Journey(r.Context(), p, r.Pattern, out.ID); err != nil {
		return err
	}
	writeFHIR(w, status, out)
	return nil
}

// preferOutcome reports whether the client asked for the outcome of a
// write rather than the resource (Prefer: return=OperationOutcome).
func preferOutcome(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(part), " ", ""), "return=OperationOutcome") {
				return true
			}
		}
	}
	return false
}

// warningOutcome is an OperationOutcome of warnings (nil for none).
func warningOutcome(warnings []string) *OperationOutcome {
	if len(warnings) == 0 {
		return nil
	}
	oo := &OperationOutcome{ResourceType: "OperationOutcome"}
	for _, w := range warnings {
		oo.Issue = append(oo.Issue, Issue{Severity: "warning", Code: "business-rule", Diagnostics: w,
			Expression: []string{"ServiceRequest.priority"}})
	}
	return oo
}

// attachWarnings puts the warnings beside the ServiceRequest: a contained
// OperationOutcome that the WarningExtension points to (a contained
// resource must be referenced from its container).
func (sr *ServiceRequest) attachWarnings(oo *OperationOutcome) {
	c := *oo
	c.ID = "warnings"
	raw, err := json.Marshal(c)
	if err != nil {
		return // cannot happen: plain strings
	}
	sr.Contained = append(sr.Contained, raw)
	sr.Extension = append(sr.Extension, Extension{URL: WarningExtension, ValueReference: &Reference{Reference: "#warnings"}})
}

// serviceRequest renders a referral as a UK Core ServiceRequest, from the
// referrer's record and the person's data (gone once erased).
func (s *Service) serviceRequest(rec record, pd personal) *ServiceRequest {
	id := rec.JourneyID
	sr := &ServiceRequest{
		ResourceType: "ServiceRequest", ID: id,
		Meta: &Meta{LastUpdated: fhirTime(rec.RecordedAt), Profile: []string{"https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest"}},
		Identifier: []Identifier{
			{System: SourceIDSystem + "/" + rec.Org, Value: rec.SourceID},
			{System: JourneyIDSystem, Value: id},
		},
		Status: rec.Workflow.Request, Intent: "order", Priority: rec.Urgency,
		Code: &CodeableConcept{Coding: []Coding{{System: events.SNOMEDSystem, Code: events.CodeReferredToSocialPrescribing,
			Display: s.term(s.terms.WriteBack, events.CodeReferredToSocialPrescribing)}}},
		AuthoredOn: fhirTime(rec.CreatedAt),
		Requester:  s.orgRef(rec.Org),
		Performer:  []Reference{*s.orgRef(rec.LinkWorkTeam)},
	}
	if rec.Erased {
		// Erased: the request stays, the person does not.
		sr.Subject = &Reference{Display: "personal data erased"}
	} else {
		sr.Subject = &Reference{Identifier: &Identifier{System: NHSNumberSystem, Value: pd.NHSNumber},
			Display: strings.TrimSpace(pd.GivenName + " " + pd.FamilyName)}
		if pd.Notes != "" {
			sr.Note = []Annotation{{Text: pd.Notes}}
		}
	}
	for _, c := range rec.Reasons {
		sr.ReasonCode = append(sr.ReasonCode, CodeableConcept{Coding: []Coding{{System: events.SNOMEDSystem, Code: c.ID, Display: c.Term}}})
	}
	return sr
}

// readServiceRequest answers GET /fhir/R4/ServiceRequest/{id}.
func (s *Service) readServiceRequest(ctx context.Context, p api.Principal, id string) (*ServiceRequest, error) {
	rec, pd, err := s.lookup(ctx, p.OrgID, id, true)
	if err != nil {
		return nil, err
	}
	return s.serviceRequest(rec, pd), nil
}
