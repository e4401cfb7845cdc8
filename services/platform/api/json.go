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

// DecodeJSON strictly decodes a request body of at most limit bytes into v:
// unknown fields, trailing data and wrong types are invalid_argument naming
// the field; a body over the limit is too_large.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &events.Error{Code: events.CodeTooLarge, Message: fmt.Sprintf("the body is over %d bytes", limit)}
		}
		return &events.Error{Code: events.CodeInvalid, Message: "the body could not be read"}
	}
	return Unmarshal(body, v)
}

// Unmarshal strictly decodes JSON into v, naming the offending field.
func Unmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &events.Error{Code: events.CodeInvalid, Message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
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
