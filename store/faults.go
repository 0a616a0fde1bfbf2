package store

// Faults injects failures into a store, for fault-injection tests only:
// nothing outside tests should open a store with OpenWithFaults.
type Faults struct {
	// Sync runs after each group commit's fsync; a non-nil error fails that
	// commit as a full or broken disk would.
	Sync func() error
}

// OpenWithFaults is Open with injected faults (see Faults). It is for
// tests that check how callers handle a store whose writes fail.
func OpenWithFaults(opts Options, f Faults) (*DB, error) {
	return open(opts, knobs{syncFault: f.Sync})
}

// knobs are the settings only store's own tests and benchmarks change:
// Open uses the zero value.
type knobs struct {
	syncEach   bool         // no group commit: badger fsyncs every write (SyncWrites), a benchmark baseline
	badgerSync bool         // group commit by a badger Sync per batch, no commit log: a benchmark baseline
	syncFault  func() error // Faults.Sync
	applyFault func() error // runs before a logged batch goes to badger: non-nil fails it as badger refusing the write would
	ckptSync   func()       // runs on the applier before a checkpoint's badger sync
	// vlogMaxEntries starts a new value-log file after that many entries
	// (badger's default, a million, if 0): tests that need several files.
	vlogMaxEntries uint32
	// segBytes seals a final-record segment at that size (segMaxBytes if
	// 0): tests that need several segments.
	segBytes int64
	// sealFault, if set, runs after a segment's index is synced: non-nil
	// fails the seal as a failed fsync would.
	sealFault func() error
}
