package api_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"linkway/events"
	"linkway/services/platform/api"
)

func TestIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		ok        bool
	}{
		{"none", "", true},
		{"short", "retry-123", true},
		{"at the limit", strings.Repeat("k", api.MaxIdempotencyKey), true},
		{"over the limit", strings.Repeat("k", api.MaxIdempotencyKey+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/x", nil)
			if tc.key != "" {
				r.Header.Set("Idempotency-Key", tc.key)
			}
			got, err := api.IdempotencyKey(r)
			if tc.ok {
				if err != nil || got != tc.key {
					t.Fatalf("IdempotencyKey = %q, %v; want %q, nil", got, err, tc.key)
				}
				return
			}
			var e *events.Error
			if !errors.As(err, &e) || e.Code != events.CodeInvalid || e.Field != "Idempotency-Key" {
				t.Fatalf("IdempotencyKey = %q, %v; want invalid_argument naming Idempotency-Key", got, err)
			}
		})
	}
}
