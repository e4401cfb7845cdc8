package vcs

import (
	"strings"
	"testing"

	"linkway/events"
)

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		seconds int64
		want    string
	}{
		{0, "less than a minute"},
		{59, "less than a minute"},
		{60, "1 minute"},
		{125, "2 minutes"},
		{3600, "1 hour"},
		{47 * 3600, "47 hours"},
		{48 * 3600, "2 days"},
		{10 * 86400, "10 days"},
	}
	for _, c := range cases {
		if got := humanDuration(c.seconds); got != c.want {
			t.Errorf("humanDuration(%d) = %q, want %q", c.seconds, got, c.want)
		}
	}
}

func TestSSEDataFramesEveryLine(t *testing.T) {
	got := sseData("inbox", []byte("<div>\n<p>a</p>\r\n</div>"))
	want := "event: inbox\ndata: <div>\ndata: <p>a</p>\ndata: </div>\n\n"
	if got != want {
		t.Errorf("sseData = %q, want %q", got, want)
	}
}

func TestFormMessageNamesWhatToFix(t *testing.T) {
	for field, want := range map[string]string{"reason": "Choose a reason", "date": "date of the session", "attended": "whether they came"} {
		if got := formMessage(&events.Error{Code: events.CodeInvalid, Field: field}); !strings.Contains(got, want) {
			t.Errorf("formMessage(%s) = %q", field, got)
		}
	}
}

// Needs are shown by their taxonomy name; the inbox holds no reason code.
func TestNeedLabel(t *testing.T) {
	if got := needLabel("befriending_and_social_groups"); got != "Befriending and social groups" {
		t.Errorf("needLabel = %q", got)
	}
	if got := needLabel("something_else"); got != "something_else" {
		t.Errorf("needLabel of an unknown need = %q", got)
	}
}
