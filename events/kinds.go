package events

import (
	"slices"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// Kind is an organisation's kind, which decides what its keys may call
// (API.md "Who is calling").
type Kind string

// Organisation kinds (API.md).
const (
	KindGP           Kind = "gp"
	KindLinkwork     Kind = "linkwork"
	KindVCS          Kind = "vcs"
	KindCommissioner Kind = "commissioner"
	KindPanel        Kind = "panel"
	KindAdmin        Kind = "admin"
	// KindReferrer is an agency that may refer as a practice does
	// (housing, social care, hospital discharge, DWP, police, schools);
	// its organisation has a Sector, which its journeys carry as source.
	KindReferrer Kind = "referrer"
)

// Kinds lists every kind.
var Kinds = []Kind{KindGP, KindLinkwork, KindVCS, KindCommissioner, KindPanel, KindAdmin, KindReferrer}

// Proto is the kind as journey and directory events record it.
func (k Kind) Proto() eventsv1.OrganisationKind {
	switch k {
	case KindGP:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_GP
	case KindLinkwork:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK
	case KindVCS:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_VCS
	case KindCommissioner:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_COMMISSIONER
	case KindPanel:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_PANEL
	case KindAdmin:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN
	case KindReferrer:
		return eventsv1.OrganisationKind_ORGANISATION_KIND_REFERRER
	}
	return eventsv1.OrganisationKind_ORGANISATION_KIND_UNSPECIFIED
}

// Sector is the kind of agency a referrer organisation is (API.md "Who
// refers"). A referrer's journeys carry it as their source.
type Sector string

// Sectors of referring agencies.
const (
	SectorHousing     Sector = "housing"
	SectorSocialCare  Sector = "social_care"
	SectorHospital    Sector = "hospital"
	SectorDWP         Sector = "dwp"
	SectorPolice      Sector = "police"
	SectorEducation   Sector = "education"
	SectorOtherAgency Sector = "other_agency"
)

// Sectors lists every sector.
var Sectors = []Sector{SectorHousing, SectorSocialCare, SectorHospital, SectorDWP, SectorPolice, SectorEducation, SectorOtherAgency}

// Journey sources other than an agency's sector.
const (
	SourceGP   = "gp"
	SourceSelf = "self"
)

// ReferralSources are the values of a journey's source: gp, self, or a
// referring agency's sector. (Events written before version 2 may say
// council; readers take it as other_agency.)
var ReferralSources = append([]string{SourceGP, SourceSelf}, sectorNames()...)

func sectorNames() []string {
	out := make([]string, len(Sectors))
	for i, s := range Sectors {
		out[i] = string(s)
	}
	return out
}

// SourceOfReferrer is the source a referral from an organisation of kind k
// (and, for a referrer, sector) carries; ok is false when such an
// organisation cannot refer.
func SourceOfReferrer(k Kind, sector Sector) (string, bool) {
	switch {
	case k == KindGP:
		return SourceGP, true
	case k == KindReferrer && slices.Contains(Sectors, sector):
		return string(sector), true
	}
	return "", false
}

// SourceKind groups a source for summaries: gp, self, agency, or unknown
// for anything else the log holds.
func SourceKind(source string) string {
	switch {
	case source == SourceGP || source == SourceSelf:
		return source
	case source == "council" || slices.Contains(Sectors, Sector(source)):
		return "agency"
	}
	return "unknown"
}
