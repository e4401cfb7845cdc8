package vcs

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/feeds"
)

// The VCS feed: the inbox's events, minimised exactly as the inbox is, on
// lw.feed.vcs.<org-id>.<onward-referral-id>.<event>, so that an
// organisation with its own system can consume lw.feed.vcs.<org-id>.> with
// credentials limited to its own subjects, and an erasure can find one
// onward referral's messages.
//
// The feed is not a view, and no view rebuild republishes it: the inbox
// projection renders each change's message into an outbox in its own view,
// in the same batch as the item, and one publisher per deployment (the
// holder of the "vcs-feed" lease) publishes the outbox in stream order
// from the feed's own high-water mark (services/platform/feeds).
const (
	FeedStream        = "FEED_VCS"
	FeedSubjectPrefix = "lw.feed.vcs."
	FeedSubjects      = FeedSubjectPrefix + ">"
	HeaderFeedEventID = feeds.HeaderEventID
	// HeaderSourceSeq is the JOURNEYS sequence of the event a message
	// comes from; HeaderSourcePart, when set, which of its messages it is
	// (an erasure makes one per onward referral).
	HeaderSourceSeq  = feeds.HeaderSourceSeq
	HeaderSourcePart = feeds.HeaderSourcePart
	// FeedLease names the lease of the feed's publisher.
	FeedLease = "vcs-feed"
)

// feedSpec is the VCS feed for services/platform/feeds.
var feedSpec = feeds.Spec{
	Stream: FeedStream, Prefix: FeedSubjectPrefix, Lease: FeedLease, Title: "the VCS feed",
	Description: "Linkway VCS organisations' feeds: minimised onward-referral events per organisation",
}

// FeedSubject is the subject of one onward referral's event (made,
// accepted, declined, withdrawn, attendance, completed, dropped_out, erased)
// in an organisation's feed.
func FeedSubject(orgID, onwardID, event string) string {
	return FeedSubjectPrefix + orgID + "." + onwardID + "." + event
}

// FeedMessage is the body of a feed message (JSON).
type FeedMessage struct {
	// EventID is the journey event's id: the same on a redelivery.
	EventID        string    `json:"event_id"`
	Event          string    `json:"event"`
	OccurredAt     time.Time `json:"occurred_at"`
	OrganisationID string    `json:"organisation_id"`
	// OnwardReferral is the inbox item as it was after the event.
	OnwardReferral Item `json:"onward_referral"`
}

// FeedStreamConfig is the FEED_VCS stream: a window of recent events for
// organisations to catch up from, not a record (the journey log is that).
func FeedStreamConfig(replicas int) jetstream.StreamConfig { return feedSpec.StreamConfig(replicas) }

// Leases decides which replica publishes the feed (leases.Leases: Hold
// runs fn while this replica holds the named lease, and ends its context
// when the lease is lost).
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error
}
