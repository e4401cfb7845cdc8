package viewstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"linkway/services/platform/datadir"
	"linkway/services/platform/viewstore"
)

// childEnv names the store folder of a child process started by
// TestPebbleFailureEndsWritesAndReopensClean.
const childEnv = "LINKWAY_VIEWSTORE_FAILING_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(failingChild(dir))
	}
	os.Exit(m.Run())
}

// lockedBuffer is a log the store writes from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fill writes a file on the disk until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			return // full
		}
	}
}

// TestFullDiskWaitsAndResumes: on a real full disk (a small tmpfs) a write
// is refused with ErrNoSpace before Pebble is asked (so Pebble never meets
// the error it cannot survive), leaves nothing behind, and says so once in
// the log without the data; once space is freed the same write succeeds in
// the same process, and a reopened store holds every committed batch.
func TestFullDiskWaitsAndResumes(t *testing.T) {
	disk := datadir.SmallDiskForTest(t, 32<<20)
	ctx := context.Background()
	var logs lockedBuffer
	cfg := viewstore.Config{Dir: filepath.Join(disk, "views"), MemTableBytes: 1 << 20, MemTables: 2, ReserveBytes: 4 << 20,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	s, err := viewstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.Set("caseload", "c.U1.j1", []byte("Jane Doe"))
	b.SetCheckpoint("caseload", 1)
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("an empty disk: %v", err)
	}

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	if err := s.Writable(); !errors.Is(err, viewstore.ErrNoSpace) {
		t.Errorf("Writable on a full disk: %v", err)
	}
	for range 3 { // refused each time, never failed
		b.Set("caseload", "c.U1.j2", []byte("Joan Doe"))
		b.SetCheckpoint("caseload", 2)
		err = b.Commit(ctx, true)
		if !errors.Is(err, viewstore.ErrNoSpace) || errors.Is(err, viewstore.ErrFailed) {
			t.Fatalf("a commit on a full disk: %v", err)
		}
	}
	if err := s.Sync(); !errors.Is(err, viewstore.ErrNoSpace) {
		t.Errorf("Sync on a full disk: %v", err)
	}
	if _, ok := get(t, s, "caseload", "c.U1.j2"); ok || checkpoint(t, s, "caseload") != 1 {
		t.Errorf("a refused commit left its change or checkpoint (checkpoint %d)", checkpoint(t, s, "caseload"))
	}
	if v, ok := get(t, s, "caseload", "c.U1.j1"); !ok || v != "Jane Doe" {
		t.Errorf("reads on a full disk: %q %v", v, ok)
	}
	if n := strings.Count(logs.String(), "short of space"); n != 1 {
		t.Errorf("the full disk is logged %d times, want once:\n%s", n, logs.String())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.Writable(); err != nil {
		t.Errorf("Writable once space is freed: %v", err)
	}
	b.Set("caseload", "c.U1.j2", []byte("Joan Doe"))
	b.SetCheckpoint("caseload", 2)
	if err := b.Commit(ctx, true); err != nil {
		t.Fatalf("a commit once space is freed: %v", err)
	}
	if !strings.Contains(logs.String(), "room again") {
		t.Error("the log does not say writes resumed")
	}
	if strings.Contains(logs.String(), "Jane") || strings.Contains(logs.String(), "Joan") {
		t.Errorf("the log holds the views' data:\n%s", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, cfg.Dir)
	if v, _ := get(t, s, "caseload", "c.U1.j2"); v != "Joan Doe" || checkpoint(t, s, "caseload") != 2 {
		t.Errorf("reopened: %q at checkpoint %d", v, checkpoint(t, s, "caseload"))
	}
}

// TestPebbleFailureEndsWritesAndReopensClean: a child process writes
// synced batches (a key and its checkpoint each) larger than its reserve
// of one byte, so that a batch passes the check and Pebble itself meets
// the full disk (as when another process takes the last of the space
// between the check and the write). The store fails for good (ErrFailed,
// which the reader takes as ErrClosed), the next write is refused at once
// rather than handed to a broken Pebble, Close does not hang, and the
// child exits. Once space is freed the store opens clean: every
// acknowledged batch there, each key with its checkpoint, nothing of a
// batch without its checkpoint, and it takes writes again.
func TestPebbleFailureEndsWritesAndReopensClean(t *testing.T) {
	disk := datadir.SmallDiskForTest(t, 16<<20)
	ballast := filepath.Join(disk, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(disk, "views")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("the child: %v, want exit status 3\nstdout:\n%s\nstderr:\n%.3000s", err, lastLines(out, 10), stderr.String())
	}
	var acked uint64
	lines := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == "acked" {
			acked, _ = strconv.ParseUint(v, 10, 64)
		} else {
			lines[k] = v
		}
	}
	t.Logf("the child: %d batches acknowledged, then %q", acked, lines["failed"])
	if acked < 4 {
		t.Errorf("only %d batches before the disk was full", acked)
	}
	for _, k := range []string{"failed", "again", "close"} {
		if lines[k] != "ErrFailed" {
			t.Errorf("the child's %s: %q, want ErrFailed", k, lines[k])
		}
	}
	if !strings.Contains(stderr.String(), "view store failed") || !strings.Contains(stderr.String(), "no space left on device") {
		t.Errorf("the child's log does not name the failure and its cause:\n%.3000s", stderr.String())
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	s, err := viewstore.Open(viewstore.Config{Dir: dir, MemTableBytes: 1 << 20, MemTables: 2, ReserveBytes: 1 << 20})
	if err != nil {
		t.Fatalf("reopening once space is freed: %v", err)
	}
	defer s.Close()
	cp := checkpoint(t, s, "cv")
	if cp < acked {
		t.Errorf("reopened at checkpoint %d; %d were acknowledged", cp, acked)
	}
	for i := uint64(1); i <= cp+1; i++ {
		_, ok := get(t, s, "cv", fmt.Sprintf("k%06d", i))
		if ok != (i <= cp) {
			t.Fatalf("batch %d present %v with the checkpoint at %d", i, ok, cp)
		}
	}
	b := s.NewBatch()
	b.Set("cv", "after", []byte("x"))
	b.SetCheckpoint("cv", cp+1)
	if err := b.Commit(context.Background(), true); err != nil {
		t.Fatalf("a write after reopening: %v", err)
	}
}

// failingChild is the child of TestPebbleFailureEndsWritesAndReopensClean:
// it prints "acked N" per committed batch, then how the failing write, the
// next one and Close ended, and exits 3 (as the hub does when its reader
// stops on a failed store); 4 when the disk never filled.
func failingChild(dir string) int {
	// A memtable larger than the disk: Pebble never switches memtables
	// (a switch after a failed log write panics beyond recovery), so the
	// full disk is met by a synced commit, which reports it.
	s, err := viewstore.Open(viewstore.Config{Dir: dir, MemTableBytes: 32 << 20, MemTables: 2, ReserveBytes: 1,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Println("open", err)
		return 5
	}
	kind := func(err error) string {
		switch {
		case err == nil:
			return "nil"
		case errors.Is(err, viewstore.ErrFailed) && errors.Is(err, viewstore.ErrClosed):
			return "ErrFailed"
		default:
			return strings.ReplaceAll(err.Error(), " ", "_")
		}
	}
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 512<<10)
	b := s.NewBatch()
	for i := uint64(1); i < 100000; i++ {
		b.Set("cv", fmt.Sprintf("k%06d", i), value)
		b.SetCheckpoint("cv", i)
		if err := b.Commit(ctx, true); err != nil {
			fmt.Println("failed", kind(err))
			b.Set("cv", "next", value)
			start := time.Now()
			err = b.Commit(ctx, true)
			if time.Since(start) > time.Second {
				fmt.Println("slow", time.Since(start))
			}
			fmt.Println("again", kind(err))
			fmt.Println("close", kind(s.Close()))
			return 3
		}
		fmt.Println("acked", i)
	}
	return 4
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
