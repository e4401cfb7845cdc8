package kvmirror_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/kvmirror"
	"linkway/services/platform/natsserver"
)

// TestMirrorFollowsTheBucket: loaded at start, then puts and deletes seen,
// Changed closed at each, Scan in key order.
func TestMirrorFollowsTheBucket(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "mirror_test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	m, err := kvmirror.New(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("b"); !ok || string(v) != "2" {
		t.Fatalf("loaded b = %q, %v", v, ok)
	}
	changed := m.Changed()
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen after a put")
	}
	if got := m.Scan(""); len(got) != 2 || got[0].Key != "a" || got[1].Key != "b" {
		t.Errorf("Scan = %v, want a then b", got)
	}
	changed = m.Changed()
	if err := kv.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen after a delete")
	}
	if _, ok := m.Get("b"); ok {
		t.Error("a deleted key is still mirrored")
	}
}
