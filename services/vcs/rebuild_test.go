package vcs_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/views"
	"linkway/services/vcs"
)

// viewContents reads every entry of the inbox bucket but the checkpoints.
func viewContents(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, views.BucketName(vcs.InboxProjection))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k := range keys.Keys() {
		if strings.HasPrefix(k, views.CheckpointKey) {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = string(e.Value())
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
	for _, r := range h.Runners() {
		if r.Name() == vcs.InboxProjection {
			if err := r.WaitFor(context.Background(), res.LastSeq); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := viewContents(t, h.JS())
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
	if _, err := hub.Rebuild(context.Background(), cfg, vcs.InboxProjection, nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	h2 := hubtest.Start(t, func(c *hub.Config) { c.Data = h.Data })
	after := viewContents(t, h2.JS())
	if !maps.Equal(before, after) {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("rebuilt %s differs:\n before %s\n after  %s", k, v, after[k])
			}
		}
		t.Errorf("rebuilt view has %d entries, the live one %d", len(after), len(before))
	}
}
