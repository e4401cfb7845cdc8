package events

import (
	"strconv"
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

// A team's supervision log shares the JOURNEYS stream, under subjects of
// its own (lw.team.<team>.supervision), so that the one reader of JOURNEYS
// delivers it in the same order as the journeys, with no second stream or
// consumer. The journey partition transform leaves these subjects as they
// are (its source is lw.journey.*).
const (
	TeamSubjectPrefix   = "lw.team."
	supervisionToken    = "supervision"
	SupervisionSubjects = TeamSubjectPrefix + "*." + supervisionToken
)

// JourneyStreamSubjects are the subjects the JOURNEYS stream holds.
var JourneyStreamSubjects = []string{JourneySubjects, SupervisionSubjects}

// SupervisionSubject is the subject of a team's supervision log; the team
// must be an organisation code (ValidOrgCode), or it is refused naming team.
func SupervisionSubject(team string) (string, error) {
	if !ValidOrgCode(team) {
		return "", Invalid("team", "must be an organisation code")
	}
	return TeamSubjectPrefix + team + "." + supervisionToken, nil
}

// TeamFromSupervisionSubject returns the team of a supervision subject.
func TeamFromSupervisionSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, TeamSubjectPrefix)
	team, tail, found := strings.Cut(rest, ".")
	if !ok || !found || tail != supervisionToken || !ValidOrgCode(team) {
		return "", false
	}
	return team, true
}

// JourneyPartitions is how many partition tokens the JOURNEYS stream
// spreads journeys over, so that projections can apply them in parallel
// consumers. It is fixed for the life of a stream: a stored subject keeps
// the partition it was written with.
const JourneyPartitions = 16

// JourneyPartitionTransform makes the stream store lw.journey.<id> as
// lw.journey.<partition>.<id>, the partition a hash of the id computed by
// the NATS server (subject-mapping partitions).
var JourneyPartitionTransform = [2]string{
	JourneySubjects,
	JourneySubjectPrefix + "{{partition(" + strconv.Itoa(JourneyPartitions) + ",1)}}.{{wildcard(1)}}",
}

// JourneySubject is the subject a journey's events are published to.
func JourneySubject(journeyID string) string { return JourneySubjectPrefix + journeyID }

// JourneyFilter matches the subject a journey's events are stored under,
// whatever its partition.
func JourneyFilter(journeyID string) string { return JourneySubjectPrefix + "*." + journeyID }

// PartitionFilter matches every journey stored in partition k.
func PartitionFilter(k int) string { return JourneySubjectPrefix + strconv.Itoa(k) + ".*" }

// PartitionOfSubject returns the partition of a stored journey subject.
func PartitionOfSubject(subject string) (int, bool) {
	rest, ok := strings.CutPrefix(subject, JourneySubjectPrefix)
	p, _, found := strings.Cut(rest, ".")
	if !ok || !found {
		return 0, false
	}
	k, err := strconv.Atoi(p)
	if err != nil || k < 0 || k >= JourneyPartitions {
		return 0, false
	}
	return k, true
}

// JourneyIDFromSubject returns the journey id of a journey subject, as
// published (lw.journey.<id>) or as stored (lw.journey.<partition>.<id>).
func JourneyIDFromSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, JourneySubjectPrefix)
	if _, id, partitioned := strings.Cut(rest, "."); partitioned {
		rest = id
	}
	return rest, ok && ParseID(rest) == nil
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
