package api

import (
	"context"
	"errors"
	"net/http"

	"linkway/events"
)

// How an error code is answered on the wire, decided once for every route:
// its HTTP status, and its FHIR issue type for the routes that answer in
// OperationOutcomes. The JSON routes (WriteError) and the FHIR adapter
// both ask here; they only render the body.
type answer struct {
	status    int
	issueType string
}

// CodeMethodNotAllowed answers a request whose path is a route that does
// not take its method (405, with Allow listing those it takes). API.md's
// table has no code for it, and it is no error of a journey's, so it is
// the HTTP layer's own code rather than one of events'.
const CodeMethodNotAllowed events.Code = "method_not_allowed"

var answers = map[events.Code]answer{
	events.CodeInvalid:            {http.StatusBadRequest, "invalid"},
	events.CodeUnauthenticated:    {http.StatusUnauthorized, "login"},
	events.CodePermissionDenied:   {http.StatusForbidden, "forbidden"},
	events.CodeNotFound:           {http.StatusNotFound, "not-found"},
	CodeMethodNotAllowed:          {http.StatusMethodNotAllowed, "not-supported"},
	events.CodeFailedPrecondition: {http.StatusConflict, "business-rule"},
	events.CodeTooLarge:           {http.StatusRequestEntityTooLarge, "too-costly"},
	events.CodeTooManyRequests:    {http.StatusTooManyRequests, "transient"},
	events.CodeUnavailable:        {http.StatusServiceUnavailable, "transient"},
}

// internalAnswer is the answer to events.CodeInternal and to any code the
// table does not know: a bug.
var internalAnswer = answer{http.StatusInternalServerError, "exception"}

func answerOf(code events.Code) answer {
	if a, ok := answers[code]; ok {
		return a
	}
	return internalAnswer
}

// Status is the HTTP status of an error code: the one place that says so.
func Status(code events.Code) int { return answerOf(code).status }

// IssueType is the FHIR issue type (OperationOutcome.issue.code) of an
// error code, beside its status so the two cannot drift apart.
func IssueType(code events.Code) string { return answerOf(code).issueType }

// retryable codes are answered with Retry-After: the caller may try again.
func retryable(code events.Code) bool {
	return code == events.CodeUnavailable || code == events.CodeTooManyRequests
}

// Public returns what the caller may be told of err: the *Error itself, or
// for anything else (a bug) an internal error with no detail.
func Public(err error) *events.Error {
	var e *events.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &events.Error{Code: events.CodeUnavailable, Message: "the request timed out"}
	}
	return &events.Error{Code: events.CodeInternal, Message: "internal error"}
}

// Failure is how an error is answered, whatever the body's format.
type Failure struct {
	// Public is what the caller may be told.
	Public *events.Error
	// Status is the HTTP status of its code.
	Status int
	// IssueType is the FHIR issue type of its code.
	IssueType string
}

// Fail decides how err is answered: what the caller may be told, with which
// status. It sets Retry-After on a retryable answer (unless the rate limit
// already did) and logs a failure of ours (5xx) in full, which the caller is
// never shown. The caller writes the status and the body in its format.
func (s *Server) Fail(w http.ResponseWriter, r *http.Request, err error) Failure {
	pub := Public(err)
	a := answerOf(pub.Code)
	if a.status >= 500 {
		s.log.Error("request failed", "method", r.Method, "route", r.Pattern, "status", a.status, "err", err)
	}
	if retryable(pub.Code) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	return Failure{Public: pub, Status: a.status, IssueType: a.issueType}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    events.Code `json:"code"`
	Message string      `json:"message"`
	Field   string      `json:"field,omitempty"`
}

// WriteError answers with the JSON error shape of API.md. What is logged
// (the full error, for a bug) is kept apart from what the client is told.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	f := s.Fail(w, r, err)
	WriteJSON(w, f.Status, errorBody{Error: errorDetail{Code: f.Public.Code, Message: f.Public.Message, Field: f.Public.Field}})
}
