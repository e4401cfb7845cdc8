package linkwork

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// Feedback on a service a journey was referred or signposted to (API.md
// "Community voice"): recorded by the link-worker team, or by the VCS
// organisation for a service of its own that the journey was referred on
// to. The answer is the feedback as recorded and nothing of the journey,
// so a VCS organisation learns no more than it sent.

// feedbackKinds may record feedback on a journey.
var feedbackKinds = []events.Kind{events.KindLinkwork, events.KindVCS}

// feedbackBody: every field that must be given is a pointer, so a missing
// one is refused by name rather than read as its zero value.
type feedbackBody struct {
	ServiceID    string  `json:"service_id"`
	From         *string `json:"from"`
	Rating       *int    `json:"rating"`
	Comment      string  `json:"comment"`
	ShareComment bool    `json:"share_comment"`
}

// FeedbackAnswer is the feedback as recorded.
type FeedbackAnswer struct {
	FeedbackID string `json:"feedback_id"`
	JourneyID  string `json:"journey_id"`
	ServiceID  string `json:"service_id"`
	// From is person or carer.
	From   string `json:"from"`
	Rating int    `json:"rating"`
	// Comment goes beyond the team only where ShareComment says the person agreed.
	Comment      string    `json:"comment,omitempty"`
	ShareComment bool      `json:"share_comment"`
	RecordedAt   time.Time `json:"recorded_at"`
	Replayed     bool      `json:"replayed,omitempty"`
}

func (s *Service) postFeedback(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b feedbackBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	cmd, err := feedbackCommand(b)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if events.ParseID(id) != nil {
		return events.ErrNotFound
	}
	key, err := api.IdempotencyKey(r)
	if err != nil {
		return err
	}
	check := teamOnly(p.OrgID)
	if p.Kind == events.KindVCS {
		check = ownService(p.OrgID, b.ServiceID)
	}
	meta := journal.Meta{Actor: p.Actor()}
	if key != "" {
		meta.IdempotencyKey = string(p.Kind) + "/" + p.OrgID + "/feedback/" + key
	}
	res, err := s.cfg.Journal.Execute(r.Context(), id, meta, events.Guarded{Command: cmd, Check: check})
	if err == nil && check(res.State) != nil {
		err = events.ErrNotFound // a replayed key of another organisation's journey
	}
	if err != nil {
		s.commands.WithLabelValues("give_feedback", "refused").Inc()
		return err
	}
	s.commands.WithLabelValues("give_feedback", map[bool]string{true: "replayed", false: "ok"}[res.Replayed]).Inc()
	// Read-your-writes, as every other command here: once answered, the
	// journey read from this replica's view shows the feedback.
	if err := s.awaitView(r.Context(), res.LastSeq); err != nil {
		s.log.Warn("caseload view lagging behind a write", "command", "give_feedback", "err", err)
		return &events.Error{Code: events.CodeUnavailable,
			Message: "recorded, but the caseload has not caught up with it yet; read the journey again shortly"}
	}
	for _, rec := range res.Events {
		if f := rec.Event.GetFeedbackGiven(); f != nil {
			status := http.StatusCreated
			if res.Replayed {
				status = http.StatusOK
			}
			api.WriteJSON(w, status, FeedbackAnswer{FeedbackID: f.GetFeedbackId(), JourneyID: id, ServiceID: f.GetServiceId(),
				From: f.GetFrom(), Rating: int(f.GetRating()), Comment: f.GetComment().GetText(), ShareComment: f.GetShareComment(),
				RecordedAt: rec.Event.GetOccurredAt().AsTime().UTC(), Replayed: res.Replayed})
			return nil
		}
	}
	return events.Errorf(events.CodeInternal, "feedback was recorded without its event")
}

// ownService is a VCS organisation's guard: the journey was referred on to
// this very service of the organisation's.
func ownService(org, serviceID string) func(events.State) error {
	return func(st events.State) error {
		if !slices.ContainsFunc(st.Onward, func(o events.Onward) bool { return o.OrganisationID == org && o.ServiceID == serviceID }) {
			return events.ErrNotFound
		}
		return nil
	}
}

// feedbackCommand checks the body; the rating's range and a comment to
// share are the rules' (events.Decide).
func feedbackCommand(b feedbackBody) (events.GiveFeedback, error) {
	switch {
	case b.ServiceID == "":
		return events.GiveFeedback{}, events.Invalid("service_id", "is required")
	case len(b.ServiceID) > maxShort:
		return events.GiveFeedback{}, events.Invalid("service_id", "is too long")
	case b.From == nil || *b.From == "":
		return events.GiveFeedback{}, events.Invalid("from", "is required: one of %v", events.FeedbackFrom)
	case events.CheckFeedbackFrom(*b.From) != nil:
		return events.GiveFeedback{}, events.CheckFeedbackFrom(*b.From)
	case b.Rating == nil:
		return events.GiveFeedback{}, events.Invalid("rating", "is required: %d to %d", events.MinRating, events.MaxRating)
	case events.CheckRating(*b.Rating) != nil:
		return events.GiveFeedback{}, events.CheckRating(*b.Rating)
	}
	if err := text("comment", b.Comment, maxText, false); err != nil {
		return events.GiveFeedback{}, err
	}
	return events.GiveFeedback{FeedbackID: events.NewID(), ServiceID: b.ServiceID, From: *b.From, Rating: *b.Rating,
		Comment: strings.TrimSpace(b.Comment), ShareComment: b.ShareComment}, nil
}
