// Package apikeys keeps the API keys of organisations: SHA-256 hashes in a
// JetStream KV bucket, and the demo keys of API.md in memory under --demo.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
)

// KeysBucket is the KV bucket of API keys: SHA-256 of the key to the
// principal. Keys are long random strings, so a fast hash is enough: no
// one can guess their way back from it.
const KeysBucket = "lw_keys"

// KeyRing holds API keys by hash only: in a KV bucket, and (demo mode only)
// the demo keys of API.md in memory, so they never outlive --demo.
//
// Keys found are cached, so a request costs no read of the bucket: a watch
// on the bucket drops a key from the cache as soon as it is revoked (by
// any process), and no entry is trusted longer than CacheTTL in case the
// watch falls behind.
type KeyRing struct {
	kv   jetstream.KeyValue
	demo map[string]api.Principal
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKey
	// drops counts changes seen, so a read that raced a revocation is not
	// cached.
	drops uint64
}

type cachedKey struct {
	p     api.Principal
	until time.Time
	// revision of the record read: a watch update of it or older (the
	// key's own creation arriving late) leaves the entry in place.
	revision uint64
}

// CacheTTL bounds how long a key found is trusted without asking the
// bucket again.
const CacheTTL = 10 * time.Second

// HashKey is the stored form of a key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// OpenKeyRing opens (creating if need be) the keys bucket, and watches it
// until ctx ends so that a key revoked anywhere stops working here within
// moments.
func OpenKeyRing(ctx context.Context, js jetstream.JetStream, replicas int) (*KeyRing, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KeysBucket, Description: "Linkway API keys (SHA-256 of the key -> organisation)",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("keys bucket: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch keys bucket: %w", err)
	}
	k := &KeyRing{kv: kv, demo: map[string]api.Principal{}, now: time.Now, cache: map[string]cachedKey{}}
	go k.watch(ctx, w)
	return k, nil
}

// watch drops from the cache every key whose record changes: revoked
// (deleted or purged) or rewritten.
func (k *KeyRing) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				// A key made or rewritten: forget what was cached of it.
				// Only a revocation must also stop a racing read from
				// caching (a new key racing its first use is harmless).
				k.evict(e.Key(), e.Revision())
				continue
			}
			k.drop(e.Key())
		}
	}
}

func (k *KeyRing) evict(hash string, revision uint64) {
	k.mu.Lock()
	if c, ok := k.cache[hash]; ok && c.revision < revision {
		delete(k.cache, hash)
	}
	k.mu.Unlock()
}

// drop forgets a revoked key, and makes any read in flight not cache.
func (k *KeyRing) drop(hash string) {
	k.mu.Lock()
	delete(k.cache, hash)
	k.drops++
	k.mu.Unlock()
}

// AddDemo accepts key in memory only (demo mode).
func (k *KeyRing) AddDemo(key string, p api.Principal) {
	if p.KeyID == "" {
		p.KeyID = "demo:" + HashKey(key)[:12]
	}
	k.demo[HashKey(key)] = p
}

// KeyRecord is what is stored of a key: never the key itself.
type KeyRecord struct {
	api.Principal
	Created time.Time `json:"created"`
}

// NewKey makes a key for an organisation, stores only its hash, and
// returns the key: the one time it is ever shown.
func (k *KeyRing) NewKey(ctx context.Context, orgID string, kind events.Kind) (string, KeyRecord, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", KeyRecord{}, err
	}
	// The key names its organisation (not a secret), so that failed
	// sign-ins can be counted per organisation attempted (OrgOf).
	key := "lw_" + orgID + "_" + base64.RawURLEncoding.EncodeToString(raw)
	h := HashKey(key)
	rec := KeyRecord{Principal: api.Principal{OrgID: orgID, Kind: kind, KeyID: KeyIDOf(h)}, Created: time.Now().UTC()}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", KeyRecord{}, err
	}
	if _, err := k.kv.Create(ctx, h, b); err != nil {
		return "", KeyRecord{}, fmt.Errorf("store key: %w", err)
	}
	return key, rec, nil
}

// Create stores the hash of a key chosen by the caller (keys moved from
// another system; tests).
func (k *KeyRing) Create(ctx context.Context, key string, p api.Principal) error {
	h := HashKey(key)
	if p.KeyID == "" {
		p.KeyID = KeyIDOf(h)
	}
	b, err := json.Marshal(KeyRecord{Principal: p, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	_, err = k.kv.Create(ctx, h, b)
	return err
}

// KeyIDOf is the public name of a key: a prefix of its hash, enough to
// tell keys apart in lists and audit, useless for finding the key.
func KeyIDOf(hash string) string { return "key_" + hash[:16] }

// List returns every stored key's record.
func (k *KeyRing) List(ctx context.Context) ([]KeyRecord, error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []KeyRecord
	for h := range lister.Keys() {
		e, err := k.kv.Get(ctx, h)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec KeyRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Revoke deletes a key by its id, history included; found is false when
// there is no such key.
func (k *KeyRing) Revoke(ctx context.Context, keyID string) (found bool, err error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return false, err
	}
	for h := range lister.Keys() {
		if KeyIDOf(h) == keyID {
			found = true
			if err := k.kv.Purge(ctx, h); err != nil {
				return true, err
			}
			k.drop(h)
		}
	}
	return found, nil
}

// Lookup implements Keys.
func (k *KeyRing) Lookup(ctx context.Context, key string) (api.Principal, bool, error) {
	h := HashKey(key)
	if p, ok := k.demo[h]; ok {
		return p, true, nil
	}
	k.mu.Lock()
	c, ok := k.cache[h]
	drops := k.drops
	k.mu.Unlock()
	if ok && k.now().Before(c.until) {
		return c.p, true, nil
	}
	e, err := k.kv.Get(ctx, h)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return api.Principal{}, false, nil
	}
	if err != nil {
		return api.Principal{}, false, err
	}
	var rec KeyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return api.Principal{}, false, fmt.Errorf("key record: %w", err)
	}
	k.mu.Lock()
	if k.drops == drops {
		k.cache[h] = cachedKey{p: rec.Principal, until: k.now().Add(CacheTTL), revision: e.Revision()}
	}
	k.mu.Unlock()
	return rec.Principal, true, nil
}
