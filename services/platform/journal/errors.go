package journal

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
)

var (
	// errChainBroken fails a command decided on an earlier command of
	// this process on the same journey that did not land: it is decided
	// again.
	errChainBroken = errors.New("a command queued before it on the journey did not land")
	// errDuplicate is a plain publish answered as a duplicate: an earlier
	// round of the same request had landed.
	errDuplicate = errors.New("the message id was already stored")
)

// jsErrDuplicateInProcess is "duplicate message id is in process" (a
// replicated stream proposing the same id at that moment).
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

// IsConflict reports a failed expected-last-subject-sequence check: 10071
// on one server, 10164 on replicated streams.
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// retryable errors send Execute back to reload, decide and append again.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	return IsConflict(err) || errors.Is(err, errChainBroken) || errors.Is(err, errDuplicate) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrDuplicateInProcess
}

// unavailable is a 503 whose cause is kept for the log: the caller is told
// what, the operator why.
func unavailable(what string, cause error) error {
	return fmt.Errorf("%w: %w", &events.Error{Code: events.CodeUnavailable, Message: what}, cause)
}

// explain turns a failure to read or append a journey into what the caller
// is told, keeping the cause for the log: 503 only when the log cannot be
// reached or cannot store now; a refusal we did not expect is a bug (500).
func explain(journeyID string, err error) error {
	var e *events.Error
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &e), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &apiErr):
		if apiErr.Code >= 500 || apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound ||
			apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled {
			return unavailable("the event log cannot store or read now", fmt.Errorf("journey %s: %w", journeyID, err))
		}
		return fmt.Errorf("journey %s: the event log refused: %w", journeyID, err)
	}
	// Anything else stood between us and the server: a timeout, no
	// responders, a closed or reconnecting connection.
	return unavailable("the event log is unavailable", fmt.Errorf("journey %s: %w", journeyID, err))
}
