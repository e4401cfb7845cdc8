package referrals

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/feeds"
	"linkway/services/platform/views"
)

// The GP feed: each practice's view of its referrals, on
// lw.feed.gp.<practice>.<journey-id>.<event>, so that a GP system can keep
// its own projection over NATS with credentials limited to its practice's
// subjects (ops/nats/accounts.conf, feed_gp_<practice>), and an erasure can
// find one journey's messages.
//
// Each message carries the referral as GET /v1/referrals/{id} shows it
// after the event, nothing more; an event the practice does not see (a
// case note, a risk not escalated, feedback) makes no message. Only
// referrals a GP practice made are on it (a referring agency's are not GP
// business). Like FEED_VCS, the projection writes each message into an
// outbox in its own view, in the same batch as the record, and one
// publisher per deployment (the holder of the "gp-feed" lease) publishes
// it in the log's order (services/platform/feeds): a rebuild of the view
// publishes nothing again. When the person is erased, every earlier
// message of the journey is securely deleted from FEED_GP, and only an
// "erased" notice, naming the journey and the practice's own referral id,
// stays.
const (
	FeedStream        = "FEED_GP"
	FeedSubjectPrefix = "lw.feed.gp."
	FeedSubjects      = FeedSubjectPrefix + ">"
	// FeedLease names the lease of the feed's publisher.
	FeedLease = "gp-feed"
	// FeedErased is the event of the erasure notice.
	FeedErased = "erased"
)

// Headers of a feed message: the journey event's id, and the JOURNEYS
// sequence it comes from (the feed's order).
const (
	HeaderFeedEventID = feeds.HeaderEventID
	HeaderSourceSeq   = feeds.HeaderSourceSeq
)

var feedSpec = feeds.Spec{
	Stream: FeedStream, Prefix: FeedSubjectPrefix, Lease: FeedLease, Title: "the GP feed",
	Description: "Linkway GP practices' feeds: each practice's view of its referrals",
}

// FeedSubject is the subject of one event of a journey in a practice's
// feed (event: the timeline's type, such as link_worker_assigned, or
// erased).
func FeedSubject(practice, journeyID, event string) string {
	return FeedSubjectPrefix + practice + "." + journeyID + "." + event
}

// FeedMessage is the body of a FEED_GP message (JSON).
type FeedMessage struct {
	// EventID is the journey event's id: the same on a redelivery.
	EventID    string    `json:"event_id"`
	Event      string    `json:"event"`
	OccurredAt time.Time `json:"occurred_at"`
	Practice   string    `json:"practice"`
	JourneyID  string    `json:"journey_id"`
	// SourceID is the GP system's own referral id.
	SourceID string `json:"source_id"`
	// Referral is the referral as GET /v1/referrals/{id} answers it after
	// the event; absent from the erasure notice.
	Referral *View `json:"referral,omitempty"`
}

// Leases decide which replica publishes the feed (leases.Leases).
type Leases interface {
	Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

// Group runs the feed's publisher until the process stops (errgroup.Group).
type Group interface {
	Go(func() error)
}

// feedMetrics count the feed's messages by event (bounded: event types)
// and its failed publishes.
func feedMetrics(reg prometheus.Registerer) (*prometheus.CounterVec, prometheus.Counter, prometheus.Gauge, error) {
	published := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "linkway_referrals_feed_published_total", Help: "Events published on the GP practices' NATS feed (FEED_GP), by event."},
		[]string{"event"})
	failed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "linkway_referrals_feed_publish_errors_total", Help: "Failed publishes to the GP feed (retried)."})
	through := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "linkway_referrals_feed_published_through_sequence",
		Help: "The JOURNEYS sequence through which the GP feed is published, as the replica publishing it last found its outbox empty."})
	for _, c := range []prometheus.Collector{published, failed, through} {
		if err := reg.Register(c); err != nil {
			return nil, nil, nil, fmt.Errorf("referrals metrics: %w", err)
		}
	}
	return published, failed, through, nil
}

// startFeed opens FEED_GP and starts its publisher on the service's view:
// called before the reader applies anything, so a view rebuilt from the
// log writes nothing the feed has published.
func (s *Service) startFeed(ctx context.Context) error {
	cfg := s.cfg
	feed, err := feeds.Open(ctx, cfg.JS, feedSpec, cfg.Replicas)
	if err != nil {
		return err
	}
	published, failed, through, err := feedMetrics(cfg.Metrics)
	if err != nil {
		return err
	}
	s.proj.feed = feed
	pub := feeds.Publishing{View: cfg.Views.View(ProjectionName), Views: cfg.Views, Log: s.log, Published: published, Errors: failed, Through: through}
	if cfg.Leases != nil {
		pub.Leases = cfg.Leases
	}
	if cfg.Group != nil {
		pub.Group = cfg.Group
	}
	feed.Start(ctx, pub)
	return nil
}

// toFeed writes the feed message of a change the practice sees (rec is its
// record after the change) into the outbox. An erasure erases the outbox's
// messages of the journey, and its notice, once published, has the
// stream's securely deleted first.
func (p *projection) toFeed(b *views.Batch, c views.Change, practice string, rec *record) error {
	if p.feed == nil || c.After.Source() != events.SourceGP {
		return nil
	}
	at, erased := feeds.Position{Seq: c.Seq}, c.Envelope.GetPersonalDataErased() != nil
	if !p.feed.Wants(at) && !erased { // an erasure still erases the outbox
		return nil // published before: this is a replay (a rebuild)
	}
	env := c.Envelope
	msg := FeedMessage{EventID: env.GetEventId(), Event: eventType(env), OccurredAt: occurred(env).UTC(),
		Practice: practice, JourneyID: rec.JourneyID, SourceID: rec.SourceID}
	if erased {
		msg.Event = FeedErased
		if err := p.feed.EraseJourney(b, c.JourneyID); err != nil {
			return err
		}
	} else {
		view := rec.View
		msg.Referral = &view
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("feed message: %w", err)
	}
	m := feeds.Message{Subject: FeedSubject(practice, rec.JourneyID, msg.Event), MsgID: msg.EventID,
		EventID: msg.EventID, Event: msg.Event, Body: body}
	if erased {
		m.Erase = FeedSubject(practice, rec.JourneyID, "*")
	}
	return p.feed.Add(b, at, c.JourneyID, m)
}
