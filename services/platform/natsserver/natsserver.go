// Package natsserver runs NATS JetStream inside the Linkway process: the
// zero set-up default of `linkway hub`, and the real server every test that
// touches JetStream runs against.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start starts a NATS server with JetStream under dataDir, fsyncing every
// write, listening on listen ("host:port", port 0 for any, "off" for
// in-process only).
func Start(dataDir, listen string) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "linkway",
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		SyncAlways: true, // an acknowledged append is on disk
		NoSigs:     true,
		NoLog:      true,
	}
	if listen == "off" || listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not start within 30s")
	}
	return ns, nil
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
