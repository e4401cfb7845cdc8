package events

import (
	"errors"
	"slices"
	"testing"

	eventsv1 "linkway/proto/linkway/events/v1"
)

func TestShareWithVCS(t *testing.T) {
	everything := &eventsv1.SharedWithVcs{
		Person: &eventsv1.PersonalData{GivenName: "Ann", FamilyName: "Lee", Phone: "0161 496 0000", Email: "ann@example.org",
			NhsNumber: "9434765919", Postcode: "M33 7XX"},
		Needs: []string{"loneliness"}, Notes: &eventsv1.FreeText{Text: "Prefers mornings."},
	}
	for _, tt := range []struct {
		name                        string
		fields, want                []string
		given, family, phone, email string
		needs                       int
		notes                       string
	}{
		{"nothing", nil, nil, "", "", "", "", 0, ""},
		{"name only", []string{"name"}, []string{"name"}, "Ann", "Lee", "", "", 0, ""},
		{"phone and notes", []string{"phone", "notes"}, []string{"phone", "notes"}, "", "", "0161 496 0000", "", 0, "Prefers mornings."},
		{"everything", ShareableFields, ShareableFields, "Ann", "Lee", "0161 496 0000", "ann@example.org", 1, "Prefers mornings."},
		{"twice is once", []string{"email", "email"}, []string{"email"}, "", "", "", "ann@example.org", 0, ""},
		{"an unknown name is passed over", []string{"nhs_number", "needs"}, []string{"needs"}, "", "", "", "", 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ShareWithVCS(everything, tt.fields)
			p := got.GetPerson()
			if !slices.Equal(got.GetFields(), tt.want) {
				t.Errorf("fields = %v, want %v", got.GetFields(), tt.want)
			}
			if p.GetGivenName() != tt.given || p.GetFamilyName() != tt.family || p.GetPhone() != tt.phone || p.GetEmail() != tt.email {
				t.Errorf("person = %v", p)
			}
			if p.GetNhsNumber() != "" || p.GetPostcode() != "" || p.GetBirthDate() != "" {
				t.Errorf("shared an identifier that is never shared: %v", p)
			}
			if len(got.GetNeeds()) != tt.needs || got.GetNotes().GetText() != tt.notes {
				t.Errorf("needs %v, notes %q", got.GetNeeds(), got.GetNotes().GetText())
			}
		})
	}
}

func TestCheckShare(t *testing.T) {
	for _, tt := range []struct {
		name      string
		share     []string
		required  bool
		wantField string // "" for no error
	}{
		{"every field", ShareableFields, true, ""},
		{"none, not required", nil, false, ""},
		{"none, required", nil, true, "share"},
		{"an unknown field", []string{"name", "nhs_number"}, false, "share[1]"},
		{"an unknown field, required", []string{"postcode"}, true, "share[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckShare(tt.share, tt.required)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("CheckShare(%v, %v) = %v, want nil", tt.share, tt.required, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalid || e.Field != tt.wantField {
				t.Fatalf("CheckShare(%v, %v) = %v, want invalid_argument on %s", tt.share, tt.required, err, tt.wantField)
			}
		})
	}
}
