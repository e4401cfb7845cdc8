package vcs_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
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

func TestFeedDeduplicatesARepublishedEvent(t *testing.T) {
	h := hubtest.Start(t)
	a := toOnward(t, h, walk, "name")
	waitInInbox(t, h, vcs1Key, a.OnwardID)
	ctx := context.Background()
	stream, err := h.JS().Stream(ctx, vcs.FeedStream)
	if err != nil {
		t.Fatal(err)
	}
	var first jetstream.RawStreamMsg
	h.Eventually(func() bool {
		m, err := stream.GetLastMsgForSubject(ctx, "lw.feed.vcs.VCS001."+a.OnwardID+".made")
		if err == nil {
			first = *m
		}
		return err == nil
	}, "the made event is on the feed")
	// A crash between publishing and checkpointing re-publishes with the
	// same Nats-Msg-Id: the stream must keep one copy.
	ack, err := h.JS().PublishMsg(ctx, &nats.Msg{Subject: first.Subject, Data: first.Data, Header: first.Header},
		jetstream.WithMsgID(first.Header.Get(vcs.HeaderFeedEventID)))
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate {
		t.Errorf("a re-published feed event was stored twice")
	}
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
