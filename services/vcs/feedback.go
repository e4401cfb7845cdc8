package vcs

import (
	"context"
	"net/http"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// Feedback from the person, or their carer, on the service an onward
// referral went to (issue 18: communities shape the offer). A VCS
// organisation records it for its own onward referrals only, by the
// onward referral's id: the organisation never learns a journey's id, so
// the journey route the link-worker team uses is not one it could call.
// The service is the onward referral's own.

// feedbackBody is the request. Every field is optional in JSON so that a
// missing one is refused by name rather than read as its zero value.
type feedbackBody struct {
	From         *string `json:"from"`
	Rating       *int    `json:"rating"`
	Comment      string  `json:"comment"`
	ShareComment bool    `json:"share_comment"`
}

// Feedback is the answer: the feedback as recorded.
type Feedback struct {
	FeedbackID       string `json:"feedback_id"`
	OnwardReferralID string `json:"onward_referral_id"`
	ServiceID        string `json:"service_id"`
	// From is person or carer.
	From   string `json:"from"`
	Rating int    `json:"rating"`
	// Comment is shown beyond the team (to the panel, in the directory)
	// only when ShareComment says the person agreed.
	Comment      string    `json:"comment,omitempty"`
	ShareComment bool      `json:"share_comment"`
	RecordedAt   time.Time `json:"recorded_at"`
}

func (s *Service) apiFeedback(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	body, err := api.ReadBody(w, r, bodyLimit)
	if err != nil {
		return err
	}
	key, err := api.IdempotencyKey(r)
	if err != nil {
		return err
	}
	fb, replayed, err := s.feedback(r.Context(), p, r.PathValue("id"), body, key, "api")
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	api.WriteJSON(w, status, fb)
	return nil
}

// feedback records feedback on an onward referral of the caller's inbox.
// The lookup comes first, so that another organisation's id is not found
// before anything about it is checked.
func (s *Service) feedback(ctx context.Context, p api.Principal, id string, body []byte, idemKey, channel string) (Feedback, bool, error) {
	rec, err := s.lookup(p.OrgID, id)
	if err != nil {
		return Feedback{}, false, err
	}
	cmd, err := feedbackCommand(rec.ServiceID, body)
	if err != nil {
		s.metrics.commands.WithLabelValues("feedback", channel, "invalid").Inc()
		return Feedback{}, false, err
	}
	meta := journal.Meta{Actor: p.Actor()}
	if idemKey != "" {
		meta.IdempotencyKey = "vcs/" + p.OrgID + "/" + id + "/feedback/" + idemKey
	}
	res, err := s.cfg.Journal.Execute(ctx, rec.JourneyID, meta, ownOnward(p.OrgID, id, cmd))
	if err != nil {
		s.metrics.commands.WithLabelValues("feedback", channel, string(events.ErrorCode(err))).Inc()
		return Feedback{}, false, err
	}
	s.metrics.commands.WithLabelValues("feedback", channel, "ok").Inc()
	// The answer is what the command recorded (the first request's, for a
	// repeated idempotency key).
	for _, e := range res.Events {
		if f := e.Event.GetFeedbackGiven(); f != nil {
			return feedbackOf(id, e.Event, f), res.Replayed, nil
		}
	}
	return Feedback{}, false, events.Errorf(events.CodeInternal, "feedback was recorded without its event")
}

// feedbackCommand checks the body and makes the command for the service.
func feedbackCommand(serviceID string, body []byte) (events.Command, error) {
	var b feedbackBody
	if err := decodeOptional(body, &b); err != nil {
		return nil, err
	}
	switch {
	case b.From == nil || *b.From == "":
		return nil, events.Invalid("from", "is required: one of %v", events.FeedbackFrom)
	case events.CheckFeedbackFrom(*b.From) != nil:
		return nil, events.CheckFeedbackFrom(*b.From)
	case b.Rating == nil:
		return nil, events.Invalid("rating", "is required: %d to %d", events.MinRating, events.MaxRating)
	case len(b.Comment) > maxDetail:
		return nil, events.Invalid("comment", "must be at most %d characters", maxDetail)
	}
	// The range of a rating, and a comment to share, are the rules'.
	return events.GiveFeedback{FeedbackID: events.NewID(), ServiceID: serviceID, From: *b.From, Rating: *b.Rating,
		Comment: strings.TrimSpace(b.Comment), ShareComment: b.ShareComment}, nil
}

func feedbackOf(onwardID string, env *eventsv1.Envelope, f *eventsv1.FeedbackGiven) Feedback {
	return Feedback{FeedbackID: f.GetFeedbackId(), OnwardReferralID: onwardID, ServiceID: f.GetServiceId(),
		From: f.GetFrom(), Rating: int(f.GetRating()), Comment: f.GetComment().GetText(), ShareComment: f.GetShareComment(),
		RecordedAt: env.GetOccurredAt().AsTime().UTC()}
}
