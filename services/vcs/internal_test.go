package vcs

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"linkway/events"
	"linkway/services/api"
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

func TestSessionCookiesAreSignedAndExpire(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := newSessions(randomBytes(32), newMemoryStore(), func() time.Time { return now })
	se, err := s.create(t.Context(), api.Principal{OrgID: "VCS001", Kind: api.KindVCS})
	if err != nil {
		t.Fatal(err)
	}
	good := s.sign(se.id)
	req := func(value string) *http.Request {
		r, _ := http.NewRequest("GET", "/vcs/", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		return r
	}
	cases := []struct {
		name, value string
		ok          bool
	}{
		{"signed", good, true},
		{"no signature", se.id, false},
		{"tampered id", "x" + good, false},
		{"tampered signature", good[:len(good)-2] + "AA", false},
		{"another secret", newSessions(randomBytes(32), newMemoryStore(), time.Now).sign(se.id), false},
		{"empty", "", false},
	}
	for _, c := range cases {
		got, ok, err := s.get(req(c.value))
		if err != nil || ok != c.ok {
			t.Errorf("%s: signed in %v (%v), want %v", c.name, ok, err, c.ok)
		}
		if ok && got.Principal.OrgID != "VCS001" {
			t.Errorf("%s: session of %q", c.name, got.Principal.OrgID)
		}
	}
	if strings.Contains(good, "VCS001") {
		t.Error("the cookie names the organisation")
	}
	now = now.Add(sessionTTL + time.Second)
	if _, ok, _ := s.get(req(good)); ok {
		t.Error("an expired session still signs in")
	}
}

func TestFormMessageNamesWhatToFix(t *testing.T) {
	for field, want := range map[string]string{"reason": "Choose a reason", "date": "date of the session", "attended": "whether they came"} {
		if got := formMessage(&events.Error{Code: events.CodeInvalid, Field: field}); !strings.Contains(got, want) {
			t.Errorf("formMessage(%s) = %q", field, got)
		}
	}
}

func TestSignInGuessingIsThrottled(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := newSessions(randomBytes(32), newMemoryStore(), func() time.Time { return now })
	for i := range maxFailedSignIns {
		if s.throttled("192.0.2.1") {
			t.Fatalf("throttled after %d failures", i)
		}
		s.signInFailed("192.0.2.1")
	}
	if !s.throttled("192.0.2.1") {
		t.Error("not throttled after the limit")
	}
	if s.throttled("192.0.2.2") {
		t.Error("another client is throttled too")
	}
	now = now.Add(failedWindow + time.Second)
	if s.throttled("192.0.2.1") {
		t.Error("still throttled after the window")
	}
}

// Needs are shown by their value-set term, or by code when unknown.
func TestNeedLabel(t *testing.T) {
	if got := needLabel("422650009"); got != "Social isolation" {
		t.Errorf("needLabel = %q", got)
	}
	if got := needLabel("1"); got != "SNOMED CT 1" {
		t.Errorf("needLabel of an unknown code = %q", got)
	}
}
