package views

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
)

// Tx buffers one batch's view writes: reads see the batch's own writes
// first, and each touched key is written once when the batch is flushed.
type Tx struct {
	ctx        context.Context
	js         jetstream.JetStream
	kv         jetstream.KeyValue
	cache      *viewCache
	writes     map[string][]byte // nil value: delete
	checkpoint uint64
	// readErr is the first failed view read: the batch is then applied
	// again from the checkpoint rather than taken as a projector's error.
	readErr error
}

func newTx(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, cache *viewCache) *Tx {
	return &Tx{ctx: ctx, js: js, kv: kv, cache: cache, writes: map[string][]byte{}}
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
		t.readErr = cmp.Or(t.readErr, err)
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

// maxBatchKeys bounds the keys of one atomic write (the server takes up to
// 1,000 messages in an atomic batch; one is the checkpoint).
const maxBatchKeys = 900

// errFenced is returned when the checkpoint was not the expected one:
// another holder has written the view since.
var errFenced = errors.New("the view's checkpoint moved: another holder wrote it")

// flush writes the buffered keys and the checkpoint as one JetStream atomic
// batch on the bucket's stream: all of them or none, and only if the
// checkpoint's revision is still expectRev. It returns the checkpoint's new
// revision.
func (t *Tx) flush(ctx context.Context, checkpointKey string, expectRev uint64) (uint64, error) {
	nc := t.js.Conn()
	prefix := "$KV." + t.kv.Bucket() + "."
	id := events.NewID()
	seq := 0
	msg := func(key string, value []byte, del bool) *nats.Msg {
		seq++
		m := nats.NewMsg(prefix + key)
		m.Data = value
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(seq))
		if del {
			m.Header.Set("KV-Operation", "DEL")
		}
		return m
	}
	for k, v := range t.writes {
		if err := nc.PublishMsg(msg(k, v, v == nil)); err != nil {
			return 0, fmt.Errorf("view write: %w", err)
		}
	}
	commit := msg(checkpointKey, []byte(strconv.FormatUint(t.checkpoint, 10)), false)
	commit.Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(expectRev, 10))
	commit.Header.Set("Nats-Batch-Commit", "1")
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := nc.RequestMsgWithContext(rctx, commit)
	if err != nil {
		return 0, fmt.Errorf("view write: %w", err)
	}
	var ack struct {
		Seq   uint64              `json:"seq"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("view write: %w", err)
	}
	if ack.Error != nil {
		if ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant {
			return 0, errFenced
		}
		return 0, fmt.Errorf("view write: %w", ack.Error)
	}
	for k, v := range t.writes {
		t.cache.set(k, v)
	}
	clear(t.writes)
	return ack.Seq, nil
}
