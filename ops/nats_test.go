package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// passwordVars are the LW_NATS_PASSWORD_<USER> variables accounts.conf
// reads, found in the file itself so that a user added there is covered.
func passwordVars(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`\$(LW_NATS_PASSWORD_[A-Z0-9_]+)`).FindAllStringSubmatch(string(b), -1)
	var names []string
	for _, v := range vars {
		if !slices.Contains(names, v[1]) {
			names = append(names, v[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("found %d password variables in accounts.conf, want one per user", len(names))
	}
	return names
}

// userOf is the user a password variable belongs to.
func userOf(v string) string {
	u := strings.TrimPrefix(v, "LW_NATS_PASSWORD_")
	// Feed users keep their organisation code upper case: feed_vcs_VCS001.
	if parts := strings.SplitN(u, "_", 3); len(parts) == 3 && parts[0] == "FEED" {
		return "feed_" + strings.ToLower(parts[1]) + "_" + parts[2]
	}
	return strings.ToLower(u)
}

func testPassword(user string) string { return "test" + strings.ReplaceAll(user, "_", "") }

// copyConfigs copies ops/nats into a temporary folder, pointing the
// certificate and store paths there, and writes a CA and a certificate
// valid for n1, n2, n3 and 127.0.0.1. The config files are otherwise
// unchanged, so what is checked is what is deployed.
func copyConfigs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeCerts(t, tlsDir)
	err := filepath.WalkDir("nats", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".conf") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := strings.ReplaceAll(string(b), "/etc/nats/tls/", tlsDir+"/")
		s = strings.ReplaceAll(s, `"/data/jetstream"`, fmt.Sprintf("%q", filepath.Join(dir, "js")))
		out := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
			return err
		}
		return os.WriteFile(out, []byte(s), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "nats")
}

func writeCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "linkway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"n1", "n2", "n3", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.crt":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.crt": {Type: "CERTIFICATE", Bytes: leafDER},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkConfig does what `nats-server -t -c path` does (the config parsed
// with warnings treated as errors), then what starting it would check
// next: the options validated by server.NewServer.
func checkConfig(t *testing.T, path string) *server.Options {
	t.Helper()
	opts := &server.Options{CheckConfig: true}
	if err := opts.ProcessConfigFile(path); err != nil {
		t.Fatalf("nats-server -t -c %s: %v", path, err)
	}
	opts.CheckConfig = false
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: options refused: %v", path, err)
	}
	s.Shutdown()
	return opts
}

// TestNATSConfigs checks every config file under ops/nats, with the
// password variables set to bcrypt hashes as in production.
func TestNATSConfigs(t *testing.T) {
	for _, v := range passwordVars(t) {
		// A well-formed bcrypt hash of a password nobody knows.
		t.Setenv(v, "$2a$11$"+strings.Repeat("x", 53))
	}
	dir := copyConfigs(t)
	var files []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".conf") {
			files = append(files, path)
		}
		return err
	})
	if len(files) < 6 {
		t.Fatalf("found %d config files, want accounts, cluster, n1-n3 and the test config", len(files))
	}
	names := map[string]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		t.Run(rel, func(t *testing.T) {
			node := regexp.MustCompile(`^n\d\.conf$`).MatchString(rel)
			if !node && rel != "test/single.conf" {
				// A file included by the others: nats-server -t only (alone it
				// names no server, which a JetStream cluster needs).
				if err := (&server.Options{CheckConfig: true}).ProcessConfigFile(f); err != nil {
					t.Fatalf("nats-server -t -c %s: %v", f, err)
				}
				return
			}
			opts := checkConfig(t, f)
			if !node {
				return
			}
			// A cluster node: JetStream fsyncing every write, TLS for clients
			// and routes, a route to each of the three nodes, the accounts.
			if !opts.JetStream || !opts.SyncAlways {
				t.Errorf("JetStream %v, sync always %v: want both", opts.JetStream, opts.SyncAlways)
			}
			if opts.TLSConfig == nil || opts.Cluster.TLSConfig == nil {
				t.Errorf("TLS for clients %v, for routes %v: want both", opts.TLSConfig != nil, opts.Cluster.TLSConfig != nil)
			}
			if opts.Cluster.Name != "linkway" || len(opts.Routes) != 3 {
				t.Errorf("cluster %q with %d routes, want linkway with 3", opts.Cluster.Name, len(opts.Routes))
			}
			if opts.SystemAccount != "SYS" || len(opts.Users) < 10 {
				t.Errorf("system account %q, %d users", opts.SystemAccount, len(opts.Users))
			}
			for _, u := range opts.Users {
				if !strings.HasPrefix(u.Password, "$2a$") {
					t.Errorf("user %s: password is not a bcrypt hash", u.Username)
				}
			}
			if names[opts.ServerName] {
				t.Errorf("server name %q used twice", opts.ServerName)
			}
			names[opts.ServerName] = true
		})
	}
}

// TestNATSClusterForms starts the three node configs in this process (each
// on its own loopback ports, the routes pointed at them) and proves they
// form one JetStream cluster over mutual-TLS routes that keeps an R3 stream
// and answers TLS clients.
func TestNATSClusterForms(t *testing.T) {
	setTestPasswords(t)
	dir := copyConfigs(t)
	routePorts := []int{freePort(t), freePort(t), freePort(t)}
	var servers []*server.Server
	for i := range 3 {
		opts := checkConfig(t, filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1)))
		opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", routePorts[i]
		opts.Routes = server.RoutesFromStr(fmt.Sprintf("nats-route://127.0.0.1:%d,nats-route://127.0.0.1:%d,nats-route://127.0.0.1:%d",
			routePorts[0], routePorts[1], routePorts[2]))
		opts.StoreDir = t.TempDir()
		opts.NoSigs, opts.NoLog = true, true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("a node did not start")
		}
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, "tls://"+s.Addr().String())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo("hub", testPassword("hub")),
		nats.RootCAs(filepath.Join(filepath.Dir(dir), "tls", "ca.crt")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The meta leader is elected once the routes are up: poll for it.
	var stream jetstream.Stream
	waitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOURNEYS", Subjects: []string{"lw.journey.*"},
			Replicas: 3, Storage: jetstream.FileStorage})
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "lw.journey.j1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Name != "linkway" || len(info.Cluster.Replicas) != 2 || info.State.Msgs != 1 {
		t.Fatalf("stream cluster %+v, %d messages: want R3 on cluster linkway with the message", info.Cluster, info.State.Msgs)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func setTestPasswords(t *testing.T) {
	t.Helper()
	for _, v := range passwordVars(t) {
		t.Setenv(v, testPassword(userOf(v)))
	}
}

// waitFor polls f until it succeeds or the time is up.
func waitFor(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// startPermissionsServer starts ops/nats/test/single.conf: the production
// accounts.conf on one node, with plain test passwords.
func startPermissionsServer(t *testing.T) *server.Server {
	t.Helper()
	setTestPasswords(t)
	opts := checkConfig(t, "nats/test/single.conf")
	opts.StoreDir = t.TempDir()
	opts.Port = server.RANDOM_PORT
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server did not start")
	}
	return s
}

// client is a connection as one user that records the permission
// violations the server reports for it.
type client struct {
	*nats.Conn
	user string

	mu         sync.Mutex
	violations []string
}

func connect(t *testing.T, s *server.Server, user string, opts ...nats.Option) *client {
	t.Helper()
	c := &client{user: user}
	opts = append([]nats.Option{nats.UserInfo(user, testPassword(user)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.mu.Lock()
				c.violations = append(c.violations, err.Error())
				c.mu.Unlock()
			}
		})}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// violated reports whether the server refused an operation on subject.
func (c *client) violated(op, subject string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.violations {
		if strings.Contains(strings.ToLower(v), op) && strings.Contains(v, fmt.Sprintf("%q", subject)) {
			return true
		}
	}
	return false
}

func (c *client) noViolations(t *testing.T) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) > 0 {
		t.Fatalf("%s: unexpected permission violations: %v", c.user, c.violations)
	}
}

// refusedPub proves c may publish to none of subjects: the server says so
// for each.
func refusedPub(t *testing.T, c *client, subjects ...string) {
	t.Helper()
	for _, subject := range subjects {
		if err := c.Publish(subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	waitRefused(t, c, "publish", subjects)
}

// refusedSub proves c may subscribe to none of subjects.
func refusedSub(t *testing.T, c *client, subjects ...string) {
	t.Helper()
	for _, subject := range subjects {
		if _, err := c.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	waitRefused(t, c, "subscription", subjects)
}

func waitRefused(t *testing.T, c *client, op string, subjects []string) {
	t.Helper()
	waitFor(t, 5*time.Second, func() error {
		for _, subject := range subjects {
			if !c.violated(op, subject) {
				return fmt.Errorf("%s: %s on %s without a permissions violation", c.user, op, subject)
			}
		}
		return nil
	})
}

// allowedPub proves c may publish to subject: a subscriber with every
// right receives the message.
func allowedPub(t *testing.T, watcher *client, c *client, subject string) {
	t.Helper()
	sub, err := watcher.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(subject, []byte("allowed")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("%s published to %s and it did not arrive: %v", c.user, subject, err)
	}
	c.noViolations(t)
}

// allowedSub proves c may subscribe to subject: it receives a message
// published to pub, a subject it matches, by a user with every right.
func allowedSub(t *testing.T, publisher *client, c *client, subject, pub string) {
	t.Helper()
	sub, err := c.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := publisher.Publish(pub, []byte("allowed")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("%s subscribed to %s and received nothing: %v", c.user, subject, err)
	}
	c.noViolations(t)
}

// seedStreams creates, as the operator, the streams and buckets the
// services create at start-up, with a message for two organisations on
// each feed.
func seedStreams(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, subjects := range map[string]string{
		"JOURNEYS": "lw.journey.*", "DIRECTORY": "lw.directory.*",
		"FEED_VCS": "lw.feed.vcs.>", "OUTCOMES_FEED": "lw.feed.outcomes.>", "FEED_GP": "lw.feed.gp.>",
	} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subjects}}); err != nil {
			t.Fatal(err)
		}
	}
	// Views are not on NATS since version 2 (each process keeps its own):
	// the old view buckets stand for buckets no service user may touch.
	for _, b := range []string{"lw_orgs", "lw_keys", "lw_leases", "view_referrals", "view_caseload", "view_inbox"} {
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, subject := range []string{
		"lw.feed.vcs.VCS001.made", "lw.feed.vcs.VCS002.made",
		"lw.feed.gp.A81001.updated", "lw.feed.gp.A81002.updated",
		"lw.feed.outcomes.QYG.referral", "lw.feed.outcomes.QOP.referral",
	} {
		if _, err := js.Publish(ctx, subject, []byte(subject)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNATSPermissions starts a server with the deployed accounts.conf and
// proves that each user is refused (a permissions violation) outside its
// subjects and served inside them.
func TestNATSPermissions(t *testing.T) {
	s := startPermissionsServer(t)
	operator := connect(t, s, "operator")
	ojs, err := jetstream.New(operator.Conn)
	if err != nil {
		t.Fatal(err)
	}
	seedStreams(t, ojs)

	t.Run("feed users", func(t *testing.T) {
		for _, f := range []struct{ user, party, org, other, stream string }{
			{"feed_vcs_VCS001", "vcs", "VCS001", "VCS002", "FEED_VCS"},
			{"feed_vcs_VCS002", "vcs", "VCS002", "VCS001", "FEED_VCS"},
			{"feed_gp_A81001", "gp", "A81001", "A81002", "FEED_GP"},
			{"feed_outcomes_QYG", "outcomes", "QYG", "QOP", "OUTCOMES_FEED"},
		} {
			t.Run(f.user, func(t *testing.T) {
				inbox := "_INBOX_" + f.org
				c := connect(t, s, f.user, nats.CustomInboxPrefix(inbox))
				own := "lw.feed." + f.party + "." + f.org
				// Inside: its own feed, live and durably.
				allowedSub(t, operator, c, own+".>", own+".live")
				feedConsumerReadsOnlyOwn(t, c, f.stream, f.org, own)

				// Outside: another organisation's feed, the whole party's,
				// the log, other replies, writing to any feed.
				other := "lw.feed." + f.party + "." + f.other
				refusedSub(t, c, other+".>", other+".made", "lw.feed."+f.party+".>",
					"lw.feed.>", ">", "lw.journey.>", "lw.directory.*", "_INBOX.>", "_INBOX_"+f.other+".>", "$KV.>")
				api := "$JS.API.CONSUMER."
				refusedPub(t, c, []string{
					"lw.journey.0190a1b2-0000-7000-8000-000000000001", own + ".made", other + ".made",
					api + "CREATE." + f.stream + "." + f.other + "." + other + ".>", // another's consumer
					api + "CREATE." + f.stream + "." + f.org + "." + other + ".>",   // own name, another's filter
					api + "CREATE." + f.stream + "." + f.org + ".lw.feed." + f.party + ".>",
					api + "CREATE." + f.stream + "." + f.org + ".lw.feed." + f.party + ".*.>",
					api + "CREATE." + f.stream + "." + f.org, // no filter
					api + "DURABLE.CREATE." + f.stream + "." + f.org,
					api + "MSG.NEXT." + f.stream + "." + f.other,
					api + "INFO." + f.stream + "." + f.other,
					api + "DELETE." + f.stream + "." + f.other,
					"$JS.API.STREAM.INFO." + f.stream, "$JS.API.STREAM.MSG.GET." + f.stream,
					"$JS.API.DIRECT.GET." + f.stream + "." + other + ".made",
					"$JS.API.STREAM.DELETE." + f.stream, "$JS.API.STREAM.CREATE.X", "$JS.API.INFO",
					"$JS.ACK." + f.stream + "." + f.other + ".1.1.1.1.0",
					"$KV.lw_keys.k", "$KV.view_inbox.k",
				}...)
				filterInBodyIsChecked(t, c, f.stream, f.org, own, other)
			})
		}
	})

	t.Run("service users", func(t *testing.T) {
		journey := "lw.journey.0190a1b2-0000-7000-8000-000000000001"
		for _, sv := range []struct {
			user              string
			allowPub, denyPub []string
		}{
			{"referrals", []string{journey, "lw.audit.journey.x", "lw.feed.gp.A81001.x"},
				[]string{"lw.directory.VCS001", "lw.feed.vcs.VCS001.made", "lw.feed.outcomes.QYG.x",
					"$KV.view_referrals.k", "$JS.API.STREAM.DELETE.FEED_GP", "$JS.API.CONSUMER.CREATE.FEED_GP.x",
					"$KV.view_caseload.k", "$KV.view_inbox.k", "$KV.lw_keys.k", "$KV.lw_orgs.k",
					"$JS.API.STREAM.DELETE.JOURNEYS", "$JS.API.STREAM.PURGE.JOURNEYS", "$JS.API.STREAM.DELETE.KV_view_caseload",
					"$JS.API.STREAM.MSG.DELETE.JOURNEYS", "$JS.API.CONSUMER.CREATE.FEED_VCS.x", "$JS.API.STREAM.CREATE.OTHER",
					"$JS.API.STREAM.DELETE.KV_lw_person_keys", "$JS.API.STREAM.PURGE.KV_lw_person_keys",
					// The read audit: services append to it, only admin reads it.
					"$JS.API.CONSUMER.CREATE.AUDIT.x", "$JS.API.STREAM.MSG.GET.AUDIT", "$JS.API.STREAM.DELETE.AUDIT"}},
			{"linkwork", []string{journey},
				[]string{"$KV.view_referrals.k", "$KV.lw_keys.k", "lw.feed.vcs.VCS001.made", "lw.directory.VCS001",
					"$JS.API.STREAM.DELETE.KV_view_referrals", "$JS.API.CONSUMER.CREATE.OUTCOMES_FEED.x"}},
			{"vcs", []string{journey, "lw.feed.vcs.VCS001.made"},
				[]string{"lw.feed.outcomes.QYG.x", "lw.feed.gp.A81001.x", "lw.directory.VCS001", "$KV.view_referrals.k",
					"$KV.view_caseload.k", "$KV.lw_orgs.k", "$JS.API.STREAM.DELETE.JOURNEYS"}},
			{"outcomes", []string{"lw.feed.outcomes.QYG.referral"},
				[]string{journey, "lw.feed.vcs.VCS001.made", "lw.directory.VCS001", "$KV.view_referrals.k",
					"$KV.lw_person_keys.k", "$JS.API.STREAM.DELETE.JOURNEYS", "$JS.API.CONSUMER.CREATE.FEED_VCS.x"}},
			{"directory", []string{"lw.directory.VCS001"},
				[]string{journey, "$KV.lw_person_keys.k", "$JS.API.STREAM.DELETE.KV_lw_person_keys", "lw.feed.vcs.VCS001.made", "$KV.view_referrals.k", "$KV.lw_keys.k", "$JS.API.STREAM.DELETE.DIRECTORY"}},
			{"admin", []string{journey, "$KV.lw_person_keys.k", "lw.audit.journey.x"},
				[]string{"lw.feed.vcs.VCS001.made", "lw.directory.VCS001", "$KV.view_referrals.k", "$KV.lw_keys.k",
					"$JS.API.STREAM.DELETE.KV_lw_person_keys", "$JS.API.STREAM.PURGE.AUDIT"}},
			{"hub", []string{journey, "lw.directory.VCS001", "lw.feed.vcs.VCS001.made", "$KV.lw_keys.k"},
				[]string{"$JS.API.STREAM.DELETE.JOURNEYS", "$JS.API.STREAM.PURGE.JOURNEYS", "$JS.API.STREAM.DELETE.DIRECTORY",
					"$JS.API.STREAM.DELETE.AUDIT", "$JS.API.STREAM.DELETE.KV_lw_person_keys"}},
		} {
			t.Run(sv.user, func(t *testing.T) {
				c := connect(t, s, sv.user)
				for _, subject := range sv.allowPub {
					allowedPub(t, operator, c, subject)
				}
				if sv.user != "hub" {
					// Services read JetStream replies only; feeds are for organisations.
					refusedSub(t, c, "lw.feed.vcs.VCS001.>", "lw.journey.>", ">", "_INBOX_VCS001.>")
				}
				refusedPub(t, c, sv.denyPub...)
			})
		}
	})

	t.Run("system user", func(t *testing.T) {
		// The runbook's server reports (nats server report ...) run as sys.
		sys := connect(t, s, "sys")
		if _, err := sys.Request("$SYS.REQ.SERVER.PING.JSZ", nil, 5*time.Second); err != nil {
			t.Fatalf("sys: server ping: %v", err)
		}
		// Users of LINKWAY do not reach the system account's subjects.
		hub := connect(t, s, "hub")
		if _, err := hub.Request("$SYS.REQ.SERVER.PING.JSZ", nil, 500*time.Millisecond); err == nil {
			t.Fatal("hub: a server ping was answered")
		}
	})

	t.Run("services do their JetStream work", func(t *testing.T) {
		// Each with a bucket it writes: the leases (a feed's publisher) or the
		// web sessions.
		for user, bucket := range map[string]string{"referrals": "lw_leases", "linkwork": "lw_web_sessions", "vcs": "lw_web_sessions"} {
			t.Run(user, func(t *testing.T) { serviceWork(t, connect(t, s, user), bucket) })
		}
	})
}

// feedConsumerReadsOnlyOwn creates the organisation's durable consumer the
// way nats.go does with a filter, and fetches: only its own messages come.
func feedConsumerReadsOnlyOwn(t *testing.T, c *client, stream, org, own string) {
	t.Helper()
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: org, FilterSubject: own + ".>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("%s: own consumer: %v", c.user, err)
	}
	batch, err := cons.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, m.Subject())
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	// The stream holds another organisation's message too (seedStreams).
	if len(got) != 2 || !strings.HasPrefix(got[0], own+".") || !strings.HasPrefix(got[1], own+".") {
		t.Fatalf("%s fetched %v, want its own two messages only", c.user, got)
	}
	if _, err := js.Consumer(ctx, stream, org); err != nil {
		t.Fatalf("%s: own consumer info: %v", c.user, err)
	}
	c.noViolations(t)
}

// filterInBodyIsChecked sends the allowed create request with a body that
// asks for another organisation's subjects: the server must refuse it, or
// the permission on the subject would be worthless.
func filterInBodyIsChecked(t *testing.T, c *client, stream, org, own, other string) {
	t.Helper()
	for _, cfg := range []map[string]any{
		{"durable_name": org, "filter_subject": other + ".>", "ack_policy": "explicit"},
		{"durable_name": org, "filter_subjects": []string{own + ".>", other + ".>"}, "ack_policy": "explicit"},
		{"durable_name": org, "ack_policy": "explicit"},
	} {
		body, _ := json.Marshal(map[string]any{"stream_name": stream, "config": cfg})
		msg, err := c.Request("$JS.API.CONSUMER.CREATE."+stream+"."+org+"."+own+".>", body, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: create request: %v", c.user, err)
		}
		var resp struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Error == nil {
			t.Fatalf("%s: consumer with config %v accepted on its own filtered subject", c.user, cfg)
		}
	}
}

// serviceWork does what a service process does at start-up and while it
// runs, as that service's user: keep the log's config, read it through a
// durable consumer, read organisations and keys, hold leases, write its
// own bucket, append.
func serviceWork(t *testing.T, c *client, own string) {
	t.Helper()
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "JOURNEYS", Subjects: []string{"lw.journey.*"}})
	if err != nil {
		t.Fatalf("%s: JOURNEYS: %v", c.user, err)
	}
	subject := "lw.journey.0190a1b2-0000-7000-8000-0000000000" + fmt.Sprint(len(c.user))
	if _, err := js.Publish(ctx, subject, []byte("event")); err != nil {
		t.Fatalf("%s: append: %v", c.user, err)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, subject); err != nil {
		t.Fatalf("%s: last message: %v", c.user, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "proj_" + c.user + "_p0",
		FilterSubject: "lw.journey.*", AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatalf("%s: consumer: %v", c.user, err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatalf("%s: fetched nothing from JOURNEYS", c.user)
	}
	for bucket, write := range map[string]bool{own: true, "lw_leases": true, "lw_orgs": false, "lw_keys": false} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
		if err != nil {
			t.Fatalf("%s: bucket %s: %v", c.user, bucket, err)
		}
		if write {
			if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatalf("%s: put in %s: %v", c.user, bucket, err)
			}
			if _, err := kv.Get(ctx, "k"); err != nil {
				t.Fatalf("%s: get from %s: %v", c.user, bucket, err)
			}
		} else if _, err := kv.Get(ctx, "missing"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("%s: read %s: %v", c.user, bucket, err)
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			t.Fatalf("%s: watch %s: %v", c.user, bucket, err)
		}
		// A watch sends the current values, then nil once caught up.
		for e := range w.Updates() {
			if e == nil {
				break
			}
		}
		_ = w.Stop()
	}
	c.noViolations(t)
}
