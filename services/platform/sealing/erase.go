package sealing

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Person returns every key that sealed a person's data and the journeys
// whose key is not yet destroyed, once the index has applied all the log
// holds now. person is PersonRef of the NHS number.
func (k *Keyring) Person(ctx context.Context, person string) (PersonKeys, error) {
	if err := k.index.Sync(ctx); err != nil {
		return PersonKeys{}, err
	}
	out, destroyed := k.index.person(person)
	// A key the index does not know as destroyed may have been destroyed
	// before this process started: ask the bucket.
	gone := map[string]bool{}
	for _, id := range out.Keys {
		if destroyed[id] {
			gone[id] = true
			continue
		}
		if _, err := k.kv.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
			gone[id] = true
			k.forget(id)
		} else if err != nil {
			return PersonKeys{}, fmt.Errorf("person key: %w", err)
		}
	}
	if len(gone) > 0 {
		out, _ = k.index.person(person)
	}
	k.mu.Lock()
	if id, ok := k.assigned[person]; ok && !slices.Contains(out.Keys, id) {
		out.Keys = append(out.Keys, id)
	}
	k.mu.Unlock()
	// Version 1 kept one record per person under the person's reference,
	// listing their journeys.
	if e, err := k.kv.Get(ctx, person); err == nil {
		var en entry
		if json.Unmarshal(e.Value(), &en) == nil {
			out.Keys = append(out.Keys, person)
			for _, j := range en.Journeys {
				if !slices.Contains(out.Journeys, j) {
					out.Journeys = append(out.Journeys, j)
				}
			}
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return PersonKeys{}, fmt.Errorf("person key: %w", err)
	}
	return out, nil
}

// Journeys lists a person's journeys whose key is not yet destroyed.
func (k *Keyring) Journeys(ctx context.Context, person string) ([]string, error) {
	p, err := k.Person(ctx, person)
	return p.Journeys, err
}

// Erase destroys every key that ever sealed a person's data: from then on
// nothing they sealed opens, here or anywhere, and the person's next
// referral takes a new key. Each key record is removed by secure deletion
// (its bytes overwritten in the store's files; a purge alone only drops
// the index entry), then a purge marker tells other processes to forget
// it. Asking again is harmless.
func (k *Keyring) Erase(ctx context.Context, person string) error {
	p, err := k.Person(ctx, person)
	if err != nil {
		return err
	}
	for _, id := range p.Keys {
		if err := k.destroy(ctx, id); err != nil {
			return err
		}
	}
	k.mu.Lock()
	delete(k.assigned, person)
	k.mu.Unlock()
	return nil
}

// destroy securely deletes every stored revision of a key record.
func (k *Keyring) destroy(ctx context.Context, keyID string) error {
	if keyID == checkKey || strings.ContainsAny(keyID, "*> ") {
		return fmt.Errorf("erase person key: %q is not a key id", keyID)
	}
	k.forget(keyID) // first, so nothing seals with it any more
	subject := "$KV." + Bucket + "." + keyID
	found := false
	for {
		msg, err := k.stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("erase person key: %w", err)
		}
		if err := k.stream.SecureDeleteMsg(ctx, msg.Sequence); err != nil {
			return fmt.Errorf("erase person key: %w", err)
		}
		found = true
	}
	if found {
		if err := k.kv.Purge(ctx, keyID); err != nil {
			return fmt.Errorf("erase person key: mark destroyed: %w", err)
		}
	}
	return nil
}

// checkKey holds the master key's check value in the bucket.
const checkKey = "master-check"

func checkValue(master []byte) []byte {
	return []byte(hex.EncodeToString(hmacSum(master, "linkway master key check v1")))
}

// checkMaster refuses a master key that is not the bucket's: its check
// value must match; a bucket without one (made before there was one) gets
// one, if the key opens the bucket's last key record.
func (k *Keyring) checkMaster(ctx context.Context, master []byte) error {
	want := checkValue(master)
	for range 3 {
		e, err := k.kv.Get(ctx, checkKey)
		if err == nil {
			if !hmac.Equal(e.Value(), want) {
				return ErrWrongMasterKey
			}
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("master key check: %w", err)
		}
		if err := k.opensExisting(ctx); err != nil {
			return err
		}
		if _, err := k.kv.Create(ctx, checkKey, want); err == nil {
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("master key check: %w", err)
		}
		// Another process wrote it at the same time: compare with theirs.
	}
	return errors.New("master key check: the check value keeps changing")
}

// opensExisting tries the master key on the bucket's last key record.
func (k *Keyring) opensExisting(ctx context.Context) error {
	msg, err := k.stream.GetLastMsgForSubject(ctx, "$KV."+Bucket+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	id := strings.TrimPrefix(msg.Subject, "$KV."+Bucket+".")
	if len(msg.Data) == 0 || id == checkKey {
		return nil // a deletion marker: nothing to try
	}
	if _, err := k.open(id, msg.Data); err != nil {
		return fmt.Errorf("%w (%w)", ErrWrongMasterKey, err)
	}
	return nil
}

// VerifyMasterKey reports whether master is the key the person keys on js
// were made with (ErrWrongMasterKey when not), without opening a keyring:
// for tools that must refuse a wrong key before doing anything.
func VerifyMasterKey(ctx context.Context, js jetstream.JetStream, master []byte) error {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	e, err := kv.Get(ctx, checkKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	if !hmac.Equal(e.Value(), checkValue(master)) {
		return ErrWrongMasterKey
	}
	return nil
}

// movingBucket holds the key records while the bucket's stream is made
// again (allowDeletes).
const movingBucket = "lw_person_keys_moving"

// allowDeletes makes again a bucket made by KV's defaults, which deny
// deleting a message for good (so no secure deletion) and cannot be
// changed: its records are copied aside, its stream (files and all) is
// deleted and made anew, and the records are copied back. Once every
// record opens with the master key (a wrong key touches nothing). It is
// safe to stop at any point: the next open carries on.
func (k *Keyring) allowDeletes(ctx context.Context, js jetstream.JetStream, replicas int) error {
	main, err := js.Stream(ctx, "KV_"+Bucket)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("person keys bucket: %w", err)
	case main.CachedInfo().Config.DenyDelete:
		old, err := js.KeyValue(ctx, Bucket)
		if err != nil {
			return fmt.Errorf("person keys bucket: %w", err)
		}
		records, err := k.readAll(ctx, old)
		if err != nil {
			return err
		}
		moving, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: movingBucket,
			Description: "Linkway person keys while their bucket is made again", Storage: jetstream.FileStorage, Replicas: max(replicas, 1)})
		if err != nil {
			return fmt.Errorf("person keys bucket: %w", err)
		}
		if err := copyRecords(ctx, moving, records); err != nil {
			return err
		}
		if err := js.DeleteStream(ctx, "KV_"+Bucket); err != nil {
			return fmt.Errorf("person keys bucket: %w", err)
		}
	}
	moving, err := js.KeyValue(ctx, movingBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("person keys bucket: %w", err)
	}
	records, err := k.readAll(ctx, moving)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, keysStream(replicas)); err != nil {
		return fmt.Errorf("person keys bucket: %w", err)
	}
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return fmt.Errorf("person keys bucket: %w", err)
	}
	if err := copyRecords(ctx, kv, records); err != nil {
		return err
	}
	// The copy's stream goes whole, files and all: a KV stream denies
	// deleting single messages.
	if err := js.DeleteStream(ctx, "KV_"+movingBucket); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("person keys bucket: %w", err)
	}
	k.log.Info("person keys bucket made again to allow secure deletion", "records", len(records))
	return nil
}

// readAll reads every key record of a bucket, each of which must open
// with the master key.
func (k *Keyring) readAll(ctx context.Context, kv jetstream.KeyValue) (map[string][]byte, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("person keys: %w", err)
	}
	records := map[string][]byte{}
	for id := range lister.Keys() {
		e, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("person keys: %w", err)
		}
		if id != checkKey {
			if _, err := k.open(id, e.Value()); err != nil {
				return nil, fmt.Errorf("%w (%w)", ErrWrongMasterKey, err)
			}
		}
		records[id] = e.Value()
	}
	return records, nil
}

func copyRecords(ctx context.Context, kv jetstream.KeyValue, records map[string][]byte) error {
	for id, v := range records {
		if _, err := kv.Create(ctx, id, v); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("copy person keys: %w", err)
		}
	}
	return nil
}
