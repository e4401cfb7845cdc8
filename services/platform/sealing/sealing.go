// Package sealing keeps personal data on the journey log encrypted with a
// key of the person's own, so that erasing a person is destroying their
// keys (crypto-shredding) while the log stays append-only.
//
// Every PersonalData and FreeText message inside an event, at any depth, is
// replaced on the log by its Sealed form: AES-256-GCM under the person's
// data key. Data keys live in their own KV bucket, each wrapped (AES-GCM)
// by the master key from the operator's configuration; the master key
// never leaves the process, and a check value beside the keys refuses a
// wrong one at open.
//
// No write is on a referral's path: keys are minted ahead into a pool
// (pool.go) and a new person takes one from memory. Key ids are random,
// so a person referred again after erasure gets a new key and what the
// old one sealed reads as erased. Which keys and journeys are a person's
// is a projection of the log (the person index, index.go): each referral
// carries its person (a keyed hash of the NHS number) and key in headers.
package sealing

import (
	"container/list"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Bucket holds the wrapped data keys, one record per key, and the master
// key's check value.
const Bucket = "lw_person_keys"

// Options of a keyring.
type Options struct {
	// Replicas of the key bucket.
	Replicas int
	// PoolSize is how many keys are kept minted ahead (default 256, at
	// most 1000).
	PoolSize int
	// CacheSize bounds the opened data keys kept in memory (default 65536).
	CacheSize int
	// Index, when set, is fed by the caller (the process's log reader,
	// with Apply); otherwise the keyring follows the journey log itself.
	Index *Index
	Log   *slog.Logger
}

// Keyring seals and opens personal data.
type Keyring struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's stream, for secure deletion
	kek    cipher.AEAD      // wraps data keys
	idKey  []byte           // keys the person references
	index  *Index
	pool   *pool
	log    *slog.Logger

	mu     sync.Mutex
	keys   *lru // opened data keys
	erased map[string]bool
	// assigned holds the pool key a person took in this process until the
	// index has their referral, so concurrent referrals of one new person
	// take one key.
	assigned map[string]string
}

// entry is a key record.
type entry struct {
	Wrapped []byte `json:"wrapped"`
	// Journeys is what version 1 kept here; read for its key records.
	Journeys []string `json:"journeys,omitempty"`
}

var (
	// ErrErased is returned for a key that has been destroyed (or never
	// was): what it sealed is gone. Unseal reads such data as erased,
	// never as an error.
	ErrErased = errors.New("the person's data has been erased")
	// ErrWrongMasterKey is returned by Open when the master key is not the
	// one the key bucket was made with.
	ErrWrongMasterKey = errors.New("the master key is not the one these data were sealed with")
)

// Open opens the keyring with a 32-byte master key (see OpenWith).
func Open(ctx context.Context, js jetstream.JetStream, master []byte, replicas int) (*Keyring, error) {
	return OpenWith(ctx, js, master, Options{Replicas: replicas})
}

// OpenWith opens the keyring: it checks the master key against the
// bucket's check value, starts minting keys ahead and, unless opts.Index
// is given, follows the journey log into a person index. Everything it
// starts runs until ctx ends.
func OpenWith(ctx context.Context, js jetstream.JetStream, master []byte, opts Options) (*Keyring, error) {
	if len(master) != 32 {
		return nil, errors.New("the master key must be 32 bytes")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.PoolSize = min(cmpOr(opts.PoolSize, 256), 1000) // a batch holds up to 1000
	opts.CacheSize = cmpOr(opts.CacheSize, 1<<16)
	block, err := aes.NewCipher(hmacSum(master, "linkway data-key wrapping"))
	if err != nil {
		return nil, err
	}
	kek, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Keyring{js: js, kek: kek, idKey: hmacSum(master, "linkway person key id"), log: opts.Log,
		keys: newLRU(opts.CacheSize), erased: map[string]bool{}, assigned: map[string]string{}}
	if err := k.allowDeletes(ctx, js, opts.Replicas); err != nil {
		return nil, err
	}
	if k.stream, err = js.CreateOrUpdateStream(ctx, keysStream(opts.Replicas)); err != nil {
		return nil, fmt.Errorf("person keys bucket: %w", err)
	}
	if k.kv, err = js.KeyValue(ctx, Bucket); err != nil {
		return nil, fmt.Errorf("person keys bucket: %w", err)
	}
	if err := k.checkMaster(ctx, master); err != nil {
		return nil, err
	}
	w, err := k.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch person keys: %w", err)
	}
	go k.forgetErased(ctx, w)
	k.index = opts.Index
	if k.index == nil {
		k.index = NewIndex(js)
		go k.index.Follow(ctx, opts.Log)
	}
	k.pool = newPool(ctx, k, opts.PoolSize)
	return k, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Index is the keyring's person index.
func (k *Keyring) Index() *Index { return k.index }

// keysStream is the bucket's stream: KV's own settings but for deletes.
// Erasure overwrites a key record's bytes (secure deletion), which KV's
// deny-delete refuses and which cannot be turned off once on. A
// replicated bucket is read through the stream leader: a follower answers
// a direct get with what it has applied so far, and a key minted a moment
// ago that it has not yet got would read as erased.
func keysStream(replicas int) jetstream.StreamConfig {
	replicas = max(replicas, 1)
	return jetstream.StreamConfig{
		Name:        "KV_" + Bucket,
		Description: "Linkway per-person data keys, wrapped by the master key",
		Subjects:    []string{"$KV." + Bucket + ".>"},
		Storage:     jetstream.FileStorage, Replicas: replicas,
		MaxMsgsPerSubject: 1, MaxMsgs: -1, MaxBytes: -1, MaxMsgSize: -1, MaxConsumers: -1,
		AllowRollup: true, DenyDelete: false, AllowDirect: replicas <= 1,
		AllowAtomicPublish: true, // the pool stores its keys a batch at a time
		Duplicates:         2 * time.Minute, Discard: jetstream.DiscardNew,
	}
}

// forgetErased drops keys destroyed by any process from memory.
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
			if e != nil && e.Operation() != jetstream.KeyValuePut && e.Key() != checkKey {
				k.forget(e.Key())
			}
		}
	}
}

func (k *Keyring) forget(keyID string) {
	k.mu.Lock()
	k.keys.remove(keyID)
	k.erased[keyID] = true
	for ref, id := range k.assigned {
		if id == keyID {
			delete(k.assigned, ref)
		}
	}
	k.mu.Unlock()
	k.index.destroyed(keyID)
}

func hmacSum(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// PersonRef names the person with this NHS number in the person index
// and on the log: a keyed hash, stable for the master key, that reveals
// no one. (Version 1 used it as the person's key id too.)
func (k *Keyring) PersonRef(nhsNumber string) string {
	m := hmac.New(sha256.New, k.idKey)
	m.Write([]byte(strings.ReplaceAll(nhsNumber, " ", "")))
	return "p" + hex.EncodeToString(m.Sum(nil)[:16])
}

// PersonKeyID is PersonRef, under the name version 1 callers use.
func (k *Keyring) PersonKeyID(nhsNumber string) string { return k.PersonRef(nhsNumber) }

// Enrol returns the key that seals a new journey of the person with this
// NHS number, and the headers that tie the journey's referral to the
// person on the log. It writes nothing: a person the index knows keeps
// their key; a new one (or one erased since) takes a key minted ahead.
func (k *Keyring) Enrol(ctx context.Context, nhsNumber string) (string, map[string]string, error) {
	ref := k.PersonRef(nhsNumber)
	keyID, err := k.keyFor(ctx, ref)
	if err != nil {
		return "", nil, err
	}
	return keyID, map[string]string{HeaderPerson: ref, HeaderKey: keyID}, nil
}

func (k *Keyring) keyFor(ctx context.Context, ref string) (string, error) {
	if err := k.index.Ready(ctx); err != nil {
		return "", err
	}
	for {
		id, ok := k.knownKey(ref)
		if !ok {
			break
		}
		// Opened (cached) or read once: a key the index still holds may
		// have been destroyed before this process started.
		if _, err := k.key(ctx, id); err == nil {
			return id, nil
		} else if !errors.Is(err, ErrErased) {
			return "", err
		}
		k.index.destroyed(id) // gone: the person takes a new key
	}
	pk, err := k.pool.take(ctx)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if id, ok := k.knownKeyLocked(ref); ok {
		k.pool.put(pk) // another referral of the person took one meanwhile
		return id, nil
	}
	k.assigned[ref] = pk.id
	k.keys.add(pk.id, pk.aead)
	return pk.id, nil
}

func (k *Keyring) knownKey(ref string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.knownKeyLocked(ref)
}

func (k *Keyring) knownKeyLocked(ref string) (string, bool) {
	if id, ok := k.assigned[ref]; ok {
		return id, true
	}
	if id, ok := k.index.current(ref); ok && !k.erased[id] {
		return id, true
	}
	return "", false
}

// Appended takes a message the journal has just appended into the person
// index, ahead of the log reader.
func (k *Keyring) Appended(_ uint64, journeyID string, h nats.Header) {
	k.index.Observe(journeyID, h)
	if ref, keyID := h.Get(HeaderPerson), h.Get(HeaderKey); ref != "" {
		k.mu.Lock()
		if k.assigned[ref] == keyID {
			delete(k.assigned, ref) // the index has it now
		}
		k.mu.Unlock()
	}
}

// key returns an opened data key.
func (k *Keyring) key(ctx context.Context, keyID string) (cipher.AEAD, error) {
	k.mu.Lock()
	aead, ok := k.keys.get(keyID)
	erased := k.erased[keyID]
	k.mu.Unlock()
	if ok {
		return aead, nil
	}
	if erased || keyID == checkKey {
		return nil, ErrErased
	}
	e, err := k.kv.Get(ctx, keyID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		k.mu.Lock()
		k.erased[keyID] = true
		k.mu.Unlock()
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("person key: %w", err)
	}
	aead, err = k.open(keyID, e.Value())
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keys.add(keyID, aead)
	k.mu.Unlock()
	return aead, nil
}

// open unwraps a key record.
func (k *Keyring) open(keyID string, stored []byte) (cipher.AEAD, error) {
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
	return newAEAD(dk)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var (
	personalName = (&eventsv1.PersonalData{}).ProtoReflect().Descriptor().FullName()
	freeTextName = (&eventsv1.FreeText{}).ProtoReflect().Descriptor().FullName()
)

// sealable reports whether a message of the named type is sealed whole
// (what walk hands to its fn).
func sealable(name protoreflect.FullName) bool { return name == personalName || name == freeTextName }

// Seal encrypts, in place, every PersonalData and FreeText inside m with
// the person's key. With keyID empty (an erased person), or a key that has
// since been destroyed, it clears them instead: an erased person takes no
// new personal data.
func (k *Keyring) Seal(ctx context.Context, m proto.Message, keyID string) error {
	var aead cipher.AEAD
	if keyID != "" {
		var err error
		aead, err = k.key(ctx, keyID)
		if err != nil && !errors.Is(err, ErrErased) {
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
		if _, err := randRead(nonce); err != nil {
			return err
		}
		clearPlain(pm)
		sealed := &eventsv1.Sealed{KeyId: keyID, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plain, []byte(pm.Descriptor().FullName()))}
		pm.Set(pm.Descriptor().Fields().ByName("sealed"), protoreflect.ValueOfMessage(sealed.ProtoReflect()))
		return nil
	})
}

// Unseal decrypts, in place, every sealed message inside m. What was
// sealed with a destroyed key is left empty: the person's data is gone,
// and that is an answer, not an error.
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
			// The master key is checked at open, so the key is right for
			// its id: this was sealed under an earlier key of the same id
			// (version 1 reused a person's id after erasure), since
			// destroyed. It reads as erased.
			k.log.Warn("sealed data does not open with its key; read as erased", "key", s.GetKeyId())
			return nil
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

// walk calls fn on every PersonalData and FreeText message inside m. It
// looks only into the fields whose type can hold one (reaches), so an
// event's timestamps, codes and the like cost nothing: every event is
// walked when it is appended and each time it is read.
func walk(m protoreflect.Message, fn func(protoreflect.Message) error) error {
	var err error
	visit := func(child protoreflect.Message) bool {
		if sealable(child.Descriptor().FullName()) {
			err = fn(child)
		} else {
			err = walk(child, fn)
		}
		return err == nil
	}
	p := planOf(m.Descriptor())
	each := func(fd protoreflect.FieldDescriptor) error {
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if !visit(l.Get(i).Message()) {
					break
				}
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { return visit(mv.Message()) })
		default:
			visit(v.Message())
		}
		return err
	}
	for _, fd := range p.fields {
		if m.Has(fd) {
			if err := each(fd); err != nil {
				return err
			}
		}
	}
	for _, od := range p.oneofs {
		if fd := m.WhichOneof(od); fd != nil && p.inOneof[fd.Number()] {
			if err := each(fd); err != nil {
				return err
			}
		}
	}
	return nil
}

// plan is the fields of a message type whose values can hold a
// PersonalData or a FreeText message, directly or further down: fields
// outside a oneof, and the oneofs with such a field (an event's payload
// is one of dozens, found with one look rather than one a payload).
type plan struct {
	fields  []protoreflect.FieldDescriptor
	oneofs  []protoreflect.OneofDescriptor
	inOneof map[protoreflect.FieldNumber]bool
}

// plans holds the plan of each message type walked
// (protoreflect.FullName -> *plan).
var plans sync.Map

// planOf is md's plan, made the first time md is walked.
func planOf(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	p := &plan{inOneof: map[protoreflect.FieldNumber]bool{}}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		t := messageOf(fd)
		if t == nil || !reaches(t, map[protoreflect.FullName]bool{}) {
			continue
		}
		od := fd.ContainingOneof()
		if od == nil || od.IsSynthetic() {
			p.fields = append(p.fields, fd)
			continue
		}
		if !slices.Contains(p.oneofs, od) {
			p.oneofs = append(p.oneofs, od)
		}
		p.inOneof[fd.Number()] = true
	}
	plans.Store(md.FullName(), p)
	return p
}

// messageOf is the message type a field's values are (a map's values),
// or nil for a field of scalars.
func messageOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
		return nil
	}
	return fd.Message()
}

// reaches reports whether a message of type md can hold a PersonalData or
// a FreeText message. seen breaks cycles: a type already being looked at
// adds nothing new.
func reaches(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if sealable(md.FullName()) {
		return true
	}
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		if t := messageOf(fields.Get(i)); t != nil && reaches(t, seen) {
			return true
		}
	}
	return false
}

// lru is a bounded map of opened keys, least recently used out first.
// The caller holds Keyring.mu.
type lru struct {
	size  int
	order *list.List // of *lruItem, most recent first
	items map[string]*list.Element
}

type lruItem struct {
	id   string
	aead cipher.AEAD
}

func newLRU(size int) *lru {
	return &lru{size: size, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(id string) (cipher.AEAD, bool) {
	e, ok := c.items[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruItem).aead, true
}

func (c *lru) add(id string, aead cipher.AEAD) {
	if e, ok := c.items[id]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[id] = c.order.PushFront(&lruItem{id: id, aead: aead})
	if c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruItem).id)
	}
}

func (c *lru) remove(id string) {
	if e, ok := c.items[id]; ok {
		c.order.Remove(e)
		delete(c.items, id)
	}
}
