package apikeys_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/natsserver"
)

func TestKeysAreStoredOnlyAsHashes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	ring, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := ring.NewKey(ctx, "A81001", events.KindGP)
	if err != nil {
		t.Fatal(err)
	}
	p, ok, err := ring.Lookup(ctx, key)
	if err != nil || !ok || p.OrgID != "A81001" || p.Kind != events.KindGP || p.KeyID != rec.KeyID {
		t.Fatalf("lookup: %+v %v %v", p, ok, err)
	}
	// Nothing in the bucket, keys or values, holds the key.
	kv, err := js.KeyValue(ctx, apikeys.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, _ := kv.ListKeys(ctx)
	for h := range lister.Keys() {
		e, _ := kv.Get(ctx, h)
		if strings.Contains(h, key) || strings.Contains(string(e.Value()), key) || strings.Contains(string(e.Value()), key[3:20]) {
			t.Errorf("the key is stored in the clear: %s = %s", h, e.Value())
		}
	}
	recs, err := ring.List(ctx)
	if err != nil || len(recs) != 1 || recs[0].KeyID != rec.KeyID {
		t.Fatalf("list: %+v %v", recs, err)
	}
	if found, err := ring.Revoke(ctx, rec.KeyID); err != nil || !found {
		t.Fatalf("revoke: %v %v", found, err)
	}
	if _, ok, _ := ring.Lookup(ctx, key); ok {
		t.Error("a revoked key still works")
	}
	// Revocation purges: no earlier revision of the record is left.
	hist, err := kv.History(ctx, apikeys.HashKey(key))
	if err != nil && err != jetstream.ErrKeyNotFound {
		t.Fatal(err)
	}
	for _, e := range hist {
		if e.Operation() == jetstream.KeyValuePut {
			t.Errorf("revision %d of the revoked key's record survives", e.Revision())
		}
	}
	if found, _ := ring.Revoke(ctx, rec.KeyID); found {
		t.Error("revoked twice")
	}
}

func TestDemoKeysLiveOnlyInMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	ring, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ring.AddDemo("demo-gp-a81001", api.Principal{OrgID: "A81001", Kind: events.KindGP})
	if _, ok, _ := ring.Lookup(ctx, "demo-gp-a81001"); !ok {
		t.Fatal("demo key refused in demo mode")
	}
	// A ring opened without --demo on the same store does not know it.
	other, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := other.Lookup(ctx, "demo-gp-a81001"); ok {
		t.Error("a demo key works without --demo")
	}
}
