package directory

import (
	"context"
	"fmt"

	"linkway/events"
	directoryv1 "linkway/proto/linkway/directory/v1"
	"linkway/services/platform/api"
)

// demoActor is who seeds the demo directory: the demo community panel.
var demoActor = api.Principal{OrgID: "PANEL-SALE", Kind: events.KindPanel, KeyID: "demo-seed"}

// DemoOrganisations and DemoServices are the --demo directory: the two
// organisations of API.md and a handful more across the categories, with
// one service signposting only, one full, one with a waiting list and one
// paused, so every capacity rule can be tried.
var DemoOrganisations = []*directoryv1.Organisation{
	{Id: "VCS001", Name: "Sale Walking Group", Description: "Volunteer-led health walks around Sale.", Email: "walks@salewalking.example.org", Phone: "0161 496 0101"},
	{Id: "VCS002", Name: "Trafford Money Advice", Description: "Free, confidential debt and benefits advice.", Email: "help@traffordmoney.example.org", Phone: "0161 496 0202"},
	{Id: "VCS003", Name: "Sale Men's Shed", Description: "A workshop where people make, mend and talk."},
	{Id: "VCS004", Name: "Trafford Arts Collective", Description: "Community art for wellbeing."},
	{Id: "VCS005", Name: "Trafford Carers Centre", Description: "Information and support for unpaid carers."},
	{Id: "VCS006", Name: "Friends of Walton Park", Description: "Volunteers looking after a local park."},
	{Id: "VCS007", Name: "Sale Community Pantry", Description: "Low-cost food and shared meals."},
	{Id: "VCS008", Name: "Talking Space Trafford", Description: "Peer support for mental wellbeing."},
}

// DemoServices are the demo services.
var DemoServices = []*directoryv1.Service{
	{Id: "VCS001-walk", OrganisationId: "VCS001", Name: "Sale health walks",
		Description: "Gentle guided walks of 30 to 90 minutes, twice a week, with a cuppa afterwards. All abilities welcome.",
		Category:    "physical_activity", Areas: []string{"Sale", "Trafford"}, AcceptsReferrals: true, Capacity: events.CapacityOpen,
		Contact: &directoryv1.Contact{Email: "walks@salewalking.example.org", Phone: "0161 496 0101", Website: "https://salewalking.example.org/walks", Address: "Sale Water Park, M33 2LX"}},
	{Id: "VCS002-debt", OrganisationId: "VCS002", Name: "Debt and benefits advice",
		Description: "One-to-one advice on debt, budgeting and benefits, by phone or in person.",
		Category:    "financial_and_debt_advice", Areas: []string{"Trafford"}, AcceptsReferrals: true, Capacity: events.CapacityOpen,
		Contact: &directoryv1.Contact{Email: "help@traffordmoney.example.org", Phone: "0161 496 0202"}},
	{Id: "VCS003-shed", OrganisationId: "VCS003", Name: "Men's Shed workshop",
		Description: "Woodwork, repairs and conversation in a friendly shed. Open to all.",
		Category:    "befriending_and_social_groups", Areas: []string{"Sale"}, AcceptsReferrals: true, Capacity: events.CapacityFull},
	{Id: "VCS004-art", OrganisationId: "VCS004", Name: "Art for wellbeing",
		Description: "Weekly painting and craft sessions for adults, materials provided.",
		Category:    "arts_and_creativity", Areas: []string{"Trafford"}, AcceptsReferrals: true, Capacity: events.CapacityWaitingList},
	{Id: "VCS005-carers", OrganisationId: "VCS005", Name: "Carers drop-in",
		Description: "Drop in for information, a break and a chat with other carers. No referral needed.",
		Category:    "carers", Areas: []string{"Trafford"}, AcceptsReferrals: false, Capacity: events.CapacityOpen},
	{Id: "VCS006-garden", OrganisationId: "VCS006", Name: "Park gardening volunteers",
		Description: "Planting, weeding and litter picking in Walton Park on Saturday mornings.",
		Category:    "nature_and_green_space", Areas: []string{"Sale"}, AcceptsReferrals: true, Capacity: events.CapacityOpen},
	{Id: "VCS007-pantry", OrganisationId: "VCS007", Name: "Community pantry",
		Description: "Weekly low-cost food shop and a shared lunch. Just turn up.",
		Category:    "food", Areas: []string{"Sale"}, AcceptsReferrals: false, Capacity: events.CapacityOpen},
	{Id: "VCS008-talk", OrganisationId: "VCS008", Name: "Talking cafe",
		Description: "A relaxed peer support group for people living with low mood or anxiety.",
		Category:    "mental_wellbeing", Areas: []string{"Trafford"}, AcceptsReferrals: true, Capacity: events.CapacityPaused},
}

// seedDemo adds what is missing of the demo directory. What exists is left
// as it is (the panel may have changed it), so a restart appends nothing.
func (s *Service) seedDemo(ctx context.Context) error {
	for _, o := range DemoOrganisations {
		if _, ok := s.Organisation(o.GetId()); ok {
			continue
		}
		if _, err := s.execute(ctx, demoActor, o.GetId(), events.RegisterOrganisation{Organisation: o}); err != nil {
			return fmt.Errorf("seed demo organisation %s: %w", o.GetId(), err)
		}
	}
	for _, svc := range DemoServices {
		if _, ok := s.lookup(svc.GetId()); ok {
			continue
		}
		if _, err := s.execute(ctx, demoActor, svc.GetOrganisationId(), events.AddService{Service: svc}); err != nil {
			return fmt.Errorf("seed demo service %s: %w", svc.GetId(), err)
		}
	}
	return nil
}
