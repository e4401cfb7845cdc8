package viewstore

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// What a full disk does to the store (see the package comment). Pebble
// v2 treats a failed write to its log or manifest as fatal: the log
// writer keeps the error for good, a later memtable switch panics with
// Pebble's mutexes held (at worst an unrecoverable "unlock of unlocked
// mutex"), and Close waits for ever on a flush the disk refuses. There is
// no recovering in place once it has happened, so the store refuses writes
// before it can, and stops for good if it happens all the same.

var (
	// ErrNoSpace is returned by a write while the store's file system has
	// less free space than Config.ReserveBytes. Nothing was written; the
	// same write succeeds once space is freed.
	ErrNoSpace = errors.New("view store: too little free space on its disk; view writes wait until space is freed")
	// ErrFailed is returned by every write, and by Close, once Pebble has
	// failed a write (a full disk, an I/O error): the store takes no more
	// writes in this process. It is ErrClosed to errors.Is, so the reader
	// stops, and with it the process; opened again, the store is at its
	// last committed batch.
	ErrFailed = fmt.Errorf("view store failed, %w to writes until the process starts again", ErrClosed)
)

// fatal is the store's failure, once there is one: set by the first
// fatal error Pebble reports or panic it raises on a write.
type fatal struct {
	log *slog.Logger
	dir string

	mu  sync.Mutex
	err error
}

// set records err as the store's failure unless it has one, logs it once,
// and returns the failure.
func (f *fatal) set(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
		// Pebble's messages name files and errors, never keys' values.
		f.log.Error("view store failed: Pebble cannot write and cannot go on; no more view writes in this process. "+
			"Free space if the disk is full: started again, the store reopens at its last committed batch",
			"dir", f.dir, "err", err)
	}
	return f.err
}

func (f *fatal) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// write runs fn, which writes to Pebble, unless the store is closed or
// failed or its disk is short of room. A panic out of Pebble's write path
// (Fatalf's, or its own) fails the store: Pebble's state after it is not
// one to write on.
func (s *Store) write(fn func(db *pebble.DB) error) error {
	return s.use(func(db *pebble.DB) (err error) {
		if f := s.fatal.get(); f != nil {
			return fmt.Errorf("%w: %w", ErrFailed, f)
		}
		if err := s.room(); err != nil {
			return err
		}
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("%w: %w", ErrFailed, s.fatal.set(fmt.Errorf("%v", v)))
			}
		}()
		return fn(db)
	})
}

// room returns ErrNoSpace while the store's file system has less than the
// reserve free, and logs when that starts and ends. A file system that
// cannot say (no statfs) is not a reason to refuse.
func (s *Store) room() error {
	u, err := vfs.Default.GetDiskUsage(s.dir)
	if err != nil || u.AvailBytes >= s.reserve {
		if s.starved.CompareAndSwap(true, false) {
			s.log.Info("view store: its disk has room again; view writes resumed", "dir", s.dir, "free_bytes", u.AvailBytes)
		}
		return nil
	}
	if s.starved.CompareAndSwap(false, true) {
		s.log.Error("view store: its disk is short of space; view writes wait (views fall behind the log) until space is freed",
			"dir", s.dir, "free_bytes", u.AvailBytes, "reserve_bytes", s.reserve)
	}
	return fmt.Errorf("%w (%d bytes free in %s, %d kept in reserve)", ErrNoSpace, u.AvailBytes, s.dir, s.reserve)
}

// Writable is nil while the store takes writes; otherwise why not:
// ErrNoSpace (passes once space is freed), ErrFailed (passes with a
// restart of the process) or ErrClosed. For /readyz.
func (s *Store) Writable() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if f := s.fatal.get(); f != nil {
		return fmt.Errorf("%w: %w", ErrFailed, f)
	}
	return s.room()
}

// pebbleLogger sends Pebble's messages to slog. Errors are at most one
// per errorEvery (a flush that fails on a full disk is retried, and
// reported, every few milliseconds), with a count of those left out.
// Fatalf is Pebble unable to go on: it fails the store, and must not
// return, so it panics; on a write's path the store turns that into
// ErrFailed, on one of Pebble's own goroutines it ends the process, as
// Pebble means it to, after the failure is logged.
type pebbleLogger struct {
	log   *slog.Logger
	fatal *fatal

	mu      sync.Mutex
	last    time.Time
	dropped int
}

const errorEvery = 10 * time.Second

func (l *pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.mu.Lock()
	if time.Since(l.last) < errorEvery {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = time.Now(), 0
	l.mu.Unlock()
	l.log.Error("pebble: "+fmt.Sprintf(format, args...), "similar_errors_not_logged", dropped)
}

func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.fatal.set(errors.New(msg))
	panic(msg)
}
