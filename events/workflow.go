package events

// The journey in the words of those who refer: where it came from, and how
// FHIR's workflow resources name its status. Derived here, beside Status,
// so that every view and answer says the same (one fold, one mapping).

// Source is who referred: gp, self, or the referring agency's sector
// (ReferralSources); "" before the referral. Referrals written before
// version 2 carry no source (only practices referred then: gp) or say
// council (an agency: other_agency).
func (s State) Source() string {
	if s.Referral == nil {
		return ""
	}
	switch src := s.Referral.GetSource(); src {
	case "":
		return SourceGP
	case "council":
		return string(SectorOtherAgency)
	default:
		return src
	}
}

// Workflow is the journey's status in FHIR R4 workflow terms: the Task
// that tracks the referral for the referrer and the ServiceRequest that is
// the referral.
type Workflow struct {
	// Task is a FHIR task-status: requested (referred), accepted (a named
	// link worker holds it), in-progress (working with the person),
	// completed (closed with goals met), rejected (closed for clinical
	// reasons: the team judged it not for them), cancelled (declined by the
	// person, uncontactable, moved away or other).
	Task string `json:"task"`
	// Request is a FHIR request-status: active while open, completed once
	// closed, revoked when the person declined.
	Request string `json:"request"`
}

// Workflow maps the journey's status to FHIR's workflow statuses.
func (s State) Workflow() Workflow {
	switch s.Status() {
	case StatusAssigned:
		return Workflow{Task: "accepted", Request: "active"}
	case StatusInProgress, StatusConnected:
		return Workflow{Task: "in-progress", Request: "active"}
	case StatusClosed:
		task := "cancelled"
		switch s.ClosedReason {
		case "goals_met":
			task = "completed"
		case "clinical":
			task = "rejected"
		}
		return Workflow{Task: task, Request: "completed"}
	case StatusDeclined:
		return Workflow{Task: "cancelled", Request: "revoked"}
	}
	return Workflow{Task: "requested", Request: "active"}
}
