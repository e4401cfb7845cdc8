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

// TestRender runs journeys through the view's rendering and checks the
// status, the write-back codes and what the referrer is (not) told,
// against the shared rules of events.State, so the two cannot drift apart.
func TestRender(t *testing.T) {
	terms, err := events.LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	p := &projection{terms: terms}
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	referral := &eventsv1.ReferralReceived{Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "S1", Urgency: "routine",
		LinkWorkTeam: "U12345", Reasons: []string{"422650009"},
		Person: &eventsv1.PersonalData{NhsNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe"}}
	housing := proto.Clone(referral).(*eventsv1.ReferralReceived)
	housing.Source, housing.ReferrerOrganisationId = "housing", "HSG01"
	assigned := &eventsv1.LinkWorkerAssigned{WorkerId: "lw-7", WorkerName: "Sam Link"}
	onward := &eventsv1.OnwardReferralMade{OnwardReferralId: "o1", ServiceId: "VCS001-walk", ServiceName: "Sale Walking Group", OrganisationId: "VCS001"}

	tests := []struct {
		name      string
		org       string
		events    []proto.Message
		status    events.Status
		task      string
		codes     []string
		closure   string
		steps     int // timeline steps; 0: one per event
		mustSay   []string
		mustntSay []string
	}{
		{name: "referred", events: []proto.Message{referral}, status: events.StatusReferred, task: "requested",
			mustSay: []string{"referral_received", `"source":"gp"`}, mustntSay: []string{"Jane", "9434765919"}},
		{name: "assigned", events: []proto.Message{referral, assigned},
			status: events.StatusAssigned, task: "accepted", mustSay: []string{"Sam Link"}},
		{name: "not reached yet", events: []proto.Message{referral, assigned,
			&eventsv1.ContactAttempted{Outcome: "no_answer", Method: "phone"}}, status: events.StatusAssigned, task: "accepted"},
		// The practice coded its own referral when it made it: no code back.
		{name: "a GP's referral reached: no referral code", events: []proto.Message{referral, assigned,
			&eventsv1.ContactMade{Method: "phone"}}, status: events.StatusInProgress, task: "in-progress"},
		{name: "an agency's referral reached: the referral code", org: "HSG01", events: []proto.Message{housing, assigned,
			&eventsv1.ContactMade{Method: "phone"}, &eventsv1.ContactMade{Method: "phone"}}, status: events.StatusInProgress, task: "in-progress",
			codes: []string{events.CodeReferredToSocialPrescribing}, mustSay: []string{`"source":"housing"`}},
		{name: "connected, then the decline detail stays with the VCS", events: []proto.Message{referral,
			assigned, &eventsv1.ContactMade{},
			&eventsv1.NeedsAssessed{WhatMatters: &eventsv1.FreeText{Text: "my garden"}, Goals: []*eventsv1.Goal{{GoalId: "g1", Text: &eventsv1.FreeText{Text: "walk weekly"}}}},
			&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "baseline", RawScore: 21, Score: 19.25},
			onward, &eventsv1.OnwardReferralAccepted{OnwardReferralId: "o1"},
			&eventsv1.AttendanceRecorded{OnwardReferralId: "o1", Date: "2026-11-21", Attended: true},
			&eventsv1.OnwardReferralMade{OnwardReferralId: "o2", ServiceId: "VCS002-debt", ServiceName: "Trafford Money Advice"},
			&eventsv1.OnwardReferralDeclined{OnwardReferralId: "o2", Reason: "no_capacity", Detail: &eventsv1.FreeText{Text: "our adviser is off sick"}},
		}, status: events.StatusConnected, task: "in-progress",
			mustSay:   []string{"Sale Walking Group", `"status":"attending"`, "attended", "19.25", "no capacity"},
			mustntSay: []string{"off sick", "my garden", "walk weekly"}},
		{name: "signposted, a concern escalated; notes, feedback and other risks unseen", events: []proto.Message{referral, assigned,
			&eventsv1.ContactMade{},
			&eventsv1.Signposted{SignpostId: "s1", ServiceId: "VCS002-debt", ServiceName: "Trafford Money Advice", OrganisationId: "VCS002"},
			&eventsv1.Signposted{SignpostId: "s2", Description: &eventsv1.FreeText{Text: "Library coffee morning"}},
			&eventsv1.CaseNoteAdded{NoteId: "n1", Text: &eventsv1.FreeText{Text: "worried about her son"}},
			&eventsv1.RiskRecorded{RiskId: "r1", Kind: "domestic_abuse", Detail: &eventsv1.FreeText{Text: "neighbour shouts"}},
			&eventsv1.RiskRecorded{RiskId: "r2", Kind: "safeguarding_adult", Detail: &eventsv1.FreeText{Text: "takes her money"}, EscalateToGp: true},
			&eventsv1.ConsentRecorded{ShareWithVcs: false, Method: "verbal"},
		}, status: events.StatusInProgress, task: "in-progress", steps: 7,
			mustSay: []string{`"status":"signposted"`, "Trafford Money Advice", "signposted", "safeguarding adult concern was escalated",
				"did not agree to share"},
			mustntSay: []string{"Library coffee", "worried", "neighbour", "takes her money", "domestic"}},
		{name: "patient declined", events: []proto.Message{referral, &eventsv1.PatientDeclined{Detail: &eventsv1.FreeText{Text: "not for me"}}},
			status: events.StatusDeclined, task: "cancelled", codes: []string{events.CodeSocialPrescribingDeclined}, closure: "declined",
			mustntSay: []string{"not for me"}},
		{name: "closed as declined", events: []proto.Message{referral, &eventsv1.JourneyClosed{Reason: "declined"}},
			status: events.StatusDeclined, task: "cancelled", codes: []string{events.CodeSocialPrescribingDeclined}, closure: "declined"},
		{name: "closed, goals met", events: []proto.Message{referral, assigned, &eventsv1.ContactMade{}, &eventsv1.JourneyClosed{Reason: "goals_met"}},
			status: events.StatusClosed, task: "completed", closure: "goals_met"},
		{name: "declined, reopened, reached", events: []proto.Message{referral, &eventsv1.PatientDeclined{},
			&eventsv1.JourneyReopened{Reason: &eventsv1.FreeText{Text: "changed mind"}}, assigned,
			&eventsv1.ContactMade{}, &eventsv1.ContactMade{}},
			status: events.StatusInProgress, task: "in-progress", codes: []string{events.CodeSocialPrescribingDeclined},
			mustntSay: []string{"changed mind"}},
		{name: "erased", events: []proto.Message{referral, assigned, &eventsv1.PersonalDataErased{}},
			status: events.StatusAssigned, task: "accepted", mustSay: []string{"erased"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			org := tt.org
			if org == "" {
				org = "A81001"
			}
			var history []*eventsv1.Envelope
			for i, e := range tt.events {
				history = append(history, env(e, t0.Add(time.Duration(i)*time.Hour)))
			}
			rec, pd, ok := p.replay(org, history)
			if !ok {
				t.Fatal("no record")
			}
			if _, _, other := p.replay("A81002", history); other {
				t.Error("the journey renders in another organisation's view")
			}
			if rec.Status != string(tt.status) || rec.Workflow.Task != tt.task {
				t.Errorf("status %s, Task %s; want %s, %s", rec.Status, rec.Workflow.Task, tt.status, tt.task)
			}
			st := events.Fold(history)
			if rec.Status != string(st.Status()) || rec.Workflow != st.Workflow() {
				t.Errorf("view status %s %+v, but the journey rules say %s %+v", rec.Status, rec.Workflow, st.Status(), st.Workflow())
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
			steps := tt.steps
			if steps == 0 {
				steps = len(tt.events)
			}
			if len(rec.Timeline) != steps || !rec.UpdatedAt.Equal(rec.Timeline[len(rec.Timeline)-1].At) {
				t.Errorf("timeline has %d steps (want %d), updated %s", len(rec.Timeline), steps, rec.UpdatedAt)
			}
			if st.Erased != (pd == personal{}) || !st.Erased && (pd.NHSNumber != "9434765919" || pd.GivenName != "Jane") {
				t.Errorf("personal data %+v (erased %v)", pd, st.Erased)
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

// TestSelfReferralsInNoView: a self-referral has no referrer to show it to.
func TestSelfReferralsInNoView(t *testing.T) {
	terms, err := events.LoadTerminology()
	if err != nil {
		t.Fatal(err)
	}
	h := []*eventsv1.Envelope{env(&eventsv1.ReferralReceived{Source: "self", SourceId: "SR-1", LinkWorkTeam: "U12345",
		ContactPreference: "phone"}, time.Now())}
	if _, _, ok := (&projection{terms: terms}).replay("", h); ok {
		t.Error("a self-referral renders in a referrer's view")
	}
}

func TestEventType(t *testing.T) {
	if got := eventType(env(&eventsv1.OnwardReferralDroppedOut{}, time.Now())); got != "onward_referral_dropped_out" {
		t.Errorf("eventType = %q", got)
	}
}

func TestKeysSortInTime(t *testing.T) {
	a := record{Org: "A81001", View: View{JourneyID: "0193f1f4-0000-7000-8000-000000000009", Status: "referred",
		CreatedAt: time.Date(2026, 1, 2, 9, 0, 0, 5, time.UTC)}}
	b := record{Org: "A81001", View: View{JourneyID: "0193f1f4-0000-7000-8000-000000000001", Status: "referred",
		CreatedAt: time.Date(2026, 1, 2, 10, 0, 0, 0, time.FixedZone("BST", 3600)).Add(time.Hour)}}
	if createdKey(&a) >= createdKey(&b) || statusKey(&a) >= statusKey(&b) {
		t.Errorf("keys out of time order: %s, %s", createdKey(&a), createdKey(&b))
	}
	if got := journeyOfKey(createdKey(&a)); got != a.JourneyID {
		t.Errorf("journey of key %q", got)
	}
}
