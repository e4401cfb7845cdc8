package linkwork_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// TestWebCaseloadOfTenThousandStaysQuick (issue 19): with 10,000 open
// journeys in the team's caseload, the web page and the JSON list answer
// a page, quickly, and paging through the list gives every journey once.
func TestWebCaseloadOfTenThousandStaysQuick(t *testing.T) {
	e := newEnv(t, events.UncontactablePolicy{Attempts: 3})
	const journeys, writers = 10_000, 32
	ctx := context.Background()
	var (
		next    atomic.Int64
		lastSeq atomic.Uint64
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > journeys {
					return
				}
				id := events.NewID()
				res, err := e.h.Journal().Execute(ctx, id, journal.Meta{
					Actor: &eventsv1.Actor{OrganisationId: "A81001", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_GP}},
					events.Refer{Referral: &eventsv1.ReferralReceived{
						Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "SCALE-" + id,
						Person: &eventsv1.PersonalData{NhsNumber: events.NHSNumberFrom(int64(700_000_000 + i)), GivenName: "Scale",
							FamilyName: fmt.Sprint("Person", i), BirthDate: "1956-03-14", Postcode: "M33 7XX"},
						Sex: "female", Reasons: []string{"422650009"}, Consent: &eventsv1.Consent{ShareWithVcs: true},
						LinkWorkTeam: "U12345", Urgency: "routine"}})
				if err != nil {
					errs <- err
					return
				}
				for {
					old := lastSeq.Load()
					if res.LastSeq <= old || lastSeq.CompareAndSwap(old, res.LastSeq) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d referrals written in %v", journeys, time.Since(start))
	// Generous: under the race detector the reader applies every party's
	// views several times slower.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e.svc.AwaitView(wctx, lastSeq.Load()); err != nil {
		t.Fatalf("the caseload never caught up: %v", err)
	}
	t.Logf("the caseload holds them %v after the first was written", time.Since(start))

	b := newBrowserish(e)
	if resp, _ := b.signIn(keyTeam); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	timed := func(what string, do func() (int, string)) string {
		t.Helper()
		best, body := time.Hour, ""
		for range 5 {
			start := time.Now()
			st, b := do()
			if st != http.StatusOK {
				t.Fatalf("%s: %d", what, st)
			}
			best, body = min(best, time.Since(start)), b
		}
		t.Logf("%s with %d journeys: %v, %d bytes", what, journeys, best, len(body))
		// A page, not the whole caseload: quick even on a loaded machine.
		if best > 500*time.Millisecond || len(body) > 400<<10 {
			t.Errorf("%s: %v, %d bytes: not a page", what, best, len(body))
		}
		return body
	}
	page := timed("GET /linkwork/", func() (int, string) {
		resp, body := b.get("/linkwork/")
		return resp.StatusCode, body
	})
	link := regexp.MustCompile(`href="(/linkwork/\?[^"]*page_token=[^"]+)" id="next-page"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatal("the caseload page has no link to the next page")
	}
	timed("GET /linkwork/ next page", func() (int, string) {
		resp, body := b.get(strings.ReplaceAll(link[1], "&amp;", "&"))
		return resp.StatusCode, body
	})
	timed("GET /v1/caseload", func() (int, string) {
		st, body := e.h.Do("GET", "/v1/caseload", keyTeam, nil)
		return st, string(body)
	})

	// Paging through the JSON list gives every journey once.
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		if pages > journeys/500+5 {
			t.Fatal("the caseload pages never end")
		}
		var cl struct {
			Journeys []struct {
				ID string `json:"journey_id"`
			} `json:"journeys"`
			Next string `json:"next_page_token"`
		}
		e.h.JSON("GET", "/v1/caseload?page_size=500&page_token="+url.QueryEscape(token), keyTeam, nil, http.StatusOK, &cl)
		for _, j := range cl.Journeys {
			if seen[j.ID] {
				t.Fatalf("journey %s on two pages", j.ID)
			}
			seen[j.ID] = true
		}
		if cl.Next == "" {
			break
		}
		token = cl.Next
	}
	if len(seen) != journeys {
		t.Errorf("paging through the caseload gave %d journeys, want %d", len(seen), journeys)
	}
}
