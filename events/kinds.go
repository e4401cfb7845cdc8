package events

import eventsv1 "linkway/proto/linkway/events/v1"

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
)

// Kinds lists every kind.
var Kinds = []Kind{KindGP, KindLinkwork, KindVCS, KindCommissioner, KindPanel, KindAdmin}

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
	}
	return eventsv1.OrganisationKind_ORGANISATION_KIND_UNSPECIFIED
}
