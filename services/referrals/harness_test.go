package referrals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
	"linkway/services/referrals"
)

// Keys of the test organisations: the demo ones (API.md).
const (
	keyGP    = "demo-gp-a81001"
	keyGP2   = "demo-gp-a81002"
	keyTeam  = "demo-lw-u12345"
	keyVCS   = "demo-vcs-001"
	keyAdmin = "demo-admin"
)

// env is the referrals service alone on a test hub (hubtest), with the
// real event store, register, keys and read side.
type env struct {
	t   *testing.T
	h   *hubtest.Hub
	svc *referrals.Service
	// store is the view store of a service whose reader never runs.
	store *viewstore.Store
}

// newEnv starts the referrals service alone, its event store configured
// by storeCfg.
func newEnv(t *testing.T, storeCfg journal.Config) *env {
	t.Helper()
	return newEnvWith(t, storeCfg, referrals.DefaultSettings(), true)
}

// newEnvWith is newEnv with the service's settings; with project false the
// service is given a read side whose reader never runs, so its view stays
// empty: a view far behind the log.
func newEnvWith(t *testing.T, storeCfg journal.Config, settings referrals.Settings, project bool) *env {
	t.Helper()
	journalCfg := func(c *hub.Config) { c.Journal = storeCfg }
	if project {
		h := hubtest.Start(t, hubtest.Services("referrals"), journalCfg, func(c *hub.Config) { c.Referrals = settings })
		return &env{t: t, h: h, svc: h.Parties().Referrals}
	}
	// The hub runs no party but the directory's lookups; the service is
	// given the hub's parts and a registry of its own that no reader applies.
	h := hubtest.Start(t, hubtest.Services(), journalCfg)
	store, err := viewstore.Open(viewstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	svc, err := referrals.New(t.Context(), referrals.Config{Journal: h.Journal(), Views: views.NewRegistry(store),
		Audit: h.Audit(), Orgs: h.Orgs(), HTTP: h.HTTP(), Metrics: h.Metrics(), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: h, svc: svc, store: store}
}

// wait waits until the hub's views have applied seq: what a test that
// wrote through the journal itself needs before it reads.
func (e *env) wait(seq uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.h.Views().WaitFor(ctx, seq, referrals.ProjectionName); err != nil {
		e.t.Fatalf("the referrals view did not reach %d: %v", seq, err)
	}
}

// do sends a request; body nil sends none, []byte is sent as is, anything
// else as JSON. headers are name, value pairs.
func (e *env) do(method, path, key string, body any, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	return e.h.Request(method, path, key, body, headers...)
}

// client bounds the tests' own requests, as hubtest's, so that a stuck
// handler fails the test with its name instead of stalling the run.
var client = &http.Client{Timeout: 30 * time.Second}

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
	res, err := e.h.Journal().Execute(context.Background(), id, journal.Meta{
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
	mfs, err := e.h.Metrics().Gather()
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
