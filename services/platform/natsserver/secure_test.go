package natsserver_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/datadir"
	"linkway/services/platform/natsserver"
)

// secure starts the hub's server on a random port in dir.
func secure(t *testing.T, dir string) (addr string, users *natsserver.Users) {
	t.Helper()
	ns, users, err := natsserver.StartSecure(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.Addr().String(), users
}

func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Timeout(2*time.Second), nats.MaxReconnects(0))...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// TestListenerAdmitsOnlyItsUsers: the hub's server refuses a client
// without credentials or with a wrong password, admits the generated
// admin and hub users, and keeps the credentials owner-only.
func TestListenerAdmitsOnlyItsUsers(t *testing.T) {
	dir := t.TempDir()
	addr, users := secure(t, dir)

	if _, err := connect(t, "nats://"+addr); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("a client without credentials: %v, want an authorization violation", err)
	}
	if _, err := connect(t, "nats://"+addr, nats.UserInfo(natsserver.AdminUser, "guess")); err == nil {
		t.Fatal("a wrong password was admitted")
	}
	for _, user := range []string{natsserver.AdminUser, natsserver.HubUser} {
		nc, err := connect(t, users.URL(user, addr))
		if err != nil {
			t.Fatalf("%s with the generated credentials: %v", user, err)
		}
		js, _ := jetstream.New(nc)
		if _, err := js.AccountInfo(context.Background()); err != nil {
			t.Errorf("%s: JetStream account info: %v", user, err)
		}
	}

	fi, err := os.Stat(users.Path)
	if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(users.Path) != dir {
		t.Fatalf("credentials file %s: %v %v, want mode 0600 in the data folder", users.Path, fi.Mode(), err)
	}
	// The passwords stay across restarts: the tools keep working.
	again, err := natsserver.EnsureUsers(dir)
	if err != nil || again.Password(natsserver.HubUser) != users.Password(natsserver.HubUser) || users.Password(natsserver.HubUser) == "" {
		t.Errorf("passwords changed on a second read (%v)", err)
	}
	if loaded, err := natsserver.LoadUsers(dir); err != nil || loaded.Password(natsserver.AdminUser) != users.Password(natsserver.AdminUser) {
		t.Errorf("LoadUsers: %v", err)
	}
}

// TestFeedUserReadsOnlyItsFeed: a per-organisation feed user of
// accounts.conf may create its own feed consumer, and may not read the
// views, the API keys, the web sessions or the person keys.
func TestFeedUserReadsOnlyItsFeed(t *testing.T) {
	dir := t.TempDir()
	addr, users := secure(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	hub, err := connect(t, users.URL(natsserver.HubUser, addr))
	if err != nil {
		t.Fatal(err)
	}
	hjs, _ := jetstream.New(hub)
	for _, bucket := range []string{"view_caseload", "lw_keys", "lw_web_sessions", "lw_person_keys"} {
		kv, err := hjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
		if err != nil {
			t.Fatalf("hub creates %s: %v", bucket, err)
		}
		if _, err := kv.Put(ctx, "k", []byte("secret of "+bucket)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hjs.CreateStream(ctx, jetstream.StreamConfig{Name: "FEED_VCS", Subjects: []string{"lw.feed.vcs.>"}}); err != nil {
		t.Fatal(err)
	}

	const feedUser, org = "feed_vcs_VCS001", "VCS001"
	if users.Password(feedUser) == "" {
		t.Fatalf("no password made for %s", feedUser)
	}
	feed, err := connect(t, users.URL(feedUser, addr), nats.CustomInboxPrefix("_INBOX_"+org))
	if err != nil {
		t.Fatalf("the feed user cannot connect: %v", err)
	}
	fjs, err := jetstream.NewWithAPIPrefix(feed, "$JS.API")
	if err != nil {
		t.Fatal(err)
	}
	// Its own feed: allowed.
	if _, err := fjs.CreateOrUpdateConsumer(ctx, "FEED_VCS", jetstream.ConsumerConfig{
		Durable: org, FilterSubject: "lw.feed.vcs." + org + ".>"}); err != nil {
		t.Fatalf("the feed user cannot create its own consumer: %v", err)
	}
	// Everything else: refused, and nothing of it comes back.
	for _, bucket := range []string{"view_caseload", "lw_keys", "lw_web_sessions", "lw_person_keys"} {
		for _, subj := range []string{
			"$JS.API.DIRECT.GET.KV_" + bucket + ".$KV." + bucket + ".k",
			"$JS.API.STREAM.INFO.KV_" + bucket,
			"$JS.API.STREAM.MSG.GET.KV_" + bucket,
		} {
			msg, err := feed.Request(subj, []byte(`{"last_by_subj":"$KV.`+bucket+`.k"}`), 500*time.Millisecond)
			if err == nil && strings.Contains(string(msg.Data), "secret") {
				t.Errorf("the feed user read %s through %s", bucket, subj)
			}
			if err == nil {
				t.Errorf("the feed user got an answer on %s: %s", subj, msg.Data)
			}
		}
		// Nor may it watch the bucket's subjects.
		sub, err := feed.SubscribeSync("$KV." + bucket + ".>")
		if err == nil {
			if _, err := hjs.Publish(ctx, "$KV."+bucket+".k", []byte("secret again")); err != nil {
				t.Fatal(err)
			}
			if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
				t.Errorf("the feed user saw %s: %s", bucket, m.Data)
			}
		}
	}
	// Nor write an API key.
	if _, err := feed.Request("$KV.lw_keys.forged", []byte(`{"org_id":"OPERATOR","kind":"admin"}`), 500*time.Millisecond); err == nil {
		t.Error("the feed user wrote into the keys bucket")
	}
	kv, _ := hjs.KeyValue(ctx, "lw_keys")
	if _, err := kv.Get(ctx, "forged"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("a forged key record is in the keys bucket (%v)", err)
	}
}

// TestOldStoreMovesIntoTheAccount: a store written before the server had
// accounts (streams in the global account) keeps its streams.
func TestOldStoreMovesIntoTheAccount(t *testing.T) {
	dir := t.TempDir()
	ns, err := natsserver.Start(dir, "off")
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := nats.Connect("", nats.InProcessServer(ns))
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOURNEYS", Subjects: []string{"lw.journey.*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "lw.journey.x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()

	ns, users, err := natsserver.StartSecure(dir, "off")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err = nats.Connect("", nats.InProcessServer(ns), users.Option(natsserver.HubUser))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	s, err := js.Stream(ctx, "JOURNEYS")
	if err != nil {
		t.Fatalf("the stream written before accounts is gone: %v", err)
	}
	if m, err := s.GetLastMsgForSubject(ctx, "lw.journey.x"); err != nil || string(m.Data) != "kept" {
		t.Errorf("its message: %v", err)
	}
}

// TestStartFailuresNameTheirCause: a busy listen address and a store that
// cannot be written are named at once, not a 30-second timeout.
func TestStartFailuresNameTheirCause(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, _, err = natsserver.StartSecure(t.TempDir(), l.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("busy port: %v, want 'already in use' naming %s", err, l.Addr())
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the busy port took %s to report", time.Since(start))
	}

	ro := datadir.ReadOnlyForTest(t)
	start = time.Now()
	_, _, err = natsserver.StartSecure(ro, "off")
	if err == nil || !strings.Contains(err.Error(), "not writable") && !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only folder: %v, want it named as not writable", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the read-only folder took %s to report", time.Since(start))
	}
}
