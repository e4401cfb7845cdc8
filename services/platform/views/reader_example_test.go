package views_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/journal"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// teamCases is a projection: the caseload of each team, a record per
// journey rendered from the folded state (no status worked out here: it
// comes from events), and an index by status, so that a team's open cases
// are one prefix scan.
type teamCases struct{}

func (teamCases) Name() string { return "caseload" }

type caseEntry struct {
	Status     events.Status `json:"status"`
	WorkerName string        `json:"worker_name,omitempty"`
	Flagged    bool          `json:"flagged_uncontactable,omitempty"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

func (teamCases) Apply(b *views.Batch, c views.Change) error {
	team := c.After.Referral.GetLinkWorkTeam()
	if team == "" {
		return nil // not a journey a team holds
	}
	entry := caseEntry{Status: c.After.Status(), WorkerName: c.After.WorkerName,
		Flagged:   c.After.FlaggedUncontactable(events.UncontactablePolicy{Attempts: 3, Within: 21 * 24 * time.Hour}),
		UpdatedAt: c.Envelope.GetOccurredAt().AsTime()}
	if err := b.SetJSON("c."+team+"."+c.JourneyID, entry); err != nil {
		return err
	}
	if c.Before.Status() != c.After.Status() {
		b.Delete("s." + team + "." + string(c.Before.Status()) + "." + c.JourneyID)
		b.Set("s."+team+"."+string(c.After.Status())+"."+c.JourneyID, nil)
	}
	return nil
}

// Example shows a process's read side: one view store, one reader for
// every projection the process runs, reads paged from the store, and a
// read that waits for the command it follows.
func Example() {
	ctx := context.Background()
	var js jetstream.JetStream // the hub's connection
	var log *journal.Store     // the event store: its Decode opens sealed data

	store, err := viewstore.Open(viewstore.DefaultConfig(filepath.Join("data", "views")))
	if err != nil {
		return
	}
	defer store.Close()
	cfg := views.DefaultReaderConfig()
	cfg.Decode, cfg.Log = log.Decode, slog.Default()
	reader, err := views.NewReader(js, store, []views.Projection{teamCases{}}, cfg)
	if err != nil {
		return
	}
	go func() { _ = reader.Run(ctx) }() // in the hub's run group

	// After a command: its answer carries the sequence of its append.
	res, err := log.Execute(ctx, events.NewID(), journal.Meta{}, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	if err != nil {
		return
	}
	wait, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = reader.WaitFor(wait, res.LastSeq, "caseload") // bounded read-your-writes

	// GET /v1/caseload?page_size=100&page_token=...: one page of a team's
	// cases, the token checked against the team's prefix.
	page, err := store.View("caseload").Page("c.U12345.", 100, "")
	if err != nil {
		return
	}
	_ = page.NextPageToken
}
