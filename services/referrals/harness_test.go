package referrals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/audit"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
	"linkway/services/referrals"
)

// Keys of the test organisations.
const (
	keyGP    = "test-gp-a81001"
	keyGP2   = "test-gp-a81002"
	keyTeam  = "test-lw-u12345"
	keyVCS   = "test-vcs-001"
	keyAdmin = "test-admin"
)

// env is the referrals service alone on a real JetStream server, with the
// real event store, register, keys and projection runner.
type env struct {
	t   *testing.T
	svc *referrals.Service
	d   platform.Deps
	srv *httptest.Server
}

func newEnv(t *testing.T, storeCfg journal.Config) *env {
	t.Helper()
	return newEnvWith(t, storeCfg, referrals.DefaultConfig(), true)
}

// newEnvWith is newEnv with the service's config; with project false the
// view's runner is never run, so the view stays empty: a view far behind.
func newEnvWith(t *testing.T, storeCfg journal.Config, cfg referrals.Config, project bool) *env {
	t.Helper()
	_, js := hubtest.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	store, err := journal.Open(ctx, js, storeCfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	register, err := orgs.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for key, o := range map[string]orgs.Organisation{
		keyGP:    {ID: "A81001", Name: "Riverside Medical Practice", Kind: events.KindGP},
		keyGP2:   {ID: "A81002", Name: "Hillside Surgery", Kind: events.KindGP},
		keyTeam:  {ID: "U12345", Name: "Riverside and Hillside PCN link-worker team", Kind: events.KindLinkwork},
		keyVCS:   {ID: "VCS001", Name: "Sale Walking Group", Kind: events.KindVCS},
		keyAdmin: {ID: "OPERATOR", Name: "Operator", Kind: events.KindAdmin},
	} {
		if err := register.Put(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := keys.Create(ctx, key, api.Principal{OrgID: o.ID, Kind: o.Kind, KeyID: key}); err != nil {
			t.Fatal(err)
		}
	}
	httpAPI, err := api.NewServer(keys, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := views.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	reads, err := audit.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := platform.Deps{JS: js, Store: store, Orgs: register, Keys: keys, HTTP: httpAPI, Log: log, Reg: reg, Replicas: 1, Audit: reads,
		Project: func(ctx context.Context, p views.Projector) (*views.Runner, error) {
			r, err := views.New(ctx, js, p, views.DefaultConfig(), pm, log)
			if err != nil || !project {
				return r, err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// An error after the test has ended is the runner noticing
				// the cancel; before, it is a failure.
				if err := r.Run(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("projection stopped: %v", err)
				}
			}()
			return r, nil
		},
	}
	svc, err := referrals.New(ctx, d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpAPI)
	t.Cleanup(srv.Close)
	hubtest.Eventually(t, 10*time.Second, svc.Runner().Ready, "the referrals view is ready")
	return &env{t: t, svc: svc, d: d, srv: srv}
}

// do sends a request; body nil sends none, []byte is sent as is, anything
// else as JSON. headers are name, value pairs.
func (e *env) do(method, path, key string, body any, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

// json sends a request expecting status and decodes the answer into v.
func (e *env) json(method, path, key string, body any, status int, v any) {
	e.t.Helper()
	st, _, out := e.do(method, path, key, body)
	if st != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, status, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

// client bounds every test request, so that a stuck handler fails the test
// with its name instead of stalling the run.
var client = &http.Client{Timeout: 30 * time.Second}

var seq int

// referral is a valid POST /v1/referrals body with a fresh source id.
func referral(t *testing.T) map[string]any {
	t.Helper()
	seq++
	return map[string]any{
		"source_id": "EMIS-" + t.Name() + "-" + time.Now().Format("150405.000000000") + "-" + string(rune('a'+seq%26)),
		"patient": map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe",
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX", "phone": "07700 900123", "email": "jane@example.org"},
		"reasons":        []string{"422650009"},
		"notes":          "Recently bereaved, isolated since moving.",
		"consent":        map[string]any{"share_with_vcs": true},
		"link_work_team": "U12345",
		"urgency":        "routine",
	}
}

// execute carries out a command on a journey as the link-worker team (or a
// VCS organisation) would: those services are other packages.
func (e *env) execute(id string, org string, kind eventsv1.OrganisationKind, cmd events.Command) journal.Result {
	e.t.Helper()
	res, err := e.d.Store.Execute(context.Background(), id, journal.Meta{
		Actor: &eventsv1.Actor{OrganisationId: org, OrganisationKind: kind}}, cmd)
	if err != nil {
		e.t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
	return res
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// received is the value of linkway_referrals_received_total{channel, outcome}.
func (e *env) received(channel, outcome string) float64 {
	e.t.Helper()
	mfs, err := e.d.Reg.(*prometheus.Registry).Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "linkway_referrals_received_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["channel"] == channel && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
