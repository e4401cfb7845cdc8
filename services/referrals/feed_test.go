package referrals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hub"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
	"linkway/services/referrals"
)

var (
	teamKind = eventsv1.OrganisationKind_ORGANISATION_KIND_LINKWORK
	vcsKind  = eventsv1.OrganisationKind_ORGANISATION_KIND_VCS
)

// refer posts a referral as the practice of key and returns its journey.
func refer(t *testing.T, h *hubtest.Hub, key string) string {
	t.Helper()
	var c struct {
		JourneyID string `json:"journey_id"`
	}
	h.JSON("POST", "/v1/referrals", key, referral(t), 201, &c)
	return c.JourneyID
}

// act carries out a command on a journey as another party would.
func act(t *testing.T, h *hubtest.Hub, id, org string, kind eventsv1.OrganisationKind, cmd events.Command) journal.Result {
	t.Helper()
	res, err := h.Journal().Execute(context.Background(), id, journal.Meta{
		Actor: &eventsv1.Actor{OrganisationId: org, OrganisationKind: kind}}, cmd)
	if err != nil {
		t.Fatalf("%s: %v", events.CommandName(cmd), err)
	}
	return res
}

func decodeFeed(t *testing.T, data []byte) referrals.FeedMessage {
	t.Helper()
	var fm referrals.FeedMessage
	if err := json.Unmarshal(data, &fm); err != nil {
		t.Fatalf("feed message is not JSON: %s", data)
	}
	return fm
}

func sourceOf(t *testing.T, h nats.Header) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(h.Get(referrals.HeaderSourceSeq), 10, 64)
	if err != nil {
		t.Fatalf("feed message without %s: %v", referrals.HeaderSourceSeq, h)
	}
	return n
}

// A GP system reads its practice's feed with the practice's own NATS
// credentials (the feed_gp_A81001 user of accounts.conf, on the hub's
// listener): a durable consumer filtered to its subjects gets its
// referral's messages, and nothing of another practice's is granted, live
// or from the stream.
func TestGPFeedCredentialsReadOnlyTheirPractice(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	mine, theirs := refer(t, h, keyGP), refer(t, h, keyGP2)
	h.Eventually(func() bool {
		return len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubject("A81001", mine, "*"))) == 1 &&
			len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubject("A81002", theirs, "*"))) == 1
	}, "both practices' referrals are on FEED_GP")

	users, err := natsserver.LoadUsers(h.Data)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		violations []string
	)
	nc, err := nats.Connect(users.URL("feed_gp_A81001", h.NATSAddr()), nats.CustomInboxPrefix("_INBOX_A81001"),
		nats.MaxReconnects(0), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("the practice's feed user: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Its own feed, durably: exactly its referral's message.
	cons, err := js.CreateOrUpdateConsumer(ctx, referrals.FeedStream, jetstream.ConsumerConfig{
		Durable: "A81001", FilterSubject: "lw.feed.gp.A81001.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("the practice cannot create its own consumer: %v", err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
		fm := decodeFeed(t, m.Data())
		if fm.Practice != "A81001" || fm.Referral == nil || fm.Referral.JourneyID != mine || fm.Referral.Status != "referred" {
			t.Errorf("message on its feed: %s", m.Data())
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{referrals.FeedSubject("A81001", mine, "referral_received")}; !slices.Equal(got, want) {
		t.Fatalf("the practice fetched %v, want %v", got, want)
	}

	// Live, its own subjects only: a new referral of its own arrives, the
	// other practice's does not.
	own, err := nc.SubscribeSync("lw.feed.gp.A81001.>")
	if err != nil {
		t.Fatal(err)
	}
	other, err := nc.SubscribeSync("lw.feed.gp.A81002.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	mine2, theirs2 := refer(t, h, keyGP), refer(t, h, keyGP2)
	if m, err := own.NextMsg(10 * time.Second); err != nil || !strings.Contains(m.Subject, mine2) {
		t.Fatalf("the practice's live feed: %v %v", m, err)
	}
	h.Eventually(func() bool {
		return len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubject("A81002", theirs2, "*"))) == 1
	}, "the other practice's referral is on FEED_GP")
	if m, err := other.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("the practice received another practice's message: %s", m.Subject)
	}

	// From the stream: another practice's consumer, its own consumer name
	// with another's filter, the whole feed, stream info: all refused.
	for _, cfg := range []jetstream.ConsumerConfig{
		{Durable: "A81002", FilterSubject: "lw.feed.gp.A81002.>"},
		{Durable: "A81001", FilterSubject: "lw.feed.gp.A81002.>"},
		{Durable: "A81001", FilterSubject: "lw.feed.gp.>"},
		{Durable: "A81001"},
	} {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := js.CreateOrUpdateConsumer(rctx, referrals.FeedStream, cfg)
		rcancel()
		if err == nil {
			t.Errorf("the practice created a consumer %s filtered %q", cfg.Durable, cfg.FilterSubject)
		}
	}
	for _, subj := range []string{
		"$JS.API.STREAM.INFO." + referrals.FeedStream,
		"$JS.API.STREAM.MSG.GET." + referrals.FeedStream,
		"$JS.API.DIRECT.GET." + referrals.FeedStream + "." + referrals.FeedSubject("A81002", theirs, "referral_received"),
	} {
		if m, err := nc.Request(subj, []byte(`{"last_by_subj":"lw.feed.gp.A81002.>"}`), 300*time.Millisecond); err == nil {
			t.Errorf("the practice was answered on %s: %s", subj, m.Data)
		}
	}
	h.Eventually(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(violations, func(v string) bool { return strings.Contains(v, "lw.feed.gp.A81002.>") })
	}, "the server refuses the subscription to another practice's feed")
}

// The feed carries what the practice sees of its referral, event by
// event, in the log's order: each message the referral as GET
// /v1/referrals/{id} showed it then (the last one equal to the answer),
// and nothing for what only the team sees.
func TestGPFeedCarriesTheReferralsChangesInOrder(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	agency := refer(t, h, "demo-ref-hsg01") // before the practice's: in the feed's order, applied first
	id := refer(t, h, keyGP)
	walk := events.ServiceFacts{ID: "VCS001-walk", Name: "Sale Walking Group", OrganisationID: "VCS001", AcceptsReferrals: true, Capacity: "open"}
	act(t, h, id, "U12345", teamKind, events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"})
	act(t, h, id, "U12345", teamKind, events.RecordContact{Outcome: "reached", Method: "phone"})
	act(t, h, id, "U12345", teamKind, events.AddCaseNote{NoteID: "n1", Text: "Talked about her late husband."})
	act(t, h, id, "U12345", teamKind, events.RecordRisk{RiskID: "r1", Kind: "other", Detail: "stairs at home"})
	act(t, h, id, "U12345", teamKind, events.ReferOnward{OnwardReferralID: "o1", Service: walk, Share: []string{"name"}})
	act(t, h, id, "VCS001", vcsKind, events.AcceptOnward{OnwardReferralID: "o1"})
	act(t, h, id, "U12345", teamKind, events.Close{Reason: "goals_met"})

	want := []struct{ event, status string }{
		{"referral_received", "referred"}, {"link_worker_assigned", "assigned"}, {"contact_made", "in_progress"},
		{"onward_referral_made", "in_progress"}, {"onward_referral_accepted", "connected"}, {"journey_closed", "closed"},
	}
	filter := referrals.FeedSubject("A81001", id, "*")
	h.Eventually(func() bool { return len(h.StreamMessages(referrals.FeedStream, filter)) >= len(want) }, "the journey's changes reach FEED_GP")
	msgs := h.StreamMessages(referrals.FeedStream, filter)
	if len(msgs) != len(want) {
		t.Fatalf("FEED_GP holds %d messages of the journey, want %d", len(msgs), len(want))
	}
	var last uint64
	var fm referrals.FeedMessage
	for i, m := range msgs {
		fm = decodeFeed(t, m.Data)
		if m.Subject != referrals.FeedSubject("A81001", id, want[i].event) || fm.Event != want[i].event ||
			fm.Referral == nil || fm.Referral.Status != want[i].status {
			t.Errorf("message %d: %s %s, want %s with status %s", i, m.Subject, m.Data, want[i].event, want[i].status)
		}
		if s := sourceOf(t, m.Header); s <= last {
			t.Errorf("message %d out of the log's order: source %d after %d", i, s, last)
		} else {
			last = s
		}
		if m.Header.Get(referrals.HeaderFeedEventID) != fm.EventID || fm.EventID == "" || fm.JourneyID != id || fm.Practice != "A81001" {
			t.Errorf("message %d: headers %v, body %s", i, m.Header, m.Data)
		}
		for _, leak := range []string{"husband", "stairs", "9434765919", "Jane", "bereaved"} {
			if strings.Contains(string(m.Data), leak) {
				t.Errorf("message %d holds %q: %s", i, leak, m.Data)
			}
		}
	}
	// The last message's referral is what the practice's GET answers.
	_, body := h.Do("GET", "/v1/referrals/"+id, keyGP, nil)
	var fromAPI, fromFeed map[string]any
	feedView, _ := json.Marshal(fm.Referral)
	if err := json.Unmarshal(body, &fromAPI); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(feedView, &fromFeed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromAPI, fromFeed) {
		t.Errorf("the feed's last referral differs from GET's:\n feed %s\n GET  %s", feedView, body)
	}
	// A referral from a referring agency is not the GP feed's.
	if ms := h.StreamMessages(referrals.FeedStream, "lw.feed.gp.HSG01.>"); len(ms) != 0 {
		t.Errorf("FEED_GP holds %d messages of the agency's referral %s: %s", len(ms), agency, ms[0].Subject)
	}
}

// After an erasure FEED_GP holds nothing of the person's journey but the
// erasure notice: the earlier messages are securely deleted (their bytes
// gone from the stream's files, not only from its index), and the notice
// carries no referral.
func TestGPFeedErasureLeavesOnlyTheNotice(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	id := refer(t, h, keyGP)
	worker := fmt.Sprintf("Quillfeather%d", time.Now().UnixNano()%1_000_000)
	act(t, h, id, "U12345", teamKind, events.Assign{WorkerID: "lw-9", WorkerName: worker})
	keep := refer(t, h, keyGP) // another journey: untouched
	filter := referrals.FeedSubject("A81001", id, "*")
	h.Eventually(func() bool {
		return len(h.StreamMessages(referrals.FeedStream, filter)) == 2 && len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubject("A81001", keep, "*"))) == 1
	}, "received and assigned on the feed")
	if len(feedFilesHolding(t, h.Data, worker)) == 0 {
		t.Fatal("before the erasure no file of FEED_GP holds the worker's name: the test would prove nothing")
	}
	act(t, h, id, "OPERATOR", eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN, events.ErasePersonalData{})
	h.Eventually(func() bool {
		ms := h.StreamMessages(referrals.FeedStream, filter)
		return len(ms) == 1 && ms[0].Subject == referrals.FeedSubject("A81001", id, referrals.FeedErased)
	}, "the feed holds only the erasure notice of the journey")
	notice := decodeFeed(t, h.StreamMessages(referrals.FeedStream, filter)[0].Data)
	if notice.Referral != nil || notice.JourneyID != id || notice.SourceID == "" || notice.Event != referrals.FeedErased {
		t.Errorf("the erasure notice: %+v", notice)
	}
	if n := len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubject("A81001", keep, "*"))); n != 1 {
		t.Errorf("the other journey's messages: %d, want 1", n)
	}
	if files := feedFilesHolding(t, h.Data, worker); len(files) != 0 {
		t.Errorf("after the erasure files of FEED_GP hold what its messages held: %v", files)
	}
	// Nor does the view's outbox keep a message of the journey.
	err := h.Views().View(referrals.ProjectionName).ForEach("q.", func(k string, v []byte) error {
		if bytes.Contains(v, []byte(id)) && !bytes.Contains(v, []byte(`"erased"`)) {
			t.Errorf("the outbox still holds %s: %s", k, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// feedFilesHolding lists the files of FEED_GP's store under dir holding s.
func feedFilesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	sep := string(filepath.Separator)
	return slices.DeleteFunc(hubtest.FilesHolding(t, dir, s), func(f string) bool {
		return !strings.Contains(f, sep+referrals.FeedStream+sep)
	})
}

// A rebuild of the referrals view from the log publishes nothing again;
// the feed goes on after it from where it was.
func TestGPFeedIsNotRepublishedByARebuild(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("referrals"))
	a, b := refer(t, h, keyGP), refer(t, h, keyGP2)
	act(t, h, a, "U12345", teamKind, events.Assign{WorkerID: "lw-7", WorkerName: "Sam Link"})
	h.Eventually(func() bool { return len(h.StreamMessages(referrals.FeedStream, referrals.FeedSubjects)) == 3 }, "the feed holds received, received, assigned")
	var last uint64
	for _, m := range h.StreamMessages(referrals.FeedStream, referrals.FeedSubjects) {
		last = max(last, sourceOf(t, m.Header))
	}
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	cfg := hubtest.Config(t, hubtest.Services("referrals"), func(c *hub.Config) { c.Data = h.Data })
	if _, err := hub.RebuildViews(context.Background(), cfg, []string{referrals.ProjectionName}, nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	h2 := hubtest.Start(t, hubtest.Services("referrals"), func(c *hub.Config) { c.Data = h.Data })
	act(t, h2, b, "U12345", teamKind, events.Assign{WorkerID: "lw-8", WorkerName: "Ana"})
	h2.Eventually(func() bool { return len(h2.StreamMessages(referrals.FeedStream, referrals.FeedSubjects)) >= 4 }, "the new change reaches the feed")
	after := h2.StreamMessages(referrals.FeedStream, referrals.FeedSubjects)
	if len(after) != 4 {
		var subjects []string
		for _, m := range after {
			subjects = append(subjects, m.Subject)
		}
		t.Fatalf("after a rebuild the feed holds %d messages, want the 3 before and the new one: %v", len(after), subjects)
	}
	if m := after[3]; m.Subject != referrals.FeedSubject("A81002", b, "link_worker_assigned") || sourceOf(t, m.Header) <= last {
		t.Errorf("the message after the rebuild: %s at source %d (last before %d)", m.Subject, sourceOf(t, m.Header), last)
	}
}
