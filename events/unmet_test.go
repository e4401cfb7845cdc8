package events

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// What unmet need counts comes from the fold: the needs (the referral's
// until assessed), whether an onward referral waits for an answer, is on a
// waiting list, and why and when it was declined.
func TestUnmetNeedOfAState(t *testing.T) {
	s := history(t, referral(true), assign, reached)
	if got := s.NeedCategories(); !slices.Equal(got, []string{"befriending_and_social_groups"}) {
		t.Errorf("needs before assessment = %v, want the referral's reason placed", got)
	}
	run := walk
	run.ID = "VCS001-run"
	steps := []Command{referral(true), assign, reached, AssessNeeds{Needs: []string{"debt", "company", "Debt"}},
		ReferOnward{OnwardReferralID: "o1", Service: walk, Share: []string{"name"}, WaitingList: true},
		ReferOnward{OnwardReferralID: "o2", Service: run, Share: []string{"name"}}}
	s = history(t, steps...)
	if got := s.NeedCategories(); !slices.Equal(got, []string{"befriending_and_social_groups", "financial_and_debt_advice"}) {
		t.Errorf("needs after assessment = %v", got)
	}
	if !s.Onward[0].Awaiting() || !s.Onward[0].WaitingList || s.Onward[1].WaitingList {
		t.Errorf("onward referrals = %+v, want both awaiting, the first on the waiting list", s.Onward)
	}
	s = history(t, append(steps, DeclineOnward{OnwardReferralID: "o2", Reason: "no_capacity"})...)
	o := s.Onward[1]
	if o.Awaiting() || o.Status != OnwardDeclined || o.DeclineReason != "no_capacity" || !o.DeclinedAt.Equal(historyStart.AddDate(0, 0, 6)) {
		t.Errorf("declined onward referral = %+v", o)
	}
	if s.Onward[0].DeclineReason != "" || !s.Onward[0].DeclinedAt.IsZero() {
		t.Errorf("the other onward referral = %+v, want no decline", s.Onward[0])
	}
	// A reason outside the list (an old event) counts as other.
	odd := Evolve(s, &eventsv1.Envelope{JourneyId: "j", OccurredAt: timestamppb.New(historyStart),
		Event: &eventsv1.Envelope_OnwardReferralDeclined{OnwardReferralDeclined: &eventsv1.OnwardReferralDeclined{OnwardReferralId: "o1", Reason: "busy"}}})
	if odd.Onward[0].DeclineReason != "other" || DeclineReason("") != "other" || DeclineReason("not_eligible") != "not_eligible" {
		t.Errorf("odd reasons: %+v", odd.Onward[0])
	}
}
