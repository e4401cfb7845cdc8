// Package kvmirror keeps an in-memory copy of a small JetStream KV bucket
// (the organisation register), current by a watch, so a process answers
// lookups and lists without a round trip per key.
package kvmirror

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Mirror keeps an in-memory copy of a KV bucket, kept current by a watch.
// It trails the bucket by the watch's delivery time. Only for small
// buckets: it holds every entry.
type Mirror struct {
	kv      jetstream.KeyValue
	mu      sync.RWMutex
	entries map[string]mirrored
	ready   chan struct{}
	changed chan struct{} // closed and replaced on every change
}

type mirrored struct {
	value    []byte
	revision uint64
}

// New starts mirroring kv until ctx ends; it returns once the bucket's
// current contents are loaded.
func New(ctx context.Context, kv jetstream.KeyValue) (*Mirror, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	m := &Mirror{kv: kv, entries: map[string]mirrored{}, ready: make(chan struct{}), changed: make(chan struct{})}
	go m.run(ctx, w)
	select {
	case <-m.ready:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Mirror) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the initial values are all in
				close(m.ready)
				continue
			}
			m.mu.Lock()
			if e.Operation() == jetstream.KeyValuePut {
				m.entries[e.Key()] = mirrored{value: e.Value(), revision: e.Revision()}
			} else {
				delete(m.entries, e.Key())
			}
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
	}
}

// Get returns a key's value.
func (m *Mirror) Get(key string) ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[key]
	return e.value, ok
}

// Scan returns the keys with prefix and their values, in key order.
func (m *Mirror) Scan(prefix string) []KeyValue {
	m.mu.RLock()
	out := make([]KeyValue, 0, 16)
	for k, e := range m.entries {
		if strings.HasPrefix(k, prefix) {
			out = append(out, KeyValue{Key: k, Value: e.value})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b KeyValue) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Changed returns a channel closed at the next change to the bucket.
func (m *Mirror) Changed() <-chan struct{} {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.changed
}

// KeyValue is one mirrored entry.
type KeyValue struct {
	Key   string
	Value []byte
}
