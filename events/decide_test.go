package events

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// historyStart is when a test history's first event happens; each next
// event happens a day later (so the first is on 2026-01-05, the fourth on
// 2026-01-08).
var historyStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// history builds journey states for the tables: each step is a command
// that must be accepted.
func history(t *testing.T, cmds ...Command) State {
	t.Helper()
	s := State{}
	for _, c := range cmds {
		evs, err := Decide(s, c)
		if err != nil {
			t.Fatalf("setting up with %s: %v", CommandName(c), err)
		}
		for _, e := range evs {
			e.JourneyId = "j"
			e.OccurredAt = timestamppb.New(historyStart.AddDate(0, 0, s.Version))
			s = Evolve(s, e)
		}
	}
	return s
}

func referral(consent bool) Refer {
	return Refer{Referral: &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: "A81001", SourceId: "EMIS-1",
		Person:  &eventsv1.PersonalData{NhsNumber: "9434765919", GivenName: "Jane", FamilyName: "Doe", Phone: "07700 900123", Email: "j@example.org"},
		Reasons: []string{"422650009"}, Notes: &eventsv1.FreeText{Text: "bereaved"},
		Consent: &eventsv1.Consent{ShareWithVcs: consent}, LinkWorkTeam: "U12345",
	}}
}

var (
	walk     = ServiceFacts{ID: "VCS001-walk", Name: "Walk", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}
	assign   = Assign{WorkerID: "lw-7", WorkerName: "Sam Link"}
	reached  = RecordContact{Outcome: "reached", Method: "phone"}
	referOn  = ReferOnward{OnwardReferralID: "o1", Service: walk, Share: []string{"name", "phone"}}
	closeMet = Close{Reason: "goals_met"}
)

func TestDecideLegal(t *testing.T) {
	t.Parallel()
	contacted := []Command{referral(true), assign, reached}
	tests := []struct {
		name   string
		given  []Command
		cmd    Command
		event  string // short name of the one event expected; "" for none
		status Status // status after
	}{
		{"refer", nil, referral(true), "ReferralReceived", StatusReferred},
		{"resend is a no-op", []Command{referral(true)}, referral(true), "", StatusReferred},
		{"assign", []Command{referral(true)}, assign, "LinkWorkerAssigned", StatusAssigned},
		{"same worker again is a no-op", []Command{referral(true), assign}, assign, "", StatusAssigned},
		{"reassign", []Command{referral(true), assign}, Assign{WorkerID: "lw-8", WorkerName: "Ali"}, "LinkWorkerAssigned", StatusAssigned},
		{"no answer", []Command{referral(true), assign}, RecordContact{Outcome: "no_answer"}, "ContactAttempted", StatusAssigned},
		{"left message", []Command{referral(true), assign}, RecordContact{Outcome: "left_message"}, "ContactAttempted", StatusAssigned},
		{"reached", []Command{referral(true), assign}, reached, "ContactMade", StatusInProgress},
		{"assess", contacted, AssessNeeds{Needs: []string{"befriending"}, Goals: []GoalInput{{GoalID: "g1", Text: "walk"}}}, "NeedsAssessed", StatusInProgress},
		{"goal achieved", append(contacted, AssessNeeds{Goals: []GoalInput{{GoalID: "g1", Text: "walk"}}}), UpdateGoal{GoalID: "g1", Status: "achieved"}, "GoalUpdated", StatusInProgress},
		{"measure", contacted, RecordMeasure{MeasureID: "m1", Instrument: "SWEMWBS", Timepoint: "baseline", Answers: []int32{3, 3, 3, 3, 3, 3, 3}}, "WellbeingMeasured", StatusInProgress},
		{"refer on", contacted, referOn, "OnwardReferralMade", StatusInProgress},
		{"refer on to a full service's waiting list", contacted, ReferOnward{OnwardReferralID: "o1", Service: ServiceFacts{ID: "s", AcceptsReferrals: true, Capacity: "full"}, WaitingList: true}, "OnwardReferralMade", StatusInProgress},
		{"accept", append(contacted, referOn), AcceptOnward{OnwardReferralID: "o1"}, "OnwardReferralAccepted", StatusConnected},
		{"decline", append(contacted, referOn), DeclineOnward{OnwardReferralID: "o1", Reason: "no_capacity"}, "OnwardReferralDeclined", StatusInProgress},
		{"withdraw sent", append(contacted, referOn), WithdrawOnward{OnwardReferralID: "o1"}, "OnwardReferralWithdrawn", StatusInProgress},
		{"withdraw accepted", append(contacted, referOn, AcceptOnward{OnwardReferralID: "o1"}), WithdrawOnward{OnwardReferralID: "o1"}, "OnwardReferralWithdrawn", StatusInProgress},
		{"attended", append(contacted, referOn, AcceptOnward{OnwardReferralID: "o1"}), RecordAttendance{OnwardReferralID: "o1", Date: "2026-11-20", Attended: true}, "AttendanceRecorded", StatusConnected},
		{"did not attend", append(contacted, referOn, AcceptOnward{OnwardReferralID: "o1"}), RecordAttendance{OnwardReferralID: "o1", Date: "2026-11-20"}, "AttendanceRecorded", StatusConnected},
		{"complete", append(contacted, referOn, AcceptOnward{OnwardReferralID: "o1"}, RecordAttendance{OnwardReferralID: "o1", Date: "2026-11-20", Attended: true}), CompleteOnward{OnwardReferralID: "o1"}, "OnwardReferralCompleted", StatusConnected},
		{"drop out", append(contacted, referOn, AcceptOnward{OnwardReferralID: "o1"}), DropOutOnward{OnwardReferralID: "o1"}, "OnwardReferralDroppedOut", StatusInProgress},
		{"refer on again after a decline", append(contacted, referOn, DeclineOnward{OnwardReferralID: "o1", Reason: "other"}), ReferOnward{OnwardReferralID: "o2", Service: walk}, "OnwardReferralMade", StatusInProgress},
		{"follow-up", contacted, ScheduleFollowUp{FollowUpID: "f1", Due: "2027-05-01"}, "FollowUpScheduled", StatusInProgress},
		{"follow-up done", append(contacted, ScheduleFollowUp{FollowUpID: "f1", Due: "2027-05-01"}), CompleteFollowUp{FollowUpID: "f1"}, "FollowUpCompleted", StatusInProgress},
		{"follow-up done with a measure", append(contacted, ScheduleFollowUp{FollowUpID: "f1", Due: "2027-05-01"}), RecordMeasure{MeasureID: "m2", Instrument: "UCLA3", Timepoint: "follow_up", Answers: []int32{1, 2, 1}, FollowUpID: "f1"}, "WellbeingMeasured", StatusInProgress},
		{"person declines", []Command{referral(true)}, DeclineReferral{}, "PatientDeclined", StatusDeclined},
		{"close", contacted, closeMet, "JourneyClosed", StatusClosed},
		{"close as declined", contacted, Close{Reason: "declined"}, "JourneyClosed", StatusDeclined},
		{"close an unassigned referral", []Command{referral(true)}, Close{Reason: "moved_away"}, "JourneyClosed", StatusClosed},
		{"reopen", append(contacted, closeMet), Reopen{Reason: "setback"}, "JourneyReopened", StatusInProgress},
		{"reopen a declined", []Command{referral(true), DeclineReferral{}}, Reopen{}, "JourneyReopened", StatusReferred},
		{"VCS accepts after the journey closed", append(contacted, referOn, closeMet), AcceptOnward{OnwardReferralID: "o1"}, "OnwardReferralAccepted", StatusClosed},
		{"erase", contacted, ErasePersonalData{}, "PersonalDataErased", StatusInProgress},
		{"erase twice is a no-op", append(contacted, ErasePersonalData{}), ErasePersonalData{}, "", StatusInProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := history(t, tt.given...)
			evs, err := Decide(s, tt.cmd)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			got := ""
			if len(evs) > 1 {
				t.Fatalf("got %d events, want at most one", len(evs))
			}
			for _, e := range evs {
				got = ShortName(e)
				s = Evolve(s, e)
			}
			if got != tt.event {
				t.Errorf("event %q, want %q", got, tt.event)
			}
			if s.Status() != tt.status {
				t.Errorf("status %q, want %q", s.Status(), tt.status)
			}
		})
	}
}

func TestDecideRefused(t *testing.T) {
	t.Parallel()
	contacted := []Command{referral(true), assign, reached}
	closed := append(contacted[:len(contacted):len(contacted)], closeMet)
	withOnward := append(contacted[:len(contacted):len(contacted)], referOn)
	declinedOnward := append(withOnward[:len(withOnward):len(withOnward)], DeclineOnward{OnwardReferralID: "o1", Reason: "not_eligible"})
	withdrawn := append(withOnward[:len(withOnward):len(withOnward)], WithdrawOnward{OnwardReferralID: "o1"})
	tests := []struct {
		name    string
		given   []Command
		cmd     Command
		code    Code
		message string // a part of the message or field that must be there
	}{
		{"anything on a journey that does not exist", nil, assign, CodeNotFound, "not found"},
		{"assign without a worker id", []Command{referral(true)}, Assign{WorkerName: "x"}, CodeInvalid, "worker_id"},
		{"assign on a closed journey", closed, assign, CodeFailedPrecondition, "journey is closed"},
		{"contact before assignment", []Command{referral(true)}, reached, CodeFailedPrecondition, "journey is referred"},
		{"contact with an unknown outcome", []Command{referral(true), assign}, RecordContact{Outcome: "waved"}, CodeInvalid, "outcome"},
		{"assess before contact", []Command{referral(true), assign}, AssessNeeds{Needs: []string{"x"}}, CodeFailedPrecondition, "journey is assigned"},
		{"empty assessment", contacted, AssessNeeds{}, CodeInvalid, "needs"},
		{"goal without text", contacted, AssessNeeds{Goals: []GoalInput{{GoalID: "g"}}}, CodeInvalid, "goals[0].text"},
		{"unknown goal", contacted, UpdateGoal{GoalID: "nope", Status: "achieved"}, CodeNotFound, ""},
		{"bad goal status", append(contacted, AssessNeeds{Goals: []GoalInput{{GoalID: "g1", Text: "w"}}}), UpdateGoal{GoalID: "g1", Status: "done"}, CodeInvalid, "status"},
		{"measure before contact", []Command{referral(true), assign}, RecordMeasure{Instrument: "ONS4", Timepoint: "baseline", Answers: []int32{1, 2, 3, 4}}, CodeFailedPrecondition, "journey is assigned"},
		{"SWEMWBS with six answers", contacted, RecordMeasure{Instrument: "SWEMWBS", Timepoint: "baseline", Answers: []int32{3, 3, 3, 3, 3, 3}}, CodeInvalid, "answers"},
		{"ONS4 answer 11", contacted, RecordMeasure{Instrument: "ONS4", Timepoint: "baseline", Answers: []int32{6, 7, 5, 11}}, CodeInvalid, "answers[3]"},
		{"unknown instrument", contacted, RecordMeasure{Instrument: "PHQ9", Timepoint: "baseline"}, CodeInvalid, "instrument"},
		{"unknown timepoint", contacted, RecordMeasure{Instrument: "UCLA3", Timepoint: "later", Answers: []int32{1, 1, 1}}, CodeInvalid, "timepoint"},
		{"refer on without consent", []Command{referral(false), assign, reached}, referOn, CodeFailedPrecondition, "consent"},
		{"refer on before contact", []Command{referral(true), assign}, referOn, CodeFailedPrecondition, "journey is assigned"},
		{"refer on to a signposting service", contacted, ReferOnward{OnwardReferralID: "o", Service: ServiceFacts{ID: "s", Capacity: "open"}}, CodeInvalid, "service_id"},
		{"refer on to a full service", contacted, ReferOnward{OnwardReferralID: "o", Service: ServiceFacts{ID: "s", AcceptsReferrals: true, Capacity: "full"}}, CodeFailedPrecondition, "waiting_list"},
		{"refer on to a paused service", contacted, ReferOnward{OnwardReferralID: "o", Service: ServiceFacts{ID: "s", AcceptsReferrals: true, Capacity: "paused"}, WaitingList: true}, CodeFailedPrecondition, "paused"},
		{"refer on twice to one service", withOnward, ReferOnward{OnwardReferralID: "o2", Service: walk}, CodeFailedPrecondition, "already open"},
		{"share an unknown field", contacted, ReferOnward{OnwardReferralID: "o", Service: walk, Share: []string{"nhs_number"}}, CodeInvalid, "share[0]"},
		{"accept an unknown onward referral", withOnward, AcceptOnward{OnwardReferralID: "zz"}, CodeNotFound, ""},
		{"accept a withdrawn one", withdrawn, AcceptOnward{OnwardReferralID: "o1"}, CodeFailedPrecondition, "onward referral is withdrawn"},
		{"accept a declined one", declinedOnward, AcceptOnward{OnwardReferralID: "o1"}, CodeFailedPrecondition, "onward referral is declined"},
		{"decline with an unknown reason", withOnward, DeclineOnward{OnwardReferralID: "o1", Reason: "sometime"}, CodeInvalid, "reason"},
		{"attendance before acceptance", withOnward, RecordAttendance{OnwardReferralID: "o1", Date: "2026-11-20", Attended: true}, CodeFailedPrecondition, "onward referral is sent"},
		{"attendance with a bad date", append(withOnward, AcceptOnward{OnwardReferralID: "o1"}), RecordAttendance{OnwardReferralID: "o1", Date: "20/11/2026"}, CodeInvalid, "date"},
		{"complete without attending", append(withOnward, AcceptOnward{OnwardReferralID: "o1"}), CompleteOnward{OnwardReferralID: "o1"}, CodeFailedPrecondition, "onward referral is accepted"},
		{"withdraw a declined one", declinedOnward, WithdrawOnward{OnwardReferralID: "o1"}, CodeFailedPrecondition, "onward referral is declined"},
		{"follow-up with a bad date", contacted, ScheduleFollowUp{FollowUpID: "f", Due: "soon"}, CodeInvalid, "due"},
		{"check-in before the closure", closed, ScheduleFollowUp{FollowUpID: "f", Due: "2026-01-07"}, CodeInvalid, "due"},
		{"check-in beyond 24 months after closure", closed, ScheduleFollowUp{FollowUpID: "f", Due: "2028-01-09"}, CodeInvalid, "due"},
		{"follow-up on a declined journey", []Command{referral(true), DeclineReferral{}}, ScheduleFollowUp{FollowUpID: "f", Due: "2026-03-01"}, CodeFailedPrecondition, "journey is declined"},
		{"follow-up with an unknown timepoint", contacted, ScheduleFollowUp{FollowUpID: "f", Due: "2026-03-01", Timepoint: "2_weeks"}, CodeInvalid, "timepoint"},
		{"complete an unknown follow-up", contacted, CompleteFollowUp{FollowUpID: "nope"}, CodeNotFound, "follow_up_id"},
		{"complete a follow-up twice", append(contacted, ScheduleFollowUp{FollowUpID: "f1", Due: "2027-01-01"}, CompleteFollowUp{FollowUpID: "f1"}), CompleteFollowUp{FollowUpID: "f1"}, CodeFailedPrecondition, "already completed"},
		{"decline a closed journey", closed, DeclineReferral{}, CodeFailedPrecondition, "journey is closed"},
		{"close a closed journey", closed, closeMet, CodeFailedPrecondition, "journey is closed"},
		{"close a declined journey", []Command{referral(true), DeclineReferral{}}, closeMet, CodeFailedPrecondition, "journey is declined"},
		{"close with an unknown reason", contacted, Close{Reason: "bored"}, CodeInvalid, "reason"},
		{"reopen an open journey", contacted, Reopen{}, CodeFailedPrecondition, "journey is in_progress"},
		{"refer with no referral", nil, Refer{}, CodeInvalid, "referral"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := history(t, tt.given...)
			evs, err := Decide(s, tt.cmd)
			if err == nil {
				t.Fatalf("accepted with %d events, want refused", len(evs))
			}
			if len(evs) != 0 {
				t.Errorf("refused but returned %d events", len(evs))
			}
			if got := ErrorCode(err); got != tt.code {
				t.Errorf("code %s, want %s (%v)", got, tt.code, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not say %q", err, tt.message)
			}
		})
	}
}

func TestReferOnwardSharesOnlyWhatWasAgreed(t *testing.T) {
	t.Parallel()
	s := history(t, referral(true), assign, reached, AssessNeeds{Needs: []string{"company", "Call Jane Doe", "befriending"}})
	evs, err := Decide(s, ReferOnward{OnwardReferralID: "o1", Service: walk, Share: []string{"name", "needs"}})
	if err != nil {
		t.Fatal(err)
	}
	shared := evs[0].GetOnwardReferralMade().GetShared()
	p := shared.GetPerson()
	if p.GetGivenName() != "Jane" || p.GetFamilyName() != "Doe" || len(shared.GetNeeds()) != 1 ||
		shared.GetNeeds()[0] != "befriending_and_social_groups" {
		t.Errorf("name and the assessed needs (in the taxonomy, once) not shared: %v", shared)
	}
	if p.GetNhsNumber() != "" || p.GetBirthDate() != "" || p.GetPhone() != "" || p.GetEmail() != "" || p.GetPostcode() != "" || shared.GetNotes() != nil {
		t.Errorf("shared more than agreed: %v", shared)
	}
}

func TestUncontactableFlag(t *testing.T) {
	t.Parallel()
	noAnswer := RecordContact{Outcome: "no_answer"}
	policy := UncontactablePolicy{Attempts: 3}
	tests := []struct {
		name    string
		cmds    []Command
		flagged bool
	}{
		{"two failed attempts", []Command{referral(true), assign, noAnswer, noAnswer}, false},
		{"three failed attempts", []Command{referral(true), assign, noAnswer, noAnswer, noAnswer}, true},
		{"reached in between", []Command{referral(true), assign, noAnswer, noAnswer, reached, noAnswer}, false},
		{"closed", []Command{referral(true), assign, noAnswer, noAnswer, noAnswer, Close{Reason: "uncontactable"}}, false},
	}
	for _, tt := range tests {
		if got := history(t, tt.cmds...).FlaggedUncontactable(policy); got != tt.flagged {
			t.Errorf("%s: flagged %v, want %v", tt.name, got, tt.flagged)
		}
	}
}

func TestStateIsAValue(t *testing.T) {
	t.Parallel()
	s := history(t, referral(true), assign, reached, referOn)
	before := s.Onward[0].Status
	evs, _ := Decide(s, AcceptOnward{OnwardReferralID: "o1"})
	_ = Evolve(s, evs[0])
	if s.Onward[0].Status != before {
		t.Error("Evolve changed the state it was given")
	}
}

func TestWrapAndNames(t *testing.T) {
	t.Parallel()
	env := Wrap(&eventsv1.JourneyClosed{Reason: "goals_met"})
	if EventName(env) != "linkway.events.v1.JourneyClosed" || ShortName(env) != "JourneyClosed" {
		t.Errorf("names %q %q", EventName(env), ShortName(env))
	}
	if !proto.Equal(env.GetJourneyClosed(), &eventsv1.JourneyClosed{Reason: "goals_met"}) {
		t.Error("wrapped event lost")
	}
	if EventName(&eventsv1.Envelope{}) != "" {
		t.Error("empty envelope has a name")
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	a, b := ReferralJourneyID("A81001", "EMIS-1"), ReferralJourneyID("A81002", "EMIS-1")
	if a == b || a != ReferralJourneyID("A81001", "EMIS-1") {
		t.Error("referral ids are not per practice and stable")
	}
	if ParseID(a) != nil || ParseID(NewID()) != nil {
		t.Error("own ids refused")
	}
	for _, bad := range []string{"", "x", "lw.journey.*", ">", strings.ToUpper(a), a + ".x"} {
		if ParseID(bad) == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if id, ok := JourneyIDFromSubject(JourneySubject(a)); !ok || id != a {
		t.Error("subject round trip")
	}
}

func TestPartitionSubjects(t *testing.T) {
	t.Parallel()
	id := NewID()
	for _, tt := range []struct {
		subject string
		k       int
		ok      bool
	}{
		{"lw.journey.7." + id, 7, true},
		{"lw.journey.15." + id, 15, true},
		{"lw.journey.16." + id, 0, false},
		{"lw.journey." + id, 0, false},
		{"lw.other.3." + id, 0, false},
	} {
		k, ok := PartitionOfSubject(tt.subject)
		if k != tt.k || ok != tt.ok {
			t.Errorf("PartitionOfSubject(%q) = %d %v, want %d %v", tt.subject, k, ok, tt.k, tt.ok)
		}
	}
	for _, s := range []string{JourneySubject(id), "lw.journey.3." + id} {
		if got, ok := JourneyIDFromSubject(s); !ok || got != id {
			t.Errorf("JourneyIDFromSubject(%q) = %q %v", s, got, ok)
		}
	}
	if PartitionFilter(3) != "lw.journey.3.*" || JourneyFilter(id) != "lw.journey.*."+id {
		t.Error("filters")
	}
}

func TestPlaceNeed(t *testing.T) {
	t.Parallel()
	for need, want := range map[string]string{
		"company":                "befriending_and_social_groups",
		"Debt":                   "financial_and_debt_advice",
		"physical activity":      "physical_activity",
		"mental-health":          "mental_wellbeing",
		"nature_and_green_space": "nature_and_green_space",
		"knitting":               "",
	} {
		got, ok := PlaceNeed(need)
		if got != want || ok != (want != "") {
			t.Errorf("PlaceNeed(%q) = %q, %v; want %q", need, got, ok, want)
		}
	}
	for k, cat := range needWords {
		if _, ok := NeedCategoryByID(cat); !ok {
			t.Errorf("word %q maps to %q, not a category", k, cat)
		}
	}
	terms, err := Terms()
	if err != nil {
		t.Fatal(err)
	}
	for code, cat := range reasonNeeds {
		if _, ok := terms.Reasons.Get(code); !ok {
			t.Errorf("reason %s is placed but not in the reasons value set", code)
		}
		if _, ok := NeedCategoryByID(cat); !ok {
			t.Errorf("reason %s maps to %q, not a category", code, cat)
		}
	}
}
