package vcs

import "linkway/services/platform/views"

// feedPosition is the feed's position, which the outbox is written from.
type feedPosition struct{}

// outbox writes a change's feed message into the view's outbox: not yet
// (the feed still has a projection of its own).
func (p *inboxProjection) outbox(*views.Batch, views.Change, int, string, record) error { return nil }
