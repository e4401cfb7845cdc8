package directory

import (
	"net/http"

	"linkway/events"
	"linkway/services/platform/websession"
)

// The public directory (/directory/public/): anyone, with no key, finds the
// community groups and services near them, whether they are taking people
// now and how to reach them, and what people who went said of them once
// enough have said (FeedbackShownFrom). Server-rendered, no JavaScript, a
// search form that works with the keyboard alone. It shows what the Open
// Referral API shows, and nothing of any person.
const publicPath = webPath + "public/"

// publicComments is how many shared comments a service shows publicly.
const publicComments = 3

// publicView is what the public page shows.
type publicView struct {
	websession.Page
	Query      string
	Category   string
	Categories []events.NeedCategory
	Services   []publicService
	SignIn     string
}

type publicService struct {
	ServiceView
	Feedback *PublicFeedback
}

func (wb *web) servePublic(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := publicView{Page: websession.Page{Title: "Find a community group"}, Query: q.Get("q"), Category: q.Get("category"),
		Categories: events.NeedCategories, Services: []publicService{}, SignIn: webPath}
	query := Query{Text: v.Query}
	status := http.StatusOK
	switch {
	case len(v.Query) > 200:
		v.Error, query.Text, status = "Search words: use at most 200 characters.", "", http.StatusBadRequest
	case v.Category != "" && !validCategory(v.Category):
		v.Error, v.Category, status = "Choose a kind of group from the list.", "", http.StatusBadRequest
	default:
		query.Category = v.Category
	}
	for _, sv := range wb.s.Services(query) {
		ps := publicService{ServiceView: sv}
		if fb, ok := wb.s.publicFeedback(sv.ID, publicComments); ok {
			ps.Feedback = &fb
		}
		v.Services = append(v.Services, ps)
	}
	wb.sessions.Render(w, status, "public.html", &v, nil)
}

// capacityWords says a service's capacity to the public.
func capacityWords(capacity string) string {
	return map[string]string{events.CapacityOpen: "Taking new people", events.CapacityWaitingList: "Has a waiting list",
		events.CapacityFull: "Full at the moment", events.CapacityPaused: "Paused at the moment"}[capacity]
}
