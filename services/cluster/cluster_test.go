package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
)

// form is the shape of one run: the short one runs in `make test` (and `make test-cluster-short`), the
// long one (LINKWAY_CLUSTER=long) in `make test-cluster`.
type form struct {
	name       string
	nodeKills  int           // kill -9 of a NATS node, each restarted
	hubEvery   time.Duration // kill -9 of a hub replica this often
	settle     time.Duration // pause after a restarted node is healthy
	workers    int
	maxJourney int64
}

var (
	shortForm = form{name: "short", nodeKills: 4, hubEvery: 12 * time.Second, settle: 2 * time.Second, workers: 8, maxJourney: 20_000}
	longForm  = form{name: "long", nodeKills: 24, hubEvery: 20 * time.Second, settle: 3 * time.Second, workers: 12, maxJourney: 200_000}
)

// maxWriteGap is the longest the cluster may go without an acknowledged
// write while a quorum of nodes is up, leader elections aside: nats-server
// (2.15) elects a new leader for a raft group 4 to 9 s after its leader
// stops answering (minElectionTimeout, maxElectionTimeout: not settable in
// a config), and a referral needs two groups' leaders (the person keys
// bucket and the JOURNEYS stream). So the time within electionWindow of a
// node's kill -9 is not counted against maxWriteGap, and no gap at all may
// pass maxAnyGap.
const (
	maxWriteGap    = 5 * time.Second
	electionWindow = 9 * time.Second
	maxAnyGap      = 20 * time.Second
)

func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster and 2 hub processes")
	}
	f := shortForm
	if os.Getenv("LINKWAY_CLUSTER") == "long" {
		f = longForm
	}
	began := time.Now()
	dir := t.TempDir()
	natsBin, linkwayBin := build(t, dir)
	nodes := startCluster(t, natsBin, dir)
	// One replica first, so that the streams, buckets and consumers are
	// created once, then the second.
	var hubs []*hubReplica
	for _, name := range []string{"r1", "r2"} {
		h := startHub(t, linkwayBin, dir, name, nodes)
		if err := waitFor(90*time.Second, 200*time.Millisecond, h.ready); err != nil {
			t.Fatalf("%s not ready: %v\n%s", h.name, err, h.tail(30))
		}
		hubs = append(hubs, h)
	}
	t.Logf("cluster up and both replicas ready in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*proc{nodes[0].proc, nodes[1].proc, nodes[2].proc, hubs[0].proc, hubs[1].proc} {
				t.Logf("---- %s (last lines)\n%s", p.name, p.tail(15))
			}
		}
	})

	// The load runs until the fault schedule is done, and stops by itself.
	hist := newHistory()
	gen := &loadGen{hubs: hubs, hist: hist, max: f.maxJourney, opTimeout: 30 * time.Second,
		client: &http.Client{Timeout: 5 * time.Second}}
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 15*time.Minute)
	defer stopLoad()
	loadStart := time.Now()
	timeline := &faultLog{start: loadStart}
	workers := gen.run(loadCtx, f.workers)
	if err := waitFor(30*time.Second, 50*time.Millisecond, func() error {
		if len(hist.referralsAckedSnapshot()) == 0 {
			return fmt.Errorf("no referral acknowledged yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Hub replicas die separately, on their own clock.
	hubKills := 0
	faultsDone := make(chan struct{})
	var endFaults sync.Once
	stopFaults := func() { endFaults.Do(func() { close(faultsDone) }) }
	defer stopFaults() // also when a check below stops the test
	var hubWG sync.WaitGroup
	hubWG.Add(1)
	go func() {
		defer hubWG.Done()
		r := rand.New(rand.NewPCG(7, 7))
		for {
			select {
			case <-faultsDone:
				return
			case <-time.After(f.hubEvery):
			}
			// Kill one only while the other serves: a replica down at a
			// time, as a PodDisruptionBudget allows.
			k := r.IntN(len(hubs))
			h, other := hubs[k], hubs[1-k]
			if other.ready() != nil {
				continue
			}
			timeline.add("kill -9 hub " + h.name)
			h.kill() // its supervisor starts it again a second later
			hubKills++
			if err := waitFor(2*time.Minute, 200*time.Millisecond, h.ready); err == nil {
				timeline.add("hub " + h.name + " ready again")
			}
		}
	}()

	// kill -9 a random NATS node, restart it, wait until it is healthy
	// (so that a quorum is always up), and again.
	r := rand.New(rand.NewPCG(1, 2))
	var kills []time.Time
	for i := range f.nodeKills {
		n := nodes[r.IntN(len(nodes))]
		timeline.add("kill -9 NATS " + n.name)
		kills = append(kills, time.Now())
		n.kill()
		time.Sleep(time.Duration(500+r.IntN(1500)) * time.Millisecond)
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		timeline.add("NATS " + n.name + " restarted")
		if err := waitFor(90*time.Second, 100*time.Millisecond, n.healthy); err != nil {
			t.Fatalf("kill %d: %s not healthy again: %v\n%s", i+1, n.name, err, n.tail(30))
		}
		timeline.add("NATS " + n.name + " healthy")
		time.Sleep(f.settle)
	}
	stopFaults()
	hubWG.Wait()
	// The faults are over: the load goes on (bounded) until a whole
	// journey, referral to VCS acceptance, has gone through at least once,
	// so that "no progress" below means a wedged hub rather than bad luck
	// in which leaders a short schedule's kills hit.
	_ = waitFor(60*time.Second, 200*time.Millisecond, func() error {
		hist.mu.Lock()
		defer hist.mu.Unlock()
		if len(hist.acceptsAcked) == 0 {
			return errors.New("no acceptance acknowledged yet")
		}
		return nil
	})
	loadEnd := time.Now()
	stopLoad()
	workers.Wait()
	gen.pending.Wait()

	// Heal: every node healthy, both replicas ready.
	for _, n := range nodes {
		if err := waitFor(60*time.Second, 100*time.Millisecond, n.healthy); err != nil {
			t.Fatalf("%s not healthy after the faults: %v", n.name, err)
		}
	}
	for _, h := range hubs {
		if err := waitFor(90*time.Second, 200*time.Millisecond, h.ready); err != nil {
			t.Fatalf("%s not ready after the faults: %v\n%s", h.name, err, h.tail(30))
		}
	}

	// Let what the hubs still hold land before the log is read: a command
	// whose client gave up when the load stopped is appended all the same
	// if it was queued. Each publish waits at most the journal's
	// PublishTimeout, and a batch that fails is published again one by
	// one: the log is final once its last sequence has not moved for
	// longer than two of those.
	if err := waitLogQuiet(nodes, 2*journal.DefaultConfig().PublishTimeout+2*time.Second, 3*time.Minute); err != nil {
		t.Fatalf("the log did not settle after the load: %v", err)
	}

	// Read the log itself (the API may still be electing leaders: retry).
	var read logContents
	if err := waitFor(90*time.Second, time.Second, func() (err error) {
		read, err = readLog(nodes)
		return err
	}); err != nil {
		t.Fatalf("read the log: %v", err)
	}
	hist.mu.Lock()
	attemptedJourneys := map[string]bool{}
	for _, jid := range hist.referralsAttempted {
		attemptedJourneys[jid] = true
	}
	ackedRefs := len(hist.referralsAcked)
	var lost, unexpected []string
	for jid := range hist.referralsAcked {
		if strings.HasPrefix(jid, "mismatch:") {
			t.Errorf("a resent referral answered another journey id: %s", jid)
			continue
		}
		if read.referrals[jid] == 0 {
			lost = append(lost, jid)
		}
	}
	for jid := range read.referrals {
		if !attemptedJourneys[jid] {
			unexpected = append(unexpected, jid)
		}
	}
	for oid := range hist.acceptsAcked {
		if read.accepts[oid] == 0 {
			lost = append(lost, "accept "+oid)
		}
	}
	for oid := range read.accepts {
		if !hist.acceptsAttempted[oid] {
			unexpected = append(unexpected, "accept "+oid)
		}
	}
	// A definite refusal of a referral that is in the log anyway is a
	// wrong answer: the practice was told it failed.
	var refusedWritten []string
	for jid, why := range hist.referralsRefused {
		if read.referrals[jid] > 0 && !hist.referralsAcked[jid] {
			refusedWritten = append(refusedWritten, jid+" ("+why+")")
		}
	}
	attemptedRefs, attemptedAccepts, ackedAccepts := len(hist.referralsAttempted), len(hist.acceptsAttempted), len(hist.acceptsAcked)
	ackedJourneys := map[string]bool{}
	for jid := range hist.referralsAcked {
		ackedJourneys[jid] = true
	}
	acceptsAcked := copyOf(hist.acceptsAcked)
	hist.mu.Unlock()
	duplicated := 0
	for _, c := range read.referrals {
		duplicated += c - 1
	}
	for _, c := range read.accepts {
		duplicated += c - 1
	}
	duplicated += read.duplicateMsgIDs
	gap, gapAt := hist.longestGap(loadStart, loadEnd, nil, 0)
	counted, countedAt := hist.longestGap(loadStart, loadEnd, kills, electionWindow)

	// Views: every acknowledged referral is visible to its practice on a
	// surviving replica, and every acknowledged acceptance in the inbox.
	invisible := visibleCheck(t, hubs, ackedJourneys, acceptsAcked)

	t.Logf("cluster fault test (%s form): requests %d (failed %d, retried %d); referrals attempted %d, acknowledged %d; "+
		"VCS accepts attempted %d, acknowledged %d; events in the log %d; lost %d, unexpected %d, duplicated %d; "+
		"refused (4xx) but written %d; NATS node kills %d, hub replica kills %d; longest write gap %s (from %s after the load began), %s outside election windows (from %s); "+
		"not visible in views %d; load %s, test %s",
		f.name, hist.requests.Load(), hist.failures.Load(), hist.retries.Load(), attemptedRefs, ackedRefs,
		attemptedAccepts, ackedAccepts, read.events, len(lost), len(unexpected), duplicated, len(refusedWritten),
		f.nodeKills, hubKills, gap.Round(time.Millisecond), gapAt.Sub(loadStart).Round(time.Millisecond),
		counted.Round(time.Millisecond), countedAt.Sub(loadStart).Round(time.Millisecond),
		invisible, loadEnd.Sub(loadStart).Round(time.Second), time.Since(began).Round(time.Second))
	for _, h := range hubs {
		ex := h.exits()
		t.Logf("hub %s: started %d times, %d exits by itself (beside %d kill -9s in all); last: %v",
			h.name, h.starts.Load(), len(ex), hubKills, ex[max(0, len(ex)-5):])
	}
	hist.mu.Lock()
	t.Logf("failed requests by route and answer: %v", hist.reasons)
	hist.mu.Unlock()
	if len(lost) > 0 {
		t.Errorf("lost %d acknowledged writes, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	if len(unexpected) > 0 {
		t.Errorf("%d writes in the log that were never attempted, e.g. %v", len(unexpected), unexpected[:min(5, len(unexpected))])
	}
	if len(refusedWritten) > 0 {
		t.Errorf("%d referrals answered with a refusal are in the log, e.g. %v", len(refusedWritten), refusedWritten[:min(3, len(refusedWritten))])
	}
	if duplicated > 0 {
		// Say which, so that a duplicate can be looked for in the log.
		var which []string
		for jid, c := range read.referrals {
			if c > 1 {
				which = append(which, fmt.Sprintf("referral of journey %s x%d", jid, c))
			}
		}
		for oid, c := range read.accepts {
			if c > 1 {
				which = append(which, fmt.Sprintf("acceptance of onward referral %s x%d", oid, c))
			}
		}
		t.Errorf("duplicated %d: %v; message ids seen twice: %d", duplicated, which[:min(10, len(which))], read.duplicateMsgIDs)
	}
	if invisible > 0 {
		t.Errorf("%d acknowledged writes not visible in the views", invisible)
	}
	t.Logf("faults (seconds after the load began): %s", timeline)
	if counted > maxWriteGap {
		t.Errorf("no acknowledged write for %s outside leader elections (from %s after the load began) while a quorum was up", counted, countedAt.Sub(loadStart))
	}
	if gap > maxAnyGap {
		t.Errorf("no acknowledged write for %s (from %s after the load began) while a quorum was up", gap, gapAt.Sub(loadStart))
	}
	if ackedRefs == 0 || ackedAccepts == 0 {
		t.Errorf("the load made no progress: %d referrals, %d accepts acknowledged", ackedRefs, ackedAccepts)
	}

	// Every replica's views equal a rebuild from the log: let each replica
	// apply what the log holds (a view still applying is behind, not
	// wrong), stop the replicas, rebuild every view from the log into a
	// fresh folder, and compare each replica's view store with it.
	for _, h := range hubs {
		waitCaughtUp(t, h, read.lastSeq, 2*time.Minute)
	}
	for _, h := range hubs {
		h.stop(syscall.SIGTERM)
	}
	// Each NATS feed holds every message once, in the log's order: its
	// publishers (one replica at a time, by lease, through node kills and
	// hub kills) publish expecting the stream's last sequence.
	for _, feed := range []string{"FEED_GP", "FEED_VCS"} {
		var (
			n   int
			bad []string
		)
		// The stream's group may still be electing a leader after the
		// last kill ("no responders"): read it again until it answers.
		err := waitFor(time.Minute, 500*time.Millisecond, func() (err error) {
			n, bad, err = feedOrder(nodes, feed)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", feed, err)
		}
		t.Logf("%s: %d messages, %d out of the log's order or twice", feed, n, len(bad))
		if n == 0 || len(bad) > 0 {
			t.Errorf("%s: %d messages; twice or out of order: %v", feed, n, bad[:min(5, len(bad))])
		}
	}
	fresh := filepath.Join(dir, "rebuild", "views")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := rebuild(ctx, linkwayBin, dir, fresh, nodes)
	cancel()
	if err != nil {
		t.Fatalf("linkway rebuild all: %v\n%s", err, out)
	}
	t.Logf("linkway rebuild all: %s", strings.TrimSpace(out))
	want, wantCPs := readViews(t, fresh)
	if len(want) == 0 {
		t.Error("the rebuild holds no views")
	}
	for _, h := range hubs {
		got, gotCPs := readViews(t, filepath.Join(dir, h.name, "views"))
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if gotCPs[name] != wantCPs[name] {
				t.Errorf("replica %s: view %s at sequence %d, the rebuild at %d", h.name, name, gotCPs[name], wantCPs[name])
			}
			diff := compareView(t, h.name+" view "+name, got[name], want[name])
			t.Logf("replica %s: view %s: %d entries, %d differ from a rebuild from the log", h.name, name, len(got[name]), diff)
		}
	}
}

func copyOf(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (h *history) referralsAckedSnapshot() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return copyOf(h.referralsAcked)
}

// logContents is what the JOURNEYS stream holds, counted.
type logContents struct {
	events          int
	lastSeq         uint64
	referrals       map[string]int // ReferralReceived per journey id
	accepts         map[string]int // OnwardReferralAccepted per onward id
	duplicateMsgIDs int
}

// waitLogQuiet returns once JOURNEYS' last sequence has not moved for
// quiet, or an error after within.
func waitLogQuiet(nodes []*natsNode, quiet, within time.Duration) error {
	nc, err := nats.Connect(natsURLs(nodes))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var last uint64
	var since time.Time
	return waitFor(within, 500*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream, err := js.Stream(ctx, events.JourneyStream)
		if err != nil {
			return err // electing a leader still: ask again
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if seq := info.State.LastSeq; since.IsZero() || seq != last {
			last, since = seq, time.Now()
		}
		if d := time.Since(since); d < quiet {
			return fmt.Errorf("the log's last sequence %d has stood for %s of %s", last, d.Round(time.Millisecond), quiet)
		}
		return nil
	})
}

// readLog reads the whole JOURNEYS stream with an ordered consumer.
func readLog(nodes []*natsNode) (logContents, error) {
	out := logContents{referrals: map[string]int{}, accepts: map[string]int{}}
	nc, err := nats.Connect(natsURLs(nodes))
	if err != nil {
		return out, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, events.JourneyStream)
	if err != nil {
		return out, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return out, err
	}
	out.lastSeq = info.State.LastSeq
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return out, err
	}
	msgIDs := map[string]bool{}
	for last := uint64(0); last < info.State.LastSeq; {
		// A fetch waits for its whole batch: never ask for more than is left.
		batch, err := cons.Fetch(int(min(1000, info.State.Msgs-uint64(out.events))), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return out, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			if md.Sequence.Stream <= last {
				// Delivered again by the reading consumer: not a second
				// message in the log.
				continue
			}
			last = md.Sequence.Stream
			out.events++
			if id := m.Headers().Get(jetstream.MsgIDHeader); id != "" {
				if msgIDs[id] {
					out.duplicateMsgIDs++
				}
				msgIDs[id] = true
			}
			env, err := journal.Decode(m.Data())
			if err != nil {
				return out, fmt.Errorf("seq %d: %w", last, err)
			}
			switch e := env.GetEvent().(type) {
			case *eventsv1.Envelope_ReferralReceived:
				out.referrals[env.GetJourneyId()]++
			case *eventsv1.Envelope_OnwardReferralAccepted:
				out.accepts[e.OnwardReferralAccepted.GetOnwardReferralId()]++
			}
		}
		if err := batch.Error(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// feedOrder reads a feed's stream whole and returns how many messages it
// holds and those whose source (Lw-Source-Seq, Lw-Source-Part: the
// journey event and which of its messages) is not after the one before
// it: a message published twice, or out of the log's order.
func feedOrder(nodes []*natsNode, name string) (int, []string, error) {
	nc, err := nats.Connect(natsURLs(nodes))
	if err != nil {
		return 0, nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	info := stream.CachedInfo()
	if info.State.Msgs == 0 {
		return 0, nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, nil, err
	}
	var (
		n           int
		bad         []string
		last        uint64
		prevSeq     uint64
		prevPart    int
		prevSubject string
	)
	for last < info.State.LastSeq && n < int(info.State.Msgs) {
		batch, err := cons.Fetch(min(1000, int(info.State.Msgs)-n), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return n, bad, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return n, bad, err
			}
			if md.Sequence.Stream <= last {
				continue // delivered again to this reader
			}
			last = md.Sequence.Stream
			n++
			seq, err := strconv.ParseUint(m.Headers().Get("Lw-Source-Seq"), 10, 64)
			if err != nil {
				return n, bad, fmt.Errorf("message %d (%s): Lw-Source-Seq: %w", last, m.Subject(), err)
			}
			part, _ := strconv.Atoi(m.Headers().Get("Lw-Source-Part"))
			if seq < prevSeq || (seq == prevSeq && part <= prevPart) {
				bad = append(bad, fmt.Sprintf("%s from JOURNEYS %d/%d after %s from %d/%d", m.Subject(), seq, part, prevSubject, prevSeq, prevPart))
			}
			prevSeq, prevPart, prevSubject = seq, part, m.Subject()
		}
		if err := batch.Error(); err != nil {
			return n, bad, err
		}
	}
	return n, bad, nil
}

// visibleCheck polls until every acknowledged referral is visible to its
// practice (GET /v1/referrals/{id}) and every acknowledged acceptance shows
// in the organisation's inbox, on any replica; it returns how many are not.
func visibleCheck(t *testing.T, hubs []*hubReplica, journeys, accepts map[string]bool) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(h *hubReplica, key, path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, h.base()+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	pending := slices.Collect(func(yield func(string) bool) {
		for j := range journeys {
			if !yield(j) {
				return
			}
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; len(pending) > 0 && time.Now().Before(deadline); i++ {
		var still []string
		for _, j := range pending {
			if code, _ := get(hubs[i%2], gpKey, "/v1/referrals/"+j); code != http.StatusOK {
				still = append(still, j)
			}
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The inbox pages (API.md "Lists page"): read every page.
	inboxIDs := func(h *hubReplica) (map[string]string, bool) {
		ids := map[string]string{}
		token := ""
		for {
			code, b := get(h, vcsKey, "/v1/inbox?page_size=500&page_token="+url.QueryEscape(token))
			var page struct {
				OnwardReferrals []struct {
					ID     string `json:"onward_referral_id"`
					Status string `json:"status"`
				} `json:"onward_referrals"`
				Next string `json:"next_page_token"`
			}
			if code != http.StatusOK || json.Unmarshal(b, &page) != nil {
				return nil, false
			}
			for _, o := range page.OnwardReferrals {
				ids[o.ID] = o.Status
			}
			if page.Next == "" {
				return ids, true
			}
			token = page.Next
		}
	}
	missingAccepts := len(accepts)
	for i := 0; missingAccepts > 0 && time.Now().Before(deadline.Add(30*time.Second)); i++ {
		if ids, ok := inboxIDs(hubs[i%2]); ok {
			missingAccepts = len(accepts)
			for id := range accepts {
				if st, ok := ids[id]; ok && st != string(events.OnwardSent) {
					missingAccepts--
				}
			}
		}
		if missingAccepts > 0 {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if len(pending) > 0 {
		t.Logf("%d acknowledged referrals not visible, e.g. %v", len(pending), pending[:min(3, len(pending))])
	}
	if missingAccepts > 0 {
		t.Logf("%d acknowledged acceptances not in the inbox", missingAccepts)
	}
	return len(pending) + missingAccepts
}

// faultLog is the fault schedule as it happened, for reading a write gap
// against it.
type faultLog struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

func (l *faultLog) add(what string) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf("%.1f %s", time.Since(l.start).Seconds(), what))
	l.mu.Unlock()
}

func (l *faultLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "; ")
}
