package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/audit"
	"linkway/services/platform/natsserver"
)

func TestReadsOfAJourneyAreFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	l, err := audit.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	gp := api.Principal{OrgID: "A81001", Kind: events.KindGP, KeyID: "key_gp"}
	lw := api.Principal{OrgID: "U12345", Kind: events.KindLinkwork, KeyID: "key_lw"}
	j1, j2 := events.NewID(), events.NewID()
	start := time.Now().Add(-time.Second)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Journey(ctx, gp, "GET /v1/referrals/{id}", j1))
	must(l.List(ctx, lw, "GET /v1/caseload", []string{j2, j1}))
	must(l.Journey(ctx, lw, "GET /v1/journeys/{id}", j2))
	must(l.Journey(ctx, gp, "GET /v1/referrals/{id}", "lw.audit.>")) // not an id: not recorded, no subject injection

	recs, err := l.ForJourney(ctx, j1, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].OrgID != "A81001" || recs[1].Route != "GET /v1/caseload" || recs[1].KeyID != "key_lw" {
		t.Fatalf("reads of j1: %+v", recs)
	}
	for _, r := range recs {
		if len(r.Journeys) != 1 || r.Journeys[0] != j1 {
			t.Errorf("a record shows other journeys: %+v", r)
		}
	}
	if recs, _ := l.ForJourney(ctx, j2, time.Now().Add(time.Minute)); len(recs) != 0 {
		t.Errorf("since the future: %d reads", len(recs))
	}
	if _, err := l.ForJourney(ctx, "x.>", start); err == nil || !strings.Contains(err.Error(), "journey") {
		t.Errorf("a bad id: %v", err)
	}
}
