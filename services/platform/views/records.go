package views

import (
	"container/list"
	"encoding/json"
	"fmt"
)

// Records keeps a projection's per-journey records decoded in memory
// while the reader applies the log: a bounded LRU over the view's JSON
// values. A record loaded through it is read from the view store (and
// decoded) only when it is not in memory, and encoded and written once per
// commit however many events changed it, where GetJSON and SetJSON read,
// decode, encode and write it again for every event.
//
// The rules, because the records in memory are the ones the projection
// changes:
//   - A record obtained from Load is written back at the commit, changed or
//     not; change it only through that pointer, only within Apply.
//   - A record from Get is only read.
//   - Keys it keeps are read and written only through it (Get, Load, Put,
//     Delete, Erase), never with Batch's own methods; but Batch.Erase (or
//     DeletePrefix) of a range holding records loaded in the same Apply is
//     allowed: they are written again after it, as Records.Erase does.
//   - If the slice is abandoned, every record loaded in it is forgotten,
//     so the next Load reads the view store as the last commit left it.
//
// Only the reader's goroutine uses it; HTTP reads go to the view store.
type Records[T any] struct {
	max     int
	entries map[string]*list.Element // of *recordEntry[T], in lru
	lru     list.List                // most recently used first
	touched []*recordEntry[T]
	batch   *Batch // the batch of the reader it serves
}

type recordEntry[T any] struct {
	key     string
	v       *T // nil: no record under key
	touched bool
}

// CachedRecords is the size of a Records cache that needs no other: about
// the journeys a day brings nationally, at a few kilobytes each. The
// records of the journeys a catch-up is in the middle of are what it
// saves reading back; beyond that, memory (a national rebuild within
// 1 GiB) matters more than hits.
const CachedRecords = 4_000

// NewRecords makes a cache of at most max records (a few thousand is
// plenty when the log's events of a journey come close together; each
// costs its decoded size).
func NewRecords[T any](max int) *Records[T] {
	return &Records[T]{max: max, entries: map[string]*list.Element{}}
}

// Get returns the record under key to read, not to change (nil and false
// when there is none); it is not written back.
func (r *Records[T]) Get(b *Batch, key string) (*T, bool, error) {
	e, err := r.entry(b, key)
	if err != nil {
		return nil, false, err
	}
	return e.v, e.v != nil, nil
}

// entry finds key's entry, reading it from the view store if it is not in
// memory, and marks it recently used.
func (r *Records[T]) entry(b *Batch, key string) (*recordEntry[T], error) {
	e, cached := r.remember(b, key)
	if cached {
		return e, nil
	}
	// Not in memory: most often a journey's first event (a catch-up of
	// 100,000 journeys found 199 records of 295,000 it did not hold).
	raw, found, err := b.Lookup(key)
	if err != nil {
		r.forget(e)
		return nil, err
	}
	if found {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			r.forget(e)
			return nil, fmt.Errorf("view %s key %s: %w", b.view, key, err)
		}
		e.v = v
	}
	return e, nil
}

// remember returns key's entry, most recently used, and whether it was in
// memory; a new one holds no record yet.
func (r *Records[T]) remember(b *Batch, key string) (*recordEntry[T], bool) {
	r.attach(b)
	if el := r.entries[key]; el != nil {
		r.lru.MoveToFront(el)
		return el.Value.(*recordEntry[T]), true
	}
	e := &recordEntry[T]{key: key}
	r.entries[key] = r.lru.PushFront(e)
	return e, false
}

// forget drops e from memory, if it is still key's entry.
func (r *Records[T]) forget(e *recordEntry[T]) {
	if el := r.entries[e.key]; el != nil && el.Value == e {
		r.lru.Remove(el)
		delete(r.entries, e.key)
	}
}

// Load returns the record under key to change, read from the view store
// if it is not in memory; ok is false (and v a new zero record, not yet stored) when
// there is none. Either way v is written under key at the commit; Delete
// instead to remove it.
func (r *Records[T]) Load(b *Batch, key string) (v *T, ok bool, err error) {
	e, err := r.entry(b, key)
	if err != nil {
		return nil, false, err
	}
	ok = e.v != nil
	if !ok {
		e.v = new(T)
	}
	r.touch(e)
	return e.v, ok, nil
}

// LoadJourney is Load for a key of c's journey alone (one only its events
// write): at the journey's first event (c.First) there is nothing under it
// yet, so the store is not read. While catching up most records a
// projection loads are new journeys', and a read that finds nothing
// still costs a search of every level's filters.
func (r *Records[T]) LoadJourney(b *Batch, c Change, key string) (v *T, ok bool, err error) {
	if !c.First {
		return r.Load(b, key)
	}
	e, _ := r.remember(b, key)
	ok = e.v != nil
	if !ok {
		e.v = new(T)
	}
	r.touch(e)
	return e.v, ok, nil
}

// Edit returns the record under key to change, if there is one: it is
// then written back at the commit, as Load's are. When there is none, ok
// is false and nothing is made or written.
func (r *Records[T]) Edit(b *Batch, key string) (v *T, ok bool, err error) {
	e, err := r.entry(b, key)
	if err != nil || e.v == nil {
		return nil, false, err
	}
	r.touch(e)
	return e.v, true, nil
}

// Put sets the record under key to v, written at the commit. The records
// keeps v: change it afterwards only as Load's rules allow.
func (r *Records[T]) Put(b *Batch, key string, v *T) {
	e, _ := r.remember(b, key)
	e.v = v
	r.touch(e)
}

// Delete removes the record under key at the commit.
func (r *Records[T]) Delete(b *Batch, key string) {
	r.Put(b, key, nil)
}

// Erase erases every earlier version of the record under key from the
// store's files (Batch.Erase: for personal data) and writes v in its
// place at the commit; v nil leaves no record.
func (r *Records[T]) Erase(b *Batch, key string, v *T) {
	b.Erase(key)
	r.Put(b, key, v)
}

// attach ties the records to the batch of the reader applying, and
// forgets what was read for another reader's batch (a rebuild's reader
// over the same projection, after a view was dropped).
func (r *Records[T]) attach(b *Batch) {
	if r.batch == b {
		return
	}
	if r.batch != nil {
		r.batch.detach(r)
	}
	r.reset()
	r.batch = b
	b.attach(r)
}

func (r *Records[T]) touch(e *recordEntry[T]) {
	if !e.touched {
		e.touched = true
		r.touched = append(r.touched, e)
	}
}

// flush writes every record touched in the slice into the batch.
func (r *Records[T]) flush(b *Batch) error {
	for _, e := range r.touched {
		if e.v == nil {
			b.Delete(e.key)
			continue
		}
		if err := b.SetJSON(e.key, e.v); err != nil {
			return err
		}
	}
	return nil
}

// committed marks the slice's records as stored and trims the cache to max.
func (r *Records[T]) committed() {
	for _, e := range r.touched {
		e.touched = false
	}
	clear(r.touched)
	r.touched = r.touched[:0]
	for r.lru.Len() > r.max {
		r.forget(r.lru.Back().Value.(*recordEntry[T]))
	}
}

// rollback forgets the records touched in an abandoned slice.
func (r *Records[T]) rollback() {
	for _, e := range r.touched {
		r.forget(e)
		e.touched = false
	}
	clear(r.touched)
	r.touched = r.touched[:0]
}

// reset forgets every record (the view was dropped, or the reader restarts).
func (r *Records[T]) reset() {
	clear(r.entries)
	clear(r.touched)
	r.touched = r.touched[:0]
	r.lru.Init()
}

// cache is what a Batch asks of the Records attached to it.
type cache interface {
	flush(b *Batch) error
	committed()
	rollback()
	reset()
}
