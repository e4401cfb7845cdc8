package vcs

import (
	"encoding/json"
	"fmt"

	"linkway/services/platform/feeds"
	"linkway/services/platform/views"
)

// The feed's outbox (services/platform/feeds): the inbox projection writes
// each change's feed message into its own view, in the same batch as the
// item it renders, under the keys q., t and x., so a message is never lost
// between the view and the feed.

// outbox writes the feed message of a change (the item r after event
// name) into the outbox, unless the feed is already past it. An erasure
// notice erases, before it is published, what the feed holds of the
// onward referral.
func (p *inboxProjection) outbox(b *views.Batch, c views.Change, part int, name string, r record) error {
	pos := feeds.Position{Seq: c.Seq, Part: part}
	if !p.feed.Wants(pos) {
		return nil // published before: this is a replay
	}
	at := c.Envelope.GetOccurredAt().AsTime().UTC()
	body, err := json.Marshal(FeedMessage{EventID: c.Envelope.GetEventId(), Event: name, OccurredAt: at,
		OrganisationID: r.OrganisationID, OnwardReferral: r.item(at)})
	if err != nil {
		return fmt.Errorf("feed message: %w", err)
	}
	m := feeds.Message{Subject: FeedSubject(r.OrganisationID, r.ID, name), MsgID: c.Envelope.GetEventId(),
		EventID: c.Envelope.GetEventId(), Event: name, Body: body}
	if name == "erased" {
		// One journey event can make several messages (an erasure), so the
		// message id is the event id qualified by the item.
		m.MsgID += "/" + r.ID
		m.Erase = FeedSubject(r.OrganisationID, r.ID, "*")
	}
	return p.feed.Add(b, pos, c.JourneyID, m)
}
