// Package viewstore is the embedded store that holds a process's views:
// derived data, rebuildable from the journey log, kept beside the process
// in Pebble (sorted keys, batched WAL commits, prefix scans for lists,
// a bounded block cache and memtables).
//
// Each view has a key prefix of its own and a checkpoint: the last stream
// sequence applied to it. A Batch carries view changes and checkpoints
// together, so a crash leaves every view at a checkpoint that matches its
// contents and the reader only ever re-applies. Lists are prefix scans in
// pages (Page) with an opaque page token. DropView and Erase delete a key
// range and compact it, so deleted bytes leave the table files.
//
// A full disk: Pebble cannot go on after a failed write to its log or its
// manifest (it calls such an error fatal and has no way back short of
// reopening), so the store keeps it from getting there. Every write first
// asks the file system for room, and while less than Config.ReserveBytes
// is free it is refused with ErrNoSpace: nothing is written, the reader
// retries from its checkpoints, and writes resume by themselves once space
// is freed. Should Pebble fail all the same (another process took the
// reserve between the check and the write), the store is failed for good:
// every later write answers ErrFailed, which is ErrClosed to the reader, so
// the process stops and its supervisor starts it again; Pebble's log
// replay then reopens the store at its last committed batch, every view at
// a checkpoint that matches its contents. See full.go.
package viewstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Config of a store.
type Config struct {
	// Dir is the store's folder: <data>/views by default, or --views.
	Dir string
	// CacheBytes bounds the block cache shared by every view.
	CacheBytes int64
	// MemTableBytes is the size of one memtable; at most MemTables of them
	// are held before writes wait for a flush, so memtables take at most
	// MemTableBytes*MemTables.
	MemTableBytes uint64
	MemTables     int
	// Log receives Pebble's own messages (at debug level) and the store's.
	Log *slog.Logger
	// ReserveBytes is the free space below which writes are refused
	// (ErrNoSpace) rather than risked: room for Pebble to flush its
	// memtables and write its manifest. 0: twice the memtables' bound.
	ReserveBytes uint64
}

// DefaultConfig is sized for a national year's views within about 1 GiB
// of the process: a 64 MiB block cache and at most 4 memtables of 16 MiB.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, CacheBytes: 64 << 20, MemTableBytes: 16 << 20, MemTables: 4}
}

// Store is an open view store.
type Store struct {
	db  *pebble.DB
	log *slog.Logger
	dir string
	// reserve, fatal and starved: see full.go.
	reserve uint64
	fatal   *fatal
	starved atomic.Bool

	// mu guards db against use after Close: Pebble panics on a closed DB,
	// and a view read during shutdown must fail, never end the process.
	mu     sync.RWMutex
	closed bool
}

// ErrClosed is returned by every operation on a closed store.
var ErrClosed = errors.New("view store closed")

// Open opens (creating if need be) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	def := DefaultConfig(cfg.Dir)
	if cfg.Dir == "" {
		return nil, errors.New("view store: no folder given")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = def.CacheBytes
	}
	if cfg.MemTableBytes == 0 {
		cfg.MemTableBytes = def.MemTableBytes
	}
	if cfg.MemTables < 2 {
		cfg.MemTables = def.MemTables
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReserveBytes == 0 {
		cfg.ReserveBytes = 2 * cfg.MemTableBytes * uint64(cfg.MemTables)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("view store %s: %w", cfg.Dir, err)
	}
	failure := &fatal{log: cfg.Log, dir: cfg.Dir}
	logger := &pebbleLogger{log: cfg.Log, fatal: failure}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                cfg.MemTableBytes,
		MemTableStopWritesThreshold: cfg.MemTables,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      logger,
		Cleaner:                     noRecycle{}, // erased data must not live on in a reused log
	}
	// Bloom filters on every level (the value of L0 is taken by the
	// others): a read of a key that is not there (a journey's first event,
	// a view entry not yet made) then costs no look into every table.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("view store %s: %w", cfg.Dir, err)
	}
	return &Store{db: db, log: cfg.Log, dir: cfg.Dir, reserve: cfg.ReserveBytes, fatal: failure}, nil
}

// Close flushes nothing more than Pebble does (committed batches are in
// the WAL) and closes the store; reads after it fail with ErrClosed. A
// failed store is only marked closed, and its failure returned: Pebble's
// own Close would wait for ever on a flush the full disk refuses, or end
// the process, so its files and lock are left to the process's exit.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.fatal.get(); err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return s.db.Close()
}

// use runs fn with the DB unless the store is closed.
func (s *Store) use(fn func(db *pebble.DB) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return fn(s.db)
}

var nameRE = regexp.MustCompile(`^_?[a-z][a-z0-9_]{0,62}$`)

// ValidName checks a view's name: lower-case letters, digits and '_',
// starting with a letter; a leading '_' marks the machinery's own tables.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("view name %q: want [a-z][a-z0-9_]*", name)
	}
	return nil
}

// Keys: a view's entries are 'v' name 0x00 key, its checkpoint 'c' name.
// No name holds 0x00, so no view's range holds another's keys.
func viewPrefix(name string) []byte { return append(append([]byte{'v'}, name...), 0) }

func viewKey(name, key string) []byte { return append(viewPrefix(name), key...) }

func checkpointKey(name string) []byte { return append([]byte{'c'}, name...) }

// prefixEnd is the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// Checkpoint is a view's last applied stream sequence (0 when none).
func (s *Store) Checkpoint(name string) (uint64, error) {
	var seq uint64
	err := s.use(func(db *pebble.DB) error {
		v, closer, err := db.Get(checkpointKey(name))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		seq, err = decodeSeq(v)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("view %s checkpoint: %w", name, err)
	}
	return seq, nil
}

// Checkpoints returns every view's checkpoint.
func (s *Store) Checkpoints() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.use(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{'c'}, UpperBound: []byte{'d'}})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			seq, err := decodeSeq(it.Value())
			if err != nil {
				it.Close()
				return err
			}
			out[string(it.Key()[1:])] = seq
		}
		return it.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("view checkpoints: %w", err)
	}
	return out, nil
}

func encodeSeq(seq uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[7-i] = byte(seq >> (8 * i))
	}
	return b
}

func decodeSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("checkpoint of %d bytes", len(b))
	}
	var seq uint64
	for _, c := range b {
		seq = seq<<8 | uint64(c)
	}
	return seq, nil
}

// DropView deletes a view's entries and its checkpoint, then compacts its
// range, so that the next reader replays the log into an empty view and
// the deleted bytes leave the table files.
func (s *Store) DropView(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	p := viewPrefix(name)
	err := s.write(func(db *pebble.DB) error {
		b := db.NewBatch()
		defer b.Close()
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return err
		}
		if err := b.Delete(checkpointKey(name), nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		return compact(ctx, db, p, prefixEnd(p))
	})
	if err != nil {
		return fmt.Errorf("drop view %s: %w", name, err)
	}
	return nil
}

// DeleteAndCompact deletes every key of a view that starts with prefix
// (all of the view's keys when prefix is empty, its checkpoint kept) and
// compacts the range: what erasure relies on, so that a person's data
// leaves the table files and not only the view.
func (s *Store) DeleteAndCompact(ctx context.Context, view, prefix string) error {
	if err := ValidName(view); err != nil {
		return err
	}
	start := viewKey(view, prefix)
	end := prefixEnd(start)
	err := s.write(func(db *pebble.DB) error {
		if err := db.DeleteRange(start, end, pebble.Sync); err != nil {
			return err
		}
		return compact(ctx, db, start, end)
	})
	if err != nil {
		return fmt.Errorf("delete %s in view %s: %w", prefix, view, err)
	}
	return nil
}

// compact rewrites the range's table files without its deleted keys and
// waits (a few seconds at most) for Pebble to remove the old files, which
// it does in the background: when it returns, the deleted bytes have left
// the table files, unless a read still open holds an old file.
func compact(ctx context.Context, db *pebble.DB, start, end []byte) error {
	if err := db.Compact(ctx, start, end, true); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := db.Metrics()
		if m.Table.ObsoleteCount == 0 && m.Table.ZombieCount == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Snapshot writes a consistent copy of the store (every view with its
// checkpoint) into dir, which must not exist: a Pebble checkpoint, made
// of hard links where the file system allows. A process opened on dir
// continues from the snapshot's checkpoints, replaying only the tail.
func (s *Store) Snapshot(dir string) error {
	err := s.write(func(db *pebble.DB) error { return db.Checkpoint(dir, pebble.WithFlushedWAL()) })
	if err != nil {
		return fmt.Errorf("view store snapshot into %s: %w", dir, err)
	}
	return nil
}

// Sync makes every batch committed so far durable (catch-up batches are
// committed without waiting for the disk).
func (s *Store) Sync() error {
	return s.write(func(db *pebble.DB) error { return db.LogData(nil, pebble.Sync) })
}

// DiskBytes is the space the store's files take.
func (s *Store) DiskBytes() uint64 {
	var n uint64
	_ = s.use(func(db *pebble.DB) error {
		n = db.Metrics().DiskSpaceUsage()
		return nil
	})
	return n
}
