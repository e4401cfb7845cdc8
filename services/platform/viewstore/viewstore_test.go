package viewstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"linkway/events"
	"linkway/services/platform/viewstore"
)

func open(t *testing.T, dir string) *viewstore.Store {
	t.Helper()
	s, err := viewstore.Open(viewstore.DefaultConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func get(t *testing.T, s *viewstore.Store, view, key string) (string, bool) {
	t.Helper()
	v, ok, err := s.View(view).Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func checkpoint(t *testing.T, s *viewstore.Store, view string) uint64 {
	t.Helper()
	cp, err := s.Checkpoint(view)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestBatchCommitsViewsAndCheckpointsTogether(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	b := s.NewBatch()
	b.Set("caseload", "c.U1.j1", []byte("one"))
	b.Set("inbox", "i.V1.o1", []byte("sent"))
	b.SetCheckpoint("caseload", 7)
	b.SetCheckpoint("inbox", 7)
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	// A second batch that is never committed (the process stops first)
	// leaves neither its changes nor its checkpoint.
	b.Set("caseload", "c.U1.j1", []byte("two"))
	b.Set("caseload", "c.U1.j2", []byte("new"))
	b.SetCheckpoint("caseload", 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if v, _ := get(t, s, "caseload", "c.U1.j1"); v != "one" {
		t.Fatalf("c.U1.j1 = %q, want one", v)
	}
	if _, ok := get(t, s, "caseload", "c.U1.j2"); ok {
		t.Fatal("an uncommitted key is in the view")
	}
	if cp := checkpoint(t, s, "caseload"); cp != 7 {
		t.Fatalf("checkpoint %d, want 7", cp)
	}
	cps, err := s.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps["inbox"] != 7 {
		t.Fatalf("checkpoints %v", cps)
	}
}

func TestBatchReadsItsOwnChanges(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	b := s.NewBatch()
	for _, k := range []string{"a.1", "a.2", "b.1", "c.1"} {
		b.Set("v", k, []byte("stored "+k))
	}
	if err := b.Commit(ctx, false); err != nil {
		t.Fatal(err)
	}
	b.Set("v", "a.1", []byte("changed"))
	b.Delete("v", "b.1")
	b.DeletePrefix("v", "a.")
	b.Set("v", "a.3", []byte("after the range delete"))
	want := map[string]string{"a.1": "", "a.2": "", "a.3": "after the range delete", "b.1": "", "c.1": "stored c.1", "c.2": ""}
	check := func(when string, read func(k string) (string, bool)) {
		for k, w := range want {
			v, ok := read(k)
			if ok != (w != "") || v != w {
				t.Fatalf("%s: %s = %q (present %v), want %q", when, k, v, ok, w)
			}
		}
	}
	// Get and Lookup (for keys usually absent) read the same.
	for name, read := range map[string]func(view, key string) ([]byte, bool, error){"Get": b.Get, "Lookup": b.Lookup} {
		check("in the batch, "+name, func(k string) (string, bool) {
			v, ok, err := read("v", k)
			if err != nil {
				t.Fatal(err)
			}
			return string(v), ok
		})
	}
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	check("committed", func(k string) (string, bool) { return get(t, s, "v", k) })
}

func TestPagingReturnsEveryKeyOnceInOrder(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	b := s.NewBatch()
	const n = 1234
	var want []string
	for i := range n {
		k := fmt.Sprintf("c.U12345.%06d", i*7%n) // written out of order
		b.Set("caseload", k, []byte("v"+k))
	}
	for i := range n {
		want = append(want, fmt.Sprintf("c.U12345.%06d", i))
	}
	// Neighbours that must never show in the team's list.
	b.Set("caseload", "c.U12344.x", []byte("other team"))
	b.Set("caseload", "c.U123456.x", []byte("other team, longer code"))
	b.Set("caseloadx", "c.U12345.zzz", []byte("other view"))
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	v := s.View("caseload")
	var got []string
	token, pages := "", 0
	for {
		p, err := v.Page("c.U12345.", 100, token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Items) > 100 {
			t.Fatalf("page of %d items", len(p.Items))
		}
		for _, it := range p.Items {
			if string(it.Value) != "v"+it.Key {
				t.Fatalf("%s holds %q", it.Key, it.Value)
			}
			got = append(got, it.Key)
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
	}
	if pages != 13 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages, %d keys; first %v", pages, len(got), got[:min(3, len(got))])
	}

	// Page sizes: the default, and at most 500.
	if p, _ := v.Page("c.U12345.", 0, ""); len(p.Items) != viewstore.DefaultPageSize {
		t.Fatalf("default page: %d items", len(p.Items))
	}
	if p, _ := v.Page("c.U12345.", 10_000, ""); len(p.Items) != viewstore.MaxPageSize {
		t.Fatalf("largest page: %d items", len(p.Items))
	}
	// A token names a place in one list: another team's, or a made-up
	// one, is refused as bad input.
	first, _ := v.Page("c.U12345.", 10, "")
	for _, bad := range []struct{ prefix, token string }{
		{"c.U12344.", first.NextPageToken},
		{"c.U12345.", "%%%"},
		{"c.U12345.", "YS5i"}, // base64 of "a.b": not under the prefix
	} {
		_, err := v.Page(bad.prefix, 10, bad.token)
		if events.ErrorCode(err) != events.CodeInvalid {
			t.Fatalf("token %q for %s: %v, want invalid_argument", bad.token, bad.prefix, err)
		}
	}
}

// sstContains reports whether any table file of the store holds marker.
func sstContains(t *testing.T, dir string, marker []byte) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no table files: the test wrote too little to flush")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, marker) {
			return true
		}
	}
	return false
}

// fillAndFlush writes values holding marker into view, then reopens the
// store so that they are in table files.
func fillAndFlush(t *testing.T, dir string, s *viewstore.Store, view, prefix string, marker []byte) *viewstore.Store {
	t.Helper()
	b := s.NewBatch()
	for i := range 200 {
		b.Set(view, fmt.Sprintf("%s%04d", prefix, i), append([]byte("value "), marker...))
	}
	b.Set("other", "k", []byte("kept"))
	b.SetCheckpoint(view, 42)
	if err := b.Commit(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	if !sstContains(t, dir, marker) {
		t.Fatal("the marker is not in the table files before the delete")
	}
	return s
}

func TestDropViewDeletesEntriesCheckpointAndBytes(t *testing.T) {
	dir := t.TempDir()
	marker := []byte("MARKER-DROP-8f1e2d")
	s := fillAndFlush(t, dir, open(t, dir), "caseload", "c.U1.", marker)
	if err := s.DropView(context.Background(), "caseload"); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, s, "caseload", "c.U1.0001"); ok {
		t.Fatal("a dropped view's key is still there")
	}
	if cp := checkpoint(t, s, "caseload"); cp != 0 {
		t.Fatalf("dropped view's checkpoint %d", cp)
	}
	if v, _ := get(t, s, "other", "k"); v != "kept" {
		t.Fatal("another view lost its key")
	}
	if sstContains(t, dir, marker) {
		t.Fatal("the dropped view's bytes are still in the table files")
	}
}

func TestDeleteAndCompactErasesAPrefix(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	marker := []byte("MARKER-ERASE-77a0c3")
	s := fillAndFlush(t, dir, open(t, dir), "caseload", "p.person1.", marker)
	b := s.NewBatch()
	b.Set("caseload", "p.person2.x", []byte("someone else"))
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAndCompact(ctx, "caseload", "p.person1."); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, s, "caseload", "p.person1.0001"); ok {
		t.Fatal("an erased key is still there")
	}
	if v, _ := get(t, s, "caseload", "p.person2.x"); v != "someone else" {
		t.Fatal("a key outside the prefix went")
	}
	if cp := checkpoint(t, s, "caseload"); cp != 42 {
		t.Fatalf("checkpoint %d after an erasure, want 42 kept", cp)
	}
	if sstContains(t, dir, marker) {
		t.Fatal("the erased bytes are still in the table files")
	}

	// The same through a batch (how a projection erases while applying).
	marker2 := []byte("MARKER-ERASE-BATCH-19bd")
	s = fillAndFlush(t, dir, s, "caseload", "p.person3.", marker2)
	b = s.NewBatch()
	b.Erase("caseload", "p.person3.")
	b.SetCheckpoint("caseload", 43)
	if err := b.Commit(ctx, false); err != nil {
		t.Fatal(err)
	}
	if sstContains(t, dir, marker2) {
		t.Fatal("bytes erased through a batch are still in the table files")
	}
}

func TestSnapshotOpensWhereItWasTaken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	b := s.NewBatch()
	b.Set("v", "k1", []byte("before"))
	b.SetCheckpoint("v", 10)
	if err := b.Commit(ctx, false); err != nil { // unsynced: the snapshot must still hold it
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	if err := s.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	b.Set("v", "k2", []byte("after"))
	b.SetCheckpoint("v", 11)
	if err := b.Commit(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(snap); err == nil {
		t.Fatal("a snapshot overwrote an existing folder")
	}
	c := open(t, snap)
	if v, _ := get(t, c, "v", "k1"); v != "before" {
		t.Fatalf("k1 = %q in the snapshot", v)
	}
	if _, ok := get(t, c, "v", "k2"); ok {
		t.Fatal("the snapshot holds a later write")
	}
	if cp := checkpoint(t, c, "v"); cp != 10 {
		t.Fatalf("snapshot checkpoint %d, want 10", cp)
	}
}

func TestClosedStoreFailsReadsWithoutPanicking(t *testing.T) {
	s := open(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.View("v").Get("k"); !errors.Is(err, viewstore.ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := s.View("v").Page("", 10, ""); !errors.Is(err, viewstore.ErrClosed) {
		t.Fatalf("page after close: %v", err)
	}
	b := s.NewBatch()
	b.Set("v", "k", []byte("x"))
	if err := b.Commit(context.Background(), true); !errors.Is(err, viewstore.ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"caseload", "vcs_inbox", "_journeys", "a1"} {
		if err := viewstore.ValidName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Case", "1a", "a.b", "a\x00b", "__x", strings.Repeat("a", 70)} {
		if viewstore.ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkAbsentKey compares Get and Lookup for keys that are not in a
// store whose keys have been compacted to the bottom level.
func BenchmarkAbsentKey(b *testing.B) {
	ctx := context.Background()
	s, err := viewstore.Open(viewstore.DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	for i := range 200 {
		w := s.NewBatch()
		for j := range 1000 {
			w.Set("v", fmt.Sprintf("%08d-%08d", i, j), bytes.Repeat([]byte("x"), 200))
		}
		if err := w.Commit(ctx, false); err != nil {
			b.Fatal(err)
		}
	}
	// Deleting a key past the others compacts the tables that span it:
	// all of them, down to the bottom level.
	if err := s.DeleteAndCompact(ctx, "v", "99999999"); err != nil {
		b.Fatal(err)
	}
	v := s.View("v")
	for _, c := range []struct {
		name string
		get  func(string) ([]byte, bool, error)
	}{{"get", v.Get}, {"lookup", v.Lookup}} {
		b.Run(c.name, func(b *testing.B) {
			for i := range b.N {
				if _, ok, err := c.get(fmt.Sprintf("%08d-x%07d", i%200, i)); err != nil || ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
