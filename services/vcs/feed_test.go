package vcs_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"linkway/services/vcs"
)

// collector gathers feed messages from a subscription.
type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (c *collector) add(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

func (c *collector) snapshot() []*nats.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}

func TestFeedCarriesOnlyTheOrganisationsMinimisedEvents(t *testing.T) {
	h := hubtest.Start(t)
	// A subscriber as an organisation's own system would be: its own
	// subjects only, over the hub's NATS.
	var mine collector
	sub, err := h.NC().Subscribe("lw.feed.vcs.VCS001.>", mine.add)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := h.NC().Flush(); err != nil {
		t.Fatal(err)
	}

	a := toOnward(t, h, walk, "name", "phone")
	b := toOnward(t, h, debt, "name")
	waitInInbox(t, h, vcs1Key, a.OnwardID)
	waitInInbox(t, h, vcs2Key, b.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	h.JSON("POST", "/v1/onward-referrals/"+b.OnwardID+"/decline", vcs2Key, map[string]string{"reason": "not_eligible"}, 200, nil)

	h.Eventually(func() bool { return len(mine.snapshot()) >= 2 }, "VCS001's feed delivers made and accepted")
	var subjects []string
	for _, m := range mine.snapshot() {
		subjects = append(subjects, m.Subject)
		var fm vcs.FeedMessage
		if err := json.Unmarshal(m.Data, &fm); err != nil {
			t.Fatalf("feed message is not JSON: %s", m.Data)
		}
		if fm.OrganisationID != "VCS001" || fm.OnwardReferral.OnwardReferralID == b.OnwardID {
			t.Errorf("VCS001's feed carries another organisation's event: %s", m.Data)
		}
		if l := leaks(string(m.Data)); len(l) > 0 || strings.Contains(string(m.Data), a.ID) {
			t.Errorf("feed message leaks %v or the journey id: %s", l, m.Data)
		}
		if m.Header.Get(vcs.HeaderFeedEventID) != fm.EventID || fm.EventID == "" {
			t.Errorf("feed message lacks its event id header: %v", m.Header)
		}
	}
	if len(subjects) != 2 || subjects[0] != "lw.feed.vcs.VCS001."+a.OnwardID+".made" || subjects[1] != "lw.feed.vcs.VCS001."+a.OnwardID+".accepted" {
		t.Errorf("VCS001's feed subjects: %v", subjects)
	}

	// The stream holds the feed for catching up, per organisation.
	ctx := context.Background()
	stream, err := h.JS().Stream(ctx, vcs.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("lw.feed.vcs.VCS002.>"))
		return err == nil && len(info.State.Subjects) == 2 &&
			info.State.Subjects["lw.feed.vcs.VCS002."+b.OnwardID+".made"] == 1 && info.State.Subjects["lw.feed.vcs.VCS002."+b.OnwardID+".declined"] == 1
	}, "FEED_VCS holds VCS002's made and declined")
}

func TestErasureBlanksTheInboxAndTheFeedSaysSo(t *testing.T) {
	h := hubtest.Start(t)
	var mine collector
	sub, err := h.NC().Subscribe("lw.feed.vcs.VCS001.*.erased", mine.add)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	a := toOnward(t, h, walk, "name", "phone", "notes")
	waitInInbox(t, h, vcs1Key, a.OnwardID)
	admin := journal.Meta{Actor: &eventsv1.Actor{OrganisationId: "OPERATOR", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN}}
	if _, err := h.Journal().Execute(context.Background(), a.ID, admin, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		_, body := h.Do("GET", "/v1/onward-referrals/"+a.OnwardID, vcs1Key, nil)
		return strings.Contains(string(body), `"erased":true`)
	}, "the item is marked erased")
	_, body := h.Do("GET", "/v1/onward-referrals/"+a.OnwardID, vcs1Key, nil)
	for _, x := range []string{"Jane", "Walker", "07700", gpNotes} {
		if strings.Contains(string(body), x) {
			t.Errorf("erased item still holds %q: %s", x, body)
		}
	}
	h.Eventually(func() bool { return len(mine.snapshot()) == 1 }, "the feed announces the erasure")
	if m := mine.snapshot()[0]; strings.Contains(string(m.Data), "Jane") {
		t.Errorf("the erasure message holds the name: %s", m.Data)
	}
	// What the feed held of the person is gone: only the notice stays.
	stream, err := h.JS().Stream(context.Background(), vcs.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(vcs.FeedSubject("VCS001", a.OnwardID, ">")))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 1 || info.State.Subjects[vcs.FeedSubject("VCS001", a.OnwardID, "erased")] != 1 {
		t.Errorf("after erasure the feed still holds %v", info.State.Subjects)
	}
}

// sourceSeq is a feed message's source: the JOURNEYS sequence of its event.
func sourceSeq(t *testing.T, m *jetstream.RawStreamMsg) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.Header.Get(vcs.HeaderSourceSeq), 10, 64)
	if err != nil {
		t.Fatalf("feed message %s has no %s: %v", m.Subject, vcs.HeaderSourceSeq, m.Header)
	}
	return n
}

// The feed carries each message once, in the log's order, with the
// JOURNEYS sequence of its event; a rebuild of the inbox view from the
// log publishes nothing again, and the feed goes on after it.
func TestFeedIsNotRepublishedByARebuild(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("vcs"))
	a := toOnward(t, h, walk, "name")
	b := toOnward(t, h, debt, "name")
	waitInInbox(t, h, vcs1Key, a.OnwardID)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/attendance", vcs1Key, map[string]any{"date": "2026-11-20", "attended": true}, 200, nil)
	h.Eventually(func() bool { return len(h.StreamMessages(vcs.FeedStream, vcs.FeedSubjects)) == 4 }, "the feed holds made, made, accepted, attendance")
	before := h.StreamMessages(vcs.FeedStream, vcs.FeedSubjects)
	var last uint64
	for _, m := range before {
		if s := sourceSeq(t, m); s <= last {
			t.Errorf("feed out of the log's order: %s at source %d after %d", m.Subject, s, last)
		} else {
			last = s
		}
	}
	h.Stop()
	if err := h.Wait(); err != nil {
		t.Fatal(err)
	}
	cfg := hubtest.Config(t, hubtest.Services("vcs"), func(c *hub.Config) { c.Data = h.Data })
	if _, err := hub.RebuildViews(context.Background(), cfg, []string{vcs.InboxProjection}, nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	h2 := hubtest.Start(t, hubtest.Services("vcs"), func(c *hub.Config) { c.Data = h.Data })
	waitInInbox(t, h2, vcs2Key, b.OnwardID)
	h2.JSON("POST", "/v1/onward-referrals/"+b.OnwardID+"/decline", vcs2Key, map[string]string{"reason": "no_capacity"}, 200, nil)
	h2.Eventually(func() bool { return len(h2.StreamMessages(vcs.FeedStream, vcs.FeedSubjects)) >= 5 }, "the decline reaches the feed")
	after := h2.StreamMessages(vcs.FeedStream, vcs.FeedSubjects)
	if len(after) != 5 {
		var subjects []string
		for _, m := range after {
			subjects = append(subjects, m.Subject)
		}
		t.Fatalf("after a rebuild the feed holds %d messages, want the 4 before and the decline: %v", len(after), subjects)
	}
	if m := after[4]; m.Subject != vcs.FeedSubject("VCS002", b.OnwardID, "declined") || sourceSeq(t, m) <= last {
		t.Errorf("the message after the rebuild: %s at source %d (last before %d)", m.Subject, sourceSeq(t, m), last)
	}
}

// While the feed cannot be published (its stream gone), the inbox goes on
// answering; once it can, the messages the outbox kept are published.
func TestFeedCatchesUpAfterAnOutage(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("vcs"))
	ctx := context.Background()
	a := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, a.OnwardID)
	h.Eventually(func() bool { return len(h.StreamMessages(vcs.FeedStream, vcs.FeedSubjects)) == 1 }, "made is on the feed")
	if err := h.JS().DeleteStream(ctx, vcs.FeedStream); err != nil {
		t.Fatal(err)
	}
	h.JSON("POST", "/v1/onward-referrals/"+a.OnwardID+"/accept", vcs1Key, nil, 200, nil)
	b := toOnward(t, h, walk, "phone")
	waitInInbox(t, h, vcs1Key, b.OnwardID)
	if _, err := h.JS().CreateOrUpdateStream(ctx, vcs.FeedStreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		return len(h.StreamMessages(vcs.FeedStream, vcs.FeedSubject("VCS001", a.OnwardID, "accepted"))) == 1 &&
			len(h.StreamMessages(vcs.FeedStream, vcs.FeedSubject("VCS001", b.OnwardID, "made"))) == 1
	}, "what happened during the outage reaches the feed")
}

// After an erasure nothing of the person is readable anywhere under the
// hub's data folder: the inbox's items and outbox are erased from the view
// store, and the feed's messages securely deleted from FEED_VCS (a purge
// would leave their bytes in the stream's block files).
func TestErasureLeavesNoBytesInTheDataFolder(t *testing.T) {
	h := hubtest.Start(t, hubtest.Services("vcs"))
	ctx := context.Background()
	family := fmt.Sprintf("Quillfeather%d", time.Now().UnixNano()%1_000_000)
	steps := onwardSteps(walk, "name", "phone", "notes")
	steps[0].cmd.(events.Refer).Referral.Person.FamilyName = family
	jid := events.ReferralJourneyID("A81001", "VCS-ERASE-"+events.NewID())
	for _, s := range steps {
		if _, err := h.Journal().Execute(ctx, jid, s.meta, s.cmd); err != nil {
			t.Fatal(err)
		}
	}
	oid := steps[len(steps)-1].cmd.(events.ReferOnward).OnwardReferralID
	waitInInbox(t, h, vcs1Key, oid)
	h.JSON("POST", "/v1/onward-referrals/"+oid+"/accept", vcs1Key, nil, 200, nil)
	h.Eventually(func() bool { return len(h.StreamMessages(vcs.FeedStream, vcs.FeedSubject("VCS001", oid, "*"))) == 2 }, "made and accepted on the feed")
	if len(hubtest.FilesHolding(t, h.Data, family)) == 0 {
		t.Fatalf("before the erasure no file holds the name: the test would prove nothing")
	}
	admin := journal.Meta{Actor: &eventsv1.Actor{OrganisationId: "OPERATOR", OrganisationKind: eventsv1.OrganisationKind_ORGANISATION_KIND_ADMIN}}
	if _, err := h.Journal().Execute(ctx, jid, admin, events.ErasePersonalData{}); err != nil {
		t.Fatal(err)
	}
	h.Eventually(func() bool {
		ms := h.StreamMessages(vcs.FeedStream, vcs.FeedSubject("VCS001", oid, "*"))
		return len(ms) == 1 && strings.HasSuffix(ms[0].Subject, ".erased")
	}, "the feed holds only the erasure notice")
	if files := hubtest.FilesHolding(t, h.Data, family); len(files) != 0 {
		t.Errorf("after the erasure files under the data folder hold the person's name: %v", files)
	}
}
