// Package provision keeps the SMPP side of what operators provision at run
// time: SMPP accounts (system_id, salted PBKDF2 password hash, allowed
// source address prefixes, TPS limit, window) and the SMS route table. IM
// users and their addresses are the identity directory's (package
// directory).
//
// Everything is written through to a KV store (store.DB satisfies KV) before
// the call returns and is served from an in-memory copy, so the SMPP and
// routing paths read it without touching the disk and a change is effective
// for the next bind or message, without a restart. Accounts given in the
// static configuration (--smpp-account) are consulted first and cannot be
// changed or shadowed through this package.
//
// Keys: "prov/a/<system_id>", "prov/routes".
package provision
