package referrals

import (
	"errors"
	"net/http"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// OperationOutcome: how the FHIR routes answer a refusal or a failure.

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
