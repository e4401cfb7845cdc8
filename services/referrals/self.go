package referrals

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/api"
	"linkway/services/platform/journal"
)

// Self-referral: a person refers themselves, with no key, through POST
// /v1/self-referrals or the public form at /refer/ (NHS England's model
// takes people who come forward themselves). The referral reaches the
// team's caseload with source self; the person is given a reference to
// quote. No referrer's view holds it.

// SelfReferralRequest is the body of POST /v1/self-referrals (API.md).
type SelfReferralRequest struct {
	LinkWorkTeam string `json:"link_work_team"`
	// Person is as a referral's patient, the NHS number optional.
	Person *PatientRequest `json:"person"`
	// WhatMatters is the person's own words on what they would like help with.
	WhatMatters string `json:"what_matters,omitempty"`
	// ContactPreference is phone, email, text or letter.
	ContactPreference string          `json:"contact_preference"`
	Consent           *ConsentRequest `json:"consent"`
}

// SelfReferralResponse answers a self-referral: the reference the person
// quotes to the team.
type SelfReferralResponse struct {
	Reference string `json:"reference"`
}

// maxWhatMatters bounds the person's own words.
const maxWhatMatters = 4000

// checkSelf validates a self-referral and returns every problem found, in
// the order of the form's fields, normalising req in place.
func (c checker) checkSelf(req *SelfReferralRequest) []*events.Error {
	var errs []*events.Error
	bad := func(field, format string, args ...any) { errs = append(errs, events.Invalid(field, format, args...)) }
	req.LinkWorkTeam = strings.TrimSpace(req.LinkWorkTeam)
	switch {
	case req.LinkWorkTeam == "":
		bad("link_work_team", "is required: the link-worker team to refer yourself to")
	case !c.isTeam(req.LinkWorkTeam):
		bad("link_work_team", "is not a known link-worker team")
	}
	if req.Person == nil {
		bad("person", "is required")
	} else {
		errs = append(errs, c.person("person", req.Person, false)...)
	}
	req.WhatMatters = strings.TrimSpace(req.WhatMatters)
	if utf8.RuneCountInString(req.WhatMatters) > maxWhatMatters {
		bad("what_matters", "must be at most %d characters", maxWhatMatters)
	}
	req.ContactPreference = strings.TrimSpace(req.ContactPreference)
	p := req.Person
	switch pref := req.ContactPreference; {
	case pref == "":
		bad("contact_preference", "is required: how the team should contact you (%s)", strings.Join(events.ContactPreferences, ", "))
	case !contains(events.ContactPreferences, pref):
		bad("contact_preference", "must be one of %v", events.ContactPreferences)
	case p == nil:
	case (pref == "phone" || pref == "text") && p.Phone == "":
		bad("person.phone", "is needed for the team to %s you", map[string]string{"phone": "phone", "text": "text"}[pref])
	case pref == "email" && p.Email == "":
		bad("person.email", "is needed for the team to email you")
	case pref == "letter" && p.Postcode == "":
		bad("person.postcode", "is needed for the team to write to you")
	}
	if req.Consent == nil || req.Consent.ShareWithVCS == nil {
		field := "consent"
		if req.Consent != nil {
			field = "consent.share_with_vcs"
		}
		bad(field, "is required: say whether you agree to your details being shared with community organisations")
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// event builds the ReferralReceived of a checked self-referral.
func (req *SelfReferralRequest) event(reference string) *eventsv1.ReferralReceived {
	p := req.Person
	rr := &eventsv1.ReferralReceived{
		Source:   events.SourceSelf,
		SourceId: reference,
		Person: &eventsv1.PersonalData{
			NhsNumber: p.NHSNumber, GivenName: p.GivenName, FamilyName: p.FamilyName,
			BirthDate: p.BirthDate, Postcode: p.Postcode, Phone: p.Phone, Email: p.Email, Ethnicity: p.Ethnicity,
		},
		Sex:               p.Sex,
		Consent:           &eventsv1.Consent{ShareWithVcs: req.Consent != nil && req.Consent.ShareWithVCS != nil && *req.Consent.ShareWithVCS},
		LinkWorkTeam:      req.LinkWorkTeam,
		Urgency:           events.UrgencyRoutine,
		ContactPreference: req.ContactPreference,
	}
	if req.WhatMatters != "" {
		rr.WhatMatters = &eventsv1.FreeText{Text: req.WhatMatters}
	}
	return rr
}

// References are "SR-" and 10 characters of a base32 alphabet without
// letters that read as digits (I, L, O, U), in two groups: easy to read out
// on the phone, 50 bits so that two people never share one in practice.
var refEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

func formatReference(b []byte) string {
	s := refEncoding.EncodeToString(b)[:10]
	return "SR-" + s[:5] + "-" + s[5:]
}

// newReference is a random reference.
func newReference() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return formatReference(b)
}

// keyedReference is the reference of a submission identified by key (the
// form's token, an Idempotency-Key): a resend of it names the same
// journey, so a double click records one referral.
func keyedReference(team, key string) string {
	sum := sha256.Sum256([]byte("linkway self-referral\x00" + team + "\x00" + key))
	return formatReference(sum[:8])
}

// errSelfClash: an idempotency key reused for another person.
var errSelfClash = &events.Error{Code: events.CodeFailedPrecondition, Field: "Idempotency-Key",
	Message: "this key was used for another self-referral; send a new one"}

// selfRefer records a checked self-referral and returns its reference.
// key identifies the submission ("" for none: each is new).
func (s *Service) selfRefer(ctx context.Context, req *SelfReferralRequest, key string) (string, bool, error) {
	for range 3 {
		ref := newReference()
		if key != "" {
			ref = keyedReference(req.LinkWorkTeam, key)
		}
		id := events.ReferralJourneyID(events.SourceSelf, ref)
		res, err := s.cfg.Journal.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: req.event(ref)})
		if err != nil {
			return "", false, err
		}
		if len(res.Events) > 0 {
			s.log.Info("self-referral received", "journey_id", id, "team", req.LinkWorkTeam)
			return ref, true, nil
		}
		if sameSubmission(res.State.Referral, req) {
			return ref, false, nil // sent again: the first one stands
		}
		if key != "" {
			return "", false, errSelfClash
		}
		// Two random references met (about one in 10^15): draw again.
	}
	return "", false, errors.New("self-referral: no free reference in 3 draws")
}

// sameSubmission reports whether an existing referral is this one sent again.
func sameSubmission(r *eventsv1.ReferralReceived, req *SelfReferralRequest) bool {
	p := r.GetPerson()
	return r.GetSource() == events.SourceSelf && r.GetLinkWorkTeam() == req.LinkWorkTeam &&
		p.GetGivenName() == req.Person.GivenName && p.GetFamilyName() == req.Person.FamilyName &&
		p.GetBirthDate() == req.Person.BirthDate
}

// routesSelf adds the self-referral route and the public form.
func (s *Service) routesSelf() {
	s.cfg.HTTP.HandlePublic("POST /v1/self-referrals", http.HandlerFunc(s.postSelfReferral))
	s.routesForm()
}

// postSelfReferral answers POST /v1/self-referrals: no key, a rate limit
// per client address, 202 with the reference.
func (s *Service) postSelfReferral(w http.ResponseWriter, r *http.Request) {
	created := false
	err := func() error {
		var req SelfReferralRequest
		if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &req); err != nil {
			return err
		}
		if errs := s.checker(true, nil).checkSelf(&req); len(errs) > 0 {
			return errs[0]
		}
		// Only what would be recorded counts against the address: a person
		// correcting a mistake is not locked out by it.
		if err := s.admitSelf(w, r); err != nil {
			return err
		}
		ref, isNew, err := s.selfRefer(r.Context(), &req, strings.TrimSpace(r.Header.Get("Idempotency-Key")))
		if err != nil {
			return err
		}
		created = isNew
		api.WriteJSON(w, http.StatusAccepted, SelfReferralResponse{Reference: ref})
		return nil
	}()
	s.metrics.count("self", created, err)
	if err != nil {
		s.cfg.HTTP.WriteError(w, r, err)
	}
}

// admitSelf takes one self-referral from the client address's allowance,
// or refuses with 429 and Retry-After.
func (s *Service) admitSelf(w http.ResponseWriter, r *http.Request) error {
	if wait, ok := s.self.allow(clientOf(r)); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		return &events.Error{Code: events.CodeTooManyRequests,
			Message: "too many self-referrals from this address; try again later, or ask your GP practice to refer you"}
	}
	return nil
}

// clientOf is the client's address (the api edge has put a trusted
// proxy's X-Forwarded-For there). IPv6 clients count by /64: one
// household's or one device's addresses.
func clientOf(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// clientLimits is a token bucket per client address, the idle ones
// forgotten so the map stays small whoever calls.
type clientLimits struct {
	limit api.RateLimit
	mu    sync.Mutex
	by    map[string]*clientLimit
	swept time.Time
}

type clientLimit struct {
	lim  *rate.Limiter
	last time.Time
}

// maxClients bounds the addresses remembered; past it the idlest are
// forgotten (they start again with a full allowance).
const maxClients = 100_000

func newClientLimits(l api.RateLimit) *clientLimits {
	return &clientLimits{limit: l, by: map[string]*clientLimit{}}
}

func (c *clientLimits) allow(client string) (time.Duration, bool) {
	if c.limit.Rate <= 0 {
		return 0, true
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	cl, ok := c.by[client]
	if !ok {
		cl = &clientLimit{lim: rate.NewLimiter(rate.Limit(c.limit.Rate), c.limit.Burst)}
		c.by[client] = cl
	}
	cl.last = now
	res := cl.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep forgets addresses whose allowance has filled up again (nothing to
// remember), at most once a minute, and the idlest when there are too many.
func (c *clientLimits) sweep(now time.Time) {
	if now.Sub(c.swept) < time.Minute && len(c.by) < maxClients {
		return
	}
	c.swept = now
	full := time.Duration(float64(c.limit.Burst)/c.limit.Rate) * time.Second
	for k, cl := range c.by {
		if now.Sub(cl.last) > full {
			delete(c.by, k)
		}
	}
	for k := range c.by { // still too many: any go (map order is random)
		if len(c.by) < maxClients {
			break
		}
		delete(c.by, k)
	}
}
