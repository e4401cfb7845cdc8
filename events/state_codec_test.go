package events

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// fill sets every field of v (a pointer) to a non-zero value, so that a
// field added to State and forgotten by the encoding fails the round trip.
// A field of a kind it does not know fails the test: teach it, and the
// encoding, the new kind.
func fill(t *testing.T, v reflect.Value, path string, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(path + "-" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2025, 3, 1, 9, 30, *n, 1234, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name, n)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), path, n)
		}
		v.Set(s)
	case reflect.Pointer:
		if v.Type() == reflect.TypeFor[*eventsv1.ReferralReceived]() {
			v.Set(reflect.ValueOf(&eventsv1.ReferralReceived{Source: "gp", ReferrerOrganisationId: "A81001",
				Person: &eventsv1.PersonalData{NhsNumber: "9434765919"}, LinkWorkTeam: "U12345"}))
			return
		}
		t.Fatalf("state codec test: no filler for %s (%s)", path, v.Type())
	default:
		t.Fatalf("state codec test: no filler for %s (%s)", path, v.Type())
	}
}

func TestStateRoundTripEveryField(t *testing.T) {
	t.Parallel()
	var s State
	n := 0
	fill(t, reflect.ValueOf(&s).Elem(), "State", &n)
	b, err := MarshalState(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.Referral, s.Referral) {
		t.Fatalf("referral: got %v, want %v", got.Referral, s.Referral)
	}
	got.Referral, s.Referral = nil, nil
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip lost something:\n got %+v\nwant %+v", got, s)
	}
}

func TestStateRoundTripOfAFold(t *testing.T) {
	t.Parallel()
	at := func(d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 1, d, 10, 0, 0, 0, time.UTC))
	}
	evs := []*eventsv1.Envelope{
		Wrap(&eventsv1.ReferralReceived{ReferrerOrganisationId: "A81001", LinkWorkTeam: "U12345",
			Person: &eventsv1.PersonalData{GivenName: "Jane"}}),
		Wrap(&eventsv1.LinkWorkerAssigned{WorkerId: "w1", WorkerName: "Sam"}),
		Wrap(&eventsv1.ContactAttempted{Outcome: "no_answer"}),
		Wrap(&eventsv1.ContactMade{}),
		Wrap(&eventsv1.OnwardReferralMade{OnwardReferralId: "o1", ServiceId: "s1", OrganisationId: "VCS001"}),
		Wrap(&eventsv1.OnwardReferralAccepted{OnwardReferralId: "o1"}),
		Wrap(&eventsv1.FollowUpScheduled{FollowUpId: "f1", Due: "2025-04-01"}),
		Wrap(&eventsv1.ContactAttempted{Outcome: "no_answer"}),
	}
	for i, e := range evs {
		e.JourneyId, e.OccurredAt = "j1", at(i+1)
	}
	// Each intermediate state, not only the last, must survive: a reader
	// stores whatever state a journey is in when its batch commits.
	var s State
	for _, e := range evs {
		s = Evolve(s, e)
		b, err := MarshalState(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalState(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status() != s.Status() || got.Version != s.Version || len(got.FailedAttempts) != len(s.FailedAttempts) ||
			!got.LastContact.Equal(s.LastContact) || !proto.Equal(got.Referral, s.Referral) {
			t.Fatalf("after %s: got %+v, want %+v", ShortName(e), got, s)
		}
		// Folding on from the decoded state gives what folding on from
		// the original gives.
		next := Wrap(&eventsv1.JourneyClosed{Reason: "goals_met"})
		next.JourneyId, next.OccurredAt = "j1", at(28)
		a, c := Evolve(s, next), Evolve(got, next)
		if a.Status() != c.Status() || a.Version != c.Version {
			t.Fatalf("folding on after %s: %v/%d, want %v/%d", ShortName(e), c.Status(), c.Version, a.Status(), a.Version)
		}
	}
	if s.Status() != StatusConnected || len(s.FailedAttempts) != 1 {
		t.Fatalf("fold: status %s, %d failed attempts", s.Status(), len(s.FailedAttempts))
	}
}

func TestUnmarshalStateRefusesGarbage(t *testing.T) {
	t.Parallel()
	if _, err := UnmarshalState([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Fatal("garbage decoded as a state")
	}
}
