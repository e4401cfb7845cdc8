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
	"linkway/services/platform/api"
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
	// EthnicCategoryExtension is UK Core's extension for a Patient's ethnic
	// category, coded in EthnicCategorySystem (the NHS Data Dictionary
	// ETHNIC CATEGORY codes for England: A-H, J-N, P, R, S, Z, 99).
	EthnicCategoryExtension = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
	EthnicCategorySystem    = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
	// WarningExtension points from an answer to the OperationOutcome it
	// contains, which holds what the referrer should know of how the
	// referral was taken (an urgent one: link workers are not a crisis
	// service).
	WarningExtension = "https://linkway.example.org/fhir/StructureDefinition/processing-warning"
	barsEvents       = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
	barsCategory     = "https://fhir.nhs.uk/CodeSystem/message-category-servicerequest"
	fhirContentType  = "application/fhir+json; charset=utf-8"
	// fhirBodyLimit is larger than the JSON routes': FHIR is verbose and a
	// BaRS bundle with its Organizations and Practitioners runs to tens of KiB.
	fhirBodyLimit = 256 << 10
)

func (s *Service) routesFHIR() {
	h := s.cfg.HTTP
	h.HandlePublic("POST /fhir/R4/ServiceRequest", s.fhirRoute(s.postServiceRequest))
	h.HandlePublic("GET /fhir/R4/ServiceRequest/{id}", s.fhirRoute(fhirRead(s.cfg.Audit, s.readServiceRequest)))
	h.HandlePublic("GET /fhir/R4/Task", s.fhirRoute(s.searchTasks))
	h.HandlePublic("GET /fhir/R4/Task/{id}", s.fhirRoute(fhirRead(s.cfg.Audit, s.readTask)))
	h.HandlePublic("POST /fhir/R4/$process-message", s.fhirRoute(s.processMessage))
	h.HandlePublic("GET /fhir/R4/metadata", http.HandlerFunc(s.metadata))
}

// fhirRoute authenticates and rate-limits like api.Server.Handle (Bearer key, kind gp or
// referrer) but answers every error, including 401 and 403, as an OperationOutcome.
func (s *Service) fhirRoute(h api.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.cfg.HTTP.Authenticate(r)
		if err == nil && !slices.Contains(referrers, p.Kind) {
			err = &events.Error{Code: events.CodePermissionDenied, Message: "a " + string(p.Kind) + " key may not call this route"}
		}
		if err == nil {
			err = s.cfg.HTTP.Admit(w, p) // the key's rate limit, as on every JSON route
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeOutcome(w, r, err)
		}
	})
}

// fhirRead answers a read (GET .../{id}) with the resource get builds for
// the calling practice. The resource names the patient (NHS number):
// the read is audited, as on the JSON routes.
func fhirRead[T any](audit Auditor, get func(ctx context.Context, p api.Principal, id string) (T, error)) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p api.Principal) error {
		v, err := get(r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		if err := audit.Journey(r.Context(), p, r.Pattern, r.PathValue("id")); err != nil {
			return err
		}
		writeFHIR(w, http.StatusOK, v)
		return nil
	}
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
	body, err := api.ReadBody(w, r, fhirBodyLimit)
	if err != nil {
		return err
	}
	if err := api.UnmarshalLenient(body, v); err != nil {
		var e *events.Error
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &e) { // a refusal of api's decoding, already in words
			return e
		}
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

func (s *Service) term(vs *events.ValueSet, code string) string {
	c, _ := vs.Get(code)
	return c.Term
}

func (s *Service) orgRef(ods string) *Reference {
	ref := &Reference{Identifier: &Identifier{System: ODSSystem, Value: ods}}
	if o, ok := s.cfg.Orgs.Get(ods); ok {
		ref.Display = o.Name
	}
	return ref
}

func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// baseURL is the FHIR base of links in answers: the hub's public URL
// (--public-url, else its listen address), never the request's Host
// header, which the caller chooses.
func baseURL(r *http.Request) string { return api.PublicURL(r) + "/fhir/R4" }
