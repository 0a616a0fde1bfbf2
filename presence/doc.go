// Package presence knows who is online in IM, at which contact, until when.
//
// The hot path (Lookup) reads an in-memory index under a read lock; every
// change is written through to a durable KV (the bridge's badger store) so
// presence survives a restart. Expired bindings are dropped on load and by a
// periodic sweep, and never returned by Lookup.
package presence
