package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Keys finds the principal of an API key.
type Keys interface {
	Lookup(ctx context.Context, key string) (Principal, bool, error)
}

// KeysBucket is the KV bucket of API keys: SHA-256 of the key to the
// principal. Keys are long random strings, so a fast hash is enough: no
// one can guess their way back from it.
const KeysBucket = "lw_keys"

// KeyRing holds API keys by hash only: in a KV bucket, and (demo mode only)
// the demo keys of API.md in memory, so they never outlive --demo.
type KeyRing struct {
	kv   jetstream.KeyValue
	demo map[string]Principal
}

// HashKey is the stored form of a key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// OpenKeyRing opens (creating if need be) the keys bucket.
func OpenKeyRing(ctx context.Context, js jetstream.JetStream, replicas int) (*KeyRing, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KeysBucket, Description: "Linkway API keys (SHA-256 of the key -> organisation)",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("keys bucket: %w", err)
	}
	return &KeyRing{kv: kv, demo: map[string]Principal{}}, nil
}

// AddDemo accepts key in memory only (demo mode).
func (k *KeyRing) AddDemo(key string, p Principal) {
	if p.KeyID == "" {
		p.KeyID = "demo:" + HashKey(key)[:12]
	}
	k.demo[HashKey(key)] = p
}

// Create stores a key's hash with its principal.
func (k *KeyRing) Create(ctx context.Context, key string, p Principal) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = k.kv.Create(ctx, HashKey(key), b)
	return err
}

// Lookup implements Keys.
func (k *KeyRing) Lookup(ctx context.Context, key string) (Principal, bool, error) {
	h := HashKey(key)
	if p, ok := k.demo[h]; ok {
		return p, true, nil
	}
	e, err := k.kv.Get(ctx, h)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, false, err
	}
	var p Principal
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return Principal{}, false, fmt.Errorf("key record: %w", err)
	}
	return p, true, nil
}
