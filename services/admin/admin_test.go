package admin_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
)

const nhs = "9476719931"

// The person's identifying data and free text, as sent. None of it may be
// readable anywhere once the person is erased.
var secrets = []string{nhs, "Erasmus", "Shredwell", "1961-07-02", "M33 6ZZ", "07700 900456", "erasmus@example.org",
	"lost his brother", "Walk by the Mersey"}

func referral(source string) map[string]any {
	return map[string]any{
		"source_id": source,
		"patient": map[string]any{"nhs_number": nhs, "given_name": "Erasmus", "family_name": "Shredwell",
			"birth_date": "1961-07-02", "sex": "male", "postcode": "M33 6ZZ", "phone": "07700 900456", "email": "erasmus@example.org"},
		"reasons": []string{"422650009"}, "notes": "He lost his brother this spring.",
		"consent": map[string]any{"share_with_vcs": true}, "link_work_team": "U12345", "urgency": "routine",
	}
}

// everything returns the plain text of every message of every stream and
// every revision of every KV key on the server, with the hub's log.
func everything(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	var all strings.Builder
	for name := range js.StreamNames(ctx).Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted or purged: nothing to read
			}
			fmt.Fprintf(&all, "%s %s %q\n", name, m.Subject, m.Data)
			for k, v := range m.Header {
				fmt.Fprintf(&all, "%s %v\n", k, v)
			}
		}
	}
	return all.String()
}

// TestErasureLeavesNothingReadable walks one person through the whole
// journey (GP referral, link worker, onward referral to a VCS group, VCS
// acceptance, measures, a second referral), erases them, and then finds
// none of their data in any stream, any KV revision, any view or the log;
// a rebuild of every view from the log still succeeds.
func TestErasureLeavesNothingReadable(t *testing.T) {
	var logs hubtest.LogBuffer
	data := t.TempDir()
	h := hubtest.Start(t, func(c *hub.Config) {
		c.Data = data
		c.Log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	const gp, lw, vcs, admin = "demo-gp-a81001", "demo-lw-u12345", "demo-vcs-001", "demo-admin"
	var journeys []string
	for i := range 2 {
		var ref struct {
			JourneyID string `json:"journey_id"`
		}
		h.JSON("POST", "/v1/referrals", gp, referral(fmt.Sprint("ERASE-", i)), 201, &ref)
		journeys = append(journeys, ref.JourneyID)
	}
	j := journeys[0]
	h.JSON("POST", "/v1/journeys/"+j+"/assign", lw, map[string]any{"worker_id": "lw-7", "worker_name": "Sam Link"}, 200, nil)
	h.JSON("POST", "/v1/journeys/"+j+"/contacts", lw, map[string]any{"outcome": "reached", "method": "phone"}, 200, nil)
	h.JSON("POST", "/v1/journeys/"+j+"/assessment", lw, map[string]any{"needs": []string{"befriending"},
		"goals": []map[string]string{{"text": "Walk by the Mersey"}}, "barriers": []string{"confidence"}}, 200, nil)
	h.JSON("POST", "/v1/journeys/"+j+"/measures", lw, map[string]any{"instrument": "UCLA3", "timepoint": "baseline", "answers": []int{3, 2, 3}}, 200, nil)
	var onward struct {
		OnwardReferralID string `json:"onward_referral_id"`
	}
	h.JSON("POST", "/v1/journeys/"+j+"/onward-referrals", lw, map[string]any{"service_id": "VCS001-walk",
		"share": []string{"name", "phone", "email", "notes"}}, 200, &onward)
	h.Eventually(func() bool {
		_, b := h.Do("GET", "/v1/inbox", vcs, nil)
		return strings.Contains(string(b), onward.OnwardReferralID)
	}, "the onward referral reaches the inbox")
	h.JSON("POST", "/v1/onward-referrals/"+onward.OnwardReferralID+"/accept", vcs, map[string]any{}, 200, nil)
	// The views hold the person before erasure (else the test proves nothing).
	_, caseload := h.Do("GET", "/v1/journeys/"+j, lw, nil)
	_, inbox := h.Do("GET", "/v1/inbox", vcs, nil)
	if !strings.Contains(string(caseload), "Erasmus") || !strings.Contains(string(inbox), "07700 900456") {
		t.Fatalf("the views did not hold the person before erasure:\n%s\n%s", caseload, inbox)
	}

	// Refused: bad input, wrong kind.
	if st, _ := h.Do("POST", "/v1/admin/erasures", admin, map[string]string{"nhs_number": "9476719930"}); st != 400 {
		t.Errorf("a bad NHS number: %d", st)
	}
	if st, _ := h.Do("POST", "/v1/admin/erasures", gp, map[string]string{"nhs_number": nhs}); st != 403 {
		t.Errorf("a GP key: %d", st)
	}
	var res struct{ Journeys int }
	h.JSON("POST", "/v1/admin/erasures", admin, map[string]string{"nhs_number": nhs}, 200, &res)
	if res.Journeys != 2 {
		t.Errorf("erased %d journeys, want 2", res.Journeys)
	}

	// Every view drops the person.
	visible := func() string {
		var b strings.Builder
		for _, jj := range journeys {
			_, x := h.Do("GET", "/v1/referrals/"+jj, gp, nil)
			b.Write(x)
			_, x = h.Do("GET", "/v1/journeys/"+jj, lw, nil)
			b.Write(x)
		}
		for _, p := range []struct{ path, key string }{{"/v1/referrals", gp}, {"/v1/caseload", lw}, {"/v1/inbox", vcs},
			{"/v1/onward-referrals/" + onward.OnwardReferralID, vcs}, {"/v1/outcomes/events", "demo-icb-qyg"}} {
			_, x := h.Do("GET", p.path, p.key, nil)
			b.Write(x)
		}
		return b.String()
	}
	h.Eventually(func() bool { return leaked(visible()) == nil }, "every view drops the person")
	// Nothing on the server: log, views, feeds, keys, every KV revision.
	nc := h.JS()
	var last string
	h.Eventually(func() bool {
		last = everything(t, nc)
		if leaked(last) == nil {
			return true
		}
		for _, line := range strings.Split(last, "\n") {
			if leaked(line) != nil {
				t.Logf("holds the person: %.300s", line)
			}
		}
		return false
	}, "no stream or KV revision holds the person")
	if l := leaked(everything(t, nc)); l != nil {
		t.Errorf("still stored: %v", l)
	}
	if l := leaked(logs.String()); l != nil {
		t.Errorf("the log holds %v", l)
	}

	// A rebuild of every view from the log still succeeds, masked.
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"referrals", "caseload", "inbox"} {
		cfg := hub.DefaultConfig()
		cfg.Data, cfg.NATSListen, cfg.HTTP, cfg.Log = data, "off", "127.0.0.1:0", slog.New(slog.NewTextHandler(&logs, nil))
		if _, err := hub.Rebuild(context.Background(), cfg, r, nil); err != nil {
			t.Errorf("rebuild %s: %v", r, err)
		}
	}
	h2 := hubtest.Start(t, func(c *hub.Config) { c.Data = data })
	h2.Eventually(func() bool {
		st, b := h2.Do("GET", "/v1/journeys/"+j, lw, nil)
		return st == 200 && leaked(string(b)) == nil
	}, "the rebuilt caseload shows the journey, masked")
	if l := leaked(everything(t, h2.JS())); l != nil {
		t.Errorf("after the rebuild, still stored: %v", l)
	}
}

func leaked(s string) []string {
	var out []string
	for _, x := range secrets {
		if strings.Contains(s, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestReadsAreAudited: each party's read of a journey's identifiable data
// is in the audit, with who, which organisation and which route; only an
// admin may read the audit.
func TestReadsAreAudited(t *testing.T) {
	h := hubtest.Start(t)
	const gp, lw, vcs, admin = "demo-gp-a81001", "demo-lw-u12345", "demo-vcs-001", "demo-admin"
	var ref struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", gp, referral("AUDIT-1"), 201, &ref)
	j := ref.JourneyID
	h.JSON("POST", "/v1/journeys/"+j+"/assign", lw, map[string]any{"worker_id": "lw-7", "worker_name": "Sam Link"}, 200, nil)
	h.JSON("POST", "/v1/journeys/"+j+"/contacts", lw, map[string]any{"outcome": "reached", "method": "phone"}, 200, nil)
	var onward struct {
		OnwardReferralID string `json:"onward_referral_id"`
	}
	h.JSON("POST", "/v1/journeys/"+j+"/onward-referrals", lw, map[string]any{"service_id": "VCS001-walk", "share": []string{"name"}}, 200, &onward)

	h.JSON("GET", "/v1/referrals/"+j, gp, nil, 200, nil)
	h.JSON("GET", "/v1/journeys/"+j, lw, nil, 200, nil)
	h.Eventually(func() bool {
		_, b := h.Do("GET", "/v1/caseload", lw, nil)
		return strings.Contains(string(b), j)
	}, "the caseload shows the journey")
	h.Eventually(func() bool {
		_, b := h.Do("GET", "/v1/inbox", vcs, nil)
		return strings.Contains(string(b), onward.OnwardReferralID)
	}, "the inbox shows the onward referral")
	h.JSON("GET", "/v1/onward-referrals/"+onward.OnwardReferralID, vcs, nil, 200, nil)

	var got struct {
		Reads []struct {
			OrgID    string   `json:"org_id"`
			KeyID    string   `json:"key_id"`
			Route    string   `json:"route"`
			Journeys []string `json:"journeys"`
		}
	}
	h.JSON("GET", "/v1/admin/audit?journey="+j, admin, nil, 200, &got)
	seen := map[string]bool{}
	for _, r := range got.Reads {
		seen[r.OrgID+" "+r.Route] = true
		if r.KeyID == "" || len(r.Journeys) != 1 || r.Journeys[0] != j {
			t.Errorf("incomplete record %+v", r)
		}
	}
	for _, want := range []string{"A81001 GET /v1/referrals/{id}", "U12345 GET /v1/journeys/{id}", "U12345 GET /v1/caseload",
		"VCS001 GET /v1/inbox", "VCS001 GET /v1/onward-referrals/{id}"} {
		if !seen[want] {
			t.Errorf("no audit record %q in %v", want, seen)
		}
	}
	if st, _ := h.Do("GET", "/v1/admin/audit?journey="+j, gp, nil); st != 403 {
		t.Errorf("a GP key reads the audit: %d", st)
	}
	if st, _ := h.Do("GET", "/v1/admin/audit?journey=x.>", admin, nil); st != 400 {
		t.Errorf("a bad journey id: %d", st)
	}
}
