package directory

import (
	"cmp"
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/smsbridge/bridge/msg"
)

// Resolve maps any address a user owns (its own AOR, a bound number, SIP
// AOR, XMPP JID or external account, or a static user's AOR) to the
// person. addr must be canonical (as ParseAddress returns; msg.FromAOR and
// msg.NormalizeNumber give the canonical forms of numbers and of our
// domain's AORs). It takes no lock and does not allocate: one read of an
// index entry (see index), and a Person sharing the directory's immutable
// memory (callers must not modify Endpoints).
func (d *Directory) Resolve(addr msg.Address) (Person, bool) {
	r, m := d.find(addr)
	if r == nil {
		return Person{}, false
	}
	return personOf(r, m), true
}

// find returns the record owning addr — a static user's, else a stored
// one's — and its index entry's meta word (0 for a static user), or nil.
func (d *Directory) find(addr msg.Address) (*rec, uint64) {
	if d.static.Load().n != 0 {
		if r, ok := d.static.Load().byAddr[addr]; ok {
			return r, 0
		}
	}
	return d.ix.find(addr)
}

// get returns the user named name (canonical), static first.
func (d *Directory) get(name string) (r *rec, static bool) {
	if r, ok := d.static.Load().byName[name]; ok {
		return r, true
	}
	aor, err := d.ownAOR(name)
	if err != nil {
		return nil, false
	}
	r = d.ix.get(aor)
	if r == nil || r.name() != name {
		return nil, false
	}
	return r, false
}

// OfflineSMS reports whether messages for user name go to their number as
// SMS while they are online nowhere (their setting Offline).
func (d *Directory) OfflineSMS(name string) bool {
	r, _ := d.get(name)
	return r != nil && r.cold.offlineSMS
}

// User returns one user by name (any spelling NormalizeName maps to it).
func (d *Directory) User(name string) (User, bool) {
	n, err := NormalizeName(name)
	if err != nil {
		return User{}, false
	}
	r, _ := d.get(n)
	if r == nil {
		return User{}, false
	}
	return r.view(), true
}

// Users lists every user by name, static ones included (a stored user
// shadowed by a static one of the same name is left out).
func (d *Directory) Users() []User {
	st := d.static.Load()
	recs := make([]*rec, 0, d.Len())
	d.ix.each(func(r *rec, own bool) {
		if own {
			if _, shadowed := st.byName[r.name()]; !shadowed {
				recs = append(recs, r)
			}
		}
	})
	for _, r := range st.byName {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *rec) int { return cmp.Compare(a.name(), b.name()) })
	recs = slices.Compact(recs)
	out := make([]User, len(recs))
	for i, r := range recs {
		out[i] = r.view()
	}
	return out
}

// HA1 is the digest lookup for the SIP layer: the user's HA1 (lower-case
// hex), static users first. The name is normalized (fast for canonical
// names).
func (d *Directory) HA1(name string) (string, bool) {
	n, err := NormalizeName(name)
	if err != nil {
		return "", false
	}
	r, _ := d.get(n)
	if r == nil || !r.hasHA1 {
		return "", false
	}
	return r.ha1Hex(), true
}

// HA1SHA256 is the SHA-256 digest lookup (RFC 8760) for the SIP layer:
// users given a password since the bridge kept SHA-256 credentials, or a
// SHA-256 HA1, have one.
func (d *Directory) HA1SHA256(name string) (string, bool) {
	n, err := NormalizeName(name)
	if err != nil {
		return "", false
	}
	r, _ := d.get(n)
	if r == nil || r.cold.ha1s256 == nil {
		return "", false
	}
	return r.ha1SHA256Hex(), true
}

// CheckPassword tells whether password is the user's SIP password (for
// HTTP logins), comparing HA1s in constant time. The HA1 is computed with
// the canonical name (a static user's: the name as configured).
func (d *Directory) CheckPassword(name, password string) bool {
	n, err := NormalizeName(name)
	if err != nil {
		return false
	}
	r, static := d.get(n)
	if r == nil || !r.hasHA1 {
		return false
	}
	realmName := n
	if static {
		realmName = d.static.Load().realmName[n]
	}
	want := HA1Of(realmName, d.opts.Domain, password)
	return subtle.ConstantTimeCompare([]byte(r.ha1Hex()), []byte(want)) == 1
}

// build makes the record spec describes for user name (canonical), on top
// of old (nil for a new user).
func (d *Directory) build(name string, spec UserSpec, old *rec) (*rec, error) {
	r := newDraft(name, kLocal)
	var aor msg.Address
	var bound []msg.Address
	if old != nil {
		r = old.draft()
		aor, bound = old.aor(), slices.Clone(old.bound())
	} else {
		var err error
		if aor, err = d.ownAOR(name); err != nil {
			return nil, err
		}
	}
	switch spec.Offline {
	case "", OfflineHold:
		r.cold.offlineSMS = false
	case OfflineSMS:
		r.cold.offlineSMS = true
	default:
		return nil, invalid("offline %q: want %q or %q", spec.Offline, OfflineHold, OfflineSMS)
	}
	r.cold.display = strings.TrimSpace(spec.Display)
	if len(r.cold.display) > MaxDisplayLen {
		return nil, invalid("display name is longer than %d bytes", MaxDisplayLen)
	}
	if !utf8.ValidString(r.cold.display) {
		return nil, invalid("display name is not valid UTF-8")
	}
	switch {
	case spec.Password != "" && (spec.HA1 != "" || spec.HA1SHA256 != ""):
		return nil, invalid("give password or ha1 (and ha1_sha256), not both")
	case spec.HA1SHA256 != "" && spec.HA1 == "":
		return nil, invalid("ha1_sha256 needs ha1 too, for clients that only know MD5")
	case spec.Password != "":
		if len(spec.Password) > 128 {
			return nil, invalid("password is longer than 128 bytes")
		}
		if err := r.setHA1(HA1Of(name, d.opts.Domain, spec.Password)); err != nil {
			return nil, err
		}
		if err := r.setHA1SHA256(HA1SHA256Of(name, d.opts.Domain, spec.Password)); err != nil {
			return nil, err
		}
	case spec.HA1 != "":
		if err := r.setHA1(strings.ToLower(spec.HA1)); err != nil {
			return nil, err
		}
		// A new MD5 credential without its SHA-256 one leaves none of the
		// old password behind.
		r.cold.ha1s256 = nil
		if spec.HA1SHA256 != "" {
			if err := r.setHA1SHA256(strings.ToLower(spec.HA1SHA256)); err != nil {
				return nil, err
			}
		}
	}
	if m := strings.TrimSpace(spec.MSISDN); m != "" {
		num, err := d.ParseAddress(m)
		if err != nil || !num.IsMSISDN() {
			return nil, invalid("msisdn %q is not a number", spec.MSISDN)
		}
		if num != aor {
			// The number becomes the first bound one; the one it replaces
			// is unbound (as provision moved a user's MSISDN).
			var primary msg.Address
			for _, a := range bound {
				if a.IsMSISDN() {
					primary = a
					break
				}
			}
			if primary != num {
				bound = slices.DeleteFunc(bound, func(a msg.Address) bool { return a == primary })
				bound = slices.Insert(bound, 0, num)
			}
		}
	}
	if len(bound) > MaxBound {
		return nil, invalid("more than %d addresses", MaxBound)
	}
	now := d.opts.Now().UTC().UnixNano()
	if old == nil {
		r.cold.created = now
	}
	r.cold.updated = now
	return r.withAddrs(aor, bound), nil
}

// check tells why r cannot replace old (nil: a new user): one of its
// addresses owned by someone else. Callers hold wmu.
func (d *Directory) check(r, old *rec) error {
	st := d.static.Load()
	if _, ok := st.byName[r.name()]; ok {
		return fmt.Errorf("%w: user %q", ErrStatic, r.name())
	}
	for _, a := range r.all() {
		if _, ok := st.byAddr[a]; ok {
			return fmt.Errorf("%w: %s", ErrOwned, a)
		}
		if o := d.ix.get(a); o != nil && o != old {
			return fmt.Errorf("%w: %s", ErrOwned, a)
		}
	}
	return nil
}

// commit writes r durably and then makes it visible in place of old.
// Callers hold wmu.
func (d *Directory) commit(ctx context.Context, old, r *rec) error {
	if err := d.putUser(ctx, r); err != nil {
		return err
	}
	d.replace(old, r)
	return nil
}

// CreateUser adds a local user: ErrExists if the name is taken, ErrOwned if
// its number (or the number its name is) belongs to someone else.
func (d *Directory) CreateUser(ctx context.Context, spec UserSpec) (User, error) {
	name, err := normalizeLocalName(spec.Name)
	if err != nil {
		return User{}, err
	}
	if _, ok := d.static.Load().byName[name]; ok {
		return User{}, fmt.Errorf("%w: user %q", ErrStatic, name)
	}
	d.wmu.Lock()
	if old, _ := d.get(name); old != nil {
		d.wmu.Unlock()
		return User{}, fmt.Errorf("%w: user %q", ErrExists, name)
	}
	r, err := d.build(name, spec, nil)
	if err == nil {
		err = d.check(r, nil)
	}
	if err == nil {
		err = d.commit(ctx, nil, r)
	}
	d.wmu.Unlock()
	if err != nil {
		return User{}, err
	}
	d.notify(name)
	return r.view(), nil
}

// PutUser creates or replaces user name (spec.Name must be empty or name).
// Display and credential are replaced (no credential given keeps the
// current one); an MSISDN becomes the user's first number, unbinding the one
// it replaces; other bound addresses stay (Bind, Unbind change them).
// External users may be updated but not created. created tells which.
func (d *Directory) PutUser(ctx context.Context, name string, spec UserSpec) (User, bool, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return User{}, false, err
	}
	if spec.Name != "" {
		sn, err := NormalizeName(spec.Name)
		if err != nil {
			return User{}, false, err
		}
		if sn != n {
			return User{}, false, invalid("name %q in the body differs from %q in the path", spec.Name, name)
		}
	}
	if _, ok := d.static.Load().byName[n]; ok {
		return User{}, false, fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	d.wmu.Lock()
	old, _ := d.get(n)
	if old == nil {
		if _, err := normalizeLocalName(n); err != nil {
			d.wmu.Unlock()
			return User{}, false, err
		}
	}
	r, err := d.build(n, spec, old)
	if err == nil {
		err = d.check(r, old)
	}
	if err == nil {
		err = d.commit(ctx, old, r)
	}
	d.wmu.Unlock()
	if err != nil {
		return User{}, false, err
	}
	d.notify(n)
	return r.view(), old == nil, nil
}

// DeleteUser removes a user, its addresses and its contacts.
func (d *Directory) DeleteUser(ctx context.Context, name string) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if _, ok := d.static.Load().byName[n]; ok {
		return fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	d.wmu.Lock()
	old, _ := d.get(n)
	if old == nil {
		d.wmu.Unlock()
		return fmt.Errorf("%w: user %q", ErrNotFound, n)
	}
	// Contacts first: a crash between the two deletes leaves a user
	// without contacts, never contacts a later user of the name inherits.
	err = d.kv.Delete(ctx, []byte(prefixContacts+n))
	if err == nil {
		err = d.kv.Delete(ctx, []byte(prefixUser+n))
	}
	if err == nil {
		d.replace(old, nil)
	}
	d.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("directory: delete user %s: %w", n, err)
	}
	d.notify(n)
	return nil
}

// canonFor canonicalizes addr for binding to user name and refuses what
// cannot be bound: another user's own AOR in our domain, an XMPP address
// of our domain other than the user's own (reserved for the user of that
// name), and own AORs (which need no binding: bound reports them).
func (d *Directory) canonFor(name string, addr msg.Address) (a msg.Address, own bool, err error) {
	a, err = d.ParseAddress(string(addr))
	if err != nil {
		return "", false, err
	}
	aor, err := d.ownAOR(name)
	if err != nil {
		return "", false, err
	}
	if a == aor {
		return a, true, nil
	}
	if strings.HasPrefix(string(a), schemeSIP) && strings.HasSuffix(string(a), "@"+d.domain) {
		return "", false, invalid("%s is the own address of another user name; it cannot be bound", a)
	}
	if local, ok := strings.CutPrefix(string(a), schemeXMPP); ok && strings.HasSuffix(local, "@"+d.domain) && strings.TrimSuffix(local, "@"+d.domain) != name {
		return "", false, invalid("%s is reserved for the user of that name", a)
	}
	return a, false, nil
}

// Bind gives addr to user name. ErrOwned if another user owns it (the
// error does not say who), ErrNotFound if there is no such user, ErrStatic
// for static users, ErrInvalid for what is no address. Binding an address
// the user already has changes nothing.
func (d *Directory) Bind(ctx context.Context, name string, addr msg.Address) (User, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return User{}, err
	}
	if _, ok := d.static.Load().byName[n]; ok {
		return User{}, fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	a, _, err := d.canonFor(n, addr)
	if err != nil {
		return User{}, err
	}
	d.wmu.Lock()
	old, _ := d.get(n)
	var r *rec
	switch {
	case old == nil:
		err = fmt.Errorf("%w: user %q", ErrNotFound, n)
	case slices.Contains(old.all(), a):
		r = old
	case len(old.bound()) >= MaxBound:
		err = invalid("user %q has %d addresses, the most allowed", n, MaxBound)
	default:
		r = old.withAddrs(old.aor(), append(slices.Clone(old.bound()), a))
		r.cold.updated = d.opts.Now().UTC().UnixNano()
		if err = d.check(r, old); err == nil {
			err = d.commit(ctx, old, r)
		}
	}
	d.wmu.Unlock()
	if err != nil {
		return User{}, err
	}
	if r != old {
		d.notify(n)
	}
	return r.view(), nil
}

// Unbind takes addr from user name: ErrNotFound if the user has no such
// address, ErrInvalid for the user's own AOR (it cannot be unbound).
func (d *Directory) Unbind(ctx context.Context, name string, addr msg.Address) (User, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return User{}, err
	}
	if _, ok := d.static.Load().byName[n]; ok {
		return User{}, fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	a, err := d.ParseAddress(string(addr))
	if err != nil {
		return User{}, err
	}
	if aor, err := d.ownAOR(n); err == nil && a == aor {
		return User{}, invalid("%s is the user's own address; it cannot be unbound", a)
	}
	d.wmu.Lock()
	old, _ := d.get(n)
	var r *rec
	switch {
	case old == nil:
		err = fmt.Errorf("%w: user %q", ErrNotFound, n)
	case !slices.Contains(old.bound(), a):
		err = fmt.Errorf("%w: user %q has no address %s", ErrNotFound, n, a)
	default:
		r = old.withAddrs(old.aor(), slices.DeleteFunc(slices.Clone(old.bound()), func(b msg.Address) bool { return b == a }))
		r.cold.updated = d.opts.Now().UTC().UnixNano()
		err = d.commit(ctx, old, r)
	}
	d.wmu.Unlock()
	if err != nil {
		return User{}, err
	}
	d.notify(n)
	return r.view(), nil
}

// EnsureExternal returns the user of external account "kind:site:account"
// (kind "partner" or "social"), creating it durably on its first login with
// a derived name (see derivedName) and that address bound. created is true
// only for the call that created it. The account is kept exactly (it is the
// site's identity); the site id is validated and lower-cased. display is
// used only at creation (cut to MaxDisplayLen bytes).
func (d *Directory) EnsureExternal(ctx context.Context, kind, site, account, display string) (name string, created bool, err error) {
	var sep byte
	var k userKind
	switch kind {
	case KindPartner:
		sep, k = sepPartner, kPartner
	case KindSocial:
		sep, k = sepSocial, kSocial
	default:
		return "", false, invalid("external kind %q (want partner or social)", kind)
	}
	addr, err := externalAddress(kind, site, account)
	if err != nil {
		return "", false, err
	}
	if p, ok := d.Resolve(addr); ok {
		return p.Name, false, nil
	}
	st, _ := normalizeSite(site)
	d.wmu.Lock()
	defer func() {
		d.wmu.Unlock()
		if created {
			d.notify(name)
		}
	}()
	if p, ok := d.Resolve(addr); ok { // created while we waited
		return p.Name, false, nil
	}
	for n := 1; n <= maxCounter; n++ {
		name = derivedName(sep, st, account, n)
		if r, _ := d.get(name); r != nil {
			continue
		}
		aor, err := d.ownAOR(name)
		if err != nil {
			return "", false, err
		}
		now := d.opts.Now().UTC().UnixNano()
		t := newDraft(name, k)
		t.cold.display, t.cold.created, t.cold.updated = cutDisplay(display), now, now
		r := t.withAddrs(aor, []msg.Address{addr})
		if err := d.check(r, nil); err != nil {
			continue // its AOR is bound elsewhere (cannot happen in our domain) or static
		}
		if err := d.commit(ctx, nil, r); err != nil {
			return "", false, err
		}
		return name, true, nil
	}
	return "", false, fmt.Errorf("%w: no free name for %s", ErrExists, addr)
}

func cutDisplay(s string) string {
	s = strings.ToValidUTF8(strings.TrimSpace(s), "")
	if len(s) <= MaxDisplayLen {
		return s
	}
	return strings.ToValidUTF8(s[:MaxDisplayLen], "")
}
