package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/linkway/hubtest"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
)

// TestMain lets a test run this binary's main as a child process (for
// kill -9): LINKWAY_TEST_ARGS holds its arguments.
func TestMain(m *testing.M) {
	if args := os.Getenv("LINKWAY_TEST_ARGS"); args != "" {
		os.Args = append([]string{"linkway"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReady(t *testing.T, base string, alive func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := get(t, base+"/readyz", ""); st == http.StatusOK {
			return
		}
		if !alive() {
			t.Fatal("the hub exited before it was ready")
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub was not ready within 60s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// TestHubServesAndStopsGracefully runs realMain as `linkway hub --demo` on
// a free port, checks the operational routes and authentication, and stops
// it as SIGTERM would (its context ends).
func TestHubServesAndStopsGracefully(t *testing.T) {
	addr := freePort(t)
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	var stderr hubtest.LogBuffer
	done := make(chan error, 1)
	go func() {
		done <- realMain(ctx, []string{"hub", "--demo", "--demo-history", "20", "--http", addr, "--data", t.TempDir(), "--nats-listen", "off"}, io.Discard, &stderr)
	}()
	exited := false
	waitReady(t, base, func() bool {
		select {
		case err := <-done:
			exited = true
			t.Logf("realMain: %v\n%s", err, stderr.String())
			return false
		default:
			return !exited
		}
	})
	if st, _ := get(t, base+"/healthz", ""); st != http.StatusOK {
		t.Errorf("/healthz %d", st)
	}
	// --demo-history: the first start wrote the demo's history, and said
	// how long it took, before it was ready.
	if !strings.Contains(stderr.String(), "demo history: 20 journeys, ") {
		t.Errorf("no 'demo history: 20 journeys, M events in Xs' in the log:\n%s", stderr.String())
	}
	st, body := get(t, base+"/metrics", "")
	for _, m := range []string{"linkway_reader_lag_events", "linkway_http_requests_total", "go_goroutines"} {
		if st != http.StatusOK || !strings.Contains(body, m) {
			t.Errorf("/metrics (%d) lacks %s", st, m)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("graceful stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hub did not stop within 30s of SIGTERM")
	}
	if strings.Contains(stderr.String(), "demo-") {
		t.Error("a demo key reached the log")
	}
}

// TestAcknowledgedAppendsSurviveKill9 appends through a hub child process's
// NATS port, kills the process with SIGKILL, restarts it on the same data,
// and finds every acknowledged event.
func TestAcknowledgedAppendsSurviveKill9(t *testing.T) {
	data := t.TempDir()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	masterKey := base64.StdEncoding.EncodeToString(raw)
	httpAddr, natsAddr := freePort(t), freePort(t)
	type proc struct {
		cmd    *exec.Cmd
		exited chan struct{}
	}
	start := func() proc {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		// Not demo mode: the operator's keys come from the environment.
		cmd.Env = append(os.Environ(), fmt.Sprintf("LINKWAY_TEST_ARGS=hub --http %s --data %s --nats-listen %s", httpAddr, data, natsAddr),
			"LINKWAY_MASTER_KEY="+masterKey, "LINKWAY_PSEUDONYM_KEY=test-pseudonym-secret")
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		// Whatever happens, the process is gone before the data folder is
		// removed.
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		waitReady(t, "http://"+httpAddr, func() bool {
			select {
			case <-exited:
				return false
			default:
				return true
			}
		})
		return proc{cmd, exited}
	}
	connect := func() (*nats.Conn, *journal.Store) {
		// The listener admits only the users the hub keeps in the data folder.
		users, err := natsserver.LoadUsers(data)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(users.URL(natsserver.HubUser, natsAddr))
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		s, err := journal.Open(context.Background(), js, journal.DefaultConfig(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return nc, s
	}

	child := start()
	nc, store := connect()
	var ids []string
	for i := range 30 {
		id := events.NewID()
		_, err := store.Execute(context.Background(), id, journal.Meta{}, events.Refer{Referral: &eventsv1.ReferralReceived{
			SourceId: fmt.Sprint("K9-", i), LinkWorkTeam: "U12345"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	nc.Close()
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	<-child.exited
	child = start()
	nc, store = connect()
	defer nc.Close()
	for _, id := range ids {
		st, _, err := store.Load(context.Background(), id)
		if err != nil || !st.Exists() {
			t.Errorf("journey %s lost after kill -9 (%v)", id, err)
		}
	}
}

// TestRebuildAllAndSnapshotCommands runs `linkway gen`, then `linkway
// rebuild all` (which prints its rate and peak memory) and `linkway
// snapshot DIR` on the stopped folder.
func TestRebuildAllAndSnapshotCommands(t *testing.T) {
	data := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		if err := realMain(context.Background(), args, &out, &errs); err != nil {
			t.Fatalf("linkway %v: %v\n%s", args, err, errs.String())
		}
		return out.String()
	}
	run("gen", "--demo", "--data", data, "--journeys", "40")
	out := run("rebuild", "all", "--demo", "--data", data)
	for _, want := range []string{"rebuilt ", "events/s", "µs an event", "peak memory", "resident (maxrss)"} {
		if !strings.Contains(out, want) {
			t.Errorf("rebuild all printed %q, want %q in it", out, want)
		}
	}
	snap := t.TempDir() + "/snap"
	out = run("snapshot", snap, "--demo", "--data", data)
	if !strings.Contains(out, "written to "+snap) {
		t.Errorf("snapshot printed %q", out)
	}
	if _, err := os.Stat(snap); err != nil {
		t.Errorf("no snapshot: %v", err)
	}
	var errs bytes.Buffer
	if err := realMain(context.Background(), []string{"snapshot", snap, "--demo", "--data", data}, io.Discard, &errs); err == nil {
		t.Error("a snapshot into an existing folder succeeded")
	}
}
