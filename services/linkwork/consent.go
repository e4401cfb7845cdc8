package linkwork

import (
	"net/http"
	"slices"
	"strings"

	"linkway/events"
	"linkway/services/platform/api"
)

// The person's own consent, and signposting (issue 16).

type consentBody struct {
	// ShareWithVCS is required: a choice either way.
	ShareWithVCS *bool  `json:"share_with_vcs"`
	Method       string `json:"method"`
}

// postConsent records the person's own choice about sharing with VCS
// organisations; it wins over what the referrer sent, either way, and
// onward referrals follow the latest.
func (s *Service) postConsent(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b consentBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if b.ShareWithVCS == nil {
		return events.Invalid("share_with_vcs", "is required: true or false, as the person chose")
	}
	if !slices.Contains(events.ConsentMethods, b.Method) {
		return events.Invalid("method", "must be one of %v", events.ConsentMethods)
	}
	return s.respond(w, r, p, events.RecordConsent{ShareWithVCS: *b.ShareWithVCS, Method: b.Method})
}

type signpostBody struct {
	ServiceID   string `json:"service_id"`
	Description string `json:"description"`
}

// postSignpost records signposting: to a directory service (one that
// takes no referrals too), or to something described in words.
func (s *Service) postSignpost(w http.ResponseWriter, r *http.Request, p api.Principal) error {
	var b signpostBody
	if err := api.DecodeJSON(w, r, api.DefaultBodyLimit, &b); err != nil {
		return err
	}
	if err := text("description", b.Description, maxText, false); err != nil {
		return err
	}
	desc := strings.TrimSpace(b.Description)
	cmd := events.SignpostTo{SignpostID: events.NewID(), Description: desc}
	switch {
	case b.ServiceID == "" && desc == "":
		return events.Invalid("service_id", "give a service_id or a description")
	case b.ServiceID != "" && desc != "":
		return events.Invalid("description", "give a service_id or a description, not both")
	case b.ServiceID != "":
		// The journey first, so another team's id is not found before
		// anything about the service is said.
		if _, err := s.ownRow(p, r.PathValue("id")); err != nil {
			return err
		}
		facts, err := s.service(r.Context(), b.ServiceID)
		if err != nil {
			return err
		}
		cmd.Service = &facts
	}
	return s.respond(w, r, p, cmd)
}
