package views_test

import (
	"os"
	"testing"
)

// TestMain removes the benchmark's history folders once every test and
// benchmark of the package has run.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range historyDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}
