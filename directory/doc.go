// Package directory is the bridge's durable identity directory: who a
// person is, and every address that person is reachable at. Routing
// (Resolve), logins (EnsureExternal, HA1, CheckPassword) and provisioning
// (CreateUser, PutUser, ImportCSV, Bind) share it; it supersedes the users
// of package provision.
//
// # Model
//
// A user is one unified user name and the addresses bound to it. Every
// address is a msg.Address in canonical form (ParseAddress):
//
//	number        "+8613800000002"            E.164 (msg.NormalizeNumber)
//	SIP AOR       "sip:Bob@example.com"       every user owns "sip:<name>@<domain>"
//	                                          (a numeric name: that number, as msg.FromAOR)
//	XMPP JID      "xmpp:bob@example.com"
//	partner acct  "partner:<site>:<account>"  account kept exactly (case-sensitive)
//	social acct   "social:<site>:<account>"
//
// An address belongs to at most one user. Mutations are serialized (one
// writer at a time, the KV write before the change is visible), so of two
// concurrent binds of one address one wins and the other gets ErrOwned,
// whose message never names the owner.
//
// Users of the static configuration (--sip-user USER:HA1, Options.Static,
// replaced by Reload) resolve and authenticate like the others but live
// only in memory: they cannot be changed, bound to, or shadowed (ErrStatic);
// where a stored user and a static one collide, the static one wins.
//
// # Keys
//
//	dir/u/<name>   one user: JSON {name, kind, display, ha1, addrs (bound, own AOR not stored), created, updated}
//	dir/c/<name>   that user's contacts: JSON {next, contacts: [{id, display, addresses}]}
//
// Users are loaded at Open; contacts are read from the KV when asked for.
// Open first migrates provision's users ("prov/u/<name>", provision's JSON
// userRec): for each it writes "dir/u/<name>" (the msisdn bound, the HA1,
// display and times kept) and only then deletes the old key; an old key
// whose user the directory already has is only deleted. A crash midway
// loses no user and running it again is harmless. A provision user whose
// own address is taken is left where it is (logged).
//
// # Normalization
//
// User names (NormalizeName): PRECIS UsernameCaseMapped (RFC 8265: width
// mapped, lower-cased, NFC), so "BOB" and fullwidth "ＢＯＢ" are "bob"; then
// only [a-z0-9._+-] may remain, the characters a name may have unescaped in
// every network it maps into (SIP user part, XMPP localpart, store keys),
// at most 64 bytes with a letter or digit. A refused name gets ErrInvalid
// naming the offending character. Digits, optionally after '+', make a
// number user (its AOR is the number). '~', '!' and '=' are reserved for the
// names of external users: NormalizeName accepts them (to look those users
// up) but no local user may be created with them.
//
// Numbers: msg.NormalizeNumber with the configured country code; visual
// separators " -.()" are ignored; "tel:" URIs (RFC 3966) too, a local
// number's "+digits" phone-context being its prefix.
//
// SIP URIs, compared as RFC 3261 §19.1.4 says: scheme and host lower-cased
// (an IPv6 reference in its canonical form), the user part kept
// case-sensitive, %-escapes of unreserved characters decoded and the others
// upper-cased, raw non-ASCII escaped, password, parameters and headers
// dropped, a port kept (with and without a port are different URIs).
// "sips:" is folded into "sip:": the directory maps identities, and one
// identity reached with or without TLS is one address (RFC 3261 would keep
// the two URIs apart). In our domain the user part is a user name: it is
// normalized as one (the address is that user's own AOR; a numeric one is
// the number). Elsewhere a URI with ";user=phone" is its number. Our
// domain's own AORs cannot be bound (they are their users'), nor JIDs of
// our domain but by the user of that name.
//
// XMPP (RFC 5122, RFC 7622): localpart by PRECIS UsernameCaseMapped,
// domain lower-cased, resource, query and authority dropped.
//
// # External users
//
// EnsureExternal(kind, site, account) resolves "partner:<site>:<account>"
// or "social:<site>:<account>"; on the first login it creates the user
// durably under a derived name:
//
//	<base>[=<hash>][=<n>]<sep><site>
//
// base is the account lower-cased, characters other than [a-z0-9._-]
// replaced by '_' (and cut so that the name fits 64 bytes); "=<hash>" (5
// characters of base-32 SHA-256 of the exact account) is added unless the
// account already was its own base, so "vcase" and "VCASE" are two users
// ("vcase!weibo", "vcase=<hash>!weibo"); sep is '~' for a partner site
// ("alice~shop"), '!' for a social site; "=<n>" (n ≥ 2) only if the name is
// taken. Site ids are [a-z0-9._-], lower-cased, at most 32 bytes. Local
// names cannot contain '~', '!' or '=', so the namespaces never meet: local
// "bob.shop" and partner "bob#shop" ("bob~shop") are two users, and so are
// one account on a partner site and on a social site of the same id.
//
// # Resolve, the hot path
//
// Resolve maps any owned address to a Person (name, endpoints presence may
// hold, the number SMS leave from) without a lock and without allocating.
// The index (index.go) is an open-addressing table whose 48-byte entries
// hold the key's bytes, the record pointer and where the Person lies in the
// record, so that a hit reads one entry and not the record: at 10 M
// addresses every dependent memory access is a cache and TLB miss, and
// this is one. Readers use per-entry seqlocks and an epoch for entries
// moved by writers; records are immutable and replaced whole. In memory
// each user keeps only what routing, authentication and the API's listing
// need (addresses, name, kind, display, HA1, times): about 210 bytes, plus
// 48 bytes per address of index at most three-quarters full.
package directory
