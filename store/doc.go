// Package store is the bridge's one on-disk store: a durable message queue
// (accepted messages, their state and delivery history) and a small durable
// key-value space for other packages, both on one badger database.
//
// "Acknowledged means durable": every durable write returns only after its
// batch has been committed and fsynced. Writers from many goroutines are
// group-committed by one committer goroutine (one badger transaction and one
// db.Sync per batch), so thousands of writers share each fsync.
//
// Key space: "m/" holds message records, "_/" is internal (ID epoch, the
// unfinished-message index). Put, Delete, Get and Iterate refuse keys under
// those two prefixes; other packages choose their own prefixes ("p/" presence,
// "k/" generic).
package store
