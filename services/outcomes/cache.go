package outcomes

import (
	"container/list"
	"strings"
	"sync"

	"linkway/services/platform/viewstore"
)

// monthCache keeps the decoded records of recently summarised team-months,
// so that a summary reads from the store only the months that changed
// since it was last asked (in a live service, the current month). It is
// bounded by records, least recently used first out; a summary wider than
// the bound still works, reading the rest from the store.
//
// Whether an entry is current is decided by stream sequence: the
// projection marks a team-month with the sequence of each change to it
// (before the change is committed), and an entry loaded when the view's
// committed checkpoint was at or past that mark holds the change.
type monthCache struct {
	max int

	mu      sync.Mutex
	entries map[string]*list.Element
	lru     list.List // of *monthEntry, most recent first
	held    int       // records held
	dirty   map[string]uint64
	last    uint64 // the last sequence applied
	resets  int
}

type monthEntry struct {
	key      string
	loadedAt uint64
	records  []dated
}

// dated is a record with its referral day (YYYY-MM-DD).
type dated struct {
	day string
	rec record
}

func newMonthCache(max int) *monthCache {
	return &monthCache{max: max, entries: map[string]*list.Element{}, dirty: map[string]uint64{}}
}

func monthKey(team, month string) string { return team + "|" + month }

// seen is told each sequence the projection applies: one not after the
// last means the reader is applying again from its checkpoint (a slice
// abandoned, the view rebuilt), and what was marked may be marked again
// lower, so every entry goes.
func (c *monthCache) seen(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq <= c.last {
		c.entries = map[string]*list.Element{}
		c.lru.Init()
		c.held = 0
		c.resets++
	}
	c.last = seq
}

// touch marks a team-month changed by the change at seq.
func (c *monthCache) touch(team, month string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := monthKey(team, month)
	if seq > c.dirty[k] {
		c.dirty[k] = seq
	}
}

// get returns the records of a team-month: cached when no change since the
// load, else read from the view (the month's records are under
// r.<team>.<YYYY-MM>-).
func (c *monthCache) get(v *viewstore.View, team, month string) ([]dated, error) {
	k := monthKey(team, month)
	c.mu.Lock()
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*monthEntry)
		if e.loadedAt >= c.dirty[k] {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.records, nil
		}
	}
	c.mu.Unlock()
	cp, err := v.Checkpoint()
	if err != nil {
		return nil, err
	}
	var recs []dated
	prefix := recordPrefix + team + "." + month + "-"
	err = v.ForEach(prefix, func(key string, value []byte) error {
		r, err := unmarshalRecord(value)
		if err != nil {
			return nil // written by another version: the reader rebuilds the view
		}
		day, _, _ := strings.Cut(key[len(recordPrefix)+len(team)+1:], ".")
		recs = append(recs, dated{day: day, rec: r})
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.put(&monthEntry{key: k, loadedAt: cp, records: recs})
	return recs, nil
}

func (c *monthCache) put(e *monthEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.held -= len(el.Value.(*monthEntry).records)
		c.lru.Remove(el)
		delete(c.entries, e.key)
	}
	if len(e.records) > c.max {
		return // larger than the whole cache: used once
	}
	for c.held+len(e.records) > c.max {
		last := c.lru.Back()
		old := last.Value.(*monthEntry)
		c.lru.Remove(last)
		delete(c.entries, old.key)
		c.held -= len(old.records)
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.held += len(e.records)
}

// size is how many records the cache holds.
func (c *monthCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}
