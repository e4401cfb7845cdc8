package hub

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats-server/v2/server"

	"linkway/services/platform/natsserver"
)

// embedded is the hub's embedded server, which the hub may replace: a
// JetStream store that failed a write to disk (the disk was full) refuses
// every later write until the server is started again, so once there is
// room again the hub starts it again itself (restartEmbedded). The
// in-process connection reaches whichever server is current, and
// reconnects to the new one by itself.
type embedded struct {
	opts natsserver.Options

	mu sync.Mutex
	ns *server.Server
}

// InProcessConn implements nats.InProcessConnProvider.
func (e *embedded) InProcessConn() (net.Conn, error) {
	e.mu.Lock()
	ns := e.ns
	e.mu.Unlock()
	return ns.InProcessConn()
}

// restartEmbedded stops the embedded server and starts it again on the same
// store, port and users; the hub's connection, consumers and watchers
// reconnect to it. Acknowledged writes are on disk (fsync always), so a
// clean stop loses nothing.
func (h *Hub) restartEmbedded() error {
	e := h.embedded
	if e == nil {
		return errors.New("no embedded server to restart")
	}
	e.mu.Lock()
	old := e.ns
	e.mu.Unlock()
	old.Shutdown()
	old.WaitForShutdown()
	ns, _, err := natsserver.StartWith(e.opts)
	if err != nil {
		return fmt.Errorf("start the embedded NATS server again: %w", err)
	}
	e.mu.Lock()
	e.ns = ns
	h.ns = ns // read by closeNATS once the run group (this caller) has ended
	e.mu.Unlock()
	return nil
}

// roomFor reports whether the store's disk takes n bytes again: a file of
// that size is written, synced and removed.
func roomFor(dir string, n int) error {
	f, err := os.CreateTemp(dir, ".room-check-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, n)); err != nil {
		return err
	}
	return f.Sync()
}

// storeDir is the embedded server's store.
func (e *embedded) storeDir() string { return filepath.Join(e.opts.Dir, "nats") }
