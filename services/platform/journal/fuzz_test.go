package journal_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// FuzzDecode feeds arbitrary bytes to the event decoder: it must answer
// with an event or ErrUndecodable, never panic, and an event it accepts
// must survive a round trip and fold into a journey state.
func FuzzDecode(f *testing.F) {
	for _, e := range []*eventsv1.Envelope{
		events.Wrap(&eventsv1.ReferralReceived{SourceId: "x", Person: &eventsv1.PersonalData{NhsNumber: "9434765919"}}),
		events.Wrap(&eventsv1.OnwardReferralMade{OnwardReferralId: "o", Shared: &eventsv1.SharedWithVcs{Fields: []string{"name"}}}),
		events.Wrap(&eventsv1.PersonalDataErased{}),
	} {
		b, _ := proto.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := journal.Decode(data)
		if err != nil {
			return
		}
		if env.GetEvent() == nil || events.EventName(env) == "" {
			t.Fatal("accepted an envelope without an event")
		}
		b, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		again, err := journal.Decode(b)
		if err != nil || !proto.Equal(env, again) {
			t.Fatalf("round trip: %v", err)
		}
		_ = events.Evolve(events.State{}, env) // must not panic on any event
	})
}
