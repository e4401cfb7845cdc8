package referrals

import (
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// ReferralRequest is the body of POST /v1/referrals (API.md). Pointers mark
// what must be present, so "absent" and "false" can be told apart.
type ReferralRequest struct {
	SourceID     string          `json:"source_id"`
	Patient      *PatientRequest `json:"patient"`
	Reasons      []string        `json:"reasons"`
	Notes        string          `json:"notes,omitempty"`
	Consent      *ConsentRequest `json:"consent"`
	LinkWorkTeam string          `json:"link_work_team"`
	Urgency      string          `json:"urgency,omitempty"`
}

// PatientRequest is the person referred.
type PatientRequest struct {
	NHSNumber  string `json:"nhs_number"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	BirthDate  string `json:"birth_date"`
	Sex        string `json:"sex,omitempty"`
	Postcode   string `json:"postcode,omitempty"`
	Phone      string `json:"phone,omitempty"`
	Email      string `json:"email,omitempty"`
	// Ethnicity is an NHS Data Dictionary ethnic category code (A-H, J-N,
	// P, R, S, Z not stated, 99 not known); optional.
	Ethnicity string `json:"ethnicity,omitempty"`
}

// ConsentRequest records what the person agreed to share.
type ConsentRequest struct {
	ShareWithVCS *bool `json:"share_with_vcs"`
}

// Values accepted at the edge.
var (
	Sexes     = []string{"female", "male", "other", "unknown"}
	Urgencies = []string{"routine", "urgent"}
)

// Limits on free input: generous for real use, small enough that nothing
// unbounded reaches the log.
const (
	maxSourceID = 128
	maxName     = 100
	maxNotes    = 8000
	maxContact  = 254
	maxReasons  = 20
)

// checker validates a referral for one caller; it has what validation
// needs to know of the world (value sets, known teams, today).
type checker struct {
	terms *events.Terminology
	// isTeam reports whether a code is a registered link-worker team.
	isTeam func(string) bool
	// teams are the teams the referrer refers to; none: any team.
	teams []string
	now   func() time.Time
	// requireDemographics is false for FHIR referrals that identify the
	// patient by NHS number only (API.md allows subject.identifier).
	requireDemographics bool
}

// check validates req and returns every problem found, each naming its
// field in dotted form, in the order of the request's fields. It also
// normalises req in place (NHS number spacing, postcode case, defaults).
func (c checker) check(req *ReferralRequest) []*events.Error {
	var errs []*events.Error
	bad := func(field, format string, args ...any) { errs = append(errs, events.Invalid(field, format, args...)) }

	req.SourceID = strings.TrimSpace(req.SourceID)
	switch {
	case req.SourceID == "":
		bad("source_id", "is required: the referring system's own id for this referral")
	case len(req.SourceID) > maxSourceID:
		bad("source_id", "must be at most %d characters", maxSourceID)
	case !printable(req.SourceID):
		bad("source_id", "must be printable text")
	}

	if req.Patient == nil {
		bad("patient", "is required")
	} else {
		errs = append(errs, c.person("patient", req.Patient, true)...)
	}

	switch {
	case len(req.Reasons) == 0:
		bad("reasons", "at least one reason for referral (a SNOMED CT concept id) is required")
	case len(req.Reasons) > maxReasons:
		bad("reasons", "at most %d reasons", maxReasons)
	default:
		var uniq []string
		for i, r := range req.Reasons {
			r = strings.TrimSpace(r)
			if !c.terms.Reasons.Has(r) {
				bad("reasons", "reasons[%d] is not in Linkway's social prescribing reasons value set (SNOMED CT)", i)
				break
			}
			if !slices.Contains(uniq, r) {
				uniq = append(uniq, r)
			}
		}
		req.Reasons = uniq
	}

	if utf8.RuneCountInString(req.Notes) > maxNotes {
		bad("notes", "must be at most %d characters", maxNotes)
	}

	if req.Consent == nil || req.Consent.ShareWithVCS == nil {
		field := "consent"
		if req.Consent != nil {
			field = "consent.share_with_vcs"
		}
		bad(field, "is required: say whether the person agrees to share their details with community organisations")
	}

	req.LinkWorkTeam = strings.TrimSpace(req.LinkWorkTeam)
	switch {
	case req.LinkWorkTeam == "":
		bad("link_work_team", "is required: the ODS code of the link-worker team")
	case !c.isTeam(req.LinkWorkTeam):
		bad("link_work_team", "is not a known link-worker team")
	case len(c.teams) > 0 && !slices.Contains(c.teams, req.LinkWorkTeam):
		bad("link_work_team", "is not a link-worker team this organisation refers to (%s)", strings.Join(c.teams, ", "))
	}

	if req.Urgency == "" {
		req.Urgency = "routine"
	} else if !slices.Contains(Urgencies, req.Urgency) {
		bad("urgency", "must be one of %v", Urgencies)
	}
	return errs
}

// person checks and normalises the person a referral is for, naming
// fields under prefix (patient, or person for a self-referral). The NHS
// number is required when needNHS is set, else checked only when given.
func (c checker) person(prefix string, p *PatientRequest, needNHS bool) []*events.Error {
	var errs []*events.Error
	bad := func(field, format string, args ...any) {
		errs = append(errs, events.Invalid(prefix+"."+field, format, args...))
	}
	p.NHSNumber = strings.ReplaceAll(strings.TrimSpace(p.NHSNumber), " ", "")
	if needNHS || p.NHSNumber != "" {
		if err := events.CheckNHSNumber(p.NHSNumber); err != nil {
			bad("nhs_number", "%s", err)
		}
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"given_name", &p.GivenName}, {"family_name", &p.FamilyName}} {
		*f.value = strings.TrimSpace(*f.value)
		switch {
		case *f.value == "" && c.requireDemographics:
			bad(f.name, "is required")
		case utf8.RuneCountInString(*f.value) > maxName:
			bad(f.name, "must be at most %d characters", maxName)
		case !printable(*f.value):
			bad(f.name, "must be printable text")
		}
	}
	switch {
	case p.BirthDate == "" && c.requireDemographics:
		bad("birth_date", "is required")
	case p.BirthDate != "":
		d, err := time.Parse(time.DateOnly, p.BirthDate)
		today := c.now().UTC().Truncate(24 * time.Hour)
		switch {
		case err != nil:
			bad("birth_date", "must be a date YYYY-MM-DD")
		case d.After(today):
			bad("birth_date", "must not be in the future")
		case d.Year() < 1890:
			bad("birth_date", "must be after 1890")
		}
	}
	if p.Sex == "" {
		p.Sex = "unknown"
	} else if !slices.Contains(Sexes, p.Sex) {
		bad("sex", "must be one of %v", Sexes)
	}
	if p.Postcode != "" {
		pc, ok := NormalisePostcode(p.Postcode)
		if !ok {
			bad("postcode", "must be a UK postcode such as M33 7XX")
		}
		p.Postcode = pc
	}
	p.Phone = strings.TrimSpace(p.Phone)
	if len(p.Phone) > 32 || !phonePattern.MatchString(p.Phone) && p.Phone != "" {
		bad("phone", "must be a telephone number")
	}
	p.Email = strings.TrimSpace(p.Email)
	if p.Email != "" {
		if a, err := mail.ParseAddress(p.Email); err != nil || a.Address != p.Email || len(p.Email) > maxContact {
			bad("email", "must be an email address")
		}
	}
	p.Ethnicity = strings.TrimSpace(p.Ethnicity)
	if _, ok := events.EthnicCategoryByCode(p.Ethnicity); p.Ethnicity != "" && !ok {
		bad("ethnicity", "must be an NHS Data Dictionary ethnic category code: A-H, J-N, P, R, S, Z (not stated) or 99 (not known)")
	}
	return errs
}

// event builds the ReferralReceived of a checked request.
func (req *ReferralRequest) event(source, practice string) *eventsv1.ReferralReceived {
	p := req.Patient
	rr := &eventsv1.ReferralReceived{
		Source:                 source,
		ReferrerOrganisationId: practice,
		SourceId:               req.SourceID,
		Person: &eventsv1.PersonalData{
			NhsNumber: p.NHSNumber, GivenName: p.GivenName, FamilyName: p.FamilyName,
			BirthDate: p.BirthDate, Postcode: p.Postcode, Phone: p.Phone, Email: p.Email, Ethnicity: p.Ethnicity,
		},
		Sex:          p.Sex,
		Reasons:      req.Reasons,
		Consent:      &eventsv1.Consent{ShareWithVcs: req.Consent != nil && req.Consent.ShareWithVCS != nil && *req.Consent.ShareWithVCS},
		LinkWorkTeam: req.LinkWorkTeam,
		Urgency:      req.Urgency,
	}
	if req.Notes != "" {
		rr.Notes = &eventsv1.FreeText{Text: req.Notes}
	}
	return rr
}

var phonePattern = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{5,30}$`)

// postcodePattern is the shape of a UK postcode (outward code, space,
// inward code), including GIR 0AA; it checks shape, not existence.
var postcodePattern = regexp.MustCompile(`^(GIR 0AA|[A-PR-UWYZ][0-9][0-9A-HJKPSTUW]? [0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][A-HK-Y][0-9][0-9ABEHMNPRVWXY]? [0-9][ABD-HJLNP-UW-Z]{2})$`)

// NormalisePostcode upper-cases a postcode and puts one space before the
// inward code; ok is false when it is not the shape of a UK postcode.
func NormalisePostcode(s string) (string, bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if len(s) < 5 || len(s) > 7 {
		return s, false
	}
	s = s[:len(s)-3] + " " + s[len(s)-3:]
	return s, postcodePattern.MatchString(s)
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
