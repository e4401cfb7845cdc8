package hub

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"linkway/services/platform/api"
	"linkway/services/platform/datadir"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/sealing"
)

// startEmbedded takes the data folder and starts the embedded server on
// it, with the accounts of ops/nats/accounts.conf, and connects to it in
// process. Its listener (--nats-listen, off by default) admits only the
// users whose passwords it keeps in the data folder.
func (h *Hub) startEmbedded() error {
	var err error
	// One process per data folder: a second would lose the first's
	// acknowledged writes.
	if h.lock, err = datadir.Acquire(h.cfg.Data, cmp.Or(h.cfg.Command, "hub")); err != nil {
		return err
	}
	e := &embedded{opts: natsserver.Options{Dir: h.cfg.Data, Listen: h.cfg.NATSListen, Accounts: true, MaxStore: h.cfg.NATSMaxStore}}
	if e.ns, h.natsUsers, err = natsserver.StartWith(e.opts); err != nil {
		return err
	}
	h.ns, h.embedded = e.ns, e
	// In process, the hub connects as the account's operator: it owns its
	// embedded store, and upkeep the hub user of a cluster leaves to the
	// operator (such as making the person-keys bucket again for secure
	// deletion) is its own here; no other process can use this connection.
	// Reconnecting without end, quickly: after a restart of the embedded
	// server (restartEmbedded) the connection reaches the new one.
	h.nc, err = nats.Connect("", nats.InProcessServer(e), nats.Name("linkway"), h.natsUsers.Option(natsserver.AdminUser),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	return nil
}

// externalOptions are how the hub and its tools connect to cfg.NATS: as
// given; and, for a URL on this machine without a user (a hub's
// --nats-listen), as the hub user with the password kept in the data
// folder, so `linkway keys --nats nats://127.0.0.1:4222` works against
// a running hub without a password on the command line.
func externalOptions(cfg Config) []nats.Option {
	opts := []nats.Option{nats.Name("linkway"), nats.MaxReconnects(-1)}
	first, _, _ := strings.Cut(cfg.NATS, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.User != nil {
		return opts
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return opts
	}
	if users, err := natsserver.LoadUsers(cfg.Data); err == nil && users.Password(natsserver.HubUser) != "" {
		opts = append(opts, users.Option(natsserver.HubUser))
	}
	return opts
}

// NATSCredentials is the file of the embedded server's users and
// passwords ("" on an external NATS).
func (h *Hub) NATSCredentials() string {
	if h.natsUsers == nil {
		return ""
	}
	return h.natsUsers.Path
}

// NATSAddr is where the embedded server listens ("" when it does not).
func (h *Hub) NATSAddr() string {
	if h.embedded == nil {
		return ""
	}
	h.embedded.mu.Lock()
	ns := h.embedded.ns // restartEmbedded may replace it
	h.embedded.mu.Unlock()
	if ns.Addr() == nil {
		return ""
	}
	return ns.Addr().String()
}

// parseEdge reads the public URL and trusted proxies of cfg.
func parseEdge(cfg Config) (api.Edge, error) {
	var e api.Edge
	var err error
	if cfg.PublicURL != "" {
		if e.PublicURL, err = api.ParsePublicURL(cfg.PublicURL); err != nil {
			return e, err
		}
	}
	e.TrustedProxies, err = api.ParseTrustedProxies(cfg.TrustedProxies)
	return e, err
}

// setEdge gives the HTTP layer its edge, the public URL defaulting to the
// address the hub listens on (so links never come from a Host header).
func (h *Hub) setEdge(s *api.Server, e api.Edge) error {
	if e.PublicURL == nil {
		u, err := api.DefaultPublicURL(h.listener.Addr().String(), h.cfg.TLSCert != "")
		if err != nil {
			return err
		}
		e.PublicURL = u
	}
	s.SetEdge(e)
	return nil
}

// DemoMasterKeyFile is where, in the data folder, a --demo hub keeps the
// master key it made.
const DemoMasterKeyFile = "demo-master.key"

// masterKey is the configured master key, or in demo mode one made once
// and kept (owner-only) in the data folder. A demo key is never used
// without --demo: a hub started without it on a folder a --demo hub made
// refuses, so real data are never sealed under a key that sits beside
// them. (A rebuild, DemoKey, reads a demo folder's data with it.)
func masterKey(cfg Config) ([]byte, error) {
	if len(cfg.MasterKey) > 0 {
		if len(cfg.MasterKey) != 32 {
			return nil, errors.New("the master key must be 32 bytes (base64 of 32 random bytes)")
		}
		return cfg.MasterKey, nil
	}
	path := filepath.Join(cfg.Data, DemoMasterKeyFile)
	b, err := os.ReadFile(path)
	demoFolder := err == nil
	switch {
	case demoFolder && !cfg.Demo && !cfg.DemoKey:
		return nil, fmt.Errorf("refusing to start: a --demo hub made this data folder (its demo master key is %s), "+
			"and a demo key is never used without --demo: start with --demo to go on demonstrating, "+
			"or start real use on a new data folder with --master-key (or LINKWAY_MASTER_KEY)", path)
	case demoFolder && len(b) != 32:
		return nil, fmt.Errorf("%s is not a 32-byte key", path)
	case demoFolder:
		return b, nil
	case !cfg.Demo:
		return nil, errors.New("a master key is required (--master-key or LINKWAY_MASTER_KEY); only --demo makes one")
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("demo master key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("keep the demo master key: %w", err)
	}
	return key, nil
}

// masterKeyError makes a wrong master key (sealing's check value) a clear
// refusal to start, before anything is sealed under it.
func masterKeyError(err error) error {
	if errors.Is(err, sealing.ErrWrongMasterKey) {
		return fmt.Errorf("refusing to start: %w: give the master key this data folder was made with "+
			"(--master-key or LINKWAY_MASTER_KEY; with --demo, the folder's own %s)", err, DemoMasterKeyFile)
	}
	return err
}
