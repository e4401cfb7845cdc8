package apikeys_test

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestKeysAreCachedAndRevocationHonoured: a revocation by another process
// stops a key here within seconds, and a key found is answered from memory
// (it works while NATS is away).
func TestKeysAreCachedAndRevocationHonoured(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns, js := natsserver.Test(t)
	admin, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := apikeys.OpenKeyRing(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := admin.NewKey(ctx, "A81001", events.KindGP)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := replica.Lookup(ctx, key); !ok || err != nil {
		t.Fatalf("lookup: %v %v", ok, err)
	}
	kv, err := js.KeyValue(ctx, apikeys.KeysBucket)
	if err != nil {
		t.Fatal(err)
	}
	if found, err := admin.Revoke(ctx, rec.KeyID); err != nil || !found {
		t.Fatalf("revoke: %v %v", found, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := replica.Lookup(ctx, key); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key revoked by another process still works here after 5s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if _, err := kv.Get(ctx, apikeys.HashKey(key)); err == nil {
		t.Error("the revoked key's record is still readable")
	}

	// A key in use is answered from memory: it works while NATS is away.
	other, _, err := admin.NewKey(ctx, "A81002", events.KindGP)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := replica.Lookup(ctx, other); !ok || err != nil {
		t.Fatalf("lookup: %v %v", ok, err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	if p, ok, err := replica.Lookup(ctx, other); !ok || err != nil || p.OrgID != "A81002" {
		t.Errorf("a cached key with NATS away: %+v %v %v", p, ok, err)
	}
}
