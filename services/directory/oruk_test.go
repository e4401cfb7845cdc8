package directory_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"linkway/events"
	"linkway/services/directory"
	"linkway/services/linkway/hubtest"
)

// orukDir is shared/oruk beside the repository root: the ORUK 3.0 schemas
// are read from there, never copied into the project. A clone elsewhere
// (CI's clean checkout) finds them beside the repository it was cloned
// from; LINKWAY_ORUK_DIR names them outright.
func orukDir(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, oruk := range orukCandidates(t) {
		if _, err := os.Stat(filepath.Join(oruk, "schema-service.json")); err == nil {
			return oruk
		}
		tried = append(tried, oruk)
	}
	t.Fatalf("the ORUK schemas (schema-service.json) are expected in one of %v (or LINKWAY_ORUK_DIR)", tried)
	return ""
}

// orukCandidates are where the schemas may be, in order.
func orukCandidates(t *testing.T) []string {
	t.Helper()
	if dir := os.Getenv("LINKWAY_ORUK_DIR"); dir != "" {
		return []string{dir}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
	out := []string{filepath.Join(dir, "..", "shared", "oruk")}
	// A clone of a local repository: the shared folder beside that one.
	if origin, err := exec.Command("git", "-C", dir, "remote", "get-url", "origin").Output(); err == nil {
		if o := strings.TrimSpace(string(origin)); filepath.IsAbs(o) {
			out = append(out, filepath.Join(o, "..", "shared", "oruk"))
		}
	}
	return out
}

// orukSchemas compiles the ORUK documents' schemas: a full service, a
// service as listed, a taxonomy term, and pages of services and of
// taxonomies (the openapi Page, with every paging field required).
type orukSchemas struct {
	service, item, term, servicePage, taxonomyPage *jsonschema.Schema
}

func loadORUK(t *testing.T, assertFormat bool) orukSchemas {
	t.Helper()
	dir := orukDir(t)
	c := jsonschema.NewCompiler()
	if assertFormat {
		c.AssertFormat()
	}
	load := func(file, url string) map[string]any {
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if url != "" {
			if err := c.AddResource(url, doc); err != nil {
				t.Fatal(err)
			}
		}
		return doc.(map[string]any)
	}
	load("schema-service.json", "file:///oruk/service.json")
	load("schema-service_list.json", "file:///oruk/service_list.json")
	openapi := load("schema-openapi.json", "")
	pageSchema := openapi["components"].(map[string]any)["schemas"].(map[string]any)["Page"]
	page := func(url, items string) {
		var itemSchema any = map[string]any{"$ref": items}
		if items == "" { // taxonomy.json is not among the copies: HSDS's required fields
			itemSchema = map[string]any{"type": "object", "required": []any{"id", "name", "description"},
				"properties": map[string]any{"id": map[string]any{"type": "string"}, "name": map[string]any{"type": "string"},
					"description": map[string]any{"type": "string"}}}
		}
		doc := map[string]any{
			"allOf":      []any{pageSchema},
			"required":   []any{"total_items", "total_pages", "page_number", "size", "first_page", "last_page", "empty", "contents"},
			"properties": map[string]any{"contents": map[string]any{"type": "array", "items": itemSchema}},
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	page("file:///oruk/service_page.json", "file:///oruk/service_list.json")
	page("file:///oruk/taxonomy_page.json", "")
	compile := func(url string) *jsonschema.Schema {
		s, err := c.Compile(url)
		if err != nil {
			t.Fatalf("compile %s: %v", url, err)
		}
		return s
	}
	return orukSchemas{
		service:      compile("file:///oruk/service.json"),
		item:         compile("file:///oruk/service_list.json"),
		term:         compile("file:///oruk/service.json#/properties/attributes/items/properties/taxonomy_term"),
		servicePage:  compile("file:///oruk/service_page.json"),
		taxonomyPage: compile("file:///oruk/taxonomy_page.json"),
	}
}

// readableIDs are the fields that carry the directory's readable ids
// (VCS001-walk, as API.md fixes them, and category ids) where ORUK asks
// for UUIDs: the one departure from the profile's formats.
var readableIDs = []string{"id", "organization_id", "service_id", "link_id", "taxonomy_term_id"}

// validate checks doc against s. Checked with formats asserted, it allows
// only uuid failures of readable-id fields.
func validate(t *testing.T, s *jsonschema.Schema, what string, body []byte, formats bool) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", what, err)
	}
	err = s.Validate(inst)
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !formats || !errors.As(err, &ve) {
		t.Errorf("%s does not validate: %v", what, err)
		return
	}
	for _, leaf := range leaves(ve) {
		f, ok := leaf.ErrorKind.(*kind.Format)
		loc := leaf.InstanceLocation
		if ok && f.Want == "uuid" && len(loc) > 0 && slices.Contains(readableIDs, loc[len(loc)-1]) {
			continue
		}
		t.Errorf("%s does not validate at %v: %v", what, loc, leaf.Error())
	}
}

func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// TestORUKSchemasBite makes sure the compiled schemas reject what they
// should, so that a pass below means something.
func TestORUKSchemasBite(t *testing.T) {
	s := loadORUK(t, false)
	ok, err := os.ReadFile(filepath.Join(orukDir(t), "example-service_full.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(ok))
	if err := s.service.Validate(inst); err != nil {
		t.Fatalf("the ORUK example does not validate: %v", err)
	}
	for name, doc := range map[string]string{
		"no status":      `{"id": "x", "name": "n"}`,
		"unknown status": `{"id": "x", "name": "n", "status": "open"}`,
		"areas as text":  `{"id": "x", "name": "n", "status": "active", "service_areas": "Sale"}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(doc)))
		if s.service.Validate(inst) == nil {
			t.Errorf("%s: validates, but should not", name)
		}
	}
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"total_items": 1, "contents": []}`)))
	if s.servicePage.Validate(inst) == nil {
		t.Error("a page without its paging fields validates")
	}
}

type orukPage struct {
	TotalItems int               `json:"total_items"`
	TotalPages int               `json:"total_pages"`
	PageNumber int               `json:"page_number"`
	Size       int               `json:"size"`
	FirstPage  bool              `json:"first_page"`
	LastPage   bool              `json:"last_page"`
	Empty      bool              `json:"empty"`
	Contents   []json.RawMessage `json:"contents"`
}

func TestOpenReferralDocumentsValidate(t *testing.T) {
	h := hubtest.Start(t)
	// A withdrawn service is defunct; a paused one temporarily closed.
	h.JSON("POST", "/v1/directory/services/VCS006-garden/withdraw", panel, nil, 200, nil)
	for _, formats := range []bool{false, true} {
		s := loadORUK(t, formats)
		st, body := h.Do("GET", "/openreferral/services?per_page=500", lw, nil)
		if st != 200 {
			t.Fatalf("GET /openreferral/services: %d %s", st, body)
		}
		validate(t, s.servicePage, "services page", body, formats)
		var page orukPage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if page.TotalItems != len(directory.DemoServices)-1 || page.Size != page.TotalItems || !page.FirstPage || !page.LastPage || page.Empty {
			t.Errorf("page = %+v", page)
		}
		for _, item := range page.Contents {
			validate(t, s.item, "listed service", item, formats)
		}
		for _, svc := range directory.DemoServices {
			st, body := h.Do("GET", "/openreferral/services/"+svc.GetId(), gp, nil)
			if st != 200 {
				t.Fatalf("GET /openreferral/services/%s: %d", svc.GetId(), st)
			}
			validate(t, s.service, "service "+svc.GetId(), body, formats)
		}
		_, body = h.Do("GET", "/openreferral/taxonomies", lw, nil)
		validate(t, s.taxonomyPage, "taxonomies page", body, formats)
		_, body = h.Do("GET", "/openreferral/taxonomy_terms", lw, nil)
		validate(t, s.taxonomyPage, "taxonomy terms page", body, formats)
		if err := json.Unmarshal(body, &page); err != nil || page.TotalItems != len(events.NeedCategories) {
			t.Errorf("taxonomy terms: %d, want %d (%v)", page.TotalItems, len(events.NeedCategories), err)
		}
		for _, term := range page.Contents {
			validate(t, s.term, "taxonomy term", term, formats)
		}
	}

	var full struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		Organization struct {
			Name string `json:"name"`
		} `json:"organization"`
		ServiceAreas []struct {
			Name string `json:"name"`
		} `json:"service_areas"`
		Attributes []struct {
			TaxonomyTermID string `json:"taxonomy_term_id"`
		} `json:"attributes"`
	}
	h.JSON("GET", "/openreferral/services/VCS001-walk", lw, nil, 200, &full)
	if full.Status != "active" || full.Organization.Name != "Sale Walking Group" || len(full.ServiceAreas) != 2 ||
		len(full.Attributes) != 1 || full.Attributes[0].TaxonomyTermID != "physical_activity" {
		t.Errorf("VCS001-walk as ORUK: %+v", full)
	}
	for id, want := range map[string]string{"VCS006-garden": "defunct", "VCS008-talk": "temporarily closed"} {
		h.JSON("GET", "/openreferral/services/"+id, lw, nil, 200, &full)
		if full.Status != want {
			t.Errorf("%s status %q, want %q", id, full.Status, want)
		}
	}
}

func TestOpenReferralPaging(t *testing.T) {
	h := hubtest.Start(t)
	n := len(directory.DemoServices)
	var p orukPage
	h.JSON("GET", "/openreferral/services?page=2&per_page=3", lw, nil, 200, &p)
	wantPages := (n + 2) / 3
	if p.PageNumber != 2 || p.Size != 3 || p.TotalItems != n || p.TotalPages != wantPages || p.FirstPage || p.LastPage || p.Empty {
		t.Errorf("page 2 of 3 a page: %+v", p)
	}
	h.JSON("GET", "/openreferral/services?page=99", lw, nil, 200, &p)
	if !p.Empty || p.Size != 0 || len(p.Contents) != 0 || !p.LastPage {
		t.Errorf("a page past the end: %+v", p)
	}
	h.JSON("GET", "/openreferral/services?taxonomy_term_id=financial_and_debt_advice", lw, nil, 200, &p)
	if p.TotalItems != 1 || !bytes.Contains(p.Contents[0], []byte(`"VCS002-debt"`)) {
		t.Errorf("by taxonomy term: %+v", p)
	}
	h.JSON("GET", "/openreferral/services?search=walks", lw, nil, 200, &p)
	if p.TotalItems != 1 || !bytes.Contains(p.Contents[0], []byte(`"VCS001-walk"`)) {
		t.Errorf("search: %+v", p)
	}
	refused(t, h, "GET", "/openreferral/services?page=0", lw, nil, 400, "page")
	refused(t, h, "GET", "/openreferral/services?per_page=501", lw, nil, 400, "per_page")
	refused(t, h, "GET", "/openreferral/services?taxonomy_term_id=knitting", lw, nil, 400, "taxonomy_term_id")
	refused(t, h, "GET", "/openreferral/services/VCS404-none", lw, nil, 404, "")
	// Public: no key, and a key of any kind (or none known) reads the same.
	for _, key := range []string{"", "not-a-key", gp} {
		var pp orukPage
		h.JSON("GET", "/openreferral/services?per_page=500", key, nil, 200, &pp)
		if pp.TotalItems != n {
			t.Errorf("as %q: %d services, want %d", key, pp.TotalItems, n)
		}
		h.JSON("GET", "/openreferral/services/VCS001-walk", key, nil, 200, nil)
		h.JSON("GET", "/openreferral/taxonomy_terms", key, nil, 200, nil)
	}
	refused(t, h, "GET", "/openreferral/services/VCS404-none", "", nil, 404, "")
	refused(t, h, "GET", "/openreferral/services?page=x", "", nil, 400, "page")
}
