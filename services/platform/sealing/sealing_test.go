package sealing_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	lwnats "linkway/services/platform/natsserver"
	"linkway/services/platform/sealing"
)

const nhs = "9434765919"

var secrets = []string{nhs, "Jane", "Doe", "1956-03-14", "M33 7XX", "07700 900123", "jane@example.org", "bereaved", "walk with Pat"}

func referral(id string) *eventsv1.ReferralReceived {
	return &eventsv1.ReferralReceived{SourceId: id, ReferrerOrganisationId: "A81001", LinkWorkTeam: "U12345", Sex: "female",
		Person: &eventsv1.PersonalData{NhsNumber: nhs, GivenName: "Jane", FamilyName: "Doe", BirthDate: "1956-03-14",
			Postcode: "M33 7XX", Phone: "07700 900123", Email: "jane@example.org"},
		Reasons: []string{"422650009"}, Notes: &eventsv1.FreeText{Text: "Recently bereaved"},
		Consent: &eventsv1.Consent{ShareWithVcs: true}}
}

func master(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func openKeyring(t *testing.T, js jetstream.JetStream, mk []byte) *sealing.Keyring {
	t.Helper()
	k, err := sealing.OpenWith(t.Context(), js, mk, sealing.Options{Replicas: 1, PoolSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t *testing.T, js jetstream.JetStream, k *sealing.Keyring) *journal.Store {
	t.Helper()
	cfg := journal.DefaultConfig()
	cfg.Sealer = k
	s, err := journal.Open(t.Context(), js, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func TestSealAndUnseal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	k := openKeyring(t, js, master(t))
	ref := k.PersonRef(nhs)
	if bytes.Contains([]byte(ref), []byte(nhs)) || ref != k.PersonRef("943 476 5919") {
		t.Fatalf("person ref %q reveals the number or is not stable", ref)
	}
	keyID, headers, err := k.Enrol(ctx, nhs)
	if err != nil {
		t.Fatal(err)
	}
	if headers[sealing.HeaderPerson] != ref || headers[sealing.HeaderKey] != keyID || keyID == ref {
		t.Fatalf("enrol: key %q headers %v", keyID, headers)
	}
	env := events.Wrap(&eventsv1.NeedsAssessed{WhatMatters: &eventsv1.FreeText{Text: "walk with Pat"},
		Goals: []*eventsv1.Goal{{GoalId: "g1", Text: &eventsv1.FreeText{Text: "bereaved group"}}}, Needs: []string{"befriending"}})
	ref1 := events.Wrap(referral("EMIS-1"))
	for _, m := range []*eventsv1.Envelope{env, ref1} {
		plain := proto.Clone(m)
		if err := k.Seal(ctx, m, keyID); err != nil {
			t.Fatal(err)
		}
		wire, _ := proto.Marshal(m)
		for _, s := range secrets {
			if bytes.Contains(wire, []byte(s)) {
				t.Errorf("sealed %s still holds %q", events.ShortName(m), s)
			}
		}
		if m.GetNeedsAssessed() != nil && len(m.GetNeedsAssessed().GetNeeds()) != 1 {
			t.Error("sealing touched a field that is not personal")
		}
		if err := k.Unseal(ctx, m); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(m, plain) {
			t.Errorf("round trip changed %s:\n%v\n%v", events.ShortName(m), m, plain)
		}
	}
	// Sealing with no key (an erased journey) clears instead.
	cleared := events.Wrap(referral("EMIS-2"))
	if err := k.Seal(ctx, cleared, ""); err != nil {
		t.Fatal(err)
	}
	if p := cleared.GetReferralReceived().GetPerson(); p.GetNhsNumber() != "" || p.GetSealed() != nil {
		t.Errorf("sealing with no key kept %v", p)
	}
}

// TestEnrolTakesOneKeyPerPerson: concurrent referrals of one new person in
// one process take one key (no split); another person takes another.
func TestEnrolTakesOneKeyPerPerson(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	k := openKeyring(t, js, master(t))
	const n = 32
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, _, err := k.Enrol(ctx, nhs)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("one person took keys %v", ids)
		}
	}
	other, _, err := k.Enrol(ctx, "4010232137")
	if err != nil || other == ids[0] {
		t.Fatalf("another person: key %q (%v), first person's %q", other, err, ids[0])
	}
	// More people than the pool holds: it refills.
	for i := range 40 {
		if _, _, err := k.Enrol(ctx, fmt.Sprintf("9%09d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrongMasterKeyIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	mk := master(t)
	k := openKeyring(t, js, mk)
	if _, _, err := k.Enrol(ctx, nhs); err != nil {
		t.Fatal(err)
	}
	if _, err := sealing.Open(ctx, js, master(t), 1); !errors.Is(err, sealing.ErrWrongMasterKey) {
		t.Fatalf("open with another master key: %v, want ErrWrongMasterKey", err)
	}
	if err := sealing.VerifyMasterKey(ctx, js, master(t)); !errors.Is(err, sealing.ErrWrongMasterKey) {
		t.Errorf("verify another master key: %v", err)
	}
	if err := sealing.VerifyMasterKey(ctx, js, mk); err != nil {
		t.Errorf("verify the right master key: %v", err)
	}
	if _, err := sealing.Open(ctx, js, mk, 1); err != nil {
		t.Errorf("open with the right master key: %v", err)
	}
	// A bucket from before the check value: the key records tell.
	kv, err := js.KeyValue(ctx, sealing.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "master-check"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "kold", mustJSON(t, map[string][]byte{"wrapped": bytes.Repeat([]byte{7}, 60)})); err != nil {
		t.Fatal(err)
	}
	if _, err := sealing.Open(ctx, js, master(t), 1); !errors.Is(err, sealing.ErrWrongMasterKey) {
		t.Fatalf("open a bucket without a check value with a key that opens nothing: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// referralKey reads the key id a journey's referral was sealed with,
// straight from the stream.
func referralKey(t *testing.T, js jetstream.JetStream, id string) string {
	t.Helper()
	stream, err := js.Stream(t.Context(), events.JourneyStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(t.Context(), 1, jetstream.WithGetMsgSubject(events.JourneyFilter(id)))
	if err != nil {
		t.Fatal(err)
	}
	env, err := journal.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if h := msg.Header.Get(sealing.HeaderKey); h != env.GetReferralReceived().GetPerson().GetSealed().GetKeyId() {
		t.Errorf("key header %q, sealed with %q", h, env.GetReferralReceived().GetPerson().GetSealed().GetKeyId())
	}
	return env.GetReferralReceived().GetPerson().GetSealed().GetKeyId()
}

// TestLogHoldsNoPlaintext appends through a store with a keyring and reads
// the raw stream: no personal data is stored in the clear, and the store
// still reads it back; after erasure nothing opens.
func TestLogHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	k := openKeyring(t, js, master(t))
	store := openStore(t, js, k)
	id := events.NewID()
	for _, c := range []events.Command{events.Refer{Referral: referral(id)}, events.Assign{WorkerID: "w", WorkerName: "Sam"},
		events.RecordContact{Outcome: "reached"}, events.AssessNeeds{WhatMatters: "walk with Pat", Needs: []string{"befriending"}},
		events.ReferOnward{OnwardReferralID: "o1", Service: events.ServiceFacts{ID: "s", AcceptsReferrals: true, Capacity: "open"},
			Share: []string{"name", "phone", "notes"}}} {
		if _, err := store.Execute(ctx, id, journal.Meta{}, c); err != nil {
			t.Fatal(err)
		}
	}
	stream, _ := js.Stream(ctx, events.JourneyStream)
	info, _ := stream.Info(ctx)
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(raw.Data, []byte(s)) || bytes.Contains([]byte(fmt.Sprint(raw.Header)), []byte(s)) {
				t.Errorf("seq %d holds %q in the clear", seq, s)
			}
		}
	}
	fresh := openStore(t, js, k)
	st, hist, err := fresh.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Referral.GetPerson().GetGivenName() != "Jane" || hist[4].Event.GetOnwardReferralMade().GetShared().GetPerson().GetPhone() != "07700 900123" {
		t.Error("the store did not open what it sealed")
	}
	keyID := referralKey(t, js, id)

	// Erase: the event first, then the keys; afterwards nothing opens.
	if _, err := store.Execute(ctx, id, journal.Meta{}, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Erase(ctx, k.PersonRef(nhs)); err != nil {
		t.Fatal(err)
	}
	st, hist, err = store.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range hist {
		b, _ := proto.Marshal(r.Event)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("after erasure, %s still reads %q", events.ShortName(r.Event), s)
			}
		}
	}
	if !st.Erased || st.Status() == "" {
		t.Errorf("erased journey state: erased %v status %q", st.Erased, st.Status())
	}
	// The key record is gone from the bucket, history included.
	kv, _ := js.KeyValue(ctx, sealing.Bucket)
	revs, err := kv.History(ctx, keyID)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	for _, e := range revs {
		if e.Operation() == jetstream.KeyValuePut {
			t.Error("a revision of the erased key survives")
		}
	}
	if p, err := k.Person(ctx, k.PersonRef(nhs)); err != nil || len(p.Journeys) != 0 || len(p.Keys) != 1 {
		t.Errorf("erased person: %+v (%v), want one key and no live journey", p, err)
	}
}

// TestErasureLeavesNoKeyBytes: after erasure, no file under the server's
// store holds the wrapped key, and another process that had the key open
// forgets it.
func TestErasureLeavesNoKeyBytes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	ns, err := lwnats.Start(dir, "off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	js := connect(t, ns)
	mk := master(t)
	k := openKeyring(t, js, mk)
	replica := openKeyring(t, js, mk)
	store := openStore(t, js, k)
	id := events.NewID()
	if _, err := store.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: referral(id)}); err != nil {
		t.Fatal(err)
	}
	keyID := referralKey(t, js, id)
	kv, _ := js.KeyValue(ctx, sealing.Bucket)
	e, err := kv.Get(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	var en struct{ Wrapped []byte }
	if err := json.Unmarshal(e.Value(), &en); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{e.Value(), []byte(base64.StdEncoding.EncodeToString(en.Wrapped)), en.Wrapped}
	// The bytes are there before: the search can find them.
	if n := filesHolding(t, dir, needles); n == 0 {
		t.Fatal("the key record is in no file before erasure: the search is blind")
	}
	sealedRef := events.Wrap(referral("x"))
	if err := replica.Seal(ctx, sealedRef, keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Execute(ctx, id, journal.Meta{}, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Erase(ctx, k.PersonRef(nhs)); err != nil {
		t.Fatal(err)
	}
	if n := filesHolding(t, dir, needles); n != 0 {
		t.Errorf("%d files still hold the erased key", n)
	}
	eventually(t, "the other process forgets the erased key", func() bool {
		m := proto.Clone(sealedRef).(*eventsv1.Envelope)
		if err := replica.Unseal(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m.GetReferralReceived().GetPerson().GetGivenName() == ""
	})
}

func filesHolding(t *testing.T, dir string, needles [][]byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, nd := range needles {
			if bytes.Contains(b, nd) {
				t.Logf("%s holds the key", path)
				n++
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func connect(t *testing.T, ns *natsserver.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestReferralAfterErasureTakesNewKey is the generation: a person erased
// and referred again gets a new key; after a restart the old journey reads
// as erased (never an error) and the new one opens.
func TestReferralAfterErasureTakesNewKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	mk := master(t)
	ns, err := lwnats.Start(dir, "off")
	if err != nil {
		t.Fatal(err)
	}
	js := connect(t, ns)
	k := openKeyring(t, js, mk)
	store := openStore(t, js, k)
	old, fresh := events.NewID(), events.NewID()
	if _, err := store.Execute(ctx, old, journal.Meta{}, events.Refer{Referral: referral(old)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Execute(ctx, old, journal.Meta{}, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Erase(ctx, k.PersonRef(nhs)); err != nil {
		t.Fatal(err)
	}
	res, err := store.Execute(ctx, fresh, journal.Meta{}, events.Refer{Referral: referral(fresh)})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.Referral.GetPerson().GetGivenName() != "Jane" {
		t.Error("the new referral's answer lost the person")
	}
	oldKey, newKey := referralKey(t, js, old), referralKey(t, js, fresh)
	if oldKey == newKey {
		t.Fatalf("the person referred again after erasure kept key %s", oldKey)
	}
	ns.Shutdown()
	ns.WaitForShutdown()

	// Restart: a new server on the same folder, a new keyring and store.
	ns2, err := lwnats.Start(dir, "off")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns2.Shutdown(); ns2.WaitForShutdown() })
	js2 := connect(t, ns2)
	k2 := openKeyring(t, js2, mk)
	store2 := openStore(t, js2, k2)
	st, _, err := store2.Load(ctx, old)
	if err != nil {
		t.Fatalf("the erased journey after restart: %v", err)
	}
	if !st.Erased || st.Referral.GetPerson().GetGivenName() != "" {
		t.Errorf("the erased journey reads %v (erased %v)", st.Referral.GetPerson(), st.Erased)
	}
	st, _, err = store2.Load(ctx, fresh)
	if err != nil || st.Referral.GetPerson().GetGivenName() != "Jane" {
		t.Fatalf("the new journey after restart: %v %v", st.Referral.GetPerson(), err)
	}
	// The index, rebuilt from the log, knows both keys and the live journey.
	p, err := k2.Person(ctx, k2.PersonRef(nhs))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 2 || len(p.Journeys) != 1 || p.Journeys[0] != fresh {
		t.Errorf("person after restart: %+v, want 2 keys and journey %s", p, fresh)
	}
	// A third referral keeps the current key; the journey can be worked on.
	third := events.NewID()
	if _, err := store2.Execute(ctx, third, journal.Meta{}, events.Refer{Referral: referral(third)}); err != nil {
		t.Fatal(err)
	}
	if got := referralKey(t, js2, third); got != newKey {
		t.Errorf("a third referral took key %s, want the current %s", got, newKey)
	}
	if _, err := store2.Execute(ctx, fresh, journal.Meta{}, events.Assign{WorkerID: "w", WorkerName: "Sam"}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReferralsOfOnePersonShareAKey refers one new person on many
// journeys at once through the store: every journey is sealed with one key,
// and erasure finds them all.
func TestConcurrentReferralsOfOnePersonShareAKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	mk := master(t)
	k := openKeyring(t, js, mk)
	store := openStore(t, js, k)
	const n = 24
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = events.NewID()
		wg.Go(func() {
			if _, err := store.Execute(ctx, ids[i], journal.Meta{}, events.Refer{Referral: referral(ids[i])}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	first := referralKey(t, js, ids[0])
	for _, id := range ids[1:] {
		if got := referralKey(t, js, id); got != first {
			t.Fatalf("journey %s sealed with %s, another with %s", id, got, first)
		}
	}
	p, err := k.Person(ctx, k.PersonRef(nhs))
	if err != nil || len(p.Journeys) != n || len(p.Keys) != 1 {
		t.Errorf("person: %d journeys, keys %v (%v); want %d and one key", len(p.Journeys), p.Keys, err, n)
	}
	// Another process learns the person from the log, and its next
	// referral of them takes the same key.
	other := openKeyring(t, js, mk)
	if p, err := other.Person(ctx, other.PersonRef(nhs)); err != nil || len(p.Journeys) != n || len(p.Keys) != 1 || p.Keys[0] != first {
		t.Errorf("another process: %d journeys, keys %v (%v)", len(p.Journeys), p.Keys, err)
	}
	if got, _, err := other.Enrol(ctx, nhs); err != nil || got != first {
		t.Errorf("another process enrols the person with %q (%v), want %s", got, err, first)
	}
}

func TestHeaderNamesMatchTheJournal(t *testing.T) {
	t.Parallel()
	if journal.HeaderEvent != "Lw-Event" {
		t.Errorf("journal.HeaderEvent is %q; the person index reads Lw-Event", journal.HeaderEvent)
	}
}

// TestPoolStoresKeysInOneBatch: the pool's keys are stored by one atomic
// batch, each record readable under its id.
func TestPoolStoresKeysInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	k := openKeyring(t, js, master(t))
	ids, err := k.MintBatch(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := js.KeyValue(ctx, sealing.Bucket)
	var lo, hi uint64
	for i, id := range ids {
		e, err := kv.Get(ctx, id)
		if err != nil {
			t.Fatalf("key %s: %v", id, err)
		}
		if i == 0 || e.Revision() < lo {
			lo = e.Revision()
		}
		hi = max(hi, e.Revision())
	}
	if len(ids) != 50 || hi-lo != 49 {
		t.Errorf("%d keys stored at sequences %d..%d: not one batch", len(ids), lo, hi)
	}
}

// TestDestroyedKeyIsNotTakenAgain: a key destroyed while the index still
// offers it (its journeys' erasure never reached the log) is found gone,
// and the person's next referral takes a new key and keeps their data.
func TestDestroyedKeyIsNotTakenAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, js := lwnats.Test(t)
	mk := master(t)
	k := openKeyring(t, js, mk)
	store := openStore(t, js, k)
	first := events.NewID()
	if _, err := store.Execute(ctx, first, journal.Meta{}, events.Refer{Referral: referral(first)}); err != nil {
		t.Fatal(err)
	}
	old := referralKey(t, js, first)
	// Destroyed behind the index's back, then a new process starts.
	if err := k.Erase(ctx, k.PersonRef(nhs)); err != nil {
		t.Fatal(err)
	}
	k2 := openKeyring(t, js, mk)
	store2 := openStore(t, js, k2)
	second := events.NewID()
	res, err := store2.Execute(ctx, second, journal.Meta{}, events.Refer{Referral: referral(second)})
	if err != nil {
		t.Fatal(err)
	}
	if got := referralKey(t, js, second); got == old {
		t.Fatalf("the new referral was sealed with the destroyed key %s", old)
	}
	st, _, err := openStore(t, js, k2).Load(ctx, second)
	if err != nil || st.Referral.GetPerson().GetGivenName() != "Jane" || res.State.Referral.GetPerson().GetGivenName() != "Jane" {
		t.Errorf("the new referral lost the person: %v (%v)", st.Referral.GetPerson(), err)
	}
}
