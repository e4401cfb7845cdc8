package outcomes

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// Hooks for the external tests and benchmarks of this package.

// View is the in-memory outcomes view.
type View = model

// NewView returns an empty view with a test key and deprivation lookup.
func NewView(tb testing.TB) *View { return testModel(tb) }

// Apply folds one event into the view.
func (m *model) Apply(e *eventsv1.Envelope) { m.apply(e) }

// Summarise computes a summary from the view.
func (m *model) Summarise(commissioner string, teams []string, q Query) Summary {
	return m.summarise(commissioner, teams, q)
}

// SyntheticYear returns the events of n journeys referred through 2026 to
// team U12345 by 20 practices: referral, assignment, contact, a baseline
// and follow-up SWEMWBS, an onward referral accepted (and attended) or
// declined, and closure. About a tenth of people are referred twice.
func SyntheticYear(n int, seed uint64) []*eventsv1.Envelope {
	r := rand.New(rand.NewPCG(seed, seed+1))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []*eventsv1.Envelope
	for i := range n {
		jid := events.NewID()
		at := start.Add(time.Duration(r.IntN(365*24)) * time.Hour)
		step := func(e proto.Message) {
			at = at.Add(time.Duration(1+r.IntN(96)) * time.Hour)
			out = append(out, env(jid, at, e))
		}
		who := i
		if i > 0 && r.IntN(10) == 0 {
			who = r.IntN(i) // someone referred before, again
		}
		nhs := fmt.Sprintf("9%09d", who)
		ref := referral(nhs, fmt.Sprintf("A8%04d", r.IntN(20)), "U12345")
		ref.Person.BirthDate = fmt.Sprintf("%d-06-15", 1935+r.IntN(70))
		ref.Sex = sexes[r.IntN(4)]
		out = append(out, env(jid, at, ref))
		step(&eventsv1.LinkWorkerAssigned{WorkerId: "lw-1", WorkerName: "Sam"})
		if r.IntN(8) == 0 {
			step(&eventsv1.PatientDeclined{})
			continue
		}
		step(&eventsv1.ContactMade{Method: "phone"})
		base := 14 + r.Float64()*10
		step(&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "baseline", Score: base})
		oid := events.NewID()
		step(&eventsv1.OnwardReferralMade{OnwardReferralId: oid, ServiceId: "VCS001-walk", OrganisationId: "VCS001"})
		if r.IntN(4) == 0 {
			step(&eventsv1.OnwardReferralDeclined{OnwardReferralId: oid, Reason: events.DeclineReasons[r.IntN(5)]})
		} else {
			step(&eventsv1.OnwardReferralAccepted{OnwardReferralId: oid})
			step(&eventsv1.AttendanceRecorded{OnwardReferralId: oid, Date: at.Format(time.DateOnly), Attended: r.IntN(5) > 0})
		}
		step(&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "follow_up", Score: base + r.NormFloat64()*3 + 1})
		step(&eventsv1.JourneyClosed{Reason: "goals_met"})
	}
	return out
}
