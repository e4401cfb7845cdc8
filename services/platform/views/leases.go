package views

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeasesBucket holds who applies what: one key per lease naming its
// holder, and one per live replica. The bucket forgets any key not renewed
// within the TTL, which is how a dead replica's work is taken over.
const LeasesBucket = "lw_leases"

// Leases share projection work between the replicas of a service: each
// partition (or unpartitioned projection) is applied by the one replica
// holding its lease, and each replica takes no more than its fair share,
// so that work spreads as replicas come and go.
type Leases struct {
	kv     jetstream.KeyValue
	member string
	ttl    time.Duration

	mu   sync.Mutex
	held map[string]bool
}

// OpenLeases opens the leases bucket for a replica named member (stable
// across its restarts, such as the host name, so that a restarted replica
// takes its own leases back at once).
func OpenLeases(ctx context.Context, js jetstream.JetStream, member string, ttl time.Duration, replicas int) (*Leases, error) {
	if strings.ContainsAny(member, ".*> ") || member == "" {
		return nil, fmt.Errorf("replica name %q: want a non-empty name without '.', '*', '>' or spaces", member)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeasesBucket,
		Description: "Linkway projection leases: which replica applies which partition",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("leases bucket: %w", err)
	}
	return &Leases{kv: kv, member: member, ttl: ttl, held: map[string]bool{}}, nil
}

// Run announces this replica until ctx ends, then withdraws it.
func (l *Leases) Run(ctx context.Context) error {
	key := "member." + l.member
	for {
		// A failed put only makes others count one replica fewer for a
		// while (they take a larger share); the next round puts again.
		_, _ = l.kv.Put(ctx, key, []byte(l.member))
		if !sleep(ctx, l.ttl/3) {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = l.kv.Delete(dctx, key)
			cancel()
			return nil
		}
	}
}

// Hold runs fn while this replica holds the lease name, one of total
// leases of the same group (name's prefix before the last '.'). fn's
// context ends when the lease is lost or given up; Hold then tries again.
// It returns when ctx ends, or with fn's error.
func (l *Leases) Hold(ctx context.Context, name string, total int, fn func(ctx context.Context) error) error {
	group := name[:strings.LastIndex(name, ".")+1]
	for ctx.Err() == nil {
		rev, ok := l.acquire(ctx, group, name, total)
		if !ok {
			// Jitter spreads the replicas' attempts.
			if !sleep(ctx, l.ttl/3+time.Duration(rand.Int64N(int64(l.ttl/6)+1))) {
				return nil
			}
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			l.renew(lctx, cancel, group, name, total, rev)
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

// acquire takes name if it is free (or already ours from before a restart)
// and this replica is under its fair share of group.
func (l *Leases) acquire(ctx context.Context, group, name string, total int) (uint64, bool) {
	if l.count(group) >= l.share(ctx, total) {
		return 0, false
	}
	rev, err := l.kv.Create(ctx, name, []byte(l.member))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := l.kv.Get(ctx, name)
		if gerr != nil || string(e.Value()) != l.member {
			return 0, false
		}
		rev, err = l.kv.Update(ctx, name, []byte(l.member), e.Revision())
	}
	if err != nil {
		return 0, false
	}
	l.mu.Lock()
	l.held[name] = true
	l.mu.Unlock()
	return rev, true
}

// renew keeps the lease alive; it cancels fn's context when the lease is
// lost, or given up because this replica holds more than its share.
func (l *Leases) renew(ctx context.Context, cancel context.CancelFunc, group, name string, total int, rev uint64) {
	defer cancel()
	for sleep(ctx, l.ttl/3) {
		if over := l.count(group) - l.share(ctx, total); over > 0 && rand.IntN(l.count(group)) < over {
			return // give one up; another replica will take it
		}
		var err error
		if rev, err = l.kv.Update(ctx, name, []byte(l.member), rev); err != nil {
			return
		}
	}
}

func (l *Leases) release(name string) {
	l.mu.Lock()
	delete(l.held, name)
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if e, err := l.kv.Get(ctx, name); err == nil && string(e.Value()) == l.member {
		_ = l.kv.Delete(ctx, name, jetstream.LastRevision(e.Revision()))
	}
}

func (l *Leases) count(group string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for name := range l.held {
		if strings.HasPrefix(name, group) {
			n++
		}
	}
	return n
}

// share is this replica's fair share of total leases: total divided by
// the live replicas, rounded up.
func (l *Leases) share(ctx context.Context, total int) int {
	members := 0
	if lister, err := l.kv.ListKeysFiltered(ctx, "member.*"); err == nil {
		for range lister.Keys() {
			members++
		}
	}
	members = max(members, 1)
	return (total + members - 1) / members
}

// allHeld reports whether every lease in names has a holder.
func (l *Leases) allHeld(names []string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range names {
		if _, err := l.kv.Get(ctx, n); err != nil {
			return false
		}
	}
	return true
}
