// Package store is the bridge's one on-disk store: a durable message queue
// (accepted messages, their state and delivery history) and a small durable
// key-value space for other packages, both on one badger database.
//
// "Acknowledged means durable": every durable write returns only after the
// group commit holding it has been made durable. DB (store.go) composes the
// parts, each with its own state and locks:
//
//   - committer (commit.go, commitlog.go) group-commits the writes of all
//     goroutines: writers queue into the open batch, one goroutine commits
//     it, so a batch's writers share one fsync. A batch is durable once it
//     is appended to the store's own commit log (wal.go, a pair of files,
//     "commit.log" and "commit.log.b") and fdatasynced, and its writers go.
//     An applier goroutine then hands badger the batch, unsynced and in
//     order, behind the commits: badger can take a long time over one
//     write (a full memtable makes it allocate the next one's arena), and
//     acknowledgements do not wait for that; Get, Iterate and Unfinished
//     wait for the batches acknowledged before them. While badger refuses
//     writes, a batch is acknowledged only once applied. Badger is synced
//     at a checkpoint (Options.CheckpointInterval), in the background while
//     the commits go into the other file; the file before is then free.
//     Open replays the log's batches since the last checkpoint into
//     badger. With Options.CommitInterval a commit starts no sooner than
//     that after the previous one while its batch is small: fewer, larger
//     fsyncs. In memory (Dir "") there is no log: badger is synced per batch.
//   - deferredRecs (deferred.go), the committer's: unfinished records that
//     are in the log but not yet in badger wait there until the checkpoint,
//     so a message finished before it costs badger no write at all.
//   - finalLog (finals.go), the committer's: final records, appended by
//     the applier to segment files under "finals/" instead of badger,
//     synced at each checkpoint; a segment is sealed with a sorted index
//     when full (64 MiB) or old (a sixteenth of the retention, at most an
//     hour), and deleted whole once its last record's retention has
//     ended. In badger each final record was rewritten by every level's
//     compaction, and that work stalled the acknowledgements. A store in
//     memory, or one opened with a knob that replaces the log, keeps final
//     records in badger.
//   - cache (cache.go) holds records with writes in flight or not yet in
//     badger (evicted only once applied) and recently
//     used unfinished ones, so a state change is an in-memory update plus
//     one blind write (queue.go: Stage, Transition, Reschedule).
//   - dedupIndex (dedup.go) suppresses duplicates (Stage with a Dedup key):
//     each message's key is kept inside its record, and an in-memory index
//     of the keys of the last window or two is rebuilt from the recent
//     records at Open: from the records with a key only, which each
//     sealed segment lists, so a day of records without keys costs Open
//     next to nothing.
//   - sweeper (retention.go) deletes final records in badger whose
//     retention has ended, which a badger TTL alone would not free: those
//     of stores in memory and those written before the segments.
//   - idGen (id.go) makes sortable message IDs; codec.go encodes records.
//   - pageOutCold (pageout_linux.go) hands the pages of the files badger
//     is done with (finished value-log files, tables unchanged for a
//     minute) back to the kernel every Options.PageOutInterval: badger
//     keeps each file mapped while it exists, so the process's resident set
//     would otherwise grow with the records of the whole retention period.
//   - failStop (failstop.go) ends a store that can never make a write
//     durable again: its directory removed (the commit log's link count,
//     checked before each logged batch), replaced or unwritable (looked up
//     by name at most every 20 ms of commits and every ProbeInterval), or badger failing
//     its memtable flushes. Every commit fails from then on, Healthy gives
//     the reason, Failed is closed, and Close leaves badger behind after a
//     few seconds rather than wait on flush retries that never end.
//
// Key space: an unfinished message's record is "_/u/<id>" (also what
// start-up recovery walks); a finished one is "!m/<id>" with the retention
// TTL in the commit log and in the segments (badger holds such records
// only in memory, or from before the segments; the layout before that
// kept them under "m/<id>": both are still read and swept); "_/" is
// internal (ID epoch, those records). Put, Delete, Get and Iterate (kv.go)
// refuse keys under those prefixes; other packages choose their own ("p/"
// presence, "k/" generic).
//
// Tests that need a failing disk open a store with OpenWithFaults.
package store
