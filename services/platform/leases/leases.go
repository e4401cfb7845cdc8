// Package leases gives the replicas of a service on one NATS a way to agree
// that one of them, and only one, does something: publish a feed, say.
// A lease is a key in a KV bucket naming its holder, renewed well within
// the bucket's TTL; a replica that dies stops renewing, the bucket forgets
// the key, and another replica takes it over. Views need no leases (every
// replica keeps its own); feeds do, so that each has one publisher.
package leases

import (
	"context"
	"errors"
	"fmt"
	"linkway/services/platform/ctxwait"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket holds the leases: one key per lease, valued with its holder.
// Every service may write it (ops/nats), so the hub's write probe uses it
// too on an external NATS.
const Bucket = "lw_leases"

// DefaultTTL is how long a dead holder's lease lasts before another
// replica may take it.
const DefaultTTL = 10 * time.Second

// Leases are one replica's leases. A nil *Leases stands for a process
// that runs alone (the embedded server): it holds every lease.
type Leases struct {
	kv     jetstream.KeyValue
	member string
	ttl    time.Duration
	never  bool
}

// Never are the leases of a process that must not do what a lease is for:
// a tool (rebuild, snapshot) builds the parties to replay the log into
// their views, and never publishes a feed. Hold waits for its context.
func Never() *Leases { return &Leases{never: true} }

// Open opens (creating) the bucket for a replica named member: stable
// across its restarts (such as the host name), so that a restarted
// replica takes its own leases back at once.
func Open(ctx context.Context, js jetstream.JetStream, member string, ttl time.Duration, replicas int) (*Leases, error) {
	if strings.ContainsAny(member, ".*> ") || member == "" {
		return nil, fmt.Errorf("replica name %q: want a non-empty name without '.', '*', '>' or spaces", member)
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Linkway leases: which replica does what only one may do (publish a feed)",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("leases bucket: %w", err)
	}
	return &Leases{kv: kv, member: member, ttl: ttl}, nil
}

// Member is this replica's name.
func (l *Leases) Member() string {
	if l == nil {
		return ""
	}
	return l.member
}

// Hold runs fn while this replica holds the lease name (KV key characters:
// letters, digits, '-', '_', '.'). fn's context ends when the lease is
// lost (not renewed in time: NATS unreachable); Hold then waits to take it
// again. It returns nil when ctx ends, or fn's error. On a nil *Leases it
// runs fn at once; on Never, never.
func (l *Leases) Hold(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if l == nil {
		return fn(ctx)
	}
	if l.never {
		<-ctx.Done()
		return nil
	}
	for ctx.Err() == nil {
		rev, ok := l.acquire(ctx, name)
		if !ok {
			// Jitter spreads the replicas' attempts.
			if !ctxwait.Sleep(ctx, l.ttl/3+time.Duration(rand.Int64N(int64(l.ttl/6)+1))) {
				return nil
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			l.renew(lctx, cancel, name, rev)
		}()
		err := fn(lctx)
		cancel()
		<-renewed
		l.release(name)
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// acquire takes name if it is free, or already ours from before a restart.
func (l *Leases) acquire(ctx context.Context, name string) (uint64, bool) {
	rev, err := l.kv.Create(ctx, name, []byte(l.member))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, name)
		if gerr != nil || string(e.Value()) != l.member {
			return 0, false
		}
		rev, err = l.kv.Update(ctx, name, []byte(l.member), e.Revision())
	}
	return rev, err == nil
}

// renew keeps the lease alive; it cancels fn's context once a renewal
// fails (another replica may take the lease once it expires).
func (l *Leases) renew(ctx context.Context, cancel context.CancelFunc, name string, rev uint64) {
	defer cancel()
	for ctxwait.Sleep(ctx, l.ttl/3) {
		var err error
		if rev, err = l.kv.Update(ctx, name, []byte(l.member), rev); err != nil {
			return
		}
	}
}

// release gives the lease up at once, if it is still ours.
func (l *Leases) release(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if e, err := l.kv.Get(ctx, name); err == nil && string(e.Value()) == l.member {
		_ = l.kv.Delete(ctx, name, jetstream.LastRevision(e.Revision()))
	}
}

// Holder is who holds the lease name now ("" when nobody does).
func (l *Leases) Holder(ctx context.Context, name string) (string, error) {
	if l == nil || l.never {
		return "", nil
	}
	e, err := l.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
