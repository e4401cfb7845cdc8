package linkwork_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/linkwork"
	"linkway/services/platform"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/audit"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/views"
)

// Keys of the test teams and a practice.
const (
	keyTeam  = "test-lw-u12345"
	keyOther = "test-lw-u99999"
	keyGP    = "test-gp-a81001"
	keyVCS   = "test-vcs-001"
)

// fakeDirectory stands in for the directory service (another team's
// package): a few services in each capacity state, so onward referrals can
// be tested whatever state the real directory is in.
type fakeDirectory struct{}

var directoryServices = map[string]events.ServiceFacts{
	"VCS001-walk":   {ID: "VCS001-walk", Name: "Sale Walking Group: health walks", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"},
	"VCS002-debt":   {ID: "VCS002-debt", Name: "Trafford Money Advice: debt advice", OrganisationID: "VCS002", AcceptsReferrals: true, Capacity: "open"},
	"VCS003-full":   {ID: "VCS003-full", Name: "Men's shed", OrganisationID: "VCS003", AcceptsReferrals: true, Capacity: "full"},
	"VCS004-paused": {ID: "VCS004-paused", Name: "Art class", OrganisationID: "VCS004", AcceptsReferrals: true, Capacity: "paused"},
	"VCS005-sign":   {ID: "VCS005-sign", Name: "Leaflet rack", OrganisationID: "VCS005", AcceptsReferrals: false, Capacity: "open"},
}

func (fakeDirectory) Service(_ context.Context, id string) (events.ServiceFacts, bool, error) {
	f, ok := directoryServices[id]
	return f, ok, nil
}
func (fakeDirectory) ServicesOf(context.Context, string) ([]events.ServiceFacts, error) {
	return nil, nil
}
func (fakeDirectory) SetCapacity(context.Context, api.Principal, string, string) error { return nil }

// env is the linkwork service alone on a real JetStream server, with the
// real event store, register, keys and projection runner.
type env struct {
	t     *testing.T
	svc   *linkwork.Service
	d     platform.Deps
	srv   *httptest.Server
	clock *clock
}

// clock is a settable clock for due and waiting figures.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newEnv(t *testing.T, policy events.UncontactablePolicy) *env {
	t.Helper()
	_, js := hubtest.NATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	store, err := journal.Open(ctx, js, journal.DefaultConfig(), reg)
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
		keyTeam:  {ID: "U12345", Name: "Riverside and Hillside PCN link-worker team", Kind: events.KindLinkwork, Contact: "0161 496 0000"},
		keyOther: {ID: "U99999", Name: "Another PCN team", Kind: events.KindLinkwork},
		keyGP:    {ID: "A81001", Name: "Riverside Medical Practice", Kind: events.KindGP},
		keyVCS:   {ID: "VCS001", Name: "Sale Walking Group", Kind: events.KindVCS},
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
		Settings: platform.Settings{Uncontactable: policy}, Directory: fakeDirectory{},
		Project: func(ctx context.Context, p views.Projector) (*views.Runner, error) {
			r, err := views.New(ctx, js, p, views.DefaultConfig(), pm, log)
			if err != nil {
				return nil, err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Run(ctx); err != nil {
					t.Errorf("projection stopped: %v", err)
				}
			}()
			return r, nil
		},
	}
	svc, err := linkwork.New(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	svc.SetClock(c.Now)
	srv := httptest.NewServer(httpAPI)
	t.Cleanup(srv.Close)
	e := &env{t: t, svc: svc, d: d, srv: srv, clock: c}
	hubtest.Eventually(t, 10*time.Second, svc.Runner().Ready, "the caseload view is ready")
	return e
}

// refer records a referral straight in the log (the GP-facing service is
// another package) and waits for it to reach the caseload.
func (e *env) refer(team string, consent bool) string {
	e.t.Helper()
	id := events.NewID()
	res, err := e.d.Store.Execute(context.Background(), id, journal.Meta{
		Actor: &eventsv1.Actor{OrganisationId: "A81001", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_GP}},
		events.Refer{Referral: &eventsv1.ReferralReceived{
			Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "EMIS-" + id,
			Person: &eventsv1.PersonalData{NhsNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe",
				BirthDate: "1956-03-14", Postcode: "M33 7XX", Phone: "07700 900123", Email: "jane@example.org"},
			Sex: "female", Reasons: []string{"422650009"}, Notes: &eventsv1.FreeText{Text: "Recently bereaved."},
			Consent: &eventsv1.Consent{ShareWithVcs: consent}, LinkWorkTeam: team, Urgency: "routine"}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.AwaitView(ctx, res.LastSeq); err != nil {
		e.t.Fatalf("caseload never saw the referral: %v", err)
	}
	return id
}

// do sends a JSON request; body nil sends none, []byte is sent as is.
func (e *env) do(method, path, key string, body any, headers ...string) (int, []byte) {
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
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// ok sends a request that must answer 200 and decodes the answer.
func (e *env) ok(method, path string, body any, v any, headers ...string) {
	e.t.Helper()
	st, out := e.do(method, path, keyTeam, body, headers...)
	if st != http.StatusOK {
		e.t.Fatalf("%s %s: %d %s", method, path, st, out)
	}
	if v != nil {
		reflect.ValueOf(v).Elem().SetZero() // absent fields must not keep an earlier answer's values
		if err := json.Unmarshal(out, v); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// refused sends a request that must fail with status, and returns the error.
func (e *env) refused(method, path, key string, body any, status int) apiError {
	e.t.Helper()
	st, out := e.do(method, path, key, body)
	if st != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, status, out)
	}
	var ae apiError
	if err := json.Unmarshal(out, &ae); err != nil {
		e.t.Fatalf("%s %s: error body: %v: %s", method, path, err, out)
	}
	return ae
}

// answer is the decoded shape of a write's answer, as a client reads it.
type answer struct {
	linkwork.JourneyView
	OnwardReferralID string                  `json:"onward_referral_id"`
	FollowUpID       string                  `json:"follow_up_id"`
	Result           *linkwork.MeasureResult `json:"result"`
	Replayed         bool                    `json:"replayed"`
}

// contacted refers a journey, assigns it and records that the person was reached.
func (e *env) contacted(consent bool) string {
	e.t.Helper()
	id := e.refer("U12345", consent)
	e.ok("POST", "/v1/journeys/"+id+"/assign", map[string]string{"worker_id": "lw-7", "worker_name": "Sam Link"}, nil)
	e.ok("POST", "/v1/journeys/"+id+"/contacts", map[string]string{"outcome": "reached", "method": "phone"}, nil)
	return id
}

// settle waits until the caseload view has applied everything in the log,
// so a test reads its own writes from the caseload.
func (e *env) settle() {
	e.t.Helper()
	info, err := e.d.Store.Stream().Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.AwaitView(ctx, info.State.LastSeq); err != nil {
		e.t.Fatalf("the caseload view did not catch up: %v", err)
	}
}

// caseload reads the caseload once the view has caught up.
func (e *env) caseload(query string) linkwork.Caseload {
	e.t.Helper()
	e.settle()
	var cl linkwork.Caseload
	e.ok("GET", "/v1/caseload"+query, nil, &cl)
	return cl
}
