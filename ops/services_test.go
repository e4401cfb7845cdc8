package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/platform/apikeys"
)

// violationLog records the permission violations a server logs, whoever
// the client: a service that lacks a permission does not always say so
// itself (a refused request just times out), the server always does.
type violationLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *violationLog) Errorf(format string, v ...any) {
	if msg := fmt.Sprintf(format, v...); strings.Contains(msg, "Violation") {
		l.mu.Lock()
		l.seen = append(l.seen, msg)
		l.mu.Unlock()
	}
}
func (l *violationLog) Noticef(string, ...any) {}
func (l *violationLog) Warnf(string, ...any)   {}
func (l *violationLog) Fatalf(string, ...any)  {}
func (l *violationLog) Debugf(string, ...any)  {}
func (l *violationLog) Tracef(string, ...any)  {}

func (l *violationLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen...)
}

// startService runs `linkway serve <name> --nats nats://<user>:<password>@...`
// (no name: `linkway hub --nats ...` as the hub user) and waits until it is
// ready.
func startService(t *testing.T, s *server.Server, data, name string, demo bool) string {
	t.Helper()
	user := name
	cfg := hub.DefaultConfig()
	if name == "" {
		user = "hub"
	} else {
		cfg.Services = []string{name}
	}
	cfg.HTTP = "127.0.0.1:0"
	cfg.NATS = fmt.Sprintf("nats://%s:%s@%s", user, testPassword(user), strings.TrimPrefix(s.ClientURL(), "nats://"))
	cfg.Member = user + "-0"
	// One operator's master key for every process: a demo key is never
	// used without --demo, so the demo run must not make one.
	cfg.MasterKey = []byte("ops-test-master-key-32-bytes-ok!")
	cfg.Data = data
	// Each process keeps its own views (one reader per view store).
	cfg.ViewsDir = filepath.Join(data, "views-"+user)
	cfg.Demo = demo
	cfg.LeaseTTL = 3 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Outcomes.PseudonymKey = "ops-test-pseudonym-key"
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	// The context is the service's life, not a start-up deadline.
	h, err := hub.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("linkway serve %s as NATS user %s: %v", name, user, err)
	}
	t.Cleanup(func() {
		h.Stop()
		stopped := make(chan struct{})
		go func() { _ = h.Wait(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Errorf("linkway serve %s did not stop within 20 s", name)
		}
	})
	base := "http://" + h.Addr()
	waitFor(t, 20*time.Second, func() error {
		st, body := call(t, "GET", base+"/readyz", "", nil)
		if st != http.StatusOK {
			return fmt.Errorf("%s: /readyz %d %s", user, st, body)
		}
		return nil
	})
	return base
}

func call(t *testing.T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	return callLogged(t, nil, method, url, key, body)
}

// callLogged is call that, when the request fails, also reports the
// permission violations the server logged.
func callLogged(t *testing.T, log *violationLog, method, url, key string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	// Bounded: a request whose NATS operation the server refused would
	// otherwise wait for an acknowledgement that never comes.
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		if log != nil {
			t.Logf("violations: %v", log.all())
		}
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestServicesRunUnderTheirPermissions runs the real services, each alone
// as its own NATS user with the deployed permissions, takes a referral
// through them, and proves the server refused none of their operations.
func TestServicesRunUnderTheirPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts every service")
	}
	setTestPasswords(t)
	opts := checkConfig(t, "nats/test/single.conf")
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	opts.Port = server.RANDOM_PORT
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	log := &violationLog{}
	s.SetLoggerV2(log, false, false, false)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}

	// The operator's part: `linkway hub --nats ... --demo` as the hub user
	// creates the streams and buckets and seeds the demo organisations and
	// keys (the services may only read those), then stops.
	data := t.TempDir()
	t.Run("hub", func(t *testing.T) { startService(t, s, data, "", true) })

	// Demo keys live only in a --demo process's memory: make real ones, as
	// `linkway keys create` does with the hub user.
	hubConn := connect(t, s, "hub")
	hubJS, err := jetstream.New(hubConn.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ring, err := apikeys.OpenKeyRing(ctx, hubJS, 1)
	if err != nil {
		t.Fatal(err)
	}
	gpKey, _, err := ring.NewKey(ctx, "A81001", events.KindGP)
	if err != nil {
		t.Fatal(err)
	}
	lwKey, _, err := ring.NewKey(ctx, "U12345", events.KindLinkwork)
	if err != nil {
		t.Fatal(err)
	}

	bases := map[string]string{}
	for _, name := range hub.ServiceNames {
		bases[name] = startService(t, s, data, name, false)
	}

	st, body := call(t, "POST", bases["referrals"]+"/v1/referrals", gpKey, map[string]any{
		"source_id": "OPS-TEST-1",
		"patient": map[string]any{"nhs_number": "9434765919", "given_name": "Jane", "family_name": "Doe",
			"birth_date": "1956-03-14", "sex": "female", "postcode": "M33 7XX"},
		"reasons": []string{"422650009"}, "consent": map[string]any{"share_with_vcs": true},
		"link_work_team": "U12345", "urgency": "routine",
	})
	if st/100 != 2 {
		t.Fatalf("referral: %d %s", st, body)
	}
	var ref struct {
		JourneyID string `json:"journey_id"`
	}
	if err := json.Unmarshal(body, &ref); err != nil || ref.JourneyID == "" {
		t.Fatalf("referral answer %s: %v", body, err)
	}
	// The link-worker team sees it through the linkwork service's view.
	waitFor(t, 10*time.Second, func() error {
		st, body := call(t, "GET", bases["linkwork"]+"/v1/caseload", lwKey, nil)
		if st != http.StatusOK || !bytes.Contains(body, []byte(ref.JourneyID)) {
			return fmt.Errorf("caseload: %d %s", st, body)
		}
		return nil
	})
	// The outcomes service published the commissioner's pseudonymised line.
	operator := connect(t, s, "operator")
	js, err := jetstream.New(operator.Conn)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		info, err := js.Stream(context.Background(), "OUTCOMES_FEED")
		if err != nil {
			return err
		}
		if n := info.CachedInfo().State.Msgs; n == 0 {
			return fmt.Errorf("OUTCOMES_FEED has %d messages", n)
		}
		return nil
	})
	// The link worker refers the person on to the walking group; the VCS
	// organisation's own system, as its feed user, reads the onward
	// referral from its durable consumer on the real FEED_VCS stream, and
	// the commissioner's from OUTCOMES_FEED: the per-organisation
	// permissions hold against what the services really publish.
	for _, step := range []struct {
		path string
		body any
	}{
		{"/assign", map[string]any{"worker_id": "lw-7", "worker_name": "Sam Link"}},
		{"/contacts", map[string]any{"outcome": "reached", "method": "phone"}},
		{"/assessment", map[string]any{"needs": []string{"befriending"}, "goals": []map[string]string{{"text": "Join a walking group"}}}},
		{"/onward-referrals", map[string]any{"service_id": "VCS001-walk", "share": []string{"name", "needs"}}},
	} {
		if st, body := callLogged(t, log, "POST", bases["linkwork"]+"/v1/journeys/"+ref.JourneyID+step.path, lwKey, step.body); st/100 != 2 {
			t.Fatalf("linkwork %s: %d %s", step.path, st, body)
		}
	}
	readOwnFeed(t, s, "feed_vcs_VCS001", "FEED_VCS", "VCS001", "lw.feed.vcs.VCS001")
	readOwnFeed(t, s, "feed_outcomes_QYG", "OUTCOMES_FEED", "QYG", "lw.feed.outcomes.QYG")
	readOwnFeed(t, s, "feed_gp_A81001", "FEED_GP", "A81001", "lw.feed.gp.A81001")

	// The practice reads the journey back: an audited read.
	if st, body := call(t, "GET", bases["referrals"]+"/v1/referrals/"+ref.JourneyID, gpKey, nil); st != http.StatusOK {
		t.Fatalf("GP view: %d %s", st, body)
	}
	// The operators' service, where there is one: it reads the audit, and an
	// erasure appends and destroys the person's key.
	if slices.Contains(hub.ServiceNames, "admin") {
		adminKey, _, err := ring.NewKey(ctx, "OPERATOR", events.KindAdmin)
		if err != nil {
			t.Fatal(err)
		}
		// 200 proves the admin user may read the AUDIT stream; which reads
		// are recorded is the services' business (services/platform/audit).
		if st, body := callLogged(t, log, "GET", bases["admin"]+"/v1/admin/audit?journey="+ref.JourneyID, adminKey, nil); st != http.StatusOK {
			t.Fatalf("audit: %d %s", st, body)
		}
		if st, body := callLogged(t, log, "POST", bases["admin"]+"/v1/admin/erasures", adminKey,
			map[string]string{"nhs_number": "9434765919"}); st/100 != 2 {
			t.Fatalf("erasure: %d %s", st, body)
		}
		// The practice's feed drops the journey: the referrals service, as
		// its own user, securely deletes its messages and leaves the notice.
		waitFor(t, 10*time.Second, func() error {
			feed, err := js.Stream(context.Background(), "FEED_GP")
			if err != nil {
				return err
			}
			info, err := feed.Info(context.Background(), jetstream.WithSubjectFilter("lw.feed.gp.A81001."+ref.JourneyID+".>"))
			if err != nil {
				return err
			}
			if len(info.State.Subjects) != 1 || info.State.Subjects["lw.feed.gp.A81001."+ref.JourneyID+".erased"] != 1 {
				return fmt.Errorf("FEED_GP holds %v of the erased journey", info.State.Subjects)
			}
			return nil
		})
	}
	if v := log.all(); len(v) > 0 {
		t.Fatalf("the server refused the services %d operations, first: %v", len(v), v[:min(len(v), 10)])
	}
	// And the log does catch a refusal when there is one.
	vcs := connect(t, s, "vcs")
	if err := vcs.Publish("lw.feed.outcomes.QYG.forged", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if v := log.all(); len(v) == 0 || !strings.Contains(v[0], "lw.feed.outcomes.QYG.forged") {
			return fmt.Errorf("violations logged: %v", v)
		}
		return nil
	})
}

// readOwnFeed connects as an organisation's feed user, the way its own
// system would, and waits for a message on its durable consumer.
func readOwnFeed(t *testing.T, s *server.Server, user, stream, org, prefix string) {
	t.Helper()
	c := connect(t, s, user, nats.CustomInboxPrefix("_INBOX_"+org))
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: org, FilterSubject: prefix + ".>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("%s: its consumer on %s: %v", user, stream, err)
	}
	waitFor(t, 10*time.Second, func() error {
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			if !strings.HasPrefix(m.Subject(), prefix+".") {
				t.Fatalf("%s received %s", user, m.Subject())
			}
			_ = m.Ack()
			n++
		}
		if n == 0 {
			return fmt.Errorf("%s: nothing on %s yet", user, stream)
		}
		return nil
	})
	c.noViolations(t)
}
