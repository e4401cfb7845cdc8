package directory

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/views"
)

// FeedbackProjection names the view of what people and carers said of the
// services they were referred or signposted to (FeedbackGiven events).
const FeedbackProjection = "directory_feedback"

// FeedbackShownFrom is the fewest ratings of a service that are shown as
// numbers, and the fewest before any comment is shown: fewer could point
// at the person.
const FeedbackShownFrom = 8

// Keys of the feedback view. Counts hold no person; a comment is kept only
// where the person agreed to share it, under its journey so that it goes
// with the person's data on erasure.
const (
	ratingPrefix  = "r." // r.<service>.<rating> -> decimal
	fromPrefix    = "f." // f.<service>.<person|carer> -> decimal
	commentPrefix = "c." // c.<service>.<journey>.<feedback id> -> feedbackComment
)

// feedbackReaders see a service's feedback (API.md: panel, commissioner).
var feedbackReaders = []events.Kind{events.KindPanel, events.KindCommissioner}

// feedbackComment is a comment the person agreed to share.
type feedbackComment struct {
	Text   string    `json:"text"`
	From   string    `json:"from"`
	Rating int       `json:"rating"`
	At     time.Time `json:"at"`
}

// feedbackView is the projection. The journey's state holds no feedback,
// so the event itself is counted; erasure (from the fold: State.Erased)
// drops the person's comments, and the services they can be about are
// those the state says the journey was referred or signposted to.
type feedbackView struct{}

func (feedbackView) Name() string { return FeedbackProjection }

func (feedbackView) Apply(b *views.Batch, c views.Change) error {
	if c.After.Erased && !c.Before.Erased {
		for _, svc := range journeyServices(c.After) {
			b.Erase(commentPrefix + svc + "." + c.JourneyID + ".")
		}
		return nil
	}
	e, ok := c.Envelope.GetEvent().(*eventsv1.Envelope_FeedbackGiven)
	if !ok {
		return nil
	}
	f := e.FeedbackGiven
	svc, rating := f.GetServiceId(), int(f.GetRating())
	if !events.ValidServiceID(svc) || rating < events.MinRating || rating > events.MaxRating || !slices.Contains(events.FeedbackFrom, f.GetFrom()) {
		return nil // not feedback this version can count
	}
	for _, k := range []string{ratingPrefix + svc + "." + strconv.Itoa(rating), fromPrefix + svc + "." + f.GetFrom()} {
		n, err := counter(b, k)
		if err != nil {
			return err
		}
		b.Set(k, strconv.AppendInt(nil, int64(n+1), 10))
	}
	text := strings.TrimSpace(f.GetComment().GetText())
	if !f.GetShareComment() || text == "" || c.After.Erased {
		return nil
	}
	return b.SetJSON(commentPrefix+svc+"."+c.JourneyID+"."+f.GetFeedbackId(), feedbackComment{
		Text: text, From: f.GetFrom(), Rating: rating, At: c.Envelope.GetOccurredAt().AsTime()})
}

// journeyServices are the services a journey was referred or signposted
// to, each once.
func journeyServices(s events.State) []string {
	var out []string
	for _, o := range s.Onward {
		out = append(out, o.ServiceID)
	}
	for _, p := range s.Signposts {
		if p.ServiceID != "" {
			out = append(out, p.ServiceID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// feedbackCounts are a service's feedback as the view holds it.
type feedbackCounts struct {
	total    int
	byRating [events.MaxRating + 1]int
	byFrom   map[string]int
	comments []feedbackComment
}

func (c feedbackCounts) average() float64 {
	sum := 0
	for r, n := range c.byRating {
		sum += r * n
	}
	if c.total == 0 {
		return 0
	}
	return float64(sum) / float64(c.total)
}

// readFeedback reads a service's feedback from the view; comments only
// when there are enough ratings to show them.
func (s *Service) readFeedback(serviceID string) (feedbackCounts, error) {
	c := feedbackCounts{byFrom: map[string]int{}}
	v := s.views.View(FeedbackProjection)
	err := v.ForEach(ratingPrefix+serviceID+".", func(key string, value []byte) error {
		r, err1 := strconv.Atoi(key[strings.LastIndexByte(key, '.')+1:])
		n, err2 := strconv.Atoi(string(value))
		if err1 != nil || err2 != nil || r < events.MinRating || r > events.MaxRating {
			return fmt.Errorf("feedback count %s is unreadable", key)
		}
		c.byRating[r] += n
		c.total += n
		return nil
	})
	if err == nil {
		err = v.ForEach(fromPrefix+serviceID+".", func(key string, value []byte) error {
			n, err := strconv.Atoi(string(value))
			if err != nil {
				return fmt.Errorf("feedback count %s: %w", key, err)
			}
			c.byFrom[key[strings.LastIndexByte(key, '.')+1:]] += n
			return nil
		})
	}
	if err == nil && c.total >= FeedbackShownFrom {
		err = v.ForEach(commentPrefix+serviceID+".", func(key string, value []byte) error {
			var fc feedbackComment
			if err := json.Unmarshal(value, &fc); err != nil {
				return fmt.Errorf("feedback comment: %w", err)
			}
			c.comments = append(c.comments, fc)
			return nil
		})
		// The latest first.
		slices.SortStableFunc(c.comments, func(a, b feedbackComment) int { return b.At.Compare(a.At) })
	}
	if err != nil {
		s.log.Error("reading the feedback view", "err", err)
		return feedbackCounts{}, &events.Error{Code: events.CodeUnavailable, Message: "the feedback view is unavailable"}
	}
	return c, nil
}

// Feedback is the answer of GET /v1/directory/services/{id}/feedback:
// counts of 1 to 7 show as "*" (a count, however small, could point at
// the person); comments only where the person agreed that they be shown,
// and only once the service has FeedbackShownFrom ratings.
type Feedback struct {
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	// Total is the ratings given.
	Total    any             `json:"total"`
	ByRating []RatingCount   `json:"by_rating"`
	ByFrom   map[string]any  `json:"by_from"`
	Average  *float64        `json:"average_rating,omitempty"`
	Comments []SharedComment `json:"comments"`
	// ShownFrom is the fewest ratings shown as a number.
	ShownFrom int `json:"shown_from"`
}

// RatingCount is how many gave one rating.
type RatingCount struct {
	Rating int `json:"rating"`
	Count  any `json:"count"`
}

// SharedComment is a comment the person agreed to share.
type SharedComment struct {
	Text    string    `json:"text"`
	From    string    `json:"from"`
	Rating  int       `json:"rating"`
	GivenAt time.Time `json:"given_at"`
}

// feedbackShown shows a count below FeedbackShownFrom as "*".
func feedbackShown(v int) any {
	if v > 0 && v < FeedbackShownFrom {
		return "*"
	}
	return v
}

func (c feedbackCounts) answer(v ServiceView) Feedback {
	out := Feedback{ServiceID: v.ID, ServiceName: v.Name, Total: feedbackShown(c.total), ByRating: []RatingCount{},
		ByFrom: map[string]any{}, Comments: []SharedComment{}, ShownFrom: FeedbackShownFrom}
	for r := events.MinRating; r <= events.MaxRating; r++ {
		out.ByRating = append(out.ByRating, RatingCount{Rating: r, Count: feedbackShown(c.byRating[r])})
	}
	for _, f := range events.FeedbackFrom {
		out.ByFrom[f] = feedbackShown(c.byFrom[f])
	}
	if c.total >= FeedbackShownFrom {
		avg := float64(int(c.average()*10+0.5)) / 10
		out.Average = &avg
		for _, fc := range c.comments {
			out.Comments = append(out.Comments, SharedComment{Text: fc.Text, From: fc.From, Rating: fc.Rating, GivenAt: fc.At})
		}
	}
	return out
}

func (s *Service) serveFeedback(h Routes) {
	h.Handle("GET /v1/directory/services/{id}/feedback", feedbackReaders, s.getFeedback)
}

func (s *Service) getFeedback(w http.ResponseWriter, r *http.Request, _ api.Principal) error {
	v, ok := s.ServiceView(r.PathValue("id"))
	if !ok {
		return events.ErrNotFound
	}
	s.catchUp(r.Context(), FeedbackProjection)
	c, err := s.readFeedback(v.ID)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, c.answer(v))
	return nil
}

// PublicFeedback is what the public page shows of a service's feedback:
// nothing below FeedbackShownFrom ratings.
type PublicFeedback struct {
	Ratings  int
	Average  float64
	Comments []SharedComment
}

// publicFeedback is the public summary of a service's feedback, if any is
// shown; a failed read shows none (the page still serves the directory).
func (s *Service) publicFeedback(serviceID string, comments int) (PublicFeedback, bool) {
	c, err := s.readFeedback(serviceID)
	if err != nil || c.total < FeedbackShownFrom {
		return PublicFeedback{}, false
	}
	a := c.answer(ServiceView{ID: serviceID})
	out := PublicFeedback{Ratings: c.total, Average: *a.Average, Comments: a.Comments[:min(comments, len(a.Comments))]}
	return out, true
}
