// Package datadir guards a Linkway data folder (the embedded JetStream
// store, the views, the keys made in demo mode): one process at a time.
// Two processes writing one JetStream store each believe they own it, and
// acknowledged writes of one are lost when the other's state wins; so the
// hub and every offline command (rebuild, keys, gen, orgs) take an
// exclusive lock on the folder first, and a second one stops at once,
// naming the first.
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LockFile is the lock's file in the data folder. It holds who has the
// folder (Holder as JSON); the lock itself is an flock on it, so it goes
// with the process however the process ends (kill -9 included), and a
// stale file left behind locks nothing.
const LockFile = "linkway.lock"

// Holder is the process that has a data folder.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	Host    string    `json:"host,omitempty"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process (it has not said which yet)"
	}
	s := fmt.Sprintf("pid %d (%s", h.PID, cmpOr(h.Command, "linkway"))
	if !h.Started.IsZero() {
		s += ", started " + h.Started.Local().Format(time.DateTime)
	}
	return s + ")"
}

// ErrInUse is returned (wrapped in *InUseError) when another process has
// the data folder.
var ErrInUse = errors.New("the data folder is in use")

// InUseError says who has the data folder.
type InUseError struct {
	Dir    string
	Holder Holder
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("the data folder %s is in use by %s: one Linkway process at a time may use a data folder",
		e.Dir, e.Holder)
}

// Unwrap makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Unwrap() error { return ErrInUse }

// Lock is a held data folder.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the data folder dir for this process, creating the folder
// (owner-only) if need be. command names what holds it ("hub", "rebuild
// referrals"), for the error another process gets; never put secrets in it.
// A folder another process has is an *InUseError at once: no waiting. A
// folder that cannot be created or written is an error saying so.
func Acquire(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder %s cannot be created: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || isReadOnly(err) {
			return nil, fmt.Errorf("data folder %s is not writable: %w", dir, err)
		}
		return nil, fmt.Errorf("data folder %s: %w", dir, err)
	}
	locked, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data folder %s: %w", dir, err)
	}
	if !locked {
		h := readHolder(f)
		f.Close()
		return nil, &InUseError{Dir: dir, Holder: h}
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Command: command, Started: time.Now().UTC().Truncate(time.Second), Host: host})
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			unlock(f)
			f.Close()
			return nil, fmt.Errorf("data folder %s is not writable: %w", dir, err)
		}
	} else {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("data folder %s is not writable: %w", dir, err)
	}
	return &Lock{f: f, path: path}, nil
}

// Release gives the folder up. The file stays (another process may be
// opening it); its contents no longer lock anything.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// Who says who holds dir now, if anyone: for messages and tools.
func Who(dir string) (Holder, bool) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	locked, err := tryLockShared(f)
	if err != nil || locked {
		if locked {
			unlock(f)
		}
		return Holder{}, false
	}
	return readHolder(f), true
}

// readHolder reads the holder from the lock file. Just after another
// process took the lock it may not have written itself yet; it is given a
// moment.
func readHolder(f *os.File) Holder {
	var h Holder
	for range 20 {
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
		if err == nil && json.Unmarshal([]byte(strings.TrimSpace(string(b))), &h) == nil && h.PID != 0 {
			return h
		}
		time.Sleep(10 * time.Millisecond) // the holder writes itself right after locking
	}
	return Holder{}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
