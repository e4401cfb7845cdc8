package vcs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/views"
)

// The VCS feed: the inbox's events, minimised exactly as the inbox is, on
// lw.feed.vcs.<org-id>.<onward-referral-id>.<event>, so that an
// organisation with its own system can consume lw.feed.vcs.<org-id>.> with
// credentials limited to its own subjects, and an erasure can purge one
// onward referral's messages.
const (
	FeedStream         = "FEED_VCS"
	FeedSubjectPrefix  = "lw.feed.vcs."
	FeedSubjects       = FeedSubjectPrefix + ">"
	FeedProjection     = "vcs_feed"
	HeaderFeedEventID  = "Lw-Event-Id"
	feedPublishTimeout = 10 * time.Second
)

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
func FeedStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        FeedStream,
		Description: "Linkway VCS organisations' feeds: minimised onward-referral events per organisation",
		Subjects:    []string{FeedSubjects},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      90 * 24 * time.Hour,
		Duplicates:  10 * time.Minute,
	}
}

// feedProjector publishes the feed. It is a projection of its own (with
// its own copy of the records, to know each onward referral's organisation)
// rather than a side effect of the inbox view, so that rebuilding the inbox
// does not publish every event again. Each event is published before the
// projection's checkpoint moves past it, with the event id as Nats-Msg-Id,
// so a crash re-publishes at worst, and the stream drops the duplicate.
type feedProjector struct {
	ctx     context.Context
	js      jetstream.JetStream
	metrics *metrics
}

func (f *feedProjector) Name() string { return FeedProjection }

// Partitioned: like the inbox, every key belongs to one journey, and the
// feed's order only matters within a journey.
func (f *feedProjector) Partitioned() bool { return true }

func (f *feedProjector) Apply(tx *views.Tx, ev views.Event) error {
	changes, err := legacyFold(tx, ev)
	if err != nil {
		return err
	}
	for _, c := range changes {
		if err := f.publishRetrying(c); err != nil {
			return err
		}
	}
	return nil
}

// publishRetrying keeps trying while NATS is unavailable: an error from
// Apply stops the process, and a slow feed is better than a stopped hub.
func (f *feedProjector) publishRetrying(c change) error {
	for attempt := 1; ; attempt++ {
		err := f.publish(c)
		if err == nil {
			return nil
		}
		f.metrics.feedErrors.Inc()
		t := time.NewTimer(time.Duration(min(attempt, 25)) * 200 * time.Millisecond)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return fmt.Errorf("feed stopped: %w", err)
		case <-t.C:
		}
	}
}

func (f *feedProjector) publish(c change) error {
	body, err := json.Marshal(FeedMessage{EventID: c.EventID, Event: c.Event, OccurredAt: c.At,
		OrganisationID: c.Record.OrganisationID, OnwardReferral: c.Record.item(c.At)})
	if err != nil {
		return fmt.Errorf("feed message: %w", err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, feedPublishTimeout)
	defer cancel()
	if c.Event == "erased" {
		// The feed is a copy of the person's data too: what it held of
		// them goes, and only the erasure notice stays.
		if err := f.purge(ctx, c.Record.OrganisationID, c.Record.ID); err != nil {
			return err
		}
	}
	msg := &nats.Msg{Subject: FeedSubject(c.Record.OrganisationID, c.Record.ID, c.Event), Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderFeedEventID, c.EventID)
	// One journey event can touch several items (an erasure), so the
	// message id is the event id qualified by the item when it must be.
	msgID := c.EventID
	if c.Event == "erased" {
		msgID += "/" + c.Record.ID
	}
	if _, err := f.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish to %s: %w", FeedStream, err)
	}
	f.metrics.feedPublished.WithLabelValues(c.Event).Inc()
	return nil
}

// purge removes every message the feed holds of one onward referral.
func (f *feedProjector) purge(ctx context.Context, orgID, onwardID string) error {
	stream, err := f.js.Stream(ctx, FeedStream)
	if err != nil {
		return fmt.Errorf("purge %s: %w", FeedStream, err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(FeedSubject(orgID, onwardID, ">"))); err != nil {
		return fmt.Errorf("purge %s: %w", FeedStream, err)
	}
	return nil
}
