// Package ctxwait is the one pause the machinery and the parties take
// between attempts: a sleep that ends early when its context does.
package ctxwait

import (
	"context"
	"time"
)

// Sleep waits d, or less when ctx ends first; it reports whether ctx is
// still alive (false: stop, the caller is being shut down).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
