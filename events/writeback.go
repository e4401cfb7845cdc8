package events

import eventsv1 "linkway/proto/linkway/events/v1"

// Write-back: which SNOMED CT code of the write-back value set
// (valuesets/writeback.csv) the GP record is given, at which moment of the
// journey. NHS England counts social prescribing uptake from these codes in
// GP records, so a code sent twice for one referral is counted twice:
//
//   - Referral to social prescribing service (871731000000106): a GP who
//     refers codes it in the practice's own system at the time of referral,
//     so Linkway never sends it back for a GP referral (version 1 sent it
//     when the person was reached: a double count). A referral from anyone
//     else (self, an agency) was not coded by the practice; Linkway gives
//     it when the person is first reached, the moment they are taken on by
//     the service.
//   - Social prescribing declined (871711000000103): when the person says
//     no (PatientDeclined, or closure with reason declined), whoever
//     referred.
//
// Nothing else is coded: no code for signposting or for a connection made
// has been checked against a public UK source yet (valuesets/README.md).

// WriteBack is a code the GP record is to be given and the moment it is for.
type WriteBack struct {
	Code string
	// Moment: "reached" or "declined".
	Moment string
}

// WriteBackFor is the code the GP record is to be given because of env,
// folded on before (the journey's state just before env); ok is false when
// env calls for none. Pure, like Evolve: a view rebuilt from the log gives
// the same codes, once each (a reader may still keep each code once per
// journey, as the record needs the fact, not every repetition).
func WriteBackFor(before State, env *eventsv1.Envelope) (WriteBack, bool) {
	switch e := env.GetEvent().(type) {
	case *eventsv1.Envelope_ContactMade:
		if !before.Contacted && before.Referral != nil && before.Referral.GetSource() != SourceGP && before.Referral.GetSource() != "" {
			return WriteBack{Code: CodeReferredToSocialPrescribing, Moment: "reached"}, true
		}
	case *eventsv1.Envelope_PatientDeclined:
		if !before.Declined {
			return WriteBack{Code: CodeSocialPrescribingDeclined, Moment: "declined"}, true
		}
	case *eventsv1.Envelope_JourneyClosed:
		if e.JourneyClosed.GetReason() == "declined" && !before.Declined {
			return WriteBack{Code: CodeSocialPrescribingDeclined, Moment: "declined"}, true
		}
	}
	return WriteBack{}, false
}
