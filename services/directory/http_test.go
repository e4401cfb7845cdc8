package directory_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"linkway/services/directory"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
)

const (
	panel = "demo-panel"
	admin = "demo-admin"
	gp    = "demo-gp-a81001"
	lw    = "demo-lw-u12345"
	vcs1  = "demo-vcs-001"
	vcs2  = "demo-vcs-002"
	icb   = "demo-icb-qyg"
)

type errorBody struct {
	Error struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	} `json:"error"`
}

// refused checks a request's status and, for a 400, the field it names.
func refused(t *testing.T, h *hubtest.Hub, method, path, key string, body any, status int, field string) {
	t.Helper()
	st, out := h.Do(method, path, key, body)
	if st != status {
		t.Fatalf("%s %s as %s: status %d, want %d: %s", method, path, key, st, status, out)
	}
	if field != "" {
		var e errorBody
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Field != field {
			t.Errorf("%s %s: error field %q, want %q: %s", method, path, e.Error.Field, field, out)
		}
	}
}

func ids(list []directory.ServiceView) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func search(t *testing.T, h *hubtest.Hub, key, query string) []string {
	t.Helper()
	var got struct {
		Services []directory.ServiceView `json:"services"`
		Total    int                     `json:"total"`
	}
	h.JSON("GET", "/v1/directory/services"+query, key, nil, http.StatusOK, &got)
	if got.Total != len(got.Services) {
		t.Errorf("total %d, but %d services", got.Total, len(got.Services))
	}
	return ids(got.Services)
}

func TestSearch(t *testing.T) {
	h := hubtest.Start(t)
	// Every kind reads the directory.
	for _, key := range []string{gp, lw, vcs1, icb, panel, admin} {
		if got := search(t, h, key, ""); !slices.Contains(got, "VCS001-walk") || !slices.Contains(got, "VCS002-debt") {
			t.Errorf("as %s the directory lists %v, want the demo services", key, got)
		}
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"?category=financial_and_debt_advice", []string{"VCS002-debt"}},
		{"?q=WALKS", []string{"VCS001-walk"}},
		{"?q=debt+budgeting", []string{"VCS002-debt"}},
		{"?q=no+such+words+anywhere", nil},
		// Full, paused and signposting-only services are not accepting.
		{"?category=befriending_and_social_groups&accepting=true", nil},
		{"?category=befriending_and_social_groups&accepting=false", []string{"VCS003-shed"}},
		{"?category=arts_and_creativity&accepting=true", []string{"VCS004-art"}}, // waiting list: accepting
		{"?category=carers&accepting=true", nil},
		{"?category=mental_wellbeing&accepting=true", nil},
		{"?organisation=VCS002", []string{"VCS002-debt"}},
	} {
		if got := search(t, h, lw, tt.query); !slices.Equal(got, tt.want) {
			t.Errorf("GET /v1/directory/services%s = %v, want %v", tt.query, got, tt.want)
		}
	}
	refused(t, h, "GET", "/v1/directory/services?category=knitting", lw, nil, 400, "category")
	refused(t, h, "GET", "/v1/directory/services?accepting=maybe", lw, nil, 400, "accepting")
	refused(t, h, "GET", "/v1/directory/services", "", nil, 401, "")
	refused(t, h, "GET", "/v1/directory/services", "not-a-key", nil, 401, "")
	refused(t, h, "GET", "/v1/directory/services/VCS999-nothing", lw, nil, 404, "")

	var svc directory.ServiceView
	h.JSON("GET", "/v1/directory/services/VCS001-walk", gp, nil, 200, &svc)
	if svc.OrganisationName != "Sale Walking Group" || svc.Category != "physical_activity" || !svc.Accepting || svc.Capacity != "open" {
		t.Errorf("VCS001-walk = %+v", svc)
	}
}

func TestPanelKeepsTheDirectory(t *testing.T) {
	h := hubtest.Start(t)
	org := map[string]any{"id": "VCS050", "name": "Sale Knit and Natter", "description": "Knitting and chat."}
	h.JSON("POST", "/v1/directory/organisations", panel, org, 201, nil)
	h.JSON("POST", "/v1/directory/organisations", panel, org, 200, nil) // the same again: no change
	refused(t, h, "POST", "/v1/directory/organisations", panel,
		map[string]any{"id": "VCS050", "name": "Another name"}, 409, "id")
	refused(t, h, "POST", "/v1/directory/organisations", panel, map[string]any{"id": "VCS 051", "name": "x"}, 400, "id")
	refused(t, h, "POST", "/v1/directory/organisations", panel, map[string]any{"id": "A81001", "name": "A practice"}, 400, "id")
	refused(t, h, "POST", "/v1/directory/organisations", panel, map[string]any{"id": "VCS051", "name": "x", "colour": "red"}, 400, "colour")

	svc := map[string]any{"organisation_id": "VCS050", "name": "Knit and natter", "description": "Tuesday afternoons at the library.",
		"category": "arts_and_creativity", "areas": []string{"Sale"}, "accepts_referrals": true,
		"contact": map[string]any{"email": "knit@example.org"}}
	var added directory.ServiceView
	h.JSON("POST", "/v1/directory/services", admin, svc, 201, &added)
	if added.ID != "VCS050-knit-and-natter" || added.Capacity != "open" || !added.Accepting || added.OrganisationName != "Sale Knit and Natter" {
		t.Fatalf("added = %+v", added)
	}
	// Read your writes: it is listed at once.
	if got := search(t, h, lw, "?q=natter"); !slices.Equal(got, []string{"VCS050-knit-and-natter"}) {
		t.Errorf("search after add = %v", got)
	}
	bad := func(k string, v any) map[string]any {
		b := map[string]any{}
		for kk, vv := range svc {
			b[kk] = vv
		}
		b[k] = v
		return b
	}
	refused(t, h, "POST", "/v1/directory/services", panel, bad("category", "knitting"), 400, "category")
	refused(t, h, "POST", "/v1/directory/services", panel, bad("organisation_id", "VCS404"), 400, "organisation_id")
	refused(t, h, "POST", "/v1/directory/services", panel, bad("capacity", "busy"), 400, "capacity")
	refused(t, h, "POST", "/v1/directory/services", panel, bad("id", "VCS001-knit"), 400, "id")
	refused(t, h, "POST", "/v1/directory/services", panel, bad("contact", map[string]any{"email": "not an address"}), 400, "contact.email")
	noFlag := bad("name", "Other")
	delete(noFlag, "accepts_referrals")
	refused(t, h, "POST", "/v1/directory/services", panel, noFlag, 400, "accepts_referrals")

	upd := bad("description", "Now Thursdays too.")
	delete(upd, "organisation_id")
	var updated directory.ServiceView
	h.JSON("PUT", "/v1/directory/services/VCS050-knit-and-natter", panel, upd, 200, &updated)
	if updated.Description != "Now Thursdays too." {
		t.Errorf("updated description = %q", updated.Description)
	}
	refused(t, h, "PUT", "/v1/directory/services/VCS050-knit-and-natter", panel, bad("capacity", "full"), 400, "capacity")

	var changed directory.ServiceView
	h.JSON("POST", "/v1/directory/services/VCS050-knit-and-natter/capacity", panel, map[string]string{"capacity": "waiting_list"}, 200, &changed)
	if changed.Capacity != "waiting_list" || changed.CapacityChangedBy != "PANEL-SALE" {
		t.Errorf("after capacity change: %+v", changed)
	}
	refused(t, h, "POST", "/v1/directory/services/VCS050-knit-and-natter/capacity", panel, map[string]string{"capacity": "closed"}, 400, "capacity")

	var withdrawn directory.ServiceView
	h.JSON("POST", "/v1/directory/services/VCS050-knit-and-natter/withdraw", panel, map[string]string{"reason": "group ended"}, 200, &withdrawn)
	if withdrawn.Status != "withdrawn" || withdrawn.Accepting {
		t.Errorf("after withdraw: %+v", withdrawn)
	}
	if got := search(t, h, lw, "?q=natter"); len(got) != 0 {
		t.Errorf("a withdrawn service is listed: %v", got)
	}
	if got := search(t, h, lw, "?q=natter&include_withdrawn=true"); len(got) != 1 {
		t.Errorf("include_withdrawn lists %v", got)
	}
	refused(t, h, "POST", "/v1/directory/services/VCS050-knit-and-natter/capacity", panel, map[string]string{"capacity": "open"}, 409, "")
	refused(t, h, "PUT", "/v1/directory/services/VCS050-knit-and-natter", panel, upd, 409, "")

	var o directory.OrganisationView
	h.JSON("PUT", "/v1/directory/organisations/VCS050", panel, map[string]any{"name": "Sale Knit & Natter"}, 200, &o)
	if o.Name != "Sale Knit & Natter" {
		t.Errorf("organisation after update: %+v", o)
	}
	refused(t, h, "PUT", "/v1/directory/organisations/VCS404", panel, map[string]any{"name": "x"}, 404, "")
}

func TestWhoMayWrite(t *testing.T) {
	h := hubtest.Start(t)
	org := map[string]any{"id": "VCS060", "name": "Someone"}
	svc := map[string]any{"organisation_id": "VCS001", "name": "Nordic walking", "category": "physical_activity", "accepts_referrals": true}
	capacity := map[string]string{"capacity": "full"}
	for _, key := range []string{gp, lw, vcs1, icb} {
		refused(t, h, "POST", "/v1/directory/organisations", key, org, 403, "")
		refused(t, h, "POST", "/v1/directory/services", key, svc, 403, "")
		refused(t, h, "PUT", "/v1/directory/services/VCS001-walk", key, svc, 403, "")
		refused(t, h, "POST", "/v1/directory/services/VCS001-walk/withdraw", key, nil, 403, "")
	}
	for _, key := range []string{gp, lw, icb} {
		refused(t, h, "POST", "/v1/directory/services/VCS001-walk/capacity", key, capacity, 403, "")
	}
	refused(t, h, "POST", "/v1/directory/services/VCS001-walk/capacity", "", capacity, 401, "")
	// A VCS organisation changes its own services' capacity, not another's.
	refused(t, h, "POST", "/v1/directory/services/VCS002-debt/capacity", vcs1, capacity, 403, "")
	refused(t, h, "POST", "/v1/directory/services/VCS001-walk/capacity", vcs2, capacity, 403, "")
	refused(t, h, "POST", "/v1/directory/services/VCS001-nothing/capacity", vcs1, capacity, 404, "")
	var v directory.ServiceView
	h.JSON("POST", "/v1/directory/services/VCS001-walk/capacity", vcs1, capacity, 200, &v)
	if v.Capacity != "full" || v.CapacityChangedBy != "VCS001" {
		t.Errorf("after VCS001 set its own capacity: %+v", v)
	}
	h.JSON("GET", "/v1/directory/services/VCS002-debt", vcs1, nil, 200, &v)
	if v.Capacity != "open" {
		t.Errorf("VCS002-debt capacity = %q after refused changes, want open", v.Capacity)
	}
}

// TestDemoSeedIsIdempotent restarts a hub on the same data: the seed
// appends nothing the second time, and what the panel changed stays.
func TestDemoSeedIsIdempotent(t *testing.T) {
	data := t.TempDir()
	onData := func(c *hub.Config) { c.Data = data }
	count := func(h *hubtest.Hub) uint64 {
		t.Helper()
		st, err := h.JS().Stream(context.Background(), directory.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	h := hubtest.Start(t, onData)
	first := count(h)
	if first < uint64(len(directory.DemoOrganisations)+len(directory.DemoServices)) {
		t.Fatalf("the seed wrote %d events, fewer than the demo directory", first)
	}
	h.JSON("POST", "/v1/directory/services/VCS001-walk/capacity", panel, map[string]string{"capacity": "waiting_list"}, 200, nil)
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	h2 := hubtest.Start(t, onData)
	if got := count(h2); got != first+1 {
		t.Errorf("after a restart the stream holds %d events, want %d (seed %d + one capacity change)", got, first+1, first)
	}
	var v directory.ServiceView
	h2.JSON("GET", "/v1/directory/services/VCS001-walk", lw, nil, 200, &v)
	if v.Capacity != "waiting_list" {
		t.Errorf("the restart's seed undid the panel's change: capacity %q", v.Capacity)
	}
	// The KV view carries the directory for systems outside the process.
	kv, err := h2.JS().KeyValue(context.Background(), directory.ViewBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "svc.VCS001-walk")
	if err != nil || !strings.Contains(string(e.Value()), `"capacity":"waiting_list"`) {
		t.Errorf("view svc.VCS001-walk = %v, %v", e, err)
	}
}
