//go:build unix

package datadir

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// ReadOnlyForTest is a folder, with a file in it, that this process cannot
// write, for tests of what a read-only data folder is told: mode 0500 for
// a normal user; for root, whom modes do not stop, the folder bind-mounted
// read-only (removed with the test).
func ReadOnlyForTest(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "existing"), []byte("x"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		return dir
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		tb.Skipf("root without the right to mount cannot make a folder read-only: %v", err)
	}
	tb.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		tb.Skipf("root without the right to remount read-only: %v", err)
	}
	return dir
}

// SmallDiskForTest is a folder on a file system of its own of size bytes,
// removed with the test, for tests of a full disk: a tmpfs, which only
// root may mount (others skip: a limit of the machine, not of the code).
func SmallDiskForTest(tb testing.TB, size int) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "disk")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		tb.Skipf("cannot mount a small file system (root only): %v", err)
	}
	tb.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}
