package events

import (
	"errors"
	"fmt"
)

// Code is the kind of an error, as the outside contract names it. The one
// place that turns a Code into an HTTP status or a FHIR issue type is the
// api package; everything else only chooses the code.
type Code string

// The error kinds of API.md.
const (
	CodeInvalid            Code = "invalid_argument"    // 400: the request is wrong; Field says where
	CodeUnauthenticated    Code = "unauthenticated"     // 401: no key or an unknown key
	CodePermissionDenied   Code = "permission_denied"   // 403: the key's kind may not do this
	CodeNotFound           Code = "not_found"           // 404: no such thing, or not the caller's
	CodeFailedPrecondition Code = "failed_precondition" // 409: the journey's state does not allow it
	CodeTooLarge           Code = "too_large"           // 413: body over the route's limit
	CodeTooManyRequests    Code = "too_many_requests"   // 429: the key's rate limit is spent
	CodeUnavailable        Code = "unavailable"         // 503: NATS or a projection is not ready
	CodeInternal           Code = "internal"            // 500: a bug; the message is never shown
)

// Error is Linkway's one error type. Message is safe to show the caller: it
// never holds personal data or another organisation's data.
type Error struct {
	Code    Code
	Message string
	// Field names the offending input in dotted form (patient.nhs_number).
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an invalid_argument error naming field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrNotFound is returned when a journey, referral or view entry does not
// exist or does not belong to the caller; callers cannot tell which.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
