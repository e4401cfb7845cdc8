package sealing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
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

func TestSealAndUnseal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	mk := master(t)
	k, err := sealing.Open(ctx, js, mk, 1)
	if err != nil {
		t.Fatal(err)
	}
	keyID := k.PersonKeyID(nhs)
	if bytes.Contains([]byte(keyID), []byte(nhs)) || keyID != k.PersonKeyID("943 476 5919") {
		t.Fatalf("key id %q reveals the number or is not stable", keyID)
	}
	if err := k.Enrol(ctx, keyID, "j1"); err != nil {
		t.Fatal(err)
	}
	env := events.Wrap(&eventsv1.NeedsAssessed{WhatMatters: &eventsv1.FreeText{Text: "walk with Pat"},
		Goals: []*eventsv1.Goal{{GoalId: "g1", Text: &eventsv1.FreeText{Text: "bereaved group"}}}, Needs: []string{"befriending"}})
	ref := events.Wrap(referral("EMIS-1"))
	for _, m := range []*eventsv1.Envelope{env, ref} {
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

	// Another process with another master key cannot open anything.
	other, err := sealing.Open(ctx, js, master(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Seal(ctx, ref, keyID); err != nil {
		t.Fatal(err)
	}
	if err := other.Unseal(ctx, proto.Clone(ref)); err == nil {
		t.Error("a wrong master key opened a person's data")
	}

	// After erasure the data opens to nothing, here and in another process
	// that had the key cached.
	replica, err := sealing.Open(ctx, js, mk, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Unseal(ctx, proto.Clone(ref)); err != nil {
		t.Fatal(err)
	}
	if err := k.Erase(ctx, keyID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := proto.Clone(ref).(*eventsv1.Envelope)
		if err := replica.Unseal(ctx, m); err != nil {
			t.Fatal(err)
		}
		if m.GetReferralReceived().GetPerson().GetGivenName() == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another process still opens the erased person's data")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	erased := proto.Clone(ref).(*eventsv1.Envelope)
	if err := k.Unseal(ctx, erased); err != nil {
		t.Fatal(err)
	}
	if p := erased.GetReferralReceived().GetPerson(); p.GetNhsNumber() != "" || p.GetGivenName() != "" || p.GetSealed() != nil {
		t.Errorf("erased person opened to %v", p)
	}
	if erased.GetReferralReceived().GetSex() != "female" {
		t.Error("erasure lost what is not personal")
	}
	if ids, _ := k.Journeys(ctx, keyID); len(ids) != 0 {
		t.Errorf("erased person still lists journeys %v", ids)
	}
}

// TestLogHoldsNoPlaintext appends through a store with a keyring and reads
// the raw stream: no personal data is stored in the clear, and the store
// still reads it back.
func TestLogHoldsNoPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natsserver.Test(t)
	k, err := sealing.Open(ctx, js, master(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := journal.DefaultConfig()
	cfg.Sealer = k
	store, err := journal.Open(ctx, js, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
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
			if bytes.Contains(raw.Data, []byte(s)) {
				t.Errorf("seq %d holds %q in the clear", seq, s)
			}
		}
	}
	fresh, err := journal.Open(ctx, js, cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	st, hist, err := fresh.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Referral.GetPerson().GetGivenName() != "Jane" || hist[4].Event.GetOnwardReferralMade().GetShared().GetPerson().GetPhone() != "07700 900123" {
		t.Error("the store did not open what it sealed")
	}

	// Erase: the event first, then the key; afterwards nothing opens.
	if _, err := store.Execute(ctx, id, journal.Meta{}, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Erase(ctx, k.PersonKeyID(nhs)); err != nil {
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
	// The person's key record is gone from the bucket, history included.
	kv, _ := js.KeyValue(ctx, sealing.Bucket)
	hist2, err := kv.History(ctx, k.PersonKeyID(nhs))
	if err != nil && err != jetstream.ErrKeyNotFound {
		t.Fatal(err)
	}
	for _, e := range hist2 {
		if e.Operation() == jetstream.KeyValuePut {
			t.Error("a revision of the erased key survives")
		}
	}
}
