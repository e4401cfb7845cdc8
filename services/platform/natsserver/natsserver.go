// Package natsserver runs NATS JetStream inside the Linkway process: the
// zero set-up default of `linkway hub`, and the real server every test that
// touches JetStream runs against.
//
// The hub's server (StartSecure) carries the accounts, users and
// permissions of ops/nats/accounts.conf, with passwords it makes once and
// keeps in the data folder (owner-only): its listener, when there is one,
// admits no one without them, and each user may do only what the file
// grants. Test servers (Start, Test) have no users.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startTimeout bounds the wait for the server to take connections; a
// failure it reports (a busy port, a store it cannot write) ends the wait
// at once.
const startTimeout = 30 * time.Second

// Options of an embedded server.
type Options struct {
	// Dir is the data folder; the store is Dir/nats.
	Dir string
	// Listen is "host:port" (port 0 for any), or "off" or "" for
	// in-process only.
	Listen string
	// Accounts applies ops/nats/accounts.conf with the users of Dir's
	// credentials file (made on first start).
	Accounts bool
	// MaxStore bounds the JetStream store in bytes (0: the disk). Tests
	// use it to fill the store as a full disk would.
	MaxStore int64
}

// Start starts a server with JetStream under dataDir, fsyncing every
// write, listening on listen ("host:port", port 0 for any, "off" for
// in-process only), with no users: for tests.
func Start(dataDir, listen string) (*server.Server, error) {
	ns, _, err := StartWith(Options{Dir: dataDir, Listen: listen})
	return ns, err
}

// StartSecure starts the hub's server: Start with the accounts of
// ops/nats/accounts.conf and the data folder's users.
func StartSecure(dataDir, listen string) (*server.Server, *Users, error) {
	return StartWith(Options{Dir: dataDir, Listen: listen, Accounts: true})
}

// StartWith starts an embedded server, and returns its users when it has
// accounts. Its errors name the cause: the listen address in use, a store
// that cannot be written.
func StartWith(o Options) (*server.Server, *Users, error) {
	opts := &server.Options{}
	storeDir := filepath.Join(o.Dir, "nats")
	if err := writable(storeDir); err != nil {
		return nil, nil, err
	}
	var users *Users
	if o.Accounts {
		var err error
		if users, err = EnsureUsers(o.Dir); err != nil {
			return nil, nil, err
		}
		if err := opts.ProcessConfigString(users.config()); err != nil {
			return nil, nil, fmt.Errorf("embedded NATS accounts: %w", err)
		}
		if err := adoptGlobalAccount(storeDir); err != nil {
			return nil, nil, err
		}
	}
	opts.ServerName = "linkway"
	opts.JetStream = true
	opts.StoreDir = storeDir
	opts.SyncAlways = true // an acknowledged append is on disk
	opts.NoSigs = true
	opts.NoLog = true
	if o.MaxStore > 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	if o.Listen == "off" || o.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("--nats-listen %q: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, nil, fmt.Errorf("--nats-listen %q: bad port", o.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	fatal := &fatalLog{}
	ns.SetLogger(fatal, false, false)
	go ns.Start()
	deadline := time.Now().Add(startTimeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		if msg := fatal.first(); msg != "" || time.Now().After(deadline) {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, nil, startError(o, msg)
		}
	}
	return ns, users, nil
}

// startError says why the server did not start, from what it reported.
func startError(o Options, msg string) error {
	switch {
	case msg == "":
		return fmt.Errorf("embedded NATS did not start within %s (store %s)", startTimeout, filepath.Join(o.Dir, "nats"))
	case strings.Contains(msg, "address already in use"):
		return fmt.Errorf("--nats-listen %s: the address is already in use (another process listens there; choose another or 'off')", o.Listen)
	case strings.Contains(msg, "Error listening"):
		return fmt.Errorf("--nats-listen %s: cannot listen: %s", o.Listen, msg)
	case strings.Contains(msg, "JetStream"):
		return fmt.Errorf("embedded NATS cannot use its store in %s: %s", filepath.Join(o.Dir, "nats"), msg)
	}
	return fmt.Errorf("embedded NATS did not start: %s", msg)
}

// writable checks, before the server starts, that its store can be
// written, so that a read-only or foreign-owned folder is named as such
// (the server itself would only fail to become ready).
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("the NATS store %s cannot be created: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		if errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("the NATS store %s is not writable: %w", dir, err)
		}
		return fmt.Errorf("the NATS store %s: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// fatalLog keeps what the server reports as fatal (it is silent otherwise:
// Linkway logs for itself).
type fatalLog struct {
	mu  sync.Mutex
	msg string
}

func (l *fatalLog) first() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msg == "" {
		l.msg = fmt.Sprintf(format, v...)
	}
}
func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

// Account is the account of accounts.conf that holds every stream.
const Account = "LINKWAY"

// adoptGlobalAccount moves a store written before the hub had accounts
// (every stream in the global account, $G) into the LINKWAY account, once,
// so that a data folder keeps its history across the upgrade.
func adoptGlobalAccount(storeDir string) error {
	js := filepath.Join(storeDir, "jetstream")
	global, ours := filepath.Join(js, server.DEFAULT_GLOBAL_ACCOUNT), filepath.Join(js, Account)
	if _, err := os.Stat(global); err != nil {
		return nil // nothing from before
	}
	if _, err := os.Stat(ours); err == nil {
		return nil // already moved (or both exist: leave them for the operator)
	}
	if err := os.Rename(global, ours); err != nil {
		return fmt.Errorf("move the store's streams into account %s: %w", Account, err)
	}
	return nil
}

// Test starts a server for one test (fsync always, temp store, random
// port) and returns a JetStream client on it; both stop with the test.
func Test(tb testing.TB) (*server.Server, jetstream.JetStream) {
	tb.Helper()
	ns, err := Start(tb.TempDir(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns, js
}
