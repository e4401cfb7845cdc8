package referrals

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

func env(e proto.Message, at time.Time) *eventsv1.Envelope {
	w := events.Wrap(e)
	w.JourneyId = "0193f1f4-0000-7000-8000-000000000001"
	w.OccurredAt = timestamppb.New(at)
	return w
}

// TestFold runs journeys through the view's fold and checks the status,
// the write-back codes and what the practice is (not) told, against the
// shared rules of events.State so the two cannot drift apart.
func TestFold(t *testing.T) {
	terms, err := events.LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	p := &projector{terms: terms}
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	referral := &eventsv1.ReferralReceived{ReferrerOrganisationId: "A81001", SourceId: "S1", Urgency: "routine",
		LinkWorkTeam: "U12345", Reasons: []string{"422650009"}}
	onward := &eventsv1.OnwardReferralMade{OnwardReferralId: "o1", ServiceId: "VCS001-walk", ServiceName: "Sale Walking Group", OrganisationId: "VCS001"}

	tests := []struct {
		name      string
		events    []proto.Message
		status    events.Status
		codes     []string
		closure   string
		mustSay   []string
		mustntSay []string
	}{
		{name: "referred", events: []proto.Message{referral}, status: events.StatusReferred, codes: nil,
			mustSay: []string{"referral_received"}},
		{name: "assigned", events: []proto.Message{referral, &eventsv1.LinkWorkerAssigned{WorkerId: "lw-7", WorkerName: "Sam Link"}},
			status: events.StatusAssigned, mustSay: []string{"Sam Link"}},
		{name: "not reached yet: no code", events: []proto.Message{referral, &eventsv1.LinkWorkerAssigned{WorkerId: "lw-7", WorkerName: "Sam Link"},
			&eventsv1.ContactAttempted{Outcome: "no_answer", Method: "phone"}}, status: events.StatusAssigned, codes: nil},
		{name: "reached: referral code", events: []proto.Message{referral, &eventsv1.LinkWorkerAssigned{WorkerId: "lw-7", WorkerName: "Sam Link"},
			&eventsv1.ContactMade{Method: "phone"}}, status: events.StatusInProgress, codes: []string{events.CodeReferredToSocialPrescribing}},
		{name: "connected, then the decline detail stays with the VCS", events: []proto.Message{referral,
			&eventsv1.LinkWorkerAssigned{WorkerId: "lw-7", WorkerName: "Sam Link"}, &eventsv1.ContactMade{},
			&eventsv1.NeedsAssessed{WhatMatters: &eventsv1.FreeText{Text: "my garden"}, Goals: []*eventsv1.Goal{{GoalId: "g1", Text: &eventsv1.FreeText{Text: "walk weekly"}}}},
			&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "baseline", RawScore: 21, Score: 19.25},
			onward, &eventsv1.OnwardReferralAccepted{OnwardReferralId: "o1"},
			&eventsv1.AttendanceRecorded{OnwardReferralId: "o1", Date: "2026-11-21", Attended: true},
			&eventsv1.OnwardReferralMade{OnwardReferralId: "o2", ServiceId: "VCS002-debt", ServiceName: "Trafford Money Advice"},
			&eventsv1.OnwardReferralDeclined{OnwardReferralId: "o2", Reason: "no_capacity", Detail: &eventsv1.FreeText{Text: "our adviser is off sick"}},
		}, status: events.StatusConnected, codes: []string{events.CodeReferredToSocialPrescribing},
			mustSay:   []string{"Sale Walking Group", "attending", "attended", "19.25", "no capacity"},
			mustntSay: []string{"off sick", "my garden", "walk weekly"}},
		{name: "patient declined", events: []proto.Message{referral, &eventsv1.PatientDeclined{Detail: &eventsv1.FreeText{Text: "not for me"}}},
			status: events.StatusDeclined, codes: []string{events.CodeSocialPrescribingDeclined}, closure: "declined", mustntSay: []string{"not for me"}},
		{name: "closed as declined", events: []proto.Message{referral, &eventsv1.JourneyClosed{Reason: "declined"}},
			status: events.StatusDeclined, codes: []string{events.CodeSocialPrescribingDeclined}, closure: "declined"},
		{name: "closed, goals met", events: []proto.Message{referral, &eventsv1.LinkWorkerAssigned{WorkerId: "w", WorkerName: "W"},
			&eventsv1.ContactMade{}, &eventsv1.JourneyClosed{Reason: "goals_met"}},
			status: events.StatusClosed, codes: []string{events.CodeReferredToSocialPrescribing}, closure: "goals_met"},
		{name: "declined, reopened, reached", events: []proto.Message{referral, &eventsv1.PatientDeclined{},
			&eventsv1.JourneyReopened{Reason: &eventsv1.FreeText{Text: "changed mind"}}, &eventsv1.LinkWorkerAssigned{WorkerId: "w", WorkerName: "W"},
			&eventsv1.ContactMade{}, &eventsv1.ContactMade{}},
			status: events.StatusInProgress, codes: []string{events.CodeSocialPrescribingDeclined, events.CodeReferredToSocialPrescribing},
			mustntSay: []string{"changed mind"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec record
			rec.View = View{Reasons: []events.Concept{}, Timeline: []Step{}, Connections: []Connection{}, Measures: []Measure{}, Codes: []WriteBack{}}
			rec.Practice, rec.LinkWorkTeam, rec.Urgency = "A81001", "U12345", "routine"
			var history []*eventsv1.Envelope
			for i, e := range tt.events {
				ev := env(e, t0.Add(time.Duration(i)*time.Hour))
				history = append(history, ev)
				p.fold(&rec, ev)
			}
			// Replaying the whole history gives the same record: the view
			// and the answers folded from the log agree.
			if replayed, ok := p.replay(history); !ok || replayed.Status != rec.Status || len(replayed.Codes) != len(rec.Codes) {
				t.Errorf("replay gave %+v, incremental fold %+v", replayed.View, rec.View)
			}
			if rec.Status != string(tt.status) {
				t.Errorf("status %s, want %s", rec.Status, tt.status)
			}
			if want := events.Fold(history).Status(); rec.Status != string(want) {
				t.Errorf("view status %s, but the journey rules say %s", rec.Status, want)
			}
			var codes []string
			for _, c := range rec.Codes {
				codes = append(codes, c.Code)
				if c.System != events.SNOMEDSystem || c.Display == "" || c.At.IsZero() {
					t.Errorf("code %+v lacks system, display or time", c)
				}
			}
			if !slices.Equal(codes, tt.codes) {
				t.Errorf("codes %v, want %v", codes, tt.codes)
			}
			if rec.ClosureReason != tt.closure {
				t.Errorf("closure reason %q, want %q", rec.ClosureReason, tt.closure)
			}
			if len(rec.Timeline) != len(tt.events) || !rec.UpdatedAt.Equal(t0.Add(time.Duration(len(tt.events)-1)*time.Hour)) {
				t.Errorf("timeline has %d steps (want %d), updated %s", len(rec.Timeline), len(tt.events), rec.UpdatedAt)
			}
			b, _ := json.Marshal(rec.View)
			for _, s := range tt.mustSay {
				if !strings.Contains(string(b), s) {
					t.Errorf("the view does not say %q: %s", s, b)
				}
			}
			for _, s := range tt.mustntSay {
				if strings.Contains(string(b), s) {
					t.Errorf("the view leaks %q: %s", s, b)
				}
			}
		})
	}
}

func TestEventType(t *testing.T) {
	if got := eventType(env(&eventsv1.OnwardReferralDroppedOut{}, time.Now())); got != "onward_referral_dropped_out" {
		t.Errorf("eventType = %q", got)
	}
}

func TestPageToken(t *testing.T) {
	pos := position{time.Date(2026, 11, 20, 9, 0, 0, 123, time.UTC), "0193f1f4-0000-7000-8000-000000000001"}
	got, err := parsePageToken(pos.token())
	if err != nil || got.compare(pos) != 0 {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, bad := range []string{"x", "MTIz", pos.token() + "A"} {
		if _, err := parsePageToken(bad); err == nil {
			t.Errorf("page token %q accepted", bad)
		}
	}
}
