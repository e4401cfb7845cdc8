package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"linkway/events"
)

// DefaultBodyLimit bounds every JSON request body unless a route says less.
const DefaultBodyLimit = 64 << 10

// ReadBody reads a request body of at most limit bytes: the one place a
// body is read, whatever its format. Over the limit is too_large.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &events.Error{Code: events.CodeTooLarge, Message: fmt.Sprintf("the body is over %d bytes", limit)}
		}
		return nil, &events.Error{Code: events.CodeInvalid, Message: "the body could not be read"}
	}
	return body, nil
}

// MaxIdempotencyKey bounds an Idempotency-Key header (openapi.yaml's
// maxLength).
const MaxIdempotencyKey = 200

// IdempotencyKey is the request's Idempotency-Key header ("" when none
// was sent): the one place the header is read and checked. A key over
// MaxIdempotencyKey characters is invalid_argument naming the header.
func IdempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > MaxIdempotencyKey {
		return "", events.Invalid("Idempotency-Key", "must be at most %d characters", MaxIdempotencyKey)
	}
	return key, nil
}

// DecodeJSON strictly decodes a request body of at most limit bytes into v:
// unknown fields, trailing data and wrong types are invalid_argument naming
// the field; a body over the limit is too_large.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// Unmarshal strictly decodes JSON into v, naming the offending field.
func Unmarshal(body []byte, v any) error {
	if err := decode(body, v, true); err != nil {
		return jsonError(err)
	}
	return nil
}

// UnmarshalLenient decodes JSON into v, ignoring members v does not have:
// for FHIR, whose resources carry much that Linkway does not read. Its
// errors are *events.Error or encoding/json's own, for the caller to
// describe in its format (an OperationOutcome).
func UnmarshalLenient(body []byte, v any) error { return decode(body, v, false) }

// decode is the one JSON decoding of request bodies, strict (the JSON
// routes: unknown fields and trailing values refused) or lenient (FHIR: as
// encoding/json.Unmarshal). A rule about JSON itself belongs here. Its
// errors are *events.Error or encoding/json's.
func decode(body []byte, v any, strict bool) error {
	// Strict JSON (API.md), FHIR included: a key given twice is refused
	// before anything is decoded.
	if err := RejectDuplicateKeys(body); err != nil {
		return err
	}
	if !strict {
		return json.Unmarshal(body, v)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return &events.Error{Code: events.CodeInvalid, Message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var e *events.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &typeErr):
		field := typeErr.Field
		return events.Invalid(field, "must be a %s", jsonType(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return &events.Error{Code: events.CodeInvalid, Message: "the body is not valid JSON"}
	case errors.Is(err, io.EOF):
		return &events.Error{Code: events.CodeInvalid, Message: "the body is empty"}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return events.Invalid(name, "unknown field %q", name)
	}
	return &events.Error{Code: events.CodeInvalid, Message: "the body is not valid JSON for this route"}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map":
		return "object"
	}
	return "number"
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // the client went away: nothing more to do
}
