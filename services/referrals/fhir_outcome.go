package referrals

import (
	"errors"
	"net/http"
	"strings"

	"linkway/events"
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
	ID           string  `json:"id,omitempty"`
	Issue        []Issue `json:"issue"`
}

// outcomeError is a refusal with several issues; Code decides the status.
type outcomeError struct {
	Code   events.Code
	Issues []Issue
}

func (e *outcomeError) Error() string { return string(e.Code) + ": " + e.diagnostics() }

// Unwrap gives the refusal as the *events.Error every other part reads, so
// its code is answered like any other's (api.Fail).
func (e *outcomeError) Unwrap() error { return &events.Error{Code: e.Code, Message: e.diagnostics()} }

func (e *outcomeError) diagnostics() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(strings.Join(is.Expression, ",") + ": " + is.Diagnostics)
	}
	return b.String()
}

// writeOutcome answers err as an OperationOutcome. The status, the issue
// type, Retry-After and the logging of a failure of ours are the api
// package's (the same as the JSON routes'); this only renders the body.
func (s *Service) writeOutcome(w http.ResponseWriter, r *http.Request, err error) {
	f := s.cfg.HTTP.Fail(w, r, err)
	var oe *outcomeError
	if errors.As(err, &oe) {
		writeFHIR(w, f.Status, OperationOutcome{ResourceType: "OperationOutcome", Issue: oe.Issues})
		return
	}
	is := Issue{Severity: "error", Code: f.IssueType, Diagnostics: f.Public.Message}
	if f.Public.Field != "" {
		is.Expression = []string{f.Public.Field}
	}
	writeFHIR(w, f.Status, OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{is}})
}
