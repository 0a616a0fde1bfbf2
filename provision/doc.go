// Package provision keeps what operators provision at run time: IM users
// (user name, MSISDN ↔ IM address mapping, display name, SIP credential kept
// only as HA1), SMPP accounts (system_id, salted PBKDF2 password hash, allowed
// source address prefixes, TPS limit, window) and the SMS route table.
//
// Everything is written through to a KV store (store.DB satisfies KV) before
// the call returns and is served from an in-memory copy, so the SIP, SMPP and
// routing paths read it without touching the disk and a change is effective
// for the next REGISTER, bind or message, without a restart. Users and
// accounts given in the static configuration (--sip-user, --smpp-account) are
// consulted first and cannot be changed or shadowed through this package.
//
// Keys: "prov/u/<user>", "prov/a/<system_id>", "prov/routes".
package provision
