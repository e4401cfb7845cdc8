package viewstore

import "github.com/cockroachdb/pebble/v2"

// noRecycle is the store's cleaner: it deletes obsolete files as Pebble's
// default does, and it stops Pebble from recycling write-ahead logs. A
// recycled log is reused from its start and keeps its old records past
// the new end, so a person's data erased from the views would stay
// readable in it; with no recycling, a log is deleted once a flush has
// made it obsolete (Erase's compaction flushes the memtable first).
//
// Pebble recycles unless the cleaner "needs file contents", a marker it
// gives only its own cleaners: ArchiveCleaner's is promoted from one level
// down, while Clean (delete) comes from DeleteCleaner, one level up.
type noRecycle struct {
	pebble.DeleteCleaner
	contentsMarker
}

type contentsMarker struct{ pebble.ArchiveCleaner }

func (noRecycle) String() string { return "delete, no log recycling" }
