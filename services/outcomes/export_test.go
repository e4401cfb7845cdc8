package outcomes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// Hooks for the tests and benchmarks of this package.

// View is the outcomes projection on a real read side: an embedded NATS
// server with the JOURNEYS stream, a view store, and one reader. Events
// are published to the log as given (no rules applied), so a test can
// build any history.
type View struct {
	tb      testing.TB
	JS      jetstream.JetStream
	Store   *viewstore.Store
	Reader  *views.Reader
	svc     *Service
	last    uint64
	ctx     context.Context
	started bool
	done    chan struct{}
}

// NewView starts a view with a test pseudonym key and deprivation lookup
// (M33 7XX decile 3, SK1 1AA decile 9).
func NewView(tb testing.TB) *View {
	tb.Helper()
	v := NewStoppedView(tb)
	v.Start()
	return v
}

// NewStoppedView is NewView with its reader not yet started: events
// published before Start are a log to catch up with.
func NewStoppedView(tb testing.TB) *View {
	tb.Helper()
	_, js := natsserver.Test(tb)
	if _, err := js.CreateStream(context.Background(), journal.StreamConfig(journal.DefaultConfig())); err != nil {
		tb.Fatal(err)
	}
	return newView(tb, js)
}

// Replica is another process's view of the same log: its own view store
// and reader (started), the same NATS.
func (v *View) Replica() *View {
	v.tb.Helper()
	r := newView(v.tb, v.JS)
	r.Start()
	return r
}

// RunFeed runs the view's feed publisher, with leases (nil: alone), for
// commissioner QYG of every team, until the returned stop is called (or
// the test ends).
func (v *View) RunFeed(leases Leases) (stop func()) {
	f := v.svc.feed
	f.leases, f.log = leases, slog.New(slog.NewTextHandler(io.Discard, nil))
	f.commish = func(string) []string { return []string{"QYG"} }
	ctx, cancel := context.WithCancel(v.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	v.tb.Cleanup(stop)
	return stop
}

// Lines is how many lines the view's outbox has held: the lines of every
// event after the feed's mark when it was applied.
func (v *View) Lines() int { return len(v.Outbox()) }

func newView(tb testing.TB, js jetstream.JetStream) *View {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	store, err := viewstore.Open(viewstore.DefaultConfig(tb.TempDir()))
	if err != nil {
		tb.Fatal(err)
	}
	reg := views.NewRegistry(store)
	p, err := newPseudonymiser("k1", []byte("a test key of thirty-two bytes!!"))
	if err != nil {
		tb.Fatal(err)
	}
	dep, err := parseDeprivation(strings.NewReader("postcode,lsoa_code,imd_decile\nM33 7XX,E01006090,3\nSK1 1AA,E01005900,9\n"))
	if err != nil {
		tb.Fatal(err)
	}
	f, err := openFeed(ctx, js, 1)
	if err != nil {
		tb.Fatal(err)
	}
	f.views = reg
	m, err := newMetrics(nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	months := newMonthCache(250_000)
	s := &Service{cfg: Config{Views: reg}, feed: f, months: months, metrics: m,
		proj: &projection{pseudo: p, dep: dep, feed: f, months: months}}
	reg.Add(s.proj)
	rc := views.DefaultReaderConfig()
	rc.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	rd, err := views.NewReader(js, store, reg.Projections(), rc)
	if err != nil {
		tb.Fatal(err)
	}
	reg.Attach(rd)
	v := &View{tb: tb, JS: js, Store: store, Reader: rd, svc: s, ctx: ctx, done: make(chan struct{})}
	tb.Cleanup(func() {
		cancel()
		if v.started {
			<-v.done
		}
		_ = store.Close()
	})
	return v
}

// Start runs the view's reader.
func (v *View) Start() {
	v.started = true
	go func() { defer close(v.done); _ = v.Reader.Run(v.ctx) }()
}

// Publish appends events to the log as they are, in atomic batches of
// 500 (one fsync each, as the journal's group commit does).
func (v *View) Publish(evs ...*eventsv1.Envelope) {
	v.tb.Helper()
	nc := v.JS.Conn()
	for start := 0; start < len(evs); start += 500 {
		batch := evs[start:min(start+500, len(evs))]
		id := events.NewID()
		var last *nats.Msg
		for i, e := range batch {
			data, err := proto.Marshal(e)
			if err != nil {
				v.tb.Fatal(err)
			}
			msg := nats.NewMsg(events.JourneySubject(e.GetJourneyId()))
			msg.Data = data
			msg.Header.Set("Nats-Batch-Id", id)
			msg.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
			if i == len(batch)-1 {
				msg.Header.Set("Nats-Batch-Commit", "1")
				last = msg
				break
			}
			if err := nc.PublishMsg(msg); err != nil {
				v.tb.Fatal(err)
			}
		}
		resp, err := nc.RequestMsg(last, time.Minute)
		if err != nil {
			v.tb.Fatal(err)
		}
		var ack struct {
			Error *jetstream.APIError `json:"error"`
			Seq   uint64              `json:"seq"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil || ack.Error != nil || ack.Seq == 0 {
			v.tb.Fatalf("batch publish: %s %v", resp.Data, err)
		}
		v.last = max(v.last, ack.Seq)
	}
}

// Apply appends events and waits until the view has them.
func (v *View) Apply(evs ...*eventsv1.Envelope) {
	v.tb.Helper()
	v.Publish(evs...)
	v.Wait()
}

// Wait waits until the view has what was published.
func (v *View) Wait() {
	v.tb.Helper()
	ctx, cancel := context.WithTimeout(v.ctx, 5*time.Minute)
	defer cancel()
	if err := v.Reader.WaitFor(ctx, v.last, ProjectionName); err != nil {
		v.tb.Fatalf("the view did not reach %d: %v", v.last, err)
	}
}

// Summarise computes a summary of teams from the view.
func (v *View) Summarise(commissioner string, teams []string, q Query) Summary {
	v.tb.Helper()
	sum := newSummary(q.By)
	if err := v.svc.walk(context.Background(), teams, q, sum.add); err != nil {
		v.tb.Fatal(err)
	}
	return sum.publish(commissioner, q)
}

// Outbox is the feed lines the view holds, in order.
func (v *View) Outbox() []FeedEvent {
	v.tb.Helper()
	lines, err := v.svc.feed.pending(0, v.last, 1<<30)
	if err != nil {
		v.tb.Fatal(err)
	}
	out := make([]FeedEvent, len(lines))
	for i, l := range lines {
		out[i] = l.line
	}
	return out
}

// SamplePostcodes are the postcodes of the bundled deprivation sample.
func SamplePostcodes() []string {
	var out []string
	for _, line := range strings.Split(string(sample), "\n") {
		pc, _, ok := strings.Cut(line, ",")
		if ok && !strings.HasPrefix(line, "#") && pc != "postcode" {
			out = append(out, pc)
		}
	}
	return out
}

// env wraps an event for journey jid at a time.
func env(jid string, at time.Time, e proto.Message) *eventsv1.Envelope {
	x := events.Wrap(e)
	x.JourneyId, x.EventId, x.OccurredAt = jid, events.NewID(), timestamppb.New(at)
	return x
}

func referral(nhs, practice, team string) *eventsv1.ReferralReceived {
	return &eventsv1.ReferralReceived{
		Source: "gp", ReferrerOrganisationId: practice, SourceId: events.NewID(),
		Person: &eventsv1.PersonalData{NhsNumber: nhs, GivenName: "Jane", FamilyName: "Doe", BirthDate: "1956-03-14",
			Postcode: "M33 7XX", Phone: "07700 900123", Email: "jane@example.org"},
		Sex: "female", Reasons: []string{"422650009"}, Notes: &eventsv1.FreeText{Text: "Recently bereaved"},
		Consent: &eventsv1.Consent{ShareWithVcs: true}, LinkWorkTeam: team, Urgency: "routine",
	}
}

// SyntheticYear returns the events of n journeys referred through 2026 to
// team U12345 by 20 practices: referral, assignment, contact, a baseline
// and follow-up SWEMWBS, an onward referral accepted (and attended) or
// declined, and closure. About a tenth of people are referred twice.
func SyntheticYear(n int, seed uint64) []*eventsv1.Envelope {
	r := rand.New(rand.NewPCG(seed, seed+1))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []*eventsv1.Envelope
	for i := range n {
		jid := events.NewID()
		at := start.Add(time.Duration(r.IntN(365*24)) * time.Hour)
		step := func(e proto.Message) {
			at = at.Add(time.Duration(1+r.IntN(96)) * time.Hour)
			out = append(out, env(jid, at, e))
		}
		who := i
		if i > 0 && r.IntN(10) == 0 {
			who = r.IntN(i) // someone referred before, again
		}
		nhs := fmt.Sprintf("9%09d", who)
		ref := referral(nhs, fmt.Sprintf("A8%04d", r.IntN(20)), "U12345")
		ref.Person.BirthDate = fmt.Sprintf("%d-06-15", 1935+r.IntN(70))
		ref.Sex = sexes[r.IntN(4)]
		ref.Person.Ethnicity = events.EthnicCategories[r.IntN(len(events.EthnicCategories))].Code
		out = append(out, env(jid, at, ref))
		step(&eventsv1.LinkWorkerAssigned{WorkerId: fmt.Sprintf("lw-%d", r.IntN(5)), WorkerName: "Sam"})
		if r.IntN(8) == 0 {
			step(&eventsv1.PatientDeclined{})
			continue
		}
		step(&eventsv1.ContactMade{Method: "phone"})
		base := 14 + r.Float64()*10
		step(&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "baseline", Score: base})
		oid := events.NewID()
		step(&eventsv1.OnwardReferralMade{OnwardReferralId: oid, ServiceId: "VCS001-walk", OrganisationId: "VCS001"})
		if r.IntN(4) == 0 {
			step(&eventsv1.OnwardReferralDeclined{OnwardReferralId: oid, Reason: events.DeclineReasons[r.IntN(5)]})
			step(&eventsv1.Signposted{SignpostId: events.NewID(), ServiceId: "VCS002-debt", OrganisationId: "VCS002"})
		} else {
			step(&eventsv1.OnwardReferralAccepted{OnwardReferralId: oid})
			step(&eventsv1.AttendanceRecorded{OnwardReferralId: oid, Date: at.Format(time.DateOnly), Attended: r.IntN(5) > 0})
		}
		step(&eventsv1.WellbeingMeasured{Instrument: "SWEMWBS", Timepoint: "follow_up", Score: base + r.NormFloat64()*3 + 1})
		step(&eventsv1.JourneyClosed{Reason: "goals_met"})
	}
	return out
}

// ResetCache empties the summaries' cache of decoded records, so the next
// summary reads every month from the view store.
func (v *View) ResetCache() {
	v.svc.months.seen(0)
}

// MarkPublished moves the feed's high-water mark to the log's end, as if
// the publisher had sent every line: a rebuild then writes none.
func (v *View) MarkPublished() { v.svc.feed.advance(&v.svc.feed.hwm, v.last) }

// Last is the log's last sequence published through the view.
func (v *View) Last() uint64 { return v.last }
