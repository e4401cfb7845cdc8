package hub_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	lwproto "linkway/proto"
	"linkway/services/linkway/hubtest"
)

// TestOpenAPIServedByEveryProcess: /openapi.yaml is the hub's, so a
// process running one party (`linkway serve vcs`, `serve admin`), or none,
// answers it with the embedded document, without a key.
func TestOpenAPIServedByEveryProcess(t *testing.T) {
	for _, only := range [][]string{{"vcs"}, {"admin"}, {}} {
		t.Run(strings.Join(append([]string{"services"}, only...), "-"), func(t *testing.T) {
			h := hubtest.Start(t, hubtest.Services(only...))
			st, hdr, body := h.Request("GET", "/openapi.yaml", "", nil)
			if st != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), "yaml") {
				t.Fatalf("GET /openapi.yaml with services %v: %d %s", only, st, hdr.Get("Content-Type"))
			}
			if !bytes.Equal(body, lwproto.OpenAPI) || !bytes.HasPrefix(body, []byte("openapi: 3.1")) {
				t.Errorf("GET /openapi.yaml is not proto/openapi.yaml (%d bytes, %.30q)", len(body), body)
			}
		})
	}
}
