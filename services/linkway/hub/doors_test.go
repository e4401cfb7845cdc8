package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/datadir"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/sealing"
)

// quiet is a hub config on a fresh data folder that logs nothing.
func quiet(t *testing.T) hub.Config {
	cfg := hub.DefaultConfig()
	cfg.HTTP, cfg.Data, cfg.Demo = "127.0.0.1:0", t.TempDir(), true
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// TestNATSListenerOffByDefaultAndLocked (finding 1): the embedded
// listener is off unless asked for; when on, a client without the
// generated credentials is refused, the admin user gets in, and a feed
// user cannot read the keys, the sessions or the person keys.
func TestNATSListenerOffByDefaultAndLocked(t *testing.T) {
	if l := hub.DefaultConfig().NATSListen; l != "off" {
		t.Errorf("the embedded listener is %q by default, want off", l)
	}
	h := hubtest.Start(t) // listens on a random port
	addr := h.NATSAddr()
	if addr == "" {
		t.Fatal("the test hub's listener is not on")
	}
	if _, err := nats.Connect("nats://"+addr, nats.MaxReconnects(0)); err == nil {
		t.Fatal("a client without credentials was admitted")
	}
	path := h.NATSCredentials()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || !strings.HasPrefix(path, h.Data) {
		t.Fatalf("credentials %q: %v, want a 0600 file in the data folder", path, err)
	}
	users, err := natsserver.LoadUsers(h.Data)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := nats.Connect(users.URL(natsserver.AdminUser, addr), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("the generated admin credentials: %v", err)
	}
	defer admin.Close()
	ajs, _ := jetstream.New(admin)
	ctx := context.Background()
	// The admin user sees the hub's own buckets: one account for both.
	if _, err := ajs.KeyValue(ctx, "lw_keys"); err != nil {
		t.Fatalf("the admin user cannot see the hub's keys bucket: %v", err)
	}
	feed, err := nats.Connect(users.URL("feed_vcs_VCS001", addr), nats.CustomInboxPrefix("_INBOX_VCS001"), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("feed user: %v", err)
	}
	defer feed.Close()
	for _, stream := range []string{"KV_lw_keys", "KV_lw_web_sessions", "KV_lw_person_keys", "KV_lw_orgs", "JOURNEYS"} {
		if m, err := feed.Request("$JS.API.STREAM.INFO."+stream, nil, 300*time.Millisecond); err == nil {
			t.Errorf("the feed user read %s: %s", stream, m.Data)
		}
	}
}

// TestOneProcessPerDataFolder (finding 4): a second hub on a data folder
// in use stops at once, naming the first.
func TestOneProcessPerDataFolder(t *testing.T) {
	first := hubtest.Start(t)
	cfg := quiet(t)
	cfg.Data = first.Data
	start := time.Now()
	second, err := hub.Start(context.Background(), cfg)
	if err == nil {
		second.Stop()
		_ = second.Wait()
		t.Fatal("a second hub started on a data folder in use")
	}
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "hub") {
		t.Fatalf("second hub: %v, want the folder in use by pid %d (hub)", err, os.Getpid())
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the second hub took %s to stop", time.Since(start))
	}
	// The first is unharmed.
	if st, _ := first.Do("GET", "/readyz", "", nil); st != 200 {
		t.Errorf("the first hub's /readyz: %d", st)
	}
	// Stopped, it leaves the folder free.
	first.Stop()
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	h, err := hub.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	h.Stop()
	_ = h.Wait()
}

// TestStartFailuresNameTheirCause (finding 5): a busy HTTP port, a busy
// NATS port and a read-only data folder each say so, at once.
func TestStartFailuresNameTheirCause(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		cfg  func(*hub.Config)
		want []string
	}{
		{"busy HTTP port", func(c *hub.Config) { c.HTTP = busy.Addr().String() }, []string{busy.Addr().String(), "in use"}},
		{"busy NATS port", func(c *hub.Config) { c.NATSListen = busy.Addr().String() }, []string{busy.Addr().String(), "in use"}},
		{"read-only data folder", func(c *hub.Config) { c.Data = datadir.ReadOnlyForTest(t) }, []string{"not writable"}},
	} {
		cfg := quiet(t)
		tc.cfg(&cfg)
		start := time.Now()
		h, err := hub.Start(context.Background(), cfg)
		if err == nil {
			h.Stop()
			_ = h.Wait()
			t.Errorf("%s: the hub started", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("%s: took %s to fail", tc.name, time.Since(start))
		}
	}
}

// TestDuplicateKeysAppendNothing (finding 5, strict JSON): a body with a
// key given twice is 400 naming it, on JSON and FHIR routes, and nothing
// is appended.
func TestDuplicateKeysAppendNothing(t *testing.T) {
	h := hubtest.Start(t)
	before := journeyCount(t, h)
	st, body := h.Do("POST", "/v1/referrals", "demo-gp-a81001", []byte(`{"source_id":"DUP-1",
		"patient":{"nhs_number":"9434765919","given_name":"Jane","family_name":"Doe","birth_date":"1956-03-14","nhs_number":"9000000009"},
		"reasons":["422650009"],"link_work_team":"U12345"}`))
	if st != 400 || !strings.Contains(string(body), `"field":"patient.nhs_number"`) || !strings.Contains(string(body), "invalid_argument") {
		t.Errorf("duplicated key: %d %s, want 400 invalid_argument on patient.nhs_number", st, body)
	}
	st, body = h.Do("POST", "/fhir/R4/ServiceRequest", "demo-gp-a81001", []byte(`{"resourceType":"ServiceRequest","status":"active","status":"draft"}`))
	if st != 400 || !strings.Contains(string(body), "OperationOutcome") || !strings.Contains(string(body), "status") {
		t.Errorf("FHIR duplicated key: %d %s, want 400 OperationOutcome naming status", st, body)
	}
	if after := journeyCount(t, h); after != before {
		t.Errorf("the log grew from %d to %d messages", before, after)
	}
}

func journeyCount(t *testing.T, h *hubtest.Hub) uint64 {
	t.Helper()
	s, err := h.JS().Stream(context.Background(), "JOURNEYS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestReadyzTellsWhetherJetStreamWrites (finding 5): with the store full
// (here its limit, as a full disk would be), /readyz is 503 and says why;
// once space is freed it is 200 again by itself, and writes work.
func TestReadyzTellsWhetherJetStreamWrites(t *testing.T) {
	const limit = 16 << 20
	h := hubtest.Start(t, func(c *hub.Config) { c.NATSMaxStore = limit })
	ctx := context.Background()
	filler, err := h.JS().CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	full := false
	for i := 0; i < 2*limit/len(chunk) && !full; i++ {
		if _, err := h.JS().Publish(ctx, "filler.x", chunk); err != nil {
			full = true
		}
	}
	if !full {
		t.Fatalf("the store took twice its limit")
	}
	h.Eventually(func() bool {
		st, body := h.Do("GET", "/readyz", "", nil)
		return st == 503 && strings.Contains(string(body), "jetstream cannot write")
	}, "/readyz says JetStream cannot write")
	if st, _ := h.Do("GET", "/healthz", "", nil); st != 200 {
		t.Errorf("/healthz %d while the store is full: the process lives", st)
	}
	if err := filler.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		st, _ := h.Do("GET", "/readyz", "", nil)
		return st == 200
	}, "/readyz is 200 again once space is freed")
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", map[string]any{"source_id": "AFTER-FULL",
		"patient":        map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe", "birth_date": "1956-03-14"},
		"reasons":        []string{"422650009"},
		"consent":        map[string]any{"share_with_vcs": true},
		"link_work_team": "U12345"}, 201, nil)
}

// TestFHIRLinksNeverFromHost (finding 5): FHIR answers link to the public
// URL (or, without one, the listen address), whatever Host the caller
// sends; an https public URL adds HSTS.
func TestFHIRLinksNeverFromHost(t *testing.T) {
	for _, public := range []string{"https://linkway.example.org/lw", ""} {
		h := hubtest.Start(t, func(c *hub.Config) { c.PublicURL = public })
		var ref struct {
			JourneyID string `json:"journey_id"`
		}
		h.JSON("POST", "/v1/referrals", "demo-gp-a81001", map[string]any{"source_id": "HOST-1",
			"patient":        map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe", "birth_date": "1956-03-14"},
			"reasons":        []string{"422650009"},
			"consent":        map[string]any{"share_with_vcs": true},
			"link_work_team": "U12345"}, 201, &ref)
		want := public
		if want == "" {
			want = h.Base
		}
		for _, path := range []string{"/fhir/R4/Task?focus=ServiceRequest/" + ref.JourneyID, "/fhir/R4/metadata"} {
			req, _ := http.NewRequest("GET", h.Base+path, nil)
			req.Host = "evil.example"
			req.Header.Set("Authorization", "Bearer demo-gp-a81001")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || strings.Contains(string(body), "evil.example") || !strings.Contains(string(body), want+"/fhir/R4") {
				t.Errorf("public URL %q, %s: %d, want links on %s and never the Host header:\n%s", public, path, resp.StatusCode, want, body)
			}
			if hsts := resp.Header.Get("Strict-Transport-Security"); (hsts != "") != (public != "") {
				t.Errorf("public URL %q: HSTS %q", public, hsts)
			}
		}
	}
}

// TestMasterKeyChecked (finding 5): a hub refuses a master key other than
// the one its data folder was made with, and never uses a demo folder's
// demo key without --demo.
func TestMasterKeyChecked(t *testing.T) {
	start := func(cfg hub.Config) error {
		h, err := hub.Start(context.Background(), cfg)
		if err == nil {
			h.Stop()
			if err := h.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		return err
	}
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

	// Real data: the key they were made with, and no other.
	cfg := quiet(t)
	cfg.Demo, cfg.MasterKey = false, key(1)
	cfg.Outcomes.PseudonymKey = "test-pseudonym-secret"
	if err := start(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.MasterKey = key(2)
	err := start(cfg)
	if !errors.Is(err, sealing.ErrWrongMasterKey) || !strings.Contains(err.Error(), "refusing to start") {
		t.Errorf("a wrong master key: %v, want a refusal to start", err)
	}
	cfg.MasterKey = key(1)
	if err := start(cfg); err != nil {
		t.Errorf("the right key after a refused one: %v", err)
	}

	// A demo folder: its demo key with --demo only.
	demo := quiet(t)
	if err := start(demo); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(demo.Data, hub.DemoMasterKeyFile)); err != nil {
		t.Fatalf("no demo key kept: %v", err)
	}
	plain := demo
	plain.Demo = false
	plain.Outcomes.PseudonymKey = "test-pseudonym-secret"
	if err := start(plain); err == nil || !strings.Contains(err.Error(), "--demo") || !strings.Contains(err.Error(), hub.DemoMasterKeyFile) {
		t.Errorf("a hub without --demo on a demo folder: %v, want a refusal naming the demo key", err)
	}
	plain.MasterKey = key(3)
	if err := start(plain); !errors.Is(err, sealing.ErrWrongMasterKey) {
		t.Errorf("a real key on a demo folder: %v, want it refused", err)
	}
	if err := start(demo); err != nil {
		t.Errorf("--demo again: %v", err)
	}
}

// TestWritesShowingPeopleAreAudited: a link worker's write answers with the
// journey's view (name, phone), a VCS's action with the person as shared:
// each is in the read audit, like the reads of the same data.
func TestWritesShowingPeopleAreAudited(t *testing.T) {
	h := hubtest.Start(t)
	var ref struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", map[string]any{"source_id": "AUDIT-W1",
		"patient": map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe",
			"birth_date": "1956-03-14", "phone": "07700 900123"},
		"reasons":        []string{"422650009"},
		"consent":        map[string]any{"share_with_vcs": true},
		"link_work_team": "U12345"}, 201, &ref)
	j := ref.JourneyID
	audited := func(route, org string) bool {
		var out struct {
			Reads []struct {
				Route string `json:"route"`
				OrgID string `json:"org_id"`
			} `json:"reads"`
		}
		h.JSON("GET", "/v1/admin/audit?journey="+j, "demo-admin", nil, 200, &out)
		for _, r := range out.Reads {
			if r.Route == route && r.OrgID == org {
				return true
			}
		}
		return false
	}
	var view map[string]any
	h.Eventually(func() bool {
		st, _ := h.Do("POST", "/v1/journeys/"+j+"/assign", "demo-lw-u12345", map[string]any{"worker_id": "w1", "worker_name": "Sam"})
		return st == 200
	}, "the link worker assigns the journey")
	if !audited("POST /v1/journeys/{id}/assign", "U12345") {
		t.Error("a link worker's write, answered with the journey's view, is not in the read audit")
	}
	h.JSON("POST", "/v1/journeys/"+j+"/contacts", "demo-lw-u12345", map[string]any{"outcome": "reached", "method": "phone"}, 200, nil)
	var onward struct {
		OnwardReferralID string `json:"onward_referral_id"`
	}
	h.JSON("POST", "/v1/journeys/"+j+"/onward-referrals", "demo-lw-u12345",
		map[string]any{"service_id": "VCS001-walk", "share": []string{"name", "phone"}}, 200, &onward)
	h.Eventually(func() bool {
		st, b := h.Do("POST", "/v1/onward-referrals/"+onward.OnwardReferralID+"/accept", "demo-vcs-001", nil)
		if st == 200 {
			_ = json.Unmarshal(b, &view)
		}
		return st == 200
	}, "the VCS accepts the onward referral")
	if !strings.Contains(fmt.Sprint(view), "Jane") {
		t.Fatalf("the VCS's answer does not show the person (so needs no audit?): %v", view)
	}
	if !audited("POST /v1/onward-referrals/{id}/accept", "VCS001") {
		t.Error("a VCS's action, answered with the person as shared, is not in the read audit")
	}
}

// TestRecoversFromAFullDisk (finding 5): on a disk that fills up, writes
// fail and /readyz says so; once space is freed the hub takes writes again
// by itself (the embedded server, whose store refuses writes after a
// failed one, is started again), without losing what it had acknowledged.
func TestRecoversFromAFullDisk(t *testing.T) {
	disk := datadir.SmallDiskForTest(t, 48<<20)
	// The JetStream store on the small disk; the view store (Pebble, whose
	// commit error on a full disk is fatal to the process) elsewhere, so
	// what is tested here is the store and its recovery.
	views := t.TempDir()
	h := hubtest.Start(t, func(c *hub.Config) { c.Data, c.ViewsDir = filepath.Join(disk, "data"), views })
	referral := func(source string) map[string]any {
		return map[string]any{"source_id": source,
			"patient":        map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe", "birth_date": "1956-03-14"},
			"reasons":        []string{"422650009"},
			"consent":        map[string]any{"share_with_vcs": true},
			"link_work_team": "U12345"}
	}
	var before struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", referral("DISK-1"), 201, &before)

	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 1<<20)); err != nil {
			break // the disk is full
		}
	}
	f.Close()
	// A write may still fit in the last page of a file; more do not.
	refused := false
	for i := 0; i < 50 && !refused; i++ {
		st, _ := h.Do("POST", "/v1/referrals", "demo-gp-a81001", referral(fmt.Sprint("DISK-2-", i)))
		refused = st == 503
	}
	if !refused {
		t.Error("referrals are still taken on a full disk")
	}
	hubtest.Eventually(t, 30*time.Second, func() bool {
		st, body := h.Do("GET", "/readyz", "", nil)
		return st == 503 && strings.Contains(string(body), "jetstream cannot write")
	}, "/readyz says JetStream cannot write")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 90*time.Second, func() bool {
		st, _ := h.Do("GET", "/readyz", "", nil)
		return st == 200
	}, "/readyz is 200 again once the disk has room")
	h.JSON("POST", "/v1/referrals", "demo-gp-a81001", referral("DISK-3"), 201, nil)
	h.JSON("GET", "/v1/referrals/"+before.JourneyID, "demo-gp-a81001", nil, 200, nil)
}

// TestFHIRShowingPeopleIsAudited: FHIR answers name the patient (NHS
// number; the ServiceRequest the name and notes too): the create, the
// reads and the Task search are in the read audit like the JSON routes.
func TestFHIRShowingPeopleIsAudited(t *testing.T) {
	h := hubtest.Start(t)
	body, err := os.ReadFile("../../referrals/testdata/servicerequest-contained-patient.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", h.Base+"/fhir/R4/ServiceRequest", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer demo-gp-a81001")
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sr struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&sr)
	resp.Body.Close()
	if resp.StatusCode != 201 || sr.ID == "" {
		t.Fatalf("FHIR create: %d", resp.StatusCode)
	}
	for _, path := range []string{"/fhir/R4/ServiceRequest/" + sr.ID, "/fhir/R4/Task/" + sr.ID, "/fhir/R4/Task?focus=ServiceRequest/" + sr.ID} {
		h.Eventually(func() bool {
			st, _ := h.Do("GET", path, "demo-gp-a81001", nil)
			return st == 200
		}, "GET "+path)
	}
	var out struct {
		Reads []struct {
			Route string `json:"route"`
		} `json:"reads"`
	}
	h.JSON("GET", "/v1/admin/audit?journey="+sr.ID, "demo-admin", nil, 200, &out)
	got := map[string]bool{}
	for _, r := range out.Reads {
		got[r.Route] = true
	}
	for _, route := range []string{"POST /fhir/R4/ServiceRequest", "GET /fhir/R4/ServiceRequest/{id}", "GET /fhir/R4/Task/{id}", "GET /fhir/R4/Task"} {
		if !got[route] {
			t.Errorf("%s is not in the read audit (audited: %v)", route, got)
		}
	}
}
