package viewstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// Batch gathers changes to any number of views and their checkpoints, and
// commits them all at once or not at all. Reads through the batch see its
// own changes first. Each key changed several times is written once, at
// commit. A batch is used by one goroutine.
type Batch struct {
	s       *Store
	writes  map[string][]byte // full key -> value; nil value: deleted
	ranges  [][2][]byte       // deleted ranges, applied before writes
	erase   [][2][]byte       // ranges to compact after the commit
	cps     map[string]uint64
	pending int // bytes of keys and values, to bound a batch
	// pb is the Pebble batch each commit builds, kept with its buffer for
	// the next: a fresh one a commit was a quarter of all the bytes a
	// catch-up allocated, each a few megabytes the collector had to
	// reclaim.
	pb *pebble.Batch
}

// retainedBatchBytes bounds the buffer a Batch keeps between commits
// (Pebble's own default keeps none over 1 MiB). A batch larger than half
// a memtable is handed to Pebble whole and its buffer not kept.
const retainedBatchBytes = 16 << 20

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, writes: map[string][]byte{}, cps: map[string]uint64{}}
}

// Get returns a key's value as the batch would leave it: the batch's own
// change when there is one, else the store's. The value must not be
// changed.
func (b *Batch) Get(view, key string) (value []byte, ok bool, err error) {
	return b.read(view, key, b.s.get)
}

// Lookup is Get for a key that is usually absent (View.Lookup): one that
// is nowhere costs no read of a data block.
func (b *Batch) Lookup(view, key string) (value []byte, ok bool, err error) {
	return b.read(view, key, b.s.lookup)
}

// read reads key as the view will hold it after the batch: from the
// batch's own changes, else from the store with get.
func (b *Batch) read(view, key string, get func(view string, k []byte) ([]byte, bool, error)) ([]byte, bool, error) {
	k := viewKeyString(view, key)
	if v, changed := b.writes[k]; changed {
		return v, v != nil, nil
	}
	for _, r := range b.ranges {
		if k >= string(r[0]) && (r[1] == nil || k < string(r[1])) {
			return nil, false, nil
		}
	}
	return get(view, bytesOf(k))
}

// Set sets a key of a view. The batch keeps value: it must not be changed
// afterwards.
func (b *Batch) Set(view, key string, value []byte) {
	if value == nil {
		value = []byte{}
	}
	b.put(viewKeyString(view, key), value)
}

// Delete deletes a key of a view.
func (b *Batch) Delete(view, key string) { b.put(viewKeyString(view, key), nil) }

func (b *Batch) put(k string, v []byte) {
	if old, ok := b.writes[k]; ok {
		b.pending -= len(k) + len(old)
	}
	b.writes[k] = v
	b.pending += len(k) + len(v)
}

// viewKeyString is viewKey as a string, built with one allocation.
func viewKeyString(view, key string) string { return "v" + view + "\x00" + key }

// bytesOf is a string's bytes without a copy, for Pebble calls that copy
// what they are given (batch writes, lookups) and never change it.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// DeletePrefix deletes every key of a view that starts with prefix.
func (b *Batch) DeletePrefix(view, prefix string) {
	start := viewKey(view, prefix)
	end := prefixEnd(start)
	for k := range b.writes { // earlier changes in the range are deleted too
		if strings.HasPrefix(k, string(start)) {
			b.pending -= len(k) + len(b.writes[k])
			delete(b.writes, k)
		}
	}
	b.ranges = append(b.ranges, [2][]byte{start, end})
}

// Erase is DeletePrefix for personal data: the commit is synced and the
// range compacted afterwards, so the deleted bytes leave the table files.
func (b *Batch) Erase(view, prefix string) {
	b.DeletePrefix(view, prefix)
	b.erase = append(b.erase, b.ranges[len(b.ranges)-1])
}

// SetCheckpoint records that a view has applied the stream up to seq.
func (b *Batch) SetCheckpoint(view string, seq uint64) { b.cps[view] = seq }

// Size is roughly the bytes the batch will write.
func (b *Batch) Size() int { return b.pending + 16*len(b.cps) }

// Keys is how many keys the batch changes.
func (b *Batch) Keys() int { return len(b.writes) }

// Empty reports whether committing would write nothing.
func (b *Batch) Empty() bool { return len(b.writes) == 0 && len(b.ranges) == 0 && len(b.cps) == 0 }

// Commit writes the batch. With sync it returns once the batch is on disk;
// without, once it is in the WAL's buffer (a crash of the machine, not of
// the process, may lose it and later batches, never part of one). Erase
// makes a commit synced. The batch is empty again afterwards, whatever
// the outcome.
func (b *Batch) Commit(ctx context.Context, sync bool) error {
	defer b.reset()
	if b.Empty() {
		return nil
	}
	opts := pebble.NoSync
	if sync || len(b.erase) > 0 {
		opts = pebble.Sync
	}
	err := b.s.write(func(db *pebble.DB) error {
		if b.pb == nil {
			b.pb = db.NewBatch(pebble.WithMaxRetainedSizeBytes(retainedBatchBytes))
		}
		pb := b.pb
		defer pb.Reset()
		for _, r := range b.ranges {
			if err := pb.DeleteRange(r[0], r[1], nil); err != nil {
				return err
			}
		}
		// In key order: Pebble's memtable insert reuses the place it found
		// for the previous key, so sorted keys insert several times faster.
		keys := make([]string, 0, len(b.writes))
		for k := range b.writes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := b.writes[k]
			var err error
			if v == nil {
				err = pb.Delete(bytesOf(k), nil)
			} else {
				err = pb.Set(bytesOf(k), v, nil)
			}
			if err != nil {
				return err
			}
		}
		for view, seq := range b.cps {
			if err := pb.Set(checkpointKey(view), encodeSeq(seq), nil); err != nil {
				return err
			}
		}
		if err := pb.Commit(opts); err != nil {
			return err
		}
		// The keys are gone once committed; a failed compaction only
		// leaves their bytes in the files until a later one.
		for _, r := range b.erase {
			if err := compact(ctx, db, r[0], r[1]); err != nil {
				b.s.log.Warn("compacting erased keys failed", "err", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("view store commit: %w", err)
	}
	return nil
}

// Discard drops the batch's changes.
func (b *Batch) Discard() { b.reset() }

func (b *Batch) reset() {
	clear(b.writes)
	clear(b.cps)
	b.ranges, b.erase, b.pending = b.ranges[:0], b.erase[:0], 0
}
