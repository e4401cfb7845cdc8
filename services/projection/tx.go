package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Tx buffers one batch's view writes: reads see the batch's own writes
// first, and each touched key is written once when the batch is flushed.
type Tx struct {
	ctx        context.Context
	kv         jetstream.KeyValue
	cache      *viewCache
	writes     map[string][]byte // nil value: delete
	checkpoint uint64
}

func newTx(ctx context.Context, kv jetstream.KeyValue, cache *viewCache) *Tx {
	return &Tx{ctx: ctx, kv: kv, cache: cache, writes: map[string][]byte{}}
}

// viewCache holds what the runner wrote to or read from its view. The
// runner is its view's only writer, so what it holds is current. While it
// has held every key since the view was empty (complete), a key it lacks
// is a key the view lacks: a rebuild reads nothing back from KV.
type viewCache struct {
	max      int
	values   map[string][]byte // nil value: known absent
	complete bool
}

func newViewCache(max int, empty bool) *viewCache {
	return &viewCache{max: max, values: map[string][]byte{}, complete: empty}
}

func (c *viewCache) get(key string) (v []byte, known bool) {
	v, known = c.values[key]
	if !known && c.complete {
		return nil, true
	}
	return v, known
}

func (c *viewCache) set(key string, v []byte) {
	if len(c.values) >= c.max {
		clear(c.values) // start again rather than track recency
		c.complete = false
	}
	c.values[key] = v
}

// Get returns a key's value, or ok false when there is none.
func (t *Tx) Get(key string) (value []byte, ok bool, err error) {
	if v, buffered := t.writes[key]; buffered {
		return v, v != nil, nil
	}
	if v, known := t.cache.get(key); known {
		return v, v != nil, nil
	}
	e, err := t.kv.Get(t.ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		t.cache.set(key, nil)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("view get: %w", err)
	}
	t.cache.set(key, e.Value())
	return e.Value(), true, nil
}

// Put sets a key.
func (t *Tx) Put(key string, value []byte) { t.writes[key] = value }

// Delete removes a key.
func (t *Tx) Delete(key string) { t.writes[key] = nil }

// GetJSON decodes a key's JSON value into v; ok is false when there is none.
func (t *Tx) GetJSON(key string, v any) (ok bool, err error) {
	b, ok, err := t.Get(key)
	if err != nil || !ok {
		return ok, err
	}
	return true, json.Unmarshal(b, v)
}

// PutJSON sets a key to v encoded as JSON.
func (t *Tx) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	t.Put(key, b)
	return nil
}

// flush writes the buffered keys, several at a time.
func (t *Tx) flush(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for k, v := range t.writes {
		g.Go(func() error {
			if v == nil {
				if err := t.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
					return err
				}
				return nil
			}
			_, err := t.kv.Put(ctx, k, v)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for k, v := range t.writes {
		t.cache.set(k, v)
	}
	clear(t.writes)
	return nil
}
