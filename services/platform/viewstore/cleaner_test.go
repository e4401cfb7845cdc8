package viewstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// filesHolding lists the store's files, write-ahead logs included, that hold marker.
func filesHolding(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file removed while walking
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, marker) {
			out = append(out, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Erased data written while the store is open (so still in its
// write-ahead log, never flushed to a table) leaves every file: the
// erasure's compaction flushes the memtable, and the log it leaves behind
// is deleted, not recycled with its old records inside.
func TestEraseLeavesNoBytesInTheLogs(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	marker := []byte("MARKER-WAL-ERASE-5c2e")
	// Several rounds, so earlier logs have been rotated (and, were they
	// recycled, reused) before the erasure.
	for round := range 3 {
		b := s.NewBatch()
		for i := range 50 {
			b.Set("caseload", fmt.Sprintf("p/person%d/%04d", round, i), append([]byte("value "), marker...))
		}
		b.Set("caseload", fmt.Sprintf("kept/%d", round), []byte("kept"))
		if err := b.Commit(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		b = s.NewBatch()
		for round2 := range round + 1 {
			b.Erase("caseload", fmt.Sprintf("p/person%d/", round2))
		}
		if err := b.Commit(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if left = filesHolding(t, dir, marker); len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // obsolete logs are deleted in the background
	}
	if len(left) > 0 {
		t.Fatalf("erased bytes still in %v", left)
	}
	if v, ok := get(t, s, "caseload", "kept/2"); !ok || v != "kept" {
		t.Fatalf("what was not erased: %q %v", v, ok)
	}
}
