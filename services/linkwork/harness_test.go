package linkwork_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/linkwork"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
)

// Keys of the test teams and a practice: the demo ones (API.md), and
// another team's, added to the test hub.
const (
	keyTeam  = "demo-lw-u12345"
	keyOther = "test-lw-u99999"
	keyGP    = "demo-gp-a81001"
	keyVCS   = "demo-vcs-001"
)

// Services of the demo directory, one in each state the rules treat
// apart.
const (
	serviceFull     = "VCS003-shed"   // full: only with the waiting list
	servicePaused   = "VCS008-talk"   // paused: refused
	serviceSignpost = "VCS005-carers" // takes no referrals
)

// env is the linkwork service alone on a test hub (hubtest): the real
// event store, register, keys, directory and projection runner.
type env struct {
	t     *testing.T
	h     *hubtest.Hub
	svc   *linkwork.Service
	clock *clock

	mu     sync.Mutex
	people int // NHS numbers given out
}

// clock is a settable clock for due and waiting figures.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newEnv(t *testing.T, policy events.UncontactablePolicy, opts ...hubtest.Option) *env {
	t.Helper()
	opts = append([]hubtest.Option{hubtest.Services("linkwork"), func(c *hub.Config) { c.Linkwork.Uncontactable = policy }}, opts...)
	h := hubtest.Start(t, opts...)
	h.AddOrg(keyOther, orgs.Organisation{ID: "U99999", Name: "Another PCN team", Kind: events.KindLinkwork})
	svc := h.Parties().Linkwork
	c := &clock{t: time.Now()}
	svc.SetClock(c.Now)
	return &env{t: t, h: h, svc: svc, clock: c}
}

// refer records a referral of a new person straight in the log (the
// GP-facing service is another package) and waits for it to reach the
// caseload.
func (e *env) refer(team string, consent bool) string {
	e.t.Helper()
	return e.referAs(team, e.newNHS(), consent)
}

// referAs is refer of the person with an NHS number.
func (e *env) referAs(team, nhs string, consent bool) string {
	e.t.Helper()
	id := events.NewID()
	res, err := e.h.Journal().Execute(context.Background(), id, journal.Meta{
		Actor: &eventsv1.Actor{OrganisationId: "A81001", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_GP}},
		events.Refer{Referral: &eventsv1.ReferralReceived{
			Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "EMIS-" + id,
			Person: &eventsv1.PersonalData{NhsNumber: nhs, GivenName: "Jane", FamilyName: "Doe",
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

// newNHS is an NHS number no other referral of the test used: 999 and a
// count, completed with events' check digit (counts that admit none are skipped).
func (e *env) newNHS() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		e.people++
		if nhs, ok := events.CompleteNHSNumber(fmt.Sprintf("999%06d", e.people)); ok {
			return nhs
		}
	}
}

// do sends a JSON request; body nil sends none, []byte is sent as is.
func (e *env) do(method, path, key string, body any, headers ...string) (int, []byte) {
	e.t.Helper()
	st, _, out := e.h.Request(method, path, key, body, headers...)
	return st, out
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
	SignpostID       string                  `json:"signpost_id"`
	NoteID           string                  `json:"note_id"`
	RiskID           string                  `json:"risk_id"`
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
	info, err := e.h.Journal().Stream().Info(context.Background())
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
