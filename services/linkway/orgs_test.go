package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"linkway/services/linkway/hubtest"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// run runs one linkway command and returns its stdout, stderr and error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := realMain(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// TestProductionSetUpWithoutDemo (finding 6): organisations are registered
// with `linkway orgs`, keys made for them with `linkway keys create`, and
// a hub without --demo takes those keys; a disabled organisation's key
// stops working at once; offline commands on a live data folder stop,
// naming the hub (finding 4).
func TestProductionSetUpWithoutDemo(t *testing.T) {
	data := t.TempDir()
	if out, _, err := run(t, "orgs", "--help"); err != nil || !strings.Contains(out, "add") || !strings.Contains(out, "disable") {
		t.Errorf("orgs --help: %v %q, want the usage and success", err, out)
	}
	if _, _, err := run(t, "keys", "create", "--org", "A99001", "--data", data); err == nil || !strings.Contains(err.Error(), "orgs add") {
		t.Fatalf("keys create for an unregistered organisation: %v, want a pointer to orgs add", err)
	}
	// A practice's team must be registered first, and be a team.
	if _, _, err := run(t, "orgs", "add", "--code", "A99001", "--kind", "gp", "--name", "Test Practice", "--team", "U99999", "--data", data); err == nil || !strings.Contains(err.Error(), "--team") {
		t.Fatalf("orgs add with an unknown team: %v, want --team named", err)
	}
	for _, args := range [][]string{
		{"--code", "U99999", "--kind", "linkwork", "--name", "Test Team"},
		{"--code", "A99001", "--kind", "gp", "--name", "Test Practice", "--team", "U99999"},
	} {
		if out, _, err := run(t, append(append([]string{"orgs", "add"}, args...), "--data", data)...); err != nil || !strings.Contains(out, "registered") {
			t.Fatalf("orgs add %v: %v %s", args, err, out)
		}
	}
	if _, _, err := run(t, "orgs", "add", "--code", "A99001", "--kind", "gp", "--name", "Again", "--data", data); err == nil {
		t.Error("a code was registered twice")
	}
	out, _, err := run(t, "orgs", "list", "--data", data)
	if err != nil || !strings.Contains(out, "A99001") || !strings.Contains(out, "U99999") || !strings.Contains(out, "active") {
		t.Fatalf("orgs list: %v\n%s", err, out)
	}
	out, _, err = run(t, "keys", "create", "--org", "A99001", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	gpKey := strings.TrimSpace(out)
	out, _, err = run(t, "keys", "create", "--org", "U99999", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	teamKey := strings.TrimSpace(out)

	// A hub without --demo, its NATS listening for the tools.
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	httpAddr, natsAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr hubtest.LogBuffer
	go func() {
		done <- realMain(ctx, []string{"hub", "--http", httpAddr, "--data", data, "--nats-listen", natsAddr,
			"--master-key", base64.StdEncoding.EncodeToString(raw), "--pseudonym-key", "test-pseudonym-secret"}, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	}()
	base := "http://" + httpAddr
	waitReady(t, base, func() bool {
		select {
		case err := <-done:
			t.Logf("hub: %v\n%s", err, stderr.String())
			done <- err
			return false
		default:
			return true
		}
	})
	if !strings.Contains(stderr.String(), "nats-credentials") {
		t.Errorf("the hub's start does not print where the NATS credentials are:\n%s", stderr.String())
	}
	if st, body := get(t, base+"/v1/referrals", gpKey); st != http.StatusOK {
		t.Fatalf("the registered practice's key: %d %s", st, body)
	}
	if st, _ := get(t, base+"/v1/referrals", "demo-gp-a81001"); st != http.StatusUnauthorized {
		t.Errorf("a demo key works without --demo: %d", st)
	}

	// The folder is the hub's: an offline command stops, naming it.
	_, _, err = run(t, "keys", "list", "--data", data)
	if err == nil || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("keys list on a live folder: %v, want it in use by the hub", err)
	}
	// Through the hub's NATS it works, the password read from the folder.
	if out, _, err := run(t, "orgs", "disable", "A99001", "--nats", "nats://"+natsAddr, "--data", data); err != nil || !strings.Contains(out, "disabled A99001") {
		t.Fatalf("orgs disable through the hub's NATS: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := get(t, base+"/v1/referrals", gpKey)
		if st == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a disabled organisation's key still answers %d", st)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if st, _ := get(t, base+"/v1/caseload", teamKey); st != http.StatusOK {
		t.Errorf("another organisation's key stopped working too: %d", st)
	}
	if _, _, err := run(t, "keys", "create", "--org", "A99001", "--nats", "nats://"+natsAddr, "--data", data); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("keys create for a disabled organisation: %v", err)
	}
}
