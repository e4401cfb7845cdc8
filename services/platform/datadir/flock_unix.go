//go:build unix

package datadir

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock without waiting; false when another
// open file holds one.
func tryLock(f *os.File) (bool, error) { return flock(f, syscall.LOCK_EX) }

// tryLockShared takes a shared flock without waiting (to ask whether
// anyone holds the exclusive one).
func tryLockShared(f *os.File) (bool, error) { return flock(f, syscall.LOCK_SH) }

func flock(f *os.File, how int) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		}
		return false, err
	}
}

func unlock(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

func isReadOnly(err error) bool { return errors.Is(err, syscall.EROFS) }
