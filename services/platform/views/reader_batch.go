package views

import (
	"encoding/json"
	"fmt"
	"slices"

	"linkway/services/platform/viewstore"
)

// Batch is how a projection changes its view while the reader applies a
// slice of events: every key is under the projection's own prefix in the
// view store, and all changes commit with the view's checkpoint, at once.
// Reads see the slice's own changes first.
type Batch struct {
	view   string
	w      *viewstore.Batch
	caches []cache // the Records the projection keeps (records.go)
}

func (b *Batch) attach(c cache) { b.caches = append(b.caches, c) }

func (b *Batch) detach(c cache) {
	b.caches = slices.DeleteFunc(b.caches, func(x cache) bool { return x == c })
}

// flush writes what the projection's Records changed in the slice.
func (b *Batch) flush() error {
	for _, c := range b.caches {
		if err := c.flush(b); err != nil {
			return err
		}
	}
	return nil
}

// committed, rollback and reset pass the slice's outcome on to the
// projection's Records.
func (b *Batch) committed() {
	for _, c := range b.caches {
		c.committed()
	}
}

func (b *Batch) rollback() {
	for _, c := range b.caches {
		c.rollback()
	}
}

func (b *Batch) reset() {
	for _, c := range b.caches {
		c.reset()
	}
}

// View is the name of the view the batch writes.
func (b *Batch) View() string { return b.view }

// Get returns a key's value as the view will hold it after this batch.
// The value must not be changed.
func (b *Batch) Get(key string) (value []byte, ok bool, err error) {
	return b.w.Get(b.view, key)
}

// Lookup is Get for a key that is usually absent (a journey's first
// event): a key that is nowhere costs no read of the store's data blocks
// (viewstore.View.Lookup).
func (b *Batch) Lookup(key string) (value []byte, ok bool, err error) {
	return b.w.Lookup(b.view, key)
}

// Set sets a key. The batch keeps value: do not change it afterwards.
func (b *Batch) Set(key string, value []byte) { b.w.Set(b.view, key, value) }

// Delete deletes a key.
func (b *Batch) Delete(key string) { b.w.Delete(b.view, key) }

// DeletePrefix deletes every key that starts with prefix.
func (b *Batch) DeletePrefix(prefix string) { b.w.DeletePrefix(b.view, prefix) }

// Erase deletes every key that starts with prefix and, once the batch is
// committed, compacts them out of the store's files: for personal data.
func (b *Batch) Erase(prefix string) { b.w.Erase(b.view, prefix) }

// GetJSON decodes a key's JSON value into v; ok is false when there is none.
func (b *Batch) GetJSON(key string, v any) (ok bool, err error) {
	return b.decode(key, v, b.Get)
}

// LookupJSON is GetJSON for a key that is usually absent (Lookup).
func (b *Batch) LookupJSON(key string, v any) (ok bool, err error) {
	return b.decode(key, v, b.Lookup)
}

func (b *Batch) decode(key string, v any, get func(string) ([]byte, bool, error)) (ok bool, err error) {
	raw, ok, err := get(key)
	if err != nil || !ok {
		return ok, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("view %s key %s: %w", b.view, key, err)
	}
	return true, nil
}

// SetJSON sets a key to v encoded as JSON.
func (b *Batch) SetJSON(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("view %s key %s: %w", b.view, key, err)
	}
	b.Set(key, raw)
	return nil
}
