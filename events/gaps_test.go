package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	directoryv1 "linkway/proto/linkway/directory/v1"
	eventsv1 "linkway/proto/linkway/events/v1"
)

// Gaps in provision: recorded by a panel on its own subject, closed by the
// services linked to them.
func TestDecideGaps(t *testing.T) {
	t.Parallel()
	panel := DirectoryOrg{}
	record := RecordGap{GapID: "gap-1", Need: "food", Area: "Sale West", Detail: "No lunch club within walking distance"}
	withGap := directoryState(mustDecideDirectory(t, panel, record))
	walkSvc := &DirectoryService{Service: testListedService(CapacityOpen)}
	gone := &DirectoryService{Service: testListedService(CapacityOpen), Withdrawn: true}
	linked := directoryState(mustDecideDirectory(t, panel, record), mustDecideDirectory(t, withGap, LinkGapService{GapID: "gap-1", Service: walkSvc}))

	tests := []struct {
		name      string
		state     DirectoryOrg
		cmd       DirectoryCommand
		wantEvent string
		wantCode  Code
		wantField string
	}{
		{"record", panel, record, "linkway.directory.v1.GapRecorded", "", ""},
		{"record again, same details: nothing", withGap, record, "", "", ""},
		{"record again, other details: 409", withGap, RecordGap{GapID: "gap-1", Need: "food", Area: "Sale"}, "", CodeFailedPrecondition, "gap_id"},
		{"no need", panel, RecordGap{GapID: "gap-2", Area: "Sale"}, "", CodeInvalid, "need"},
		{"a need outside the taxonomy", panel, RecordGap{GapID: "gap-2", Need: "knitting", Area: "Sale"}, "", CodeInvalid, "need"},
		{"no area", panel, RecordGap{GapID: "gap-2", Need: "food", Area: " "}, "", CodeInvalid, "area"},
		{"a long detail", panel, RecordGap{GapID: "gap-2", Need: "food", Area: "Sale", Detail: strings.Repeat("x", 4001)}, "", CodeInvalid, "detail"},
		{"a bad id", panel, RecordGap{GapID: "gap.*", Need: "food", Area: "Sale"}, "", CodeInvalid, "gap_id"},
		{"link", withGap, LinkGapService{GapID: "gap-1", Service: walkSvc}, "linkway.directory.v1.GapServiceLinked", "", ""},
		{"link again: nothing", linked, LinkGapService{GapID: "gap-1", Service: walkSvc}, "", "", ""},
		{"link to an unknown gap", withGap, LinkGapService{GapID: "gap-9", Service: walkSvc}, "", CodeNotFound, "gap_id"},
		{"link no service", withGap, LinkGapService{GapID: "gap-1"}, "", CodeInvalid, "service_id"},
		{"link a withdrawn service", withGap, LinkGapService{GapID: "gap-1", Service: gone}, "", CodeFailedPrecondition, "service_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideDirectory(tt.state, tt.cmd)
			if tt.wantCode != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.wantCode || e.Field != tt.wantField {
					t.Fatalf("err = %v, want code %s naming %q", err, tt.wantCode, tt.wantField)
				}
				if len(evs) != 0 {
					t.Errorf("refused, yet %d events", len(evs))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			got := ""
			if len(evs) == 1 {
				got = DirectoryEventName(evs[0])
			}
			if len(evs) > 1 || got != tt.wantEvent {
				t.Errorf("events %d (%q), want %q", len(evs), got, tt.wantEvent)
			}
		})
	}

	g := linked.Gaps["gap-1"]
	if g == nil || !g.Met() || g.MetAt().IsZero() || g.Services[0].OrganisationID != "VCS001" || g.RecordedBy != "PANEL-SALE" || g.Need != "food" {
		t.Errorf("gap folded as %+v", g)
	}
	if withGap.Gaps["gap-1"].Met() {
		t.Error("a gap with no service is met")
	}
}

// TestGapSnapshotIsAValue: a snapshot taken before a link does not see it.
func TestGapSnapshotIsAValue(t *testing.T) {
	t.Parallel()
	s := directoryState(mustDecideDirectory(t, DirectoryOrg{}, RecordGap{GapID: "gap-1", Need: "food", Area: "Sale"}))
	snap := s.Snapshot()
	ev := mustDecideDirectory(t, snap, LinkGapService{GapID: "gap-1", Service: &DirectoryService{Service: testListedService(CapacityOpen)}})[0]
	ev.OccurredAt = timestamppb.New(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	ev.Actor = &eventsv1.Actor{OrganisationId: "PANEL-SALE"}
	s.Evolve(ev)
	if snap.Gaps["gap-1"].Met() || !s.Gaps["gap-1"].Met() {
		t.Error("the snapshot changed with the state, or the state did not")
	}
	// Evolve takes what the log holds: a link to a gap it never saw is
	// passed over.
	s.Evolve(&directoryv1.DirectoryEvent{Event: &directoryv1.DirectoryEvent_GapServiceLinked{
		GapServiceLinked: &directoryv1.GapServiceLinked{GapId: "nope", ServiceId: "x"}}})
	if len(s.Gaps) != 1 {
		t.Errorf("gaps %v", s.Gaps)
	}
}

func TestDecideSupervision(t *testing.T) {
	t.Parallel()
	rec := RecordSupervision{SupervisionID: "s1", Team: "U12345", WorkerID: "lw-7", Date: "2026-03-02", Kind: "clinical", Today: "2026-03-02"}
	var log TeamSupervision
	evs, err := DecideSupervision(log, rec)
	if err != nil || len(evs) != 1 || ShortName(evs[0]) != "SupervisionRecorded" || evs[0].GetJourneyId() != "" {
		t.Fatalf("record: %v %v", evs, err)
	}
	log = log.Evolve(evs[0])
	if again, err := DecideSupervision(log, rec); err != nil || len(again) != 0 {
		t.Errorf("the same session again: %v %v, want nothing", again, err)
	}
	later := rec
	later.Date, later.Kind, later.Today = "2026-04-01", "peer", ""
	evs, err = DecideSupervision(log, later)
	if err != nil {
		t.Fatal(err)
	}
	log = log.Evolve(evs[0]).Evolve(Wrap(&eventsv1.JourneyClosed{}))
	if got := log.LastSupervision("lw-7"); got != "2026-04-01" {
		t.Errorf("last supervision %q", got)
	}
	if got := log.LastSupervision("lw-8"); got != "" {
		t.Errorf("a worker never supervised: %q", got)
	}
	for _, tt := range []struct {
		name  string
		mut   func(*RecordSupervision)
		field string
	}{
		{"unknown kind", func(r *RecordSupervision) { r.Kind = "casual" }, "kind"},
		{"no worker", func(r *RecordSupervision) { r.WorkerID = " " }, "worker_id"},
		{"a worker id with a newline", func(r *RecordSupervision) { r.WorkerID = "lw\n7" }, "worker_id"},
		{"a bad date", func(r *RecordSupervision) { r.Date = "02/03/2026" }, "date"},
		{"a date in the future", func(r *RecordSupervision) { r.Date = "2026-03-03" }, "date"},
		{"a bad team", func(r *RecordSupervision) { r.Team = "U1.*" }, "team"},
		{"another team's log", func(r *RecordSupervision) { r.Team = "U99999" }, "team"},
	} {
		c := rec
		c.Date = "2026-03-01"
		tt.mut(&c)
		evs, err := DecideSupervision(log, c)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalid || e.Field != tt.field || len(evs) != 0 {
			t.Errorf("%s: %v %v, want invalid naming %s", tt.name, evs, err, tt.field)
		}
	}
}

func TestSupervisionSubjects(t *testing.T) {
	t.Parallel()
	subj, err := SupervisionSubject("U12345")
	if err != nil || subj != "lw.team.U12345.supervision" {
		t.Fatalf("%q %v", subj, err)
	}
	if team, ok := TeamFromSupervisionSubject(subj); !ok || team != "U12345" {
		t.Errorf("round trip: %q %v", team, ok)
	}
	for _, bad := range []string{"", "U1.2", "*", ">", "U1 2"} {
		if _, err := SupervisionSubject(bad); err == nil {
			t.Errorf("team %q made a subject", bad)
		}
	}
	for _, s := range []string{"lw.team.U1.other", "lw.team.*.supervision", "lw.journey.U1.supervision", "lw.team.U1.supervision.x"} {
		if _, ok := TeamFromSupervisionSubject(s); ok {
			t.Errorf("%q read as a supervision subject", s)
		}
	}
	if _, ok := JourneyIDFromSubject(subj); ok {
		t.Error("a supervision subject reads as a journey")
	}
	if len(JourneyStreamSubjects) != 2 || JourneyStreamSubjects[1] != SupervisionSubjects {
		t.Errorf("stream subjects %v", JourneyStreamSubjects)
	}
}
