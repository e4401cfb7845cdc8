package events

import (
	"strings"
	"testing"
)

// FuzzSubjects: whatever a caller sends as an id, a subject built from it
// holds no wildcard or extra token, or the id is refused.
func FuzzSubjects(f *testing.F) {
	for _, s := range []string{NewID(), "", "a.b", "*", ">", "lw.journey.>", NewID() + ".x", " " + NewID()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ParseID(id) != nil {
			return
		}
		for _, subj := range []string{JourneySubject(id), JourneyFilter(id)} {
			tokens := strings.Split(subj, ".")
			want := 3
			if subj == JourneyFilter(id) {
				want = 4
			}
			if len(tokens) != want || strings.ContainsAny(id, ".*> \t\r\n") {
				t.Fatalf("id %q makes subject %q", id, subj)
			}
		}
		if got, ok := JourneyIDFromSubject(JourneySubject(id)); !ok || got != id {
			t.Fatalf("round trip of %q", id)
		}
	})
}
