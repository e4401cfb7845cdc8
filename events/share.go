package events

import (
	"slices"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// ShareWithVCS is the consent rule of an onward referral: the VCS
// organisation is given, of everything in from, only the fields the person
// agreed to share (names from ShareableFields), each listed once in the
// order given. A name it does not know is passed over: Decide refuses one
// before it is recorded, and a reader takes whatever the log holds.
func ShareWithVCS(from *eventsv1.SharedWithVcs, fields []string) *eventsv1.SharedWithVcs {
	shared := &eventsv1.SharedWithVcs{Person: &eventsv1.PersonalData{}}
	p := from.GetPerson()
	for _, f := range fields {
		switch f {
		case "name":
			shared.Person.GivenName, shared.Person.FamilyName = p.GetGivenName(), p.GetFamilyName()
		case "phone":
			shared.Person.Phone = p.GetPhone()
		case "email":
			shared.Person.Email = p.GetEmail()
		case "needs":
			shared.Needs = from.GetNeeds()
		case "notes":
			shared.Notes = from.GetNotes()
		default:
			continue
		}
		if !slices.Contains(shared.Fields, f) {
			shared.Fields = append(shared.Fields, f)
		}
	}
	return shared
}

// CheckShare is the rule for the fields an onward referral shares: each
// one of ShareableFields and, when required, at least one. Decide checks
// the names only (a command sharing nothing stands, as it always has); the
// link workers' API, whose requests name a service, requires one.
func CheckShare(share []string, required bool) error {
	if required && len(share) == 0 {
		return Invalid("share", "name at least one of %v", ShareableFields)
	}
	for i, f := range share {
		if !slices.Contains(ShareableFields, f) {
			return Invalid(fieldIndex("share", i), "must be one of %v", ShareableFields)
		}
	}
	return nil
}
