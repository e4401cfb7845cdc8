package sealing_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "linkway/proto/linkway/events/v1"
	lwnats "linkway/services/platform/natsserver"
	"linkway/services/platform/sealing"
)

func gcm(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// v1Record is a key record as version 1 wrote it: under the person's
// reference, listing their journeys, and a PersonalData sealed with it.
func v1Record(t *testing.T, mk []byte, ref string) ([]byte, *eventsv1.ReferralReceived) {
	t.Helper()
	m := hmac.New(sha256.New, mk)
	m.Write([]byte("linkway data-key wrapping"))
	kek := gcm(t, m.Sum(nil))
	dk := master(t)
	nonce := make([]byte, kek.NonceSize())
	rec := mustJSON(t, map[string]any{"wrapped": kek.Seal(nonce, nonce, dk, []byte(ref)), "journeys": []string{"j-old"}})
	plain, _ := proto.Marshal(&eventsv1.PersonalData{GivenName: "Jane"})
	data := gcm(t, dk)
	pd := &eventsv1.PersonalData{Sealed: &eventsv1.Sealed{KeyId: ref, Nonce: nonce[:data.NonceSize()],
		Ciphertext: data.Seal(nil, nonce[:data.NonceSize()], plain, []byte("linkway.events.v1.PersonalData"))}}
	return rec, &eventsv1.ReferralReceived{Person: pd}
}

// TestVersion1BucketIsMadeAgain: a key bucket made by KV's defaults denies
// deletes for good; opening moves its records into a bucket that allows
// secure deletion, and what they sealed still opens. A wrong master key
// touches nothing.
func TestVersion1BucketIsMadeAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	mk := master(t)
	probe := openKeyring(t, js, mk) // only to learn the person's reference
	ref := probe.PersonRef(nhs)
	if err := js.DeleteStream(ctx, "KV_"+sealing.Bucket); err != nil {
		t.Fatal(err)
	}
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: sealing.Bucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	rec, sealed := v1Record(t, mk, ref)
	if _, err := old.Create(ctx, ref, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := sealing.Open(ctx, js, master(t), 1); !errors.Is(err, sealing.ErrWrongMasterKey) {
		t.Fatalf("a wrong master key on a version 1 bucket: %v", err)
	}
	if s, err := js.Stream(ctx, "KV_"+sealing.Bucket); err != nil || !s.CachedInfo().Config.DenyDelete {
		t.Fatal("a wrong master key changed the bucket")
	}

	k := openKeyring(t, js, mk)
	s, err := js.Stream(ctx, "KV_"+sealing.Bucket)
	if err != nil || s.CachedInfo().Config.DenyDelete {
		t.Fatalf("the bucket still denies deletes (%v)", err)
	}
	if _, err := js.Stream(ctx, "KV_lw_person_keys_moving"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the copy's stream is left: %v", err)
	}
	pd := proto.Clone(sealed).(*eventsv1.ReferralReceived)
	if err := k.Unseal(ctx, pd); err != nil || pd.GetPerson().GetGivenName() != "Jane" {
		t.Fatalf("version 1 data after the move: %v (%v)", pd, err)
	}
	p, err := k.Person(ctx, ref)
	if err != nil || len(p.Journeys) != 1 || p.Journeys[0] != "j-old" {
		t.Fatalf("version 1 person: %+v (%v)", p, err)
	}
	if err := k.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	pd = proto.Clone(sealed).(*eventsv1.ReferralReceived)
	if err := k.Unseal(ctx, pd); err != nil || pd.GetPerson().GetGivenName() != "" {
		t.Fatalf("version 1 data after erasure: %v (%v)", pd, err)
	}
}

// TestInterruptedMoveCarriesOn: a move stopped after the old stream went
// is finished by the next open.
func TestInterruptedMoveCarriesOn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	mk := master(t)
	ref := openKeyring(t, js, mk).PersonRef(nhs)
	if err := js.DeleteStream(ctx, "KV_"+sealing.Bucket); err != nil {
		t.Fatal(err)
	}
	moving, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "lw_person_keys_moving"})
	if err != nil {
		t.Fatal(err)
	}
	rec, sealed := v1Record(t, mk, ref)
	if _, err := moving.Create(ctx, ref, rec); err != nil {
		t.Fatal(err)
	}
	k := openKeyring(t, js, mk)
	pd := proto.Clone(sealed).(*eventsv1.ReferralReceived)
	if err := k.Unseal(ctx, pd); err != nil || pd.GetPerson().GetGivenName() != "Jane" {
		t.Fatalf("data after the move carried on: %v (%v)", pd, err)
	}
}
