package events

import (
	"strings"

	"github.com/google/uuid"
)

// Stream and subject names. Every subject built from input goes through a
// function here, so nothing a caller sends can put '.', '*' or '>' into a
// subject.
const (
	JourneyStream        = "JOURNEYS"
	JourneySubjectPrefix = "lw.journey."
	JourneySubjects      = JourneySubjectPrefix + "*"
)

// JourneySubject is the subject that holds one journey's history.
func JourneySubject(journeyID string) string { return JourneySubjectPrefix + journeyID }

// JourneyIDFromSubject returns the journey id of a journey subject.
func JourneyIDFromSubject(subject string) (string, bool) {
	id, ok := strings.CutPrefix(subject, JourneySubjectPrefix)
	return id, ok && ParseID(id) == nil
}

// ParseID checks that s is a canonical lower-case UUID, the only shape of
// id Linkway issues; anything else (and so any subject wildcard) is refused.
func ParseID(s string) error {
	u, err := uuid.Parse(s)
	if err != nil || u.String() != s {
		return ErrNotFound
	}
	return nil
}

// NewID returns a new time-ordered id (UUIDv7).
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// referralNamespace scopes name-based journey ids (UUIDv5).
var referralNamespace = uuid.MustParse("6f1c6a2e-3f6e-4f55-9d8e-8a8f1b3c2d10")

// ReferralJourneyID is the journey id of a referral that a referrer system
// identified with its own id: the same organisation sending the same id,
// at any time, names the same journey. This is what makes GP resends
// idempotent for ever: the first append to a journey expects an empty
// subject, so a resend finds the journey already there.
func ReferralJourneyID(referrerOrg, sourceID string) string {
	return uuid.NewSHA1(referralNamespace, []byte(referrerOrg+"\x00"+sourceID)).String()
}
