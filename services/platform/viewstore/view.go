package viewstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"linkway/events"
)

// Page sizes of lists (API.md "Lists page").
const (
	DefaultPageSize = 100
	MaxPageSize     = 500
)

// PageSize is the page size to use for a requested one: the default for
// none, at most MaxPageSize.
func PageSize(requested int) int {
	if requested <= 0 {
		return DefaultPageSize
	}
	return min(requested, MaxPageSize)
}

// View reads one view. Reads see every committed batch.
type View struct {
	s      *Store
	name   string
	prefix []byte
}

// View returns the read handle of a view.
func (s *Store) View(name string) *View {
	return &View{s: s, name: name, prefix: viewPrefix(name)}
}

// Name is the view's name.
func (v *View) Name() string { return v.name }

// Checkpoint is the view's last applied stream sequence.
func (v *View) Checkpoint() (uint64, error) { return v.s.Checkpoint(v.name) }

// Get returns a key's value (a copy), or ok false when there is none.
func (v *View) Get(key string) (value []byte, ok bool, err error) {
	return v.s.get(v.name, viewKey(v.name, key))
}

// Lookup is Get for a key that is usually absent (a journey's first
// event): it asks every level's Bloom filter first, the bottom level's
// too, which a Get does not (there most keys are found, and its filters
// are large), so a key that is nowhere costs no read of a data block.
func (v *View) Lookup(key string) (value []byte, ok bool, err error) {
	return v.s.lookup(v.name, viewKey(v.name, key))
}

// lookup reads one full key that is usually absent (View.Lookup).
func (s *Store) lookup(view string, k []byte) (value []byte, ok bool, err error) {
	err = s.use(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{UseL6Filters: true})
		if err != nil {
			return err
		}
		if it.SeekPrefixGE(k) && bytes.Equal(it.Key(), k) {
			value, ok = bytes.Clone(it.Value()), true
		}
		return it.Close()
	})
	if err != nil {
		return nil, false, fmt.Errorf("view %s get: %w", view, err)
	}
	return value, ok, nil
}

// get reads one full key.
func (s *Store) get(view string, k []byte) (value []byte, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false, fmt.Errorf("view %s get: %w", view, ErrClosed)
	}
	b, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("view %s get: %w", view, err)
	}
	value = bytes.Clone(b)
	return value, true, closer.Close()
}

// Item is one entry of a view.
type Item struct {
	Key   string
	Value []byte
}

// Page is one page of a list.
type Page struct {
	Items []Item
	// NextPageToken asks for the page after this one; empty on the last.
	NextPageToken string
}

// Page lists the keys that start with prefix, in key order, from the one a
// page token names (the first when token is empty), at most
// PageSize(size) of them. A token is opaque to callers; one that does
// not lie under prefix (made up, or from another organisation's list) is
// refused, so a token can never widen what a caller may list.
func (v *View) Page(prefix string, size int, token string) (Page, error) {
	size = PageSize(size)
	lower := viewKey(v.name, prefix)
	upper := prefixEnd(lower)
	start := lower
	if token != "" {
		k, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !bytes.HasPrefix(k, []byte(prefix)) {
			return Page{}, events.Invalid("page_token", "is not a token this list gave")
		}
		start = viewKey(v.name, string(k))
	}
	var page Page
	err := v.s.use(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		for it.SeekGE(start); it.Valid(); it.Next() {
			key := it.Key()[len(v.prefix):]
			if len(page.Items) == size {
				page.NextPageToken = base64.RawURLEncoding.EncodeToString(key)
				break
			}
			page.Items = append(page.Items, Item{Key: string(key), Value: bytes.Clone(it.Value())})
		}
		return it.Close()
	})
	if err != nil {
		return Page{}, fmt.Errorf("view %s list: %w", v.name, err)
	}
	return page, nil
}

// ForEach calls fn with every key that starts with prefix, in key order,
// until fn returns an error (returned as is). value is only valid during
// the call. It is for whole-view work (comparing views, aggregates), not
// for lists a caller pages through.
func (v *View) ForEach(prefix string, fn func(key string, value []byte) error) error {
	lower := viewKey(v.name, prefix)
	var fnErr error
	err := v.s.use(func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			if fnErr = fn(string(it.Key()[len(v.prefix):]), it.Value()); fnErr != nil {
				break
			}
		}
		return it.Close()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("view %s scan: %w", v.name, err)
	}
	return nil
}
