package vcs_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/vcs"
)

// viewContents reads every entry of the inbox view but the feed's outbox
// (which holds only what the feed had not published yet: a rebuild writes
// none of what it has).
func viewContents(t *testing.T, h *hubtest.Hub) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := h.Views().View(vcs.InboxProjection).ForEach("", func(k string, v []byte) error {
		if !strings.HasPrefix(k, "q.") && !strings.HasPrefix(k, "x.") && k != "t" {
			out[k] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRebuiltInboxEqualsTheLiveOne(t *testing.T) {
	h := hubtest.Start(t)
	a := toOnward(t, h, walk, "name", "phone")
	b := toOnward(t, h, walk, "notes")
	c := toOnward(t, h, debt, "name")
	for _, j := range []journey{a, b} {
		waitInInbox(t, h, vcs1Key, j.OnwardID)
	}
	waitInInbox(t, h, vcs2Key, c.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/attendance", vcs1Key, map[string]any{"date": "2026-11-20", "attended": true}, 200, nil)
	h.JSON("POST", "/v1/onward-referrals/"+c.OnwardID+"/decline", vcs2Key, map[string]any{"reason": "other", "detail": "not our area"}, 200, nil)
	admin := journal.Meta{Actor: &eventsv1.Actor{OrganisationId: "OPERATOR", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN}}
	res, err := h.Journal().Execute(context.Background(), b.ID, admin, events.ErasePersonalData{})
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Views().WaitFor(wait, res.LastSeq, vcs.InboxProjection); err != nil {
		t.Fatal(err)
	}
	before := viewContents(t, h)
	if len(before) < 3 {
		t.Fatalf("the live view holds too little to compare: %v", before)
	}
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}

	cfg := hub.DefaultConfig()
	cfg.Data, cfg.HTTP, cfg.NATSListen = h.Data, "127.0.0.1:0", "off"
	cfg.Services = []string{"vcs"}
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := hub.RebuildViews(context.Background(), cfg, []string{vcs.InboxProjection}, nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	h2 := hubtest.Start(t, func(c *hub.Config) { c.Data = h.Data })
	after := viewContents(t, h2)
	if !maps.Equal(before, after) {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("rebuilt %s differs:\n before %s\n after  %s", k, v, after[k])
			}
		}
		t.Errorf("rebuilt view has %d entries, the live one %d", len(after), len(before))
	}
}
