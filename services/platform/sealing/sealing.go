// Package sealing keeps personal data on the journey log encrypted with a
// key of the person's own, so that erasing a person is destroying one key
// (crypto-shredding) while the log stays append-only.
//
// Every PersonalData and FreeText message inside an event, at any depth, is
// replaced on the log by its Sealed form: AES-256-GCM under the person's
// data key. Data keys live in their own KV bucket, each wrapped (AES-GCM)
// by the master key from the operator's configuration; the master key
// never leaves the process. A key's id is a keyed hash of the NHS number,
// so the bucket reveals no one.
package sealing

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Bucket holds the wrapped data keys, one per person.
const Bucket = "lw_person_keys"

// Keyring seals and opens personal data.
type Keyring struct {
	kv    jetstream.KeyValue
	kek   cipher.AEAD // wraps data keys
	idKey []byte      // keys the person key ids

	mu     sync.RWMutex
	keys   map[string]cipher.AEAD // opened data keys
	erased map[string]bool
}

// entry is what the bucket holds for a person.
type entry struct {
	Wrapped []byte `json:"wrapped"`
	// Journeys lists the person's journeys, so that an erasure finds them
	// all.
	Journeys []string `json:"journeys"`
}

// Open opens the keyring with a 32-byte master key, watching the bucket so
// that a key erased by another process is forgotten here too.
func Open(ctx context.Context, js jetstream.JetStream, master []byte, replicas int) (*Keyring, error) {
	if len(master) != 32 {
		return nil, errors.New("the master key must be 32 bytes")
	}
	wrapKey := hmacSum(master, "linkway data-key wrapping")
	block, err := aes.NewCipher(wrapKey)
	if err != nil {
		return nil, err
	}
	kek, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Linkway per-person data keys, wrapped by the master key",
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("person keys bucket: %w", err)
	}
	if kv, err = leaderReads(ctx, js, kv); err != nil {
		return nil, fmt.Errorf("person keys bucket: %w", err)
	}
	k := &Keyring{kv: kv, kek: kek, idKey: hmacSum(master, "linkway person key id"),
		keys: map[string]cipher.AEAD{}, erased: map[string]bool{}}
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch person keys: %w", err)
	}
	go k.forgetErased(ctx, w)
	return k, nil
}

// leaderReads turns direct gets off for a replicated bucket and reopens
// it: a follower answers a direct get with what it has applied so far, and
// a key enrolled a moment ago that it has not yet got would read as erased.
func leaderReads(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
	s, err := js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return nil, err
	}
	sc := s.CachedInfo().Config
	if sc.Replicas <= 1 || !sc.AllowDirect {
		return kv, nil
	}
	sc.AllowDirect = false
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		return nil, err
	}
	return js.KeyValue(ctx, kv.Bucket())
}

func (k *Keyring) forgetErased(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				k.mu.Lock()
				delete(k.keys, e.Key())
				k.erased[e.Key()] = true
				k.mu.Unlock()
			}
		}
	}
}

func hmacSum(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// PersonKeyID names the data key of the person with this NHS number.
func (k *Keyring) PersonKeyID(nhsNumber string) string {
	m := hmac.New(sha256.New, k.idKey)
	m.Write([]byte(strings.ReplaceAll(nhsNumber, " ", "")))
	return "p" + hex.EncodeToString(m.Sum(nil)[:16])
}

// ErrErased is returned when a person's key has been destroyed.
var ErrErased = errors.New("the person's data has been erased")

// key returns the person's data key; with create it makes one (recording
// the journey) when there is none yet.
func (k *Keyring) key(ctx context.Context, keyID string) (cipher.AEAD, error) {
	k.mu.RLock()
	aead, ok := k.keys[keyID]
	erased := k.erased[keyID]
	k.mu.RUnlock()
	if ok {
		return aead, nil
	}
	if erased {
		return nil, ErrErased
	}
	e, err := k.kv.Get(ctx, keyID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("person key: %w", err)
	}
	return k.remember(keyID, e.Value())
}

func (k *Keyring) remember(keyID string, stored []byte) (cipher.AEAD, error) {
	var en entry
	if err := json.Unmarshal(stored, &en); err != nil {
		return nil, fmt.Errorf("person key record: %w", err)
	}
	ns := k.kek.NonceSize()
	if len(en.Wrapped) < ns {
		return nil, errors.New("person key record: too short")
	}
	dk, err := k.kek.Open(nil, en.Wrapped[:ns], en.Wrapped[ns:], []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("unwrap person key: %w", err)
	}
	aead, err := newAEAD(dk)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keys[keyID] = aead
	k.mu.Unlock()
	return aead, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Enrol makes sure the person has a data key and records the journey as
// theirs. It is called once per journey, when it is referred.
func (k *Keyring) Enrol(ctx context.Context, keyID, journeyID string) error {
	for range 10 {
		e, err := k.kv.Get(ctx, keyID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			dk := make([]byte, 32)
			nonce := make([]byte, k.kek.NonceSize())
			if _, err := rand.Read(dk); err != nil {
				return err
			}
			if _, err := rand.Read(nonce); err != nil {
				return err
			}
			en := entry{Wrapped: k.kek.Seal(nonce, nonce, dk, []byte(keyID)), Journeys: []string{journeyID}}
			b, _ := json.Marshal(en)
			if _, err := k.kv.Create(ctx, keyID, b); errors.Is(err, jetstream.ErrKeyExists) {
				continue // made by another at the same time
			} else if err != nil {
				return fmt.Errorf("create person key: %w", err)
			}
			k.mu.Lock()
			delete(k.erased, keyID) // a person referred again after erasure starts afresh
			k.mu.Unlock()
			_, err := k.remember(keyID, b)
			return err
		case err != nil:
			return fmt.Errorf("person key: %w", err)
		}
		var en entry
		if err := json.Unmarshal(e.Value(), &en); err != nil {
			return fmt.Errorf("person key record: %w", err)
		}
		for _, j := range en.Journeys {
			if j == journeyID {
				return nil
			}
		}
		en.Journeys = append(en.Journeys, journeyID)
		b, _ := json.Marshal(en)
		if _, err := k.kv.Update(ctx, keyID, b, e.Revision()); err == nil {
			return nil
		}
	}
	return errors.New("person key: too many concurrent changes")
}

// Journeys lists the journeys recorded for a person.
func (k *Keyring) Journeys(ctx context.Context, keyID string) ([]string, error) {
	e, err := k.kv.Get(ctx, keyID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var en entry
	if err := json.Unmarshal(e.Value(), &en); err != nil {
		return nil, err
	}
	return en.Journeys, nil
}

// Erase destroys a person's data key, history included: from then on
// nothing sealed with it can be opened, here or anywhere.
func (k *Keyring) Erase(ctx context.Context, keyID string) error {
	if err := k.kv.Purge(ctx, keyID); err != nil {
		return fmt.Errorf("erase person key: %w", err)
	}
	k.mu.Lock()
	delete(k.keys, keyID)
	k.erased[keyID] = true
	k.mu.Unlock()
	return nil
}

var (
	personalName = (&eventsv1.PersonalData{}).ProtoReflect().Descriptor().FullName()
	freeTextName = (&eventsv1.FreeText{}).ProtoReflect().Descriptor().FullName()
)

// Seal encrypts, in place, every PersonalData and FreeText inside m with
// the person's key. With keyID empty (an erased person) it clears them
// instead: an erased journey takes no new personal data.
func (k *Keyring) Seal(ctx context.Context, m proto.Message, keyID string) error {
	var aead cipher.AEAD
	if keyID != "" {
		var err error
		if aead, err = k.key(ctx, keyID); err != nil {
			return err
		}
	}
	return walk(m.ProtoReflect(), func(pm protoreflect.Message) error {
		if aead == nil {
			clearPlain(pm)
			return nil
		}
		plain, err := proto.Marshal(pm.Interface())
		if err != nil {
			return err
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		clearPlain(pm)
		sealed := &eventsv1.Sealed{KeyId: keyID, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plain, []byte(pm.Descriptor().FullName()))}
		pm.Set(pm.Descriptor().Fields().ByName("sealed"), protoreflect.ValueOfMessage(sealed.ProtoReflect()))
		return nil
	})
}

// Unseal decrypts, in place, every sealed message inside m. What was
// sealed with an erased key is left empty: the person's data is gone.
func (k *Keyring) Unseal(ctx context.Context, m proto.Message) error {
	return walk(m.ProtoReflect(), func(pm protoreflect.Message) error {
		sfd := pm.Descriptor().Fields().ByName("sealed")
		if !pm.Has(sfd) {
			return nil
		}
		s := pm.Get(sfd).Message().Interface().(*eventsv1.Sealed)
		pm.Clear(sfd)
		aead, err := k.key(ctx, s.GetKeyId())
		if errors.Is(err, ErrErased) {
			return nil
		}
		if err != nil {
			return err
		}
		plain, err := aead.Open(nil, s.GetNonce(), s.GetCiphertext(), []byte(pm.Descriptor().FullName()))
		if err != nil {
			return fmt.Errorf("open sealed %s: %w", pm.Descriptor().Name(), err)
		}
		return proto.UnmarshalOptions{Merge: true}.Unmarshal(plain, pm.Interface())
	})
}

// clearPlain empties every field but `sealed`.
func clearPlain(pm protoreflect.Message) {
	pm.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() != "sealed" {
			pm.Clear(fd)
		}
		return true
	})
}

// walk calls fn on every PersonalData and FreeText message inside m.
func walk(m protoreflect.Message, fn func(protoreflect.Message) error) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		visit := func(child protoreflect.Message) bool {
			name := child.Descriptor().FullName()
			if name == personalName || name == freeTextName {
				err = fn(child)
			} else {
				err = walk(child, fn)
			}
			return err == nil
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if !visit(l.Get(i).Message()) {
					return false
				}
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { return visit(mv.Message()) })
			}
		default:
			return visit(v.Message())
		}
		return err == nil
	})
	return err
}
