package api_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"linkway/events"
	"linkway/services/platform/api"
)

// TestDuplicateKeys: a key given twice, at any depth, is found and named;
// the same name in different objects is not a duplicate.
func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct {
		body, path string
	}{
		{`{"a":1,"a":2}`, "a"},
		{`{"a":1,"b":{"c":1,"c":2}}`, "b.c"},
		{`{"patient":{"nhs_number":"1","given_name":"x","nhs_number":"2"}}`, "patient.nhs_number"},
		{`{"goals":[{"text":"a"},{"text":"b","text":"c"}]}`, "goals[1].text"},
		{`{"a":[[{"x":1}],[{"y":1,"y":2}]]}`, "a[1][0].y"},
		{`{"notes":"a","Notes":"b"}`, "Notes"},                         // encoding/json folds case
		{`{"a":{"b":1},"c":[1,2,{"d":[]}],"c":3}`, "c"},                // after nested values
		{`[{"k":1},{"k":1,"k":1}]`, "[1].k"},                           // a top-level array
		{`{"s":"{\"a\":1,\"a\":2}","s":1}`, "s"},                       // JSON in a string is a string
		{`{"":1,"":2}`, ""},                                            // the empty key too
		{`{"a":{"a":{"a":1}},"b":{"a":1,"b":{"a":1,"a":2}}}`, "b.b.a"}, // deep
	} {
		path, found := api.DuplicateKey([]byte(tc.body))
		if !found || path != tc.path {
			t.Errorf("%s: got %q %v, want %q", tc.body, path, found, tc.path)
		}
		var e *events.Error
		if err := api.RejectDuplicateKeys([]byte(tc.body)); !errors.As(err, &e) || e.Code != events.CodeInvalid || e.Field != tc.path {
			t.Errorf("%s: RejectDuplicateKeys = %v, want invalid_argument on %q", tc.body, err, tc.path)
		}
	}
	for _, ok := range []string{
		`{}`, `[]`, `1`, `"x"`, `null`,
		`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}`,
		`{"a":{"x":1},"b":{"x":1}}`,
		`{"a":"a","b":"a"}`,      // equal values are not keys
		`{"a":1,"b"`,             // not JSON: left to the decoder
		`{"a":[1,2,3],"b":[{}]}`, // arrays of scalars and empty objects
	} {
		if path, found := api.DuplicateKey([]byte(ok)); found {
			t.Errorf("%s: found a duplicate at %q", ok, path)
		}
	}
}

// TestUnmarshalRefusesDuplicateKeys: the one decode path of JSON routes
// refuses a duplicated key before anything is decoded.
func TestUnmarshalRefusesDuplicateKeys(t *testing.T) {
	var v struct {
		Patient struct {
			NHSNumber string `json:"nhs_number"`
		} `json:"patient"`
	}
	err := api.Unmarshal([]byte(`{"patient":{"nhs_number":"9434765919","nhs_number":"9000000009"}}`), &v)
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeInvalid || e.Field != "patient.nhs_number" {
		t.Fatalf("Unmarshal = %v, want invalid_argument on patient.nhs_number", err)
	}
	if v.Patient.NHSNumber != "" {
		t.Errorf("decoded %q from a refused body", v.Patient.NHSNumber)
	}
	if !strings.Contains(e.Message, "more than once") {
		t.Errorf("message %q does not say what is wrong", e.Message)
	}
}

// BenchmarkDuplicateKey: the check on a 64 KiB body (the default limit);
// BenchmarkJSONValid beside it is the cost of one encoding/json pass over
// the same body.
func BenchmarkDuplicateKey(b *testing.B) {
	body := bigBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, found := api.DuplicateKey(body); found {
			b.Fatal("found a duplicate")
		}
	}
}

func BenchmarkJSONValid(b *testing.B) {
	body := bigBody()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("not valid")
		}
	}
}

func bigBody() []byte {
	var sb strings.Builder
	sb.WriteString(`{"items":[`)
	for i := 0; sb.Len() < 64<<10; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"name":"Jane Doe","phone":"07700 900123","n":12345,"ok":true}`)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// TestLenientDecodingRefusesDuplicateKeys: FHIR bodies, decoded leniently,
// are refused too.
func TestLenientDecodingRefusesDuplicateKeys(t *testing.T) {
	var v map[string]any
	err := api.UnmarshalLenient([]byte(`{"resourceType":"ServiceRequest","subject":{"identifier":{"value":"1","value":"2"}}}`), &v)
	var e *events.Error
	if !errors.As(err, &e) || e.Code != events.CodeInvalid || e.Field != "subject.identifier.value" {
		t.Fatalf("UnmarshalLenient = %v, want invalid_argument on subject.identifier.value", err)
	}
}
