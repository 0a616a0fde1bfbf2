// Package store is the bridge's one on-disk store: a durable message queue
// (accepted messages, their state and delivery history) and a small durable
// key-value space for other packages, both on one badger database.
//
// "Acknowledged means durable": every durable write returns only after its
// batch has been committed and fsynced. Writers from many goroutines are
// group-committed by one committer goroutine, so thousands of writers share
// each fsync. On disk, a batch is durable once it is appended to the
// store's own commit log ("commit.log", wal.go) and fdatasynced; badger then
// gets it without a sync, and is synced at a checkpoint about once a second,
// after which the log starts over. Open replays the log's batches since the
// last checkpoint into badger. Unfinished records wait in memory until the
// checkpoint, so a message finished before it costs badger one write, its
// final record. In memory (Dir "") and in SyncEach mode there is no log. With
// Options.CommitInterval (the bridge's --store-commit-interval, 1 ms) a
// commit starts at least that long after the previous one while its batch is
// small: fewer, larger fsyncs, since each costs CPU however little it covers.
//
// Duplicate suppression (AcceptDedup) keeps each message's key inside its
// record and an in-memory index of the keys of the last window or two
// (dedup.go), rebuilt from the recent records at Open.
//
// Key space: an unfinished message's record is "_/u/<id>" (also what
// start-up recovery walks), a finished one "m/<id>" with the retention TTL;
// "_/" is internal (ID epoch, those records). Put, Delete, Get and Iterate refuse keys under
// those two prefixes; other packages choose their own prefixes ("p/" presence,
// "k/" generic).
package store
