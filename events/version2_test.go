package events

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// The rules of version 2 (issues 16, 17, 18): arrivals, consent,
// signposting, continuity and safety, feedback.

var (
	debtAdvice  = ServiceFacts{ID: "VCS002-debt", Name: "Debt advice", OrganisationID: "VCS002", AcceptsReferrals: true, Capacity: "open"}
	leaflets    = ServiceFacts{ID: "VCS003-info", Name: "Library information point", OrganisationID: "VCS003", Capacity: "open"}
	pausedGroup = ServiceFacts{ID: "VCS004-choir", Name: "Choir", OrganisationID: "VCS004", AcceptsReferrals: true, Capacity: "paused"}
)

func selfReferral(pref string) Refer {
	return Refer{Referral: &eventsv1.ReferralReceived{Source: SourceSelf, SourceId: "web-1",
		Person:            &eventsv1.PersonalData{GivenName: "Robin", FamilyName: "Self", Phone: "07700 900456"},
		WhatMatters:       &eventsv1.FreeText{Text: "Getting out of the house again."},
		ContactPreference: pref, Consent: &eventsv1.Consent{ShareWithVcs: true}, LinkWorkTeam: "U12345"}}
}

// referralWith is the test referral changed by f.
func referralWith(f func(*eventsv1.ReferralReceived)) Refer {
	r := referral(true)
	r.Referral = proto.CloneOf(r.Referral)
	f(r.Referral)
	return r
}

func TestDecideVersion2Legal(t *testing.T) {
	t.Parallel()
	contacted := []Command{referral(true), assign, reached}
	noConsent := []Command{referral(false), assign, reached}
	closed := append(slices.Clip(contacted), closeMet) // closed on 2026-01-08
	accepted := append(slices.Clip(contacted), referOn, AcceptOnward{OnwardReferralID: "o1"})
	sched := ScheduleFollowUp{FollowUpID: "f1", Due: "2026-04-08", Timepoint: "3_months"}
	swemwbs := &MeasureInput{MeasureID: "m9", Instrument: "SWEMWBS", Answers: []int32{4, 4, 3, 3, 4, 4, 3}}
	tests := []struct {
		name   string
		given  []Command
		cmd    Command
		events []string // short names of the events expected, in order
		check  func(State) string
	}{
		{"self-referral", nil, selfReferral("text"), []string{"ReferralReceived"}, func(s State) string {
			if !s.Consent.ByPerson || !s.ShareWithVCS() || s.Referral.GetSource() != SourceSelf {
				return "a self-referral's consent is the person's own"
			}
			return ""
		}},
		{"an agency refers", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Source = string(SectorHousing) }), []string{"ReferralReceived"}, nil},
		{"ethnicity given", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Person.Ethnicity = "99" }), []string{"ReferralReceived"}, nil},
		{"urgent referral is taken and flagged", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Urgency = UrgencyUrgent }), []string{"ReferralReceived"}, func(s State) string {
			if w, ok := ReferralWarning(s.Referral); !s.Urgent || !ok || !strings.Contains(w, "not a crisis") {
				return "not flagged urgent with a warning"
			}
			return ""
		}},
		{"the person consents after the referrer said no", noConsent, RecordConsent{ShareWithVCS: true, Method: "verbal"}, []string{"ConsentRecorded"}, func(s State) string {
			if _, err := Decide(s, referOn); err != nil {
				return "onward referral still refused: " + err.Error()
			}
			return ""
		}},
		{"the same choice again is a no-op", append(slices.Clip(noConsent), RecordConsent{ShareWithVCS: true, Method: "verbal"}), RecordConsent{ShareWithVCS: true, Method: "verbal"}, nil, nil},
		{"consent on a closed journey", closed, RecordConsent{ShareWithVCS: false, Method: "written"}, []string{"ConsentRecorded"}, nil},
		{"signpost to a service", contacted, SignpostTo{SignpostID: "p1", Service: &debtAdvice}, []string{"Signposted"}, func(s State) string {
			if s.Connection() != ConnectionSignposted || !s.ReferredOrSignposted("VCS002-debt") {
				return "not counted as signposted"
			}
			return ""
		}},
		{"signpost to a signposting-only service", contacted, SignpostTo{SignpostID: "p1", Service: &leaflets}, []string{"Signposted"}, nil},
		{"signpost to something described", contacted, SignpostTo{SignpostID: "p1", Description: "Library coffee morning, Tuesdays"}, []string{"Signposted"}, func(s State) string {
			if len(s.Signposts) != 1 || s.Signposts[0].ServiceID != "" {
				return "signpost not kept"
			}
			return ""
		}},
		{"the same signpost again is a no-op", append(slices.Clip(contacted), SignpostTo{SignpostID: "p1", Service: &debtAdvice}), SignpostTo{SignpostID: "p1", Service: &debtAdvice}, nil, nil},
		{"handover with a note", contacted, Assign{WorkerID: "lw-8", WorkerName: "Alex", HandoverNote: "Prefers mornings."}, []string{"LinkWorkerAssigned"}, func(s State) string {
			if s.WorkerID != "lw-8" || s.Handovers != 1 {
				return "handover not folded"
			}
			return ""
		}},
		{"case note", contacted, AddCaseNote{NoteID: "n1", Text: "Worried about her son."}, []string{"CaseNoteAdded"}, func(s State) string {
			if s.Notes != 1 {
				return "note not counted"
			}
			return ""
		}},
		{"case note on a closed journey", closed, AddCaseNote{NoteID: "n1", Text: "Check-in call."}, []string{"CaseNoteAdded"}, nil},
		{"risk escalated", contacted, RecordRisk{RiskID: "r1", Kind: "safeguarding_adult", Detail: "neighbour takes her money", EscalateToGP: true}, []string{"RiskRecorded"}, func(s State) string {
			if len(s.Risks) != 1 || s.Escalations() != 1 || s.Risks[0].Kind != "safeguarding_adult" {
				return "risk not kept"
			}
			return ""
		}},
		{"the same risk again is a no-op", append(slices.Clip(contacted), RecordRisk{RiskID: "r1", Kind: "other", Detail: "x"}), RecordRisk{RiskID: "r1", Kind: "other", Detail: "x"}, nil, nil},
		{"feedback on a service referred to", accepted, GiveFeedback{ServiceID: "VCS001-walk", From: "person", Rating: 5, Comment: "lovely", ShareComment: true}, []string{"FeedbackGiven"}, nil},
		{"feedback on a service signposted to", append(slices.Clip(contacted), SignpostTo{Service: &debtAdvice}), GiveFeedback{ServiceID: "VCS002-debt", From: "carer", Rating: 1}, []string{"FeedbackGiven"}, nil},
		{"feedback after closure", append(slices.Clip(accepted), closeMet), GiveFeedback{ServiceID: "VCS001-walk", From: "person", Rating: 3}, []string{"FeedbackGiven"}, nil},
		{"attendance on the day of the onward referral", accepted, RecordAttendance{OnwardReferralID: "o1", Date: "2026-01-08", Attended: true}, []string{"AttendanceRecorded"}, func(s State) string {
			if o, _ := s.OnwardByID("o1"); func() bool { _, before := SessionBeforeReferral(o, "2026-01-08"); return before }() {
				return "a session on the day of the referral counted as before it"
			}
			return ""
		}},
		{"attendance written up after the fact", accepted, RecordAttendance{OnwardReferralID: "o1", Date: "2026-01-07", Attended: true}, []string{"AttendanceRecorded"}, func(s State) string {
			o, _ := s.OnwardByID("o1")
			made, before := SessionBeforeReferral(o, "2026-01-07")
			if !before || made.Format(time.DateOnly) != "2026-01-08" || !strings.Contains(AttendanceWarning(made), "2026-01-08") {
				return "a session before the onward referral not told apart"
			}
			return ""
		}},
		{"check-in after closure", closed, sched, []string{"FollowUpScheduled"}, func(s State) string {
			if s.Status() != StatusClosed || len(s.OpenFollowUps()) != 1 || !s.FollowUps[0].AfterClosure || s.FollowUps[0].Timepoint != "3_months" {
				return "check-in not kept, or the journey reopened"
			}
			return ""
		}},
		{"check-in on the day of closure", closed, ScheduleFollowUp{FollowUpID: "f", Due: "2026-01-08"}, []string{"FollowUpScheduled"}, nil},
		{"check-in 24 months after closure", closed, ScheduleFollowUp{FollowUpID: "f", Due: "2028-01-08"}, []string{"FollowUpScheduled"}, nil},
		{"check-in held with a measure", append(slices.Clip(closed), sched), CompleteFollowUp{FollowUpID: "f1", Measure: swemwbs}, []string{"WellbeingMeasured", "FollowUpCompleted"}, func(s State) string {
			if len(s.OpenFollowUps()) != 0 || s.Measures != 1 || s.Status() != StatusClosed {
				return "check-in not completed with its measure"
			}
			return ""
		}},
		{"follow-up held without a measure", append(slices.Clip(contacted), sched), CompleteFollowUp{FollowUpID: "f1"}, []string{"FollowUpCompleted"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := history(t, tt.given...)
			evs, err := Decide(s, tt.cmd)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, ShortName(e))
				e.OccurredAt = timestamppb.New(historyStart.AddDate(0, 0, s.Version))
				s = Evolve(s, e)
			}
			if !slices.Equal(got, tt.events) {
				t.Errorf("events %v, want %v", got, tt.events)
			}
			if tt.check != nil {
				if msg := tt.check(s); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func TestDecideVersion2Refused(t *testing.T) {
	t.Parallel()
	contacted := []Command{referral(true), assign, reached}
	erased := append(slices.Clip(contacted), referOn, ErasePersonalData{})
	withdrawnConsent := append(slices.Clip(contacted), RecordConsent{ShareWithVCS: false, Method: "digital"})
	regiven := append(slices.Clip(withdrawnConsent), RecordConsent{ShareWithVCS: true, Method: "verbal"}, RecordConsent{ShareWithVCS: false, Method: "written"})
	accepted := append(slices.Clip(contacted), referOn, AcceptOnward{OnwardReferralID: "o1"}) // made on 2026-01-08
	tests := []struct {
		name    string
		given   []Command
		cmd     Command
		code    Code
		message string
	}{
		{"a source that is none", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Source = "council" }), CodeInvalid, "source"},
		{"an urgency that is none", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Urgency = "asap" }), CodeInvalid, "urgency"},
		{"a contact preference that is none", nil, selfReferral("pigeon"), CodeInvalid, "contact_preference"},
		{"a self-referral with no contact preference", nil, selfReferral(""), CodeInvalid, "contact_preference"},
		{"ethnicity ZZ", nil, referralWith(func(r *eventsv1.ReferralReceived) { r.Person.Ethnicity = "ZZ" }), CodeInvalid, "person.ethnicity"},
		{"consent on no journey", nil, RecordConsent{ShareWithVCS: true, Method: "verbal"}, CodeNotFound, "not found"},
		{"consent with an unknown method", contacted, RecordConsent{ShareWithVCS: true, Method: "telepathy"}, CodeInvalid, "method"},
		{"the person says no where the referrer said yes", withdrawnConsent, referOn, CodeFailedPrecondition, "consent.share_with_vcs"},
		{"the latest choice counts", regiven, referOn, CodeFailedPrecondition, "written"},
		{"a handover note with no one to hand over from", []Command{referral(true)}, Assign{WorkerID: "lw-7", WorkerName: "Sam", HandoverNote: "x"}, CodeInvalid, "handover_note"},
		{"signpost to nothing", contacted, SignpostTo{}, CodeInvalid, "service_id"},
		{"signpost to both", contacted, SignpostTo{Service: &debtAdvice, Description: "x"}, CodeInvalid, "description"},
		{"signpost to a paused service", contacted, SignpostTo{Service: &pausedGroup}, CodeFailedPrecondition, "paused"},
		{"signpost before contact", []Command{referral(true), assign}, SignpostTo{Service: &debtAdvice}, CodeFailedPrecondition, "journey is assigned"},
		{"signpost on a closed journey", append(slices.Clip(contacted), closeMet), SignpostTo{Service: &debtAdvice}, CodeFailedPrecondition, "journey is closed"},
		{"an empty case note", contacted, AddCaseNote{NoteID: "n", Text: "  "}, CodeInvalid, "text"},
		{"a case note after erasure", erased, AddCaseNote{NoteID: "n", Text: "x"}, CodeFailedPrecondition, "erased"},
		{"a risk of an unknown kind", contacted, RecordRisk{Kind: "rumour", Detail: "x"}, CodeInvalid, "kind"},
		{"a risk with no detail", contacted, RecordRisk{Kind: "self_harm"}, CodeInvalid, "detail"},
		{"a risk after erasure", erased, RecordRisk{Kind: "other", Detail: "x"}, CodeFailedPrecondition, "erased"},
		{"feedback from a neighbour", accepted, GiveFeedback{ServiceID: "VCS001-walk", From: "neighbour", Rating: 3}, CodeInvalid, "from"},
		{"feedback rated 6", accepted, GiveFeedback{ServiceID: "VCS001-walk", From: "person", Rating: 6}, CodeInvalid, "rating"},
		{"feedback rated 0", accepted, GiveFeedback{ServiceID: "VCS001-walk", From: "person"}, CodeInvalid, "rating"},
		{"feedback with no service", accepted, GiveFeedback{From: "person", Rating: 3}, CodeInvalid, "service_id"},
		{"feedback on a service never referred to", accepted, GiveFeedback{ServiceID: "VCS002-debt", From: "person", Rating: 3}, CodeFailedPrecondition, "service_id"},
		{"a comment to share that is not there", accepted, GiveFeedback{ServiceID: "VCS001-walk", From: "person", Rating: 3, ShareComment: true}, CodeInvalid, "share_comment"},
		{"a comment after erasure", erased, GiveFeedback{ServiceID: "VCS001-walk", From: "person", Rating: 3, Comment: "x"}, CodeFailedPrecondition, "erased"},
		{"a check-in measure with too few answers", append(slices.Clip(contacted), ScheduleFollowUp{FollowUpID: "f1", Due: "2026-04-01"}),
			CompleteFollowUp{FollowUpID: "f1", Measure: &MeasureInput{Instrument: "SWEMWBS", Answers: []int32{3}}}, CodeInvalid, "answers"},
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

func TestHandoverNamesThePreviousWorker(t *testing.T) {
	t.Parallel()
	s := history(t, referral(true), assign)
	evs, err := Decide(s, Assign{WorkerID: "lw-8", WorkerName: "Alex", HandoverNote: "Prefers mornings."})
	if err != nil {
		t.Fatal(err)
	}
	a := evs[0].GetLinkWorkerAssigned()
	if a.GetPreviousWorkerId() != "lw-7" || a.GetPreviousWorkerName() != "Sam Link" || a.GetHandoverNote().GetText() != "Prefers mornings." {
		t.Errorf("handover: %v", a)
	}
	first, _ := Decide(history(t, referral(true)), assign)
	if a := first[0].GetLinkWorkerAssigned(); a.GetPreviousWorkerId() != "" || a.GetHandoverNote() != nil {
		t.Errorf("a first assignment is no handover: %v", a)
	}
}

// TestConsentFollowsTheLatest: the referrer's consent until the person
// records theirs, then the latest, in whatever order the log holds them.
func TestConsentFollowsTheLatest(t *testing.T) {
	t.Parallel()
	at := func(d int) *timestamppb.Timestamp { return timestamppb.New(historyStart.AddDate(0, 0, d)) }
	env := func(e proto.Message, d int) *eventsv1.Envelope {
		w := Wrap(e)
		w.OccurredAt = at(d)
		return w
	}
	yes := &eventsv1.ReferralReceived{Consent: &eventsv1.Consent{ShareWithVcs: true}}
	no := &eventsv1.ConsentRecorded{ShareWithVcs: false, Method: "verbal"}
	if s := Fold([]*eventsv1.Envelope{env(yes, 0)}); !s.ShareWithVCS() || s.Consent.ByPerson {
		t.Error("the referrer's consent is not in force")
	}
	if s := Fold([]*eventsv1.Envelope{env(yes, 0), env(no, 1)}); s.ShareWithVCS() || s.Consent.Method != "verbal" {
		t.Error("the person's no does not win over the referrer's yes")
	}
	// A consent folded before its referral (any order) still wins.
	if s := Fold([]*eventsv1.Envelope{env(no, 1), env(yes, 0)}); s.ShareWithVCS() || !s.Consent.ByPerson {
		t.Error("a referral folded later overrode the person's own choice")
	}
}

// TestEvolveIsTotal folds every kind of event, empty, in many orders: no
// panic, and the state still encodes and decodes.
func TestEvolveIsTotal(t *testing.T) {
	t.Parallel()
	fields := eventOneof.Fields()
	var all []*eventsv1.Envelope
	for i := range fields.Len() {
		env := &eventsv1.Envelope{}
		fd := fields.Get(i)
		env.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(env.ProtoReflect().NewField(fd).Message()))
		all = append(all, env)
	}
	if len(all) < 26 {
		t.Fatalf("only %d event kinds", len(all))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		order := slices.Clone(all)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		s := Fold(order[:1+r.IntN(len(order))])
		b, err := MarshalState(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalState(b); err != nil {
			t.Fatal(err)
		}
		_ = s.Status()
		_ = s.Connection()
	}
}

func TestEthnicCategories(t *testing.T) {
	t.Parallel()
	var valid []string
	for c := 'A'; c <= 'Z'; c++ {
		if CheckEthnicity("patient.ethnicity", string(c)) == nil {
			valid = append(valid, string(c))
		}
	}
	if got := strings.Join(valid, ""); got != "ABCDEFGHJKLMNPRSZ" {
		t.Errorf("letters taken: %s", got)
	}
	for _, ok := range []string{"", "99", "A", "Z"} {
		if err := CheckEthnicity("patient.ethnicity", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"ZZ", "a", "9", "A1", " A", "98", "X"} {
		err := CheckEthnicity("patient.ethnicity", bad)
		var e *Error
		if !errors.As(err, &e) || e.Field != "patient.ethnicity" {
			t.Errorf("%q: %v, want invalid naming patient.ethnicity", bad, err)
		}
	}
	if len(EthnicCategories) != 18 {
		t.Errorf("%d categories, want 16 + Z + 99", len(EthnicCategories))
	}
}

func TestSourcesAndKinds(t *testing.T) {
	t.Parallel()
	if src, ok := SourceOfReferrer(KindReferrer, SectorHousing); !ok || src != "housing" {
		t.Errorf("a housing referrer's source: %q %v", src, ok)
	}
	if src, ok := SourceOfReferrer(KindGP, ""); !ok || src != SourceGP {
		t.Errorf("a practice's source: %q %v", src, ok)
	}
	for _, k := range []Kind{KindVCS, KindLinkwork, KindCommissioner} {
		if _, ok := SourceOfReferrer(k, SectorHousing); ok {
			t.Errorf("kind %s may refer", k)
		}
	}
	if _, ok := SourceOfReferrer(KindReferrer, "circus"); ok {
		t.Error("a referrer of no known sector may refer")
	}
	if KindReferrer.Proto() != eventsv1.OrganisationKind_ORGANISATION_KIND_REFERRER || !slices.Contains(Kinds, KindReferrer) {
		t.Error("kind referrer")
	}
	for src, want := range map[string]string{"gp": "gp", "self": "self", "police": "agency", "council": "agency", "": "unknown", "x": "unknown"} {
		if got := SourceKind(src); got != want {
			t.Errorf("SourceKind(%q) = %q, want %q", src, got, want)
		}
	}
	if len(ReferralSources) != 2+len(Sectors) {
		t.Errorf("sources %v", ReferralSources)
	}
}

// TestOneListOfCategories: every need word and barrier the link-worker
// side offered in version 1, and every reason in the value set, has a
// place, so nothing falls to "other" unseen.
func TestOneListOfCategories(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"company", "loneliness", "low_mood", "physical_activity", "financial", "debt", "housing",
		"employment", "benefits", "carer_support", "long_term_condition", "food", "learning", "bereavement"} {
		if _, ok := PlaceNeed(n); !ok {
			t.Errorf("need %q has no category", n)
		}
	}
	for _, id := range NeedIDs() {
		if c, ok := PlaceNeed(id); !ok || c != id {
			t.Errorf("category %q does not place as itself", id)
		}
	}
	for _, b := range []string{"transport", "confidence", "cost", "caring_duties", "health", "language",
		"digital_access", "mobility", "anxiety", "time", "other", "Digital access", "caring-duties"} {
		if _, ok := PlaceBarrier(b); !ok {
			t.Errorf("barrier %q has no category", b)
		}
	}
	if _, ok := PlaceBarrier("Jane's dog"); ok {
		t.Error("free text placed as a barrier")
	}
	terms, err := Terms()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range terms.Reasons.All() {
		if _, ok := ReasonNeed(c.ID); !ok {
			t.Errorf("reason %s (%s, category %q) has no need category: add its category to reasonCategoryNeeds", c.ID, c.Term, c.Category)
		}
	}
	if got := PlaceNeeds([]string{"company", "Call Jane Doe", "befriending", "debt"}); !slices.Equal(got,
		[]string{"befriending_and_social_groups", "financial_and_debt_advice"}) {
		t.Errorf("PlaceNeeds = %v", got)
	}
}

func TestConnection(t *testing.T) {
	t.Parallel()
	contacted := []Command{referral(true), assign, reached}
	for _, tt := range []struct {
		name string
		cmds []Command
		want Connection
	}{
		{"nothing yet", contacted, ConnectionNone},
		{"referred on, not taken up", append(slices.Clip(contacted), referOn), ConnectionNone},
		{"signposted", append(slices.Clip(contacted), SignpostTo{Service: &leaflets}), ConnectionSignposted},
		{"connected", append(slices.Clip(contacted), SignpostTo{Service: &leaflets}, referOn, AcceptOnward{OnwardReferralID: "o1"}), ConnectionConnected},
	} {
		if got := history(t, tt.cmds...).Connection(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestWriteBack(t *testing.T) {
	t.Parallel()
	gp := history(t, referral(true), assign)
	self := history(t, selfReferral("phone"), assign)
	agency := history(t, referralWith(func(r *eventsv1.ReferralReceived) { r.Source = "police" }), assign)
	reachedAgain := history(t, selfReferral("phone"), assign, reached)
	for _, tt := range []struct {
		name   string
		before State
		event  proto.Message
		want   string
	}{
		{"a GP referral reached: the GP coded it already", gp, &eventsv1.ContactMade{}, ""},
		{"a self-referral reached", self, &eventsv1.ContactMade{}, CodeReferredToSocialPrescribing},
		{"an agency referral reached", agency, &eventsv1.ContactMade{}, CodeReferredToSocialPrescribing},
		{"reached again", reachedAgain, &eventsv1.ContactMade{}, ""},
		{"the referral itself", State{}, &eventsv1.ReferralReceived{Source: "self"}, ""},
		{"declined", gp, &eventsv1.PatientDeclined{}, CodeSocialPrescribingDeclined},
		{"closed as declined", gp, &eventsv1.JourneyClosed{Reason: "declined"}, CodeSocialPrescribingDeclined},
		{"closed otherwise", gp, &eventsv1.JourneyClosed{Reason: "goals_met"}, ""},
		{"signposted", gp, &eventsv1.Signposted{ServiceId: "x"}, ""},
	} {
		wb, ok := WriteBackFor(tt.before, Wrap(tt.event))
		if wb.Code != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: %q %v, want %q", tt.name, wb.Code, ok, tt.want)
		}
	}
	terms, err := Terms()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{CodeReferredToSocialPrescribing, CodeSocialPrescribingDeclined} {
		if !terms.WriteBack.Has(c) {
			t.Errorf("write-back code %s is not in the value set", c)
		}
	}
}

func TestFollowUpDue(t *testing.T) {
	t.Parallel()
	closed := time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC) // 1 April in England (BST)
	for tp, want := range map[string]string{"3_months": "2026-07-01", "6_months": "2026-10-01", "12_months": "2027-04-01"} {
		if got, ok := FollowUpDue(closed, tp); !ok || got != want {
			t.Errorf("%s: %s, want %s", tp, got, want)
		}
	}
	if _, ok := FollowUpDue(closed, "2_weeks"); ok {
		t.Error("unknown timepoint")
	}
}

// TestDaysAroundMidnight: a closure at 23:30 UTC in summer is the next day
// in England; a check-in due on either day is taken, and the 24 months run
// from the English day.
func TestDaysAroundMidnight(t *testing.T) {
	t.Parallel()
	s := history(t, referral(true), assign, reached)
	env := Wrap(&eventsv1.JourneyClosed{Reason: "goals_met"})
	env.OccurredAt = timestamppb.New(time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC)) // 1 July 00:30 in England
	s = Evolve(s, env)
	for due, ok := range map[string]bool{"2026-06-29": false, "2026-06-30": true, "2026-07-01": true, "2028-07-01": true, "2028-07-02": false} {
		_, err := Decide(s, ScheduleFollowUp{FollowUpID: "f", Due: due})
		if (err == nil) != ok {
			t.Errorf("check-in due %s: %v, want accepted %v", due, err, ok)
		}
	}
}

// TestErasureForgetsTheSelfReferralsWords: what a process holds in memory
// of the person goes with the erasure, their own words included.
func TestErasureForgetsTheSelfReferralsWords(t *testing.T) {
	t.Parallel()
	s := history(t, selfReferral("phone"), ErasePersonalData{})
	if r := s.Referral; r.GetPerson() != nil || r.GetWhatMatters() != nil || r.GetContactPreference() != "phone" {
		t.Errorf("after erasure the referral holds %v", r)
	}
}
