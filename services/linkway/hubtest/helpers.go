package hubtest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// LogBuffer is a log destination a running hub's goroutines write while
// the test reads it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StreamMessages reads every message the stream holds on subjects
// matching filter, in order (a feed, as its reader would see it).
func (h *Hub) StreamMessages(name, filter string) []*jetstream.RawStreamMsg {
	h.tb.Helper()
	ctx := context.Background()
	stream, err := h.JS().Stream(ctx, name)
	if err != nil {
		h.tb.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			h.tb.Fatal(err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// FilesHolding lists the files under dir (a data folder) that hold any of
// marks, each as "path: mark" with path relative to dir: what an erasure
// test greps the folder for. Files removed while it walks (a compaction)
// are skipped.
func FilesHolding(tb testing.TB, dir string, marks ...string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range marks {
			if bytes.Contains(data, []byte(m)) {
				out = append(out, strings.TrimPrefix(path, dir)+": "+m)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
