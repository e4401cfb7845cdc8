package outcomes

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
)

// pseudonymiser turns identifiers into keyed pseudonyms: HMAC-SHA256 under a
// per-deployment secret, prefixed with the secret's id ("k1:<hex>"), so a
// rotated secret gives visibly different pseudonyms rather than silently
// unlinkable ones. Without the secret a pseudonym cannot be recomputed from
// a guessed NHS number (there are only about 10^9 of them, so an unkeyed
// hash would be reversible).
type pseudonymiser struct {
	keyID string
	key   []byte
	// macs reuses keyed HMAC states: the projection makes one or two
	// pseudonyms for most events it applies.
	macs sync.Pool
}

func newPseudonymiser(keyID string, key []byte) (*pseudonymiser, error) {
	if len(key) < 16 {
		return nil, errors.New("the pseudonym key must be at least 16 bytes")
	}
	if keyID == "" {
		keyID = "k1"
	}
	if strings.ContainsAny(keyID, ": \t\n") {
		return nil, fmt.Errorf("pseudonym key id %q may not hold ':' or spaces", keyID)
	}
	p := &pseudonymiser{keyID: keyID, key: key}
	p.macs.New = func() any { return hmac.New(sha256.New, p.key) }
	return p, nil
}

func (p *pseudonymiser) mac(domain, value string) string {
	h := p.macs.Get().(hash.Hash)
	defer p.macs.Put(h)
	h.Reset()
	h.Write([]byte(domain))
	h.Write([]byte(value))
	var sum [sha256.Size]byte
	out := make([]byte, len(p.keyID)+1+2*sha256.Size)
	copy(out, p.keyID)
	out[len(p.keyID)] = ':'
	hex.Encode(out[len(p.keyID)+1:], h.Sum(sum[:0]))
	return string(out)
}

// person is the pseudonym of an NHS number: HMAC-SHA256 of its digits, so
// one person links across journeys. "" when there is no number (erased).
func (p *pseudonymiser) person(nhs string) string {
	n := events.NormaliseNHSNumber(nhs)
	if n == "" {
		return ""
	}
	return p.mac("", n)
}

// journey is a journey's pseudonym. It is domain-separated from person
// pseudonyms so that no journey id can collide with a person.
func (p *pseudonymiser) journey(id string) string {
	return p.mac("journey\x00", id)
}

// secretsBucket keeps the generated demo pseudonym key, so pseudonyms stay
// stable across restarts of a demo hub.
const secretsBucket = "lw_outcomes_secrets"

const demoKeyName = "pseudonym_key"

// errNoKey is returned outside demo mode when no pseudonym key is set and
// none was ever generated for this deployment.
var errNoKey = errors.New("a pseudonym key is required (--pseudonym-key or LINKWAY_PSEUDONYM_KEY) outside --demo")

// loadKey returns the pseudonym key: the operator's, or in demo mode one
// generated once and kept in a KV bucket. Outside demo mode a missing key
// is an error: pseudonyms made with a throwaway key would change at every
// restart and could never be linked again. The one exception is a data
// folder that already holds a generated key (a demo deployment opened
// without --demo, as `linkway rebuild` does): that key is used, so the
// tools work on demo data and the feed's pseudonyms stay as they were.
func loadKey(ctx context.Context, js jetstream.JetStream, configured string, demo bool, replicas int) (key []byte, generated bool, err error) {
	if configured != "" {
		return []byte(configured), false, nil
	}
	if !demo {
		kv, err := js.KeyValue(ctx, secretsBucket)
		if err != nil {
			return nil, false, errNoKey
		}
		e, err := kv.Get(ctx, demoKeyName)
		if err != nil {
			return nil, false, errNoKey
		}
		return e.Value(), true, nil
	}
	key, err = generatedKey(ctx, js, replicas)
	return key, true, err
}

// generatedKey returns the deployment's generated key, making it the
// first time.
func generatedKey(ctx context.Context, js jetstream.JetStream, replicas int) ([]byte, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: secretsBucket, Description: "Linkway outcomes: generated demo pseudonym key",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("outcomes secrets bucket: %w", err)
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate pseudonym key: %w", err)
	}
	// Create, not Put: of two replicas starting together, one key wins and
	// both use it.
	if _, err := kv.Create(ctx, demoKeyName, []byte(hex.EncodeToString(fresh))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("store pseudonym key: %w", err)
	}
	e, err := kv.Get(ctx, demoKeyName)
	if err != nil {
		return nil, fmt.Errorf("read pseudonym key: %w", err)
	}
	return e.Value(), nil
}
