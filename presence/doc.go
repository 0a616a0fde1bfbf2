// Package presence knows who is online in IM, at which contact, until when.
//
// The hot path (Lookup) reads an in-memory index under a read lock; every
// change is written through to a durable KV (the bridge's badger store) so
// presence survives a restart. Expired bindings are dropped on load and by a
// periodic sweep, and never returned by Lookup.
//
// In a cluster of bridges the store also keeps other nodes' bindings
// (ApplyRemote), in memory only and apart from this node's: Lookup and
// Bindings answer for this node, Remote for the others. OnChange reports
// this node's own changes so they can be published.
package presence
