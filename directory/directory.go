package directory

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// Errors callers classify with errors.Is.
var (
	ErrInvalid  = errors.New("directory: invalid")
	ErrNotFound = errors.New("directory: not found")
	ErrExists   = errors.New("directory: already exists")
	// ErrOwned refuses an address that another user owns. Its message
	// never names the owner.
	ErrOwned = errors.New("directory: address owned by another user")
	// ErrStatic refuses changing or shadowing a user of the static
	// configuration (--sip-user).
	ErrStatic = errors.New("directory: defined in the static configuration")
)

// KV is the durable store the directory writes through; store.DB satisfies
// it (the same interface as provision.KV). Put and Delete are durable when
// they return nil; Get reports a missing key with store.ErrNotFound.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// Keys.
const (
	prefixUser     = "dir/u/" // + name: userRec as JSON
	prefixContacts = "dir/c/" // + name: contactBook as JSON
	prefixOldUser  = "prov/u/"
)

// Limits.
const (
	MaxNameLen     = 64  // bytes of a user name
	MaxDisplayLen  = 128 // bytes of a display name
	MaxBound       = 32  // addresses bound to one user besides its own AOR
	MaxContacts    = 1000
	MaxContactAddr = 32
	maxAccountLen  = 256
	maxSiteLen     = 32
	maxAddressLen  = 512
)

// Options configures Open.
type Options struct {
	KV          KV     // nil keeps everything in memory (labs, tests of other packages)
	Domain      string // SIP domain and digest realm; required
	CountryCode string // digits, for national numbers
	// Static maps user name → HA1 from the configuration (--sip-user).
	Static map[string]string
	Logger *slog.Logger
	Now    func() time.Time
}

// Kinds of users.
const (
	KindLocal   = "local"   // provisioned (API, CSV, migrated from provision)
	KindPartner = "partner" // created by a partner-site login
	KindSocial  = "social"  // created by a social-site login
	KindStatic  = "static"  // --sip-user: in memory only
)

// User is a user as the API shows it: no credential.
type User struct {
	Name          string        `json:"name"`
	Display       string        `json:"display,omitempty"`
	Kind          string        `json:"kind"`
	Offline       string        `json:"offline"`   // OfflineHold or OfflineSMS
	Addresses     []msg.Address `json:"addresses"` // own AOR first
	SIPCredential bool          `json:"sip_credential"`
	Created       time.Time     `json:"created"`
	Updated       time.Time     `json:"updated"`
}

// Person is the routing view of a user (msg.Person): the own AOR first among
// the endpoints, then bound SIP AORs, XMPP JIDs and numbers; Number is the
// first number among them. Its slices share the directory's immutable
// backing arrays: callers must not modify them.
type Person = msg.Person

// UserSpec is what a client gives to create or replace a user. At most one
// of Password and HA1; neither keeps the current credential on replace (none
// for a new user: it cannot REGISTER but still resolves).
type UserSpec struct {
	Name      string `json:"name"`
	Password  string `json:"password,omitempty"`   // hashed to HA1 at once, never stored
	HA1       string `json:"ha1,omitempty"`        // md5(name:domain:password), 32 hex
	HA1SHA256 string `json:"ha1_sha256,omitempty"` // sha256(name:domain:password), 64 hex; with HA1 only
	MSISDN    string `json:"msisdn,omitempty"`     // any form ParseAddress takes for a number
	Display   string `json:"display,omitempty"`
	// Offline is what happens to a message for the user while they are
	// online nowhere: OfflineHold ("" too) keeps it until they come
	// online; OfflineSMS sends it to their number as SMS.
	Offline string `json:"offline,omitempty"`
}

// What a user's messages do while they are offline everywhere.
const (
	OfflineHold = "hold"
	OfflineSMS  = "sms"
)

type userKind uint8

const (
	kLocal userKind = iota
	kPartner
	kSocial
	kStatic
)

var kindNames = [...]string{KindLocal, KindPartner, KindSocial, KindStatic}

func (k userKind) String() string { return kindNames[k] }

func parseKind(s string) (userKind, bool) {
	switch s {
	case KindLocal, "":
		return kLocal, true
	case KindPartner:
		return kPartner, true
	case KindSocial:
		return kSocial, true
	}
	return 0, false
}

// rec is a user in memory. Resolve does not read it when its index entry
// says where the Person's parts lie in it (see index and layout): for a
// user of at most two addresses, short enough to be kept in buf, with
// their headers in inl.
//
// A rec is immutable once published (every change builds a new one with
// withAddrs) and must never be copied by value: its strings point into its
// own buf and inl.
type rec struct {
	// p is the Person: p.Endpoints (cap = len) is the prefix of all
	// nAddrs addresses — the own AOR, then endpoints (SIP, XMPP, numbers),
	// then external accounts, each group in binding order; p.Name is a
	// substring of the AOR for "sip:<name>@<domain>".
	p      Person
	cold   *recCold
	nAddrs uint8
	kind   userKind
	hasHA1 bool
	_      [5]byte
	inl    [2]msg.Address // the addresses' headers when there are at most two
	buf    [inlineBytes]byte
}

const inlineBytes = 56

// recCold is the part of a user Resolve does not read.
type recCold struct {
	display string
	created int64 // unix nanoseconds
	updated int64
	ha1     [16]byte
	ha1s256 *[32]byte // the SHA-256 digest credential (RFC 8760), when the user has one
	// offlineSMS: messages for the user go to their number as SMS while
	// they are online nowhere (else they are held).
	offlineSMS bool
}

// newDraft starts a record to be completed with withAddrs.
func newDraft(name string, k userKind) *rec {
	return &rec{p: Person{Name: name}, kind: k, cold: &recCold{}}
}

// draft is an unpublished copy of r's fields (not its addresses) that may
// be changed before withAddrs makes a record of it.
func (r *rec) draft() *rec {
	c := *r.cold
	return &rec{p: Person{Name: r.p.Name}, kind: r.kind, hasHA1: r.hasHA1, cold: &c}
}

// all is every address of the user, own AOR first.
func (r *rec) all() []msg.Address {
	return unsafe.Slice(unsafe.SliceData(r.p.Endpoints), r.nAddrs)
}

func (r *rec) name() string { return r.p.Name }

func (r *rec) aor() msg.Address { return r.p.Endpoints[0] }

// bound is what the user has bound besides its own AOR.
func (r *rec) bound() []msg.Address { return r.all()[1:] }

func (r *rec) view() User {
	u := User{Name: r.p.Name, Display: r.cold.display, Kind: r.kind.String(), Offline: OfflineHold, Addresses: slices.Clone(r.all()), SIPCredential: r.hasHA1}
	if r.cold.offlineSMS {
		u.Offline = OfflineSMS
	}
	if r.cold.created != 0 {
		u.Created = time.Unix(0, r.cold.created).UTC()
	}
	if r.cold.updated != 0 {
		u.Updated = time.Unix(0, r.cold.updated).UTC()
	}
	return u
}

func (r *rec) ha1Hex() string {
	if !r.hasHA1 {
		return ""
	}
	return hex.EncodeToString(r.cold.ha1[:])
}

func (r *rec) ha1SHA256Hex() string {
	if r.cold.ha1s256 == nil {
		return ""
	}
	return hex.EncodeToString(r.cold.ha1s256[:])
}

// has reports whether key is one of r's addresses.
func (r *rec) has(key msg.Address) bool {
	for _, a := range r.all() {
		if a == key {
			return true
		}
	}
	return false
}

// layout is the part of an index entry's meta word that tells personOf
// where r's Person lies in r, or 0 if it does not (it is then read).
func (r *rec) layout() uint64 {
	n := len(r.p.Endpoints)
	if n == 0 || n > len(r.inl) || unsafe.SliceData(r.p.Endpoints) != &r.inl[0] {
		return 0
	}
	base, size := uintptr(unsafe.Pointer(r)), unsafe.Sizeof(*r)
	within := func(s string) (uint64, bool) {
		if s == "" {
			return 0, true
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return uint64(p - base), p >= base && p+uintptr(len(s)) <= base+size
	}
	nameOff, ok1 := within(r.p.Name)
	numOff, ok2 := within(string(r.p.Number))
	if !ok1 || !ok2 || len(r.p.Name) > 0xff || len(r.p.Number) > 0xff {
		return 0
	}
	m := uint64(mFast) | nameOff<<mNameOff | uint64(len(r.p.Name))<<mNameLen | numOff<<mNumOff | uint64(len(r.p.Number))<<mNumLen
	if n == 2 {
		m |= mTwoEnd
	}
	return m
}

// withAddrs returns a new record with r's fields (a copy of its cold part)
// and the addresses aor, then bound (grouped: endpoints first), and the
// number recomputed. The bytes of the addresses and of the name are copied
// into the new record or one string of its own, never shared with r.
func (r *rec) withAddrs(aor msg.Address, bound []msg.Address) *rec {
	cold := *r.cold
	c := &rec{kind: r.kind, hasHA1: r.hasHA1, cold: &cold}
	name := r.p.Name
	list := make([]msg.Address, 0, 1+len(bound))
	list = append(list, aor)
	for _, a := range bound {
		if isEndpoint(a) {
			list = append(list, a)
		}
	}
	nEnd := len(list)
	for _, a := range bound {
		if !isEndpoint(a) {
			list = append(list, a)
		}
	}
	p := len(schemeSIP) + len(name)
	nameInAOR := strings.HasPrefix(string(aor), schemeSIP) && len(aor) > p && string(aor[len(schemeSIP):p]) == name && aor[p] == '@'
	// The addresses' bytes go into buf one after the other while they
	// fit, then the name's (when it is not part of the AOR); the rest into
	// one string of their own. Their headers go into inl if there are at
	// most two.
	var addrs []msg.Address
	if len(list) <= len(c.inl) {
		addrs = c.inl[:len(list):len(list)]
	} else {
		addrs = make([]msg.Address, len(list))
	}
	off, j := 0, 0
	for ; j < len(list) && off+len(list[j]) <= inlineBytes; j++ {
		copy(c.buf[off:], list[j])
		addrs[j] = msg.Address(unsafe.String(&c.buf[off], len(list[j])))
		off += len(list[j])
	}
	nameIn := nameInAOR || name == "" || j == len(list) && off+len(name) <= inlineBytes
	rest := 0
	for _, a := range list[j:] {
		rest += len(a)
	}
	if !nameIn {
		rest += len(name)
	}
	if rest > 0 {
		var b strings.Builder
		b.Grow(rest)
		for _, a := range list[j:] {
			b.WriteString(string(a))
		}
		if !nameIn {
			b.WriteString(name)
		}
		all, soff := b.String(), 0
		for i := j; i < len(list); i++ {
			addrs[i] = msg.Address(all[soff : soff+len(list[i])])
			soff += len(list[i])
		}
		if !nameIn {
			c.p.Name = all[soff:]
		}
	}
	switch {
	case nameInAOR:
		c.p.Name = string(addrs[0][len(schemeSIP):p])
	case nameIn && name != "":
		copy(c.buf[off:], name)
		c.p.Name = unsafe.String(&c.buf[off], len(name))
	}
	c.p.Endpoints = addrs[:nEnd:nEnd]
	c.nAddrs = uint8(len(addrs))
	for _, a := range c.p.Endpoints {
		if a.IsMSISDN() {
			c.p.Number = a
			break
		}
	}
	return c
}

// userRec is the stored form of a user under "dir/u/<name>".
type userRec struct {
	Name    string        `json:"name"`
	Kind    string        `json:"kind"`
	Display string        `json:"display,omitempty"`
	HA1     string        `json:"ha1,omitempty"`
	HA1S256 string        `json:"ha1_sha256,omitempty"`
	Offline string        `json:"offline,omitempty"` // "" = hold
	Bound   []msg.Address `json:"addrs,omitempty"`   // the own AOR is derived from the name, not stored
	Created time.Time     `json:"created"`
	Updated time.Time     `json:"updated"`
}

func (r *rec) stored() userRec {
	u := userRec{Name: r.p.Name, Kind: r.kind.String(), Display: r.cold.display, HA1: r.ha1Hex(), HA1S256: r.ha1SHA256Hex(), Bound: r.bound()}
	if r.cold.offlineSMS {
		u.Offline = OfflineSMS
	}
	if r.cold.created != 0 {
		u.Created = time.Unix(0, r.cold.created).UTC()
	}
	if r.cold.updated != 0 {
		u.Updated = time.Unix(0, r.cold.updated).UTC()
	}
	return u
}

// oldUserRec is provision's stored user ("prov/u/<name>").
type oldUserRec struct {
	Name    string      `json:"name"`
	AOR     msg.Address `json:"aor"`
	MSISDN  msg.Address `json:"msisdn,omitempty"`
	Display string      `json:"display,omitempty"`
	HA1     string      `json:"ha1,omitempty"`
	Created time.Time   `json:"created"`
	Updated time.Time   `json:"updated"`
}

// staticSet is the static configuration's users, swapped whole by Reload.
type staticSet struct {
	n         int // len(byName)
	byName    map[string]*rec
	byAddr    map[msg.Address]*rec
	realmName map[string]string // name as configured: what its HA1 was computed with
}

// Directory is the identity directory. Safe for concurrent use.
type Directory struct {
	opts   Options
	kv     KV
	log    *slog.Logger
	domain string // lower-cased host of our AORs

	// wmu serializes mutations: the KV and memory change in the same
	// order, and ownership checks see every earlier mutation. Readers take
	// no lock (see index).
	wmu    sync.Mutex
	ix     *index // every address of every stored user, own AORs included
	nUsers atomic.Int64

	static atomic.Pointer[staticSet]

	watchMu  sync.Mutex
	watchers []func(name string)
}

// Open loads the directory from opts.KV, migrating provision's users
// ("prov/u/…") first.
func Open(opts Options) (*Directory, error) {
	d, err := newDirectory(opts)
	if err != nil {
		return nil, err
	}
	if err := d.Reload(opts.Static); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := d.load(); err != nil {
		return nil, err
	}
	migrated, err := d.migrate(ctx)
	if err != nil {
		return nil, err
	}
	users, addrs := d.nUsers.Load(), d.ix.n
	d.log.Info("directory loaded", "users", users, "addresses", addrs, "migrated", migrated, "static", len(opts.Static))
	return d, nil
}

func newDirectory(opts Options) (*Directory, error) {
	dom := strings.ToLower(strings.TrimSpace(opts.Domain))
	if dom == "" {
		return nil, fmt.Errorf("%w: no SIP domain", ErrInvalid)
	}
	if _, _, err := canonHost(dom); err != nil {
		return nil, fmt.Errorf("%w: SIP domain %q: %v", ErrInvalid, opts.Domain, err)
	}
	for i := 0; i < len(opts.CountryCode); i++ {
		if c := opts.CountryCode[i]; c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: country code %q is not digits", ErrInvalid, opts.CountryCode)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Directory{opts: opts, kv: opts.KV, log: opts.Logger, domain: dom, ix: newIndex()}
	if d.kv == nil {
		d.kv = newMemKV()
	}
	d.static.Store(&staticSet{})
	return d, nil
}

// load reads every "dir/u/" record. A record that cannot be read, or an
// address two records claim, is logged and left out of memory (the
// record stays on disk for an operator to repair).
func (d *Directory) load() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	err := d.kv.Iterate([]byte(prefixUser), func(k, v []byte) error {
		var u userRec
		if err := json.Unmarshal(v, &u); err != nil {
			d.log.Warn("directory: skipping unreadable user", "key", string(k), "err", err)
			return nil
		}
		r, err := d.fromStored(u)
		if err != nil || string(k) != prefixUser+r.name() {
			d.log.Warn("directory: skipping invalid user", "key", string(k), "err", err)
			return nil
		}
		d.insertLoaded(r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("directory: load users: %w", err)
	}
	return nil
}

// insertLoaded adds r, dropping any address already owned (logged).
// Callers hold wmu.
func (d *Directory) insertLoaded(r *rec) {
	if other := d.ix.get(r.aor()); other != nil {
		d.log.Warn("directory: skipping user whose address is taken", "user", r.name(), "address", r.aor(), "owner", other.name())
		return
	}
	keep := r.bound()[:0:0]
	for _, a := range r.bound() {
		if other := d.ix.get(a); other != nil {
			d.log.Warn("directory: address claimed twice; keeping the first", "address", a, "user", r.name(), "owner", other.name())
			continue
		}
		keep = append(keep, a)
	}
	if len(keep) != len(r.bound()) {
		r = r.withAddrs(r.aor(), keep)
	}
	d.insert(r)
}

// insert indexes r; callers hold wmu and have checked ownership.
func (d *Directory) insert(r *rec) {
	for _, a := range r.all() {
		d.ix.put(a, r)
	}
	d.nUsers.Add(1)
}

// replace swaps old (may be nil) for r (may be nil) in the index: the
// addresses r keeps or adds point to it, those only old had are removed.
// Callers hold wmu and have checked ownership.
func (d *Directory) replace(old, r *rec) {
	if old != nil {
		for _, a := range old.all() {
			if (r == nil || !r.has(a)) && d.ix.get(a) == old {
				d.ix.del(a)
			}
		}
		d.nUsers.Add(-1)
	}
	if r != nil {
		d.insert(r)
	}
}

func (d *Directory) fromStored(u userRec) (*rec, error) {
	name, err := NormalizeName(u.Name)
	if err != nil {
		return nil, err
	}
	if name != u.Name {
		return nil, fmt.Errorf("%w: stored name %q is not canonical", ErrInvalid, u.Name)
	}
	k, ok := parseKind(u.Kind)
	if !ok || k == kStatic {
		return nil, fmt.Errorf("%w: kind %q", ErrInvalid, u.Kind)
	}
	aor, err := d.ownAOR(name)
	if err != nil {
		return nil, err
	}
	r := newDraft(name, k)
	r.cold.display = u.Display
	r.cold.offlineSMS = u.Offline == OfflineSMS
	if u.HA1 != "" {
		if err := r.setHA1(u.HA1); err != nil {
			return nil, err
		}
	}
	if u.HA1S256 != "" {
		if err := r.setHA1SHA256(u.HA1S256); err != nil {
			return nil, err
		}
	}
	if !u.Created.IsZero() {
		r.cold.created = u.Created.UnixNano()
	}
	if !u.Updated.IsZero() {
		r.cold.updated = u.Updated.UnixNano()
	}
	bound := make([]msg.Address, 0, len(u.Bound))
	for _, a := range u.Bound {
		c, err := d.ParseAddress(string(a))
		if err != nil || c == aor || slices.Contains(bound, c) {
			d.log.Warn("directory: dropping unusable bound address", "user", name, "address", a, "err", err)
			continue
		}
		bound = append(bound, c)
	}
	return r.withAddrs(aor, bound), nil
}

func (r *rec) setHA1(h string) error {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 {
		return fmt.Errorf("%w: ha1 must be 32 hex digits (md5 of name:domain:password)", ErrInvalid)
	}
	copy(r.cold.ha1[:], b)
	r.hasHA1 = true
	return nil
}

func (r *rec) setHA1SHA256(h string) error {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%w: ha1_sha256 must be 64 hex digits (sha256 of name:domain:password)", ErrInvalid)
	}
	r.cold.ha1s256 = (*[32]byte)(b)
	return nil
}

// migrate moves provision's users ("prov/u/<name>") into the directory:
// every new record is written before its old key is deleted, and an old
// key whose user the directory already has is only deleted, so a crash
// midway loses nobody and running it again is harmless.
func (d *Directory) migrate(ctx context.Context) (int, error) {
	type item struct {
		oldKey string
		r      *rec // nil: already migrated, only delete the old key
	}
	var olds []oldUserRec
	var keys []string
	err := d.kv.Iterate([]byte(prefixOldUser), func(k, v []byte) error {
		var o oldUserRec
		if err := json.Unmarshal(v, &o); err != nil || o.Name == "" {
			d.log.Warn("directory: not migrating unreadable provision user", "key", string(k), "err", err)
			return nil
		}
		olds = append(olds, o)
		keys = append(keys, string(k))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("directory: read provision users: %w", err)
	}
	var items []item
	for i, o := range olds {
		name, err := NormalizeName(o.Name)
		if err != nil {
			d.log.Warn("directory: not migrating provision user with an invalid name", "key", keys[i], "err", err)
			continue
		}
		aor, err := d.ownAOR(name)
		if err != nil {
			d.log.Warn("directory: not migrating provision user", "key", keys[i], "err", err)
			continue
		}
		have := d.ix.get(aor)
		if have != nil && have.name() == name {
			items = append(items, item{oldKey: keys[i]}) // written by an earlier, interrupted run
			continue
		}
		r := newDraft(name, kLocal)
		r.cold.display = o.Display
		if o.HA1 != "" {
			if err := r.setHA1(strings.ToLower(o.HA1)); err != nil {
				d.log.Warn("directory: dropping unreadable HA1 of provision user", "user", name)
			}
		}
		if !o.Created.IsZero() {
			r.cold.created = o.Created.UnixNano()
		}
		if !o.Updated.IsZero() {
			r.cold.updated = o.Updated.UnixNano()
		}
		var bound []msg.Address
		if o.MSISDN != "" {
			if n, err := d.ParseAddress(string(o.MSISDN)); err != nil || !n.IsMSISDN() {
				d.log.Warn("directory: dropping unreadable msisdn of provision user", "user", name, "msisdn", o.MSISDN)
			} else if n != aor {
				bound = append(bound, n)
			}
		}
		items = append(items, item{oldKey: keys[i], r: r.withAddrs(aor, bound)})
	}
	if len(items) == 0 {
		return 0, nil
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	// Resolve conflicts in memory, in key order, against what is loaded.
	var recs []*rec
	for i := range items {
		r := items[i].r
		if r == nil {
			continue
		}
		if other := d.ix.get(r.aor()); other != nil {
			d.log.Warn("directory: provision user's address is taken; left in place", "user", r.name(), "owner", other.name())
			items[i].oldKey = "" // keep the old key: nothing is lost
			items[i].r = nil
			continue
		}
		if b := r.bound(); len(b) > 0 {
			if other := d.ix.get(b[0]); other != nil {
				d.log.Warn("directory: provision user's msisdn is taken; migrated without it", "user", r.name(), "msisdn", b[0], "owner", other.name())
				r = r.withAddrs(r.aor(), nil)
				items[i].r = r
			}
		}
		d.insert(r)
		recs = append(recs, r)
	}
	// Write the new records, then delete the old keys whose user is safe.
	failed := map[string]bool{}
	var fmu sync.Mutex
	parallel(len(recs), func(i int) error {
		err := d.putUser(ctx, recs[i])
		if err != nil {
			fmu.Lock()
			failed[recs[i].name()] = true
			fmu.Unlock()
		}
		return err
	})
	if len(failed) > 0 {
		for _, r := range recs {
			if failed[r.name()] {
				d.replace(r, nil)
			}
		}
		return 0, fmt.Errorf("directory: migrate: %d of %d users could not be written; provision's records are kept", len(failed), len(recs))
	}
	var del []string
	for _, it := range items {
		if it.oldKey != "" {
			del = append(del, it.oldKey)
		}
	}
	if err := parallel(len(del), func(i int) error { return d.kv.Delete(ctx, []byte(del[i])) }); err != nil {
		return 0, fmt.Errorf("directory: migrate: delete provision records (run again to finish): %w", err)
	}
	d.log.Info("directory: migrated provision users", "users", len(recs), "old_keys_deleted", len(del))
	return len(recs), nil
}

// parallel runs fn for 0..n-1 on up to 32 goroutines (the store's group
// commit shares fsyncs between concurrent writes) and returns the first
// error.
func parallel(n int, fn func(i int) error) error {
	const workers = 32
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// Reload replaces the static users (on SIGHUP). Names are normalized; a
// bad name or HA1, or two names with one address, refuses the whole set
// and keeps the current one. Users whose static definition changed are
// reported to OnChange watchers.
func (d *Directory) Reload(static map[string]string) error {
	st := &staticSet{byName: map[string]*rec{}, byAddr: map[msg.Address]*rec{}, realmName: map[string]string{}}
	for raw, h := range static {
		name, err := normalizeLocalName(raw)
		if err != nil {
			return fmt.Errorf("static user: %w", err)
		}
		aor, err := d.ownAOR(name)
		if err != nil {
			return fmt.Errorf("static user %q: %w", raw, err)
		}
		r := newDraft(name, kStatic)
		md5, s256, both := strings.Cut(strings.ToLower(h), ":")
		if err := r.setHA1(md5); err != nil {
			return fmt.Errorf("static user %q: %w", raw, err)
		}
		if both {
			if err := r.setHA1SHA256(s256); err != nil {
				return fmt.Errorf("static user %q: %w", raw, err)
			}
		}
		r = r.withAddrs(aor, nil)
		if _, dup := st.byAddr[aor]; dup {
			return fmt.Errorf("%w: static users %q and %q are one user (%s)", ErrInvalid, raw, st.byAddr[aor].name(), aor)
		}
		st.byName[name] = r
		st.byAddr[aor] = r
		st.realmName[name] = raw
	}
	st.n = len(st.byName)
	d.wmu.Lock()
	old := d.static.Swap(st)
	d.wmu.Unlock()
	var changed []string
	for n, r := range st.byName {
		if o, ok := old.byName[n]; !ok || o.cold.ha1 != r.cold.ha1 || o.ha1SHA256Hex() != r.ha1SHA256Hex() {
			changed = append(changed, n)
		}
	}
	for n := range old.byName {
		if _, ok := st.byName[n]; !ok {
			changed = append(changed, n)
		}
	}
	slices.Sort(changed)
	for _, n := range changed {
		d.notify(n)
	}
	for n, r := range st.byName {
		if o := d.ix.get(r.aor()); o != nil {
			d.log.Warn("directory: static user shadows a stored one", "user", n, "stored", o.name())
		}
	}
	return nil
}

// OnChange calls fn with a user's name after every durable change of that
// user's record or contacts (and after Reload for changed static users).
// fn runs on the mutating goroutine after the change is visible; it must
// not block.
func (d *Directory) OnChange(fn func(name string)) {
	d.watchMu.Lock()
	d.watchers = append(d.watchers, fn)
	d.watchMu.Unlock()
}

func (d *Directory) notify(name string) {
	d.watchMu.Lock()
	ws := d.watchers
	d.watchMu.Unlock()
	for _, fn := range ws {
		fn(name)
	}
}

// putUser durably writes r.
func (d *Directory) putUser(ctx context.Context, r *rec) error {
	b, err := json.Marshal(r.stored())
	if err != nil {
		return fmt.Errorf("directory: encode user %s: %w", r.name(), err)
	}
	if err := d.kv.Put(ctx, []byte(prefixUser+r.name()), b); err != nil {
		return fmt.Errorf("directory: write user %s: %w", r.name(), err)
	}
	return nil
}

// Domain is the SIP domain of the users' own AORs (lower-cased).
func (d *Directory) Domain() string { return d.domain }

// Len is the number of users, static ones included.
func (d *Directory) Len() int {
	return int(d.nUsers.Load()) + len(d.static.Load().byName)
}

// HA1SHA256Of computes sha256(user:realm:password) as hex, the SHA-256
// digest credential (RFC 8760).
func HA1SHA256Of(user, realm, password string) string {
	h := sha256.Sum256([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// HA1Of computes md5(user:realm:password) as hex, the only form in which a
// SIP password is kept.
func HA1Of(user, realm, password string) string {
	h := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// memKV is the KV used when Options.KV is nil.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (m *memKV) Put(_ context.Context, k, v []byte) error {
	m.mu.Lock()
	m.m[string(k)] = slices.Clone(v)
	m.mu.Unlock()
	return nil
}

func (m *memKV) Get(k []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[string(k)]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (m *memKV) Delete(_ context.Context, k []byte) error {
	m.mu.Lock()
	delete(m.m, string(k))
	m.mu.Unlock()
	return nil
}

func (m *memKV) Iterate(prefix []byte, fn func(k, v []byte) error) error {
	m.mu.Lock()
	var keys []string
	for k := range m.m {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = m.m[k]
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}
