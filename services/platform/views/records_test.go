package views_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"linkway/events"
	"linkway/services/platform/views"
)

// cachedTimeline is timelineView kept through views.Records: the same
// keys and values, the record read back from memory.
type cachedTimeline struct {
	seen     seqLog
	failAt   uint64 // Apply fails at this sequence, when set
	failOnce bool   // and only once
	records  *views.Records[[]string]
}

func (p *cachedTimeline) Name() string { return "timeline" }

func (p *cachedTimeline) Apply(b *views.Batch, c views.Change) error {
	p.seen.add(c.Seq)
	// A journey's later events change its record through Edit, which
	// makes none where there is none: the view compared key for key
	// below would show one.
	if v, ok, err := p.records.Edit(b, "none."+c.JourneyID); err != nil || ok || v != nil {
		return fmt.Errorf("Edit of a record never made: %v, %v, %v", v, ok, err)
	}
	if c.First == c.Before.Exists() {
		return fmt.Errorf("journey %s at %d: First %v with an earlier event %v", c.JourneyID, c.Seq, c.First, c.Before.Exists())
	}
	// A journey's first event does not read its record (LoadJourney).
	load := func(b *views.Batch, key string) (*[]string, bool, error) { return p.records.LoadJourney(b, c, key) }
	if c.Before.Exists() {
		load = p.records.Edit
	}
	steps, ok, err := load(b, "t."+c.JourneyID)
	if err != nil {
		return err
	}
	if ok != c.Before.Exists() {
		return fmt.Errorf("journey %s at %d: a record %v, an earlier event %v", c.JourneyID, c.Seq, ok, c.Before.Exists())
	}
	// Changed before the failure below: an abandoned slice must not leave
	// this in memory.
	*steps = append(*steps, fmt.Sprintf("%d:%s", c.Seq, events.ShortName(c.Envelope)))
	if p.failAt != 0 && c.Seq == p.failAt {
		if p.failOnce {
			p.failAt = 0
		}
		return fmt.Errorf("injected failure at %d", c.Seq)
	}
	if n, ok, err := p.records.Get(b, "t."+c.JourneyID); err != nil || !ok || len(*n) != len(*steps) {
		return fmt.Errorf("Get after Load: %v, %v, %v", n, ok, err)
	}
	return nil
}

// A view kept through Records is, key for key, the view kept by reading
// and writing JSON for every event: with a cache far smaller than the
// journeys (evictions), after slices abandoned part way (the records they
// changed are forgotten, not kept), across a reader's restart on the same
// store, and after a Rebuild that drops the view while the reader runs.
func TestRecordsViewEqualsTheReadBackOne(t *testing.T) {
	l := newLog(t, false)
	last := l.journeys(t, 25, "U12345", "U22222")
	cfg := views.DefaultReaderConfig()
	cfg.BatchEvents = 7

	plain := openStore(t, t.TempDir())
	rp := newReader(t, l, plain, cfg, &timelineView{})
	start(t, rp)
	waitFor(t, rp, last)
	want := dumpView(t, plain, "timeline")
	if len(want) != 25 {
		t.Fatalf("the plain timeline holds %d journeys", len(want))
	}

	store := openStore(t, t.TempDir())
	cached := &cachedTimeline{failAt: last / 2, records: views.NewRecords[[]string](3)}
	r := newReader(t, l, store, cfg, cached)
	stop := start(t, r)
	hubtestEventually(t, func() bool { return len(cached.seen.get()) > int(last/2)+10 }, "the failing slice retried")
	stop()
	cp, err := store.Checkpoint("timeline")
	if err != nil || cp >= last/2 {
		t.Fatalf("checkpoint %d (%v): the failing slice was committed", cp, err)
	}

	// The same projection (and its Records) in a new reader on the store.
	cached.failAt = 0
	r = newReader(t, l, store, cfg, cached)
	stop = start(t, r)
	waitFor(t, r, last)
	if got := dumpView(t, store, "timeline"); !maps.Equal(got, want) {
		t.Fatalf("kept through Records after failed slices:\n%v\nwant\n%v", got, want)
	}
	stop()

	// A slice that fails once, in a reader that goes on: what the slice
	// changed in memory is forgotten before the reader applies it again.
	again := openStore(t, t.TempDir())
	once := &cachedTimeline{failAt: last/2 + 3, failOnce: true, records: views.NewRecords[[]string](1000)}
	ro := newReader(t, l, again, cfg, once)
	start(t, ro)
	waitFor(t, ro, last)
	if got := dumpView(t, again, "timeline"); !maps.Equal(got, want) {
		t.Fatalf("kept through Records after a slice failed once:\n%v\nwant\n%v", got, want)
	}
	r = newReader(t, l, store, cfg, cached)
	stop = start(t, r)

	// Events arriving live, then the view dropped and replayed while the
	// reader runs.
	id, _ := l.refer(t, "U12345", "Live", 1)
	last = l.do(t, id, events.Assign{WorkerID: "w1", WorkerName: "Sam"})
	waitFor(t, r, last)
	waitFor(t, rp, last)
	want = dumpView(t, plain, "timeline")
	if err := r.Rebuild("timeline"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, last)
	hubtestEventually(t, r.Ready, "ready after the rebuild")
	if got := dumpView(t, store, "timeline"); !maps.Equal(got, want) {
		t.Fatalf("kept through Records after a rebuild:\n%v\nwant\n%v", got, want)
	}

	// An offline rebuild with the same projection: its Records follow the
	// new reader's batch and read nothing stale.
	stop()
	ctx := context.Background()
	if _, err := views.RebuildViews(ctx, l.js, store, []views.Projection{cached}, nil, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if got := dumpView(t, store, "timeline"); !maps.Equal(got, want) {
		t.Fatalf("kept through Records after an offline rebuild:\n%v\nwant\n%v", got, want)
	}
}

// LoadJourney does not read the store at a journey's first event: a
// record left under the key (by nothing the log did) is neither found nor
// kept, and the view comes out as if it were not there. Load would find
// it, and cachedTimeline would refuse a first event with a record.
func TestLoadJourneyReadsNothingAtAJourneysFirstEvent(t *testing.T) {
	l := newLog(t, false)
	last := l.journeys(t, 5, "U12345")
	cfg := views.DefaultReaderConfig()
	plain := openStore(t, t.TempDir())
	rp := newReader(t, l, plain, cfg, &timelineView{})
	start(t, rp)
	waitFor(t, rp, last)
	want := dumpView(t, plain, "timeline")

	store := openStore(t, t.TempDir())
	b := store.NewBatch()
	for key := range want {
		b.Set("timeline", key, []byte(`["left by nothing the log did"]`))
	}
	if err := b.Commit(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	cached := &cachedTimeline{records: views.NewRecords[[]string](100)}
	r := newReader(t, l, store, cfg, cached)
	start(t, r)
	waitFor(t, r, last)
	if got := dumpView(t, store, "timeline"); !maps.Equal(got, want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
}
