package datadir_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"linkway/services/platform/datadir"
)

// TestMain lets a test hold a folder from another process:
// DATADIR_TEST_HOLD=<dir> makes this binary take the lock, say so on
// stdout and wait for stdin to close.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		l, err := datadir.Acquire(dir, "hub")
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("held\n")
		_, _ = os.Stdin.Read(make([]byte, 1))
		_ = l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSecondAcquireFailsNamingTheFirst: within one process, a second
// Acquire of a held folder fails at once naming the holder; once released,
// the folder can be taken again.
func TestSecondAcquireFailsNamingTheFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := datadir.Acquire(dir, "hub")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the data folder was made with %v (%v), want owner-only", fi.Mode().Perm(), err)
	}
	start := time.Now()
	_, err = datadir.Acquire(dir, "keys create")
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, datadir.ErrInUse) {
		t.Fatalf("second Acquire: %v, want an InUseError", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("the second Acquire waited %s; it must fail at once", time.Since(start))
	}
	if inUse.Holder.PID != os.Getpid() || inUse.Holder.Command != "hub" || inUse.Holder.Started.IsZero() {
		t.Errorf("holder %+v, want this process, hub, a start time", inUse.Holder)
	}
	for _, want := range []string{dir, "pid " + strconv.Itoa(os.Getpid()), "hub", "started"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
	if h, held := datadir.Who(dir); !held || h.PID != os.Getpid() {
		t.Errorf("Who = %+v %v, want this process", h, held)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if _, held := datadir.Who(dir); held {
		t.Error("Who says the folder is held after Release")
	}
	again, err := datadir.Acquire(dir, "rebuild referrals")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	_ = again.Release()
}

// TestAnotherProcessHoldsTheFolder: a folder held by another process is
// refused naming that process; when it ends (its lock goes with it, as on
// kill -9), the folder is free.
func TestAnotherProcessHoldsTheFolder(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "held") {
		t.Fatalf("the child did not take the folder: %q", buf[:n])
	}
	_, err = datadir.Acquire(dir, "gen")
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) || inUse.Holder.PID != cmd.Process.Pid {
		t.Fatalf("Acquire = %v, want in use by pid %d", err, cmd.Process.Pid)
	}
	if err := cmd.Process.Kill(); err != nil { // as kill -9
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stdin.Close()
	l, err := datadir.Acquire(dir, "hub")
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	_ = l.Release()
}

// TestReadOnlyFolderIsNamed: a data folder that cannot be written is an
// error saying so, not a lock that seems held.
func TestReadOnlyFolderIsNamed(t *testing.T) {
	dir := datadir.ReadOnlyForTest(t)
	_, err := datadir.Acquire(dir, "hub")
	if err == nil || errors.Is(err, datadir.ErrInUse) || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Acquire on a read-only folder: %v, want 'not writable' naming it", err)
	}
}
