package provision

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// UserSpec is what a client gives to create or replace a user. Exactly one
// of Password and HA1 may be set; neither keeps the current credential on
// replace (none for a new user: it cannot REGISTER, but is still mapped).
type UserSpec struct {
	Name     string `json:"name"`
	Password string `json:"password,omitempty"` // hashed to HA1 at once, never stored
	HA1      string `json:"ha1,omitempty"`      // md5(name:domain:password), 32 hex
	MSISDN   string `json:"msisdn,omitempty"`   // any form NormalizeNumber takes
	Display  string `json:"display,omitempty"`
}

// User is a provisioned IM user as shown to clients: no credential.
type User struct {
	Name          string      `json:"name"`
	AOR           msg.Address `json:"aor"`
	MSISDN        msg.Address `json:"msisdn,omitempty"`
	Display       string      `json:"display,omitempty"`
	SIPCredential bool        `json:"sip_credential"` // an HA1 is set
	Created       time.Time   `json:"created"`
	Updated       time.Time   `json:"updated"`
}

// userRec is the stored form.
type userRec struct {
	Name    string      `json:"name"`
	AOR     msg.Address `json:"aor"`
	MSISDN  msg.Address `json:"msisdn,omitempty"`
	Display string      `json:"display,omitempty"`
	HA1     string      `json:"ha1,omitempty"`
	Created time.Time   `json:"created"`
	Updated time.Time   `json:"updated"`
}

func (u userRec) view() User {
	return User{Name: u.Name, AOR: u.AOR, MSISDN: u.MSISDN, Display: u.Display,
		SIPCredential: u.HA1 != "", Created: u.Created, Updated: u.Updated}
}

// NormalizeUserName lowercases name (AORs compare case-insensitively, so
// "Alice" and "alice" must be one user) and checks its characters.
func NormalizeUserName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if err := validToken(n, 64, "._-+"); err != nil {
		return "", invalid("user name %q %v", name, err)
	}
	return n, nil
}

// build validates spec into a record; old is the current record when
// replacing.
func (s *Store) build(spec UserSpec, old *userRec) (userRec, error) {
	name, err := NormalizeUserName(spec.Name)
	if err != nil {
		return userRec{}, err
	}
	aor, err := msg.FromAOR("sip:"+name+"@"+s.opts.Domain, s.opts.CountryCode)
	if err != nil {
		return userRec{}, invalid("user name %q does not make an address: %v", name, err)
	}
	u := userRec{Name: name, AOR: aor, Display: strings.TrimSpace(spec.Display)}
	if len(u.Display) > 128 {
		return userRec{}, invalid("display name is longer than 128 bytes")
	}
	if m := strings.TrimSpace(spec.MSISDN); m != "" {
		a, err := msg.NormalizeNumber(m, msg.TONUnknown, msg.NPIISDN, s.opts.CountryCode)
		if err != nil || !a.IsMSISDN() {
			return userRec{}, invalid("msisdn %q: %v", spec.MSISDN, err)
		}
		u.MSISDN = a
	} else if aor.IsMSISDN() {
		u.MSISDN = aor // a numeric user name is that number
	}
	switch {
	case spec.Password != "" && spec.HA1 != "":
		return userRec{}, invalid("give password or ha1, not both")
	case spec.Password != "":
		if len(spec.Password) > 128 {
			return userRec{}, invalid("password is longer than 128 bytes")
		}
		u.HA1 = HA1Of(name, s.opts.Domain, spec.Password)
	case spec.HA1 != "":
		h := strings.ToLower(spec.HA1)
		if !isHex32(h) {
			return userRec{}, invalid("ha1 must be 32 hex digits (md5 of name:domain:password)")
		}
		u.HA1 = h
	case old != nil:
		u.HA1 = old.HA1
	}
	now := s.opts.Now().UTC()
	u.Created, u.Updated = now, now
	if old != nil {
		u.Created = old.Created
	}
	return u, nil
}

// conflictLocked reports why u cannot be stored next to the current users
// (its MSISDN or AOR taken by another user). Callers hold mu.
func (s *Store) conflictLocked(u userRec) error {
	if _, ok := s.opts.StaticUsers[u.Name]; ok {
		return fmt.Errorf("%w: user %q", ErrStatic, u.Name)
	}
	if other, ok := s.c.byMSISDN[u.MSISDN]; ok && u.MSISDN != "" && other != u.Name {
		return fmt.Errorf("%w: msisdn %s belongs to user %q", ErrExists, u.MSISDN, other)
	}
	if other, ok := s.c.byAOR[u.MSISDN]; ok && u.MSISDN != "" && other != u.Name {
		return fmt.Errorf("%w: msisdn %s is the address of user %q", ErrExists, u.MSISDN, other)
	}
	if other, ok := s.c.byMSISDN[u.AOR]; ok && other != u.Name {
		return fmt.Errorf("%w: address %s is the msisdn of user %q", ErrExists, u.AOR, other)
	}
	return nil
}

// CreateUser adds a new user; ErrExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, spec UserSpec) (User, error) {
	u, err := s.build(spec, nil)
	if err != nil {
		return User{}, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, taken := s.c.users[u.Name]
	err = s.conflictLocked(u)
	s.mu.RUnlock()
	if taken {
		return User{}, fmt.Errorf("%w: user %q", ErrExists, u.Name)
	}
	if err != nil {
		return User{}, err
	}
	if err := s.commitUser(ctx, u); err != nil {
		return User{}, err
	}
	return u.view(), nil
}

// PutUser creates or replaces user name (spec.Name must be empty or the
// same name). created tells which.
func (s *Store) PutUser(ctx context.Context, name string, spec UserSpec) (u User, created bool, err error) {
	n, err := NormalizeUserName(name)
	if err != nil {
		return User{}, false, err
	}
	if spec.Name != "" {
		sn, err := NormalizeUserName(spec.Name)
		if err != nil {
			return User{}, false, err
		}
		if sn != n {
			return User{}, false, invalid("name %q in the body differs from %q in the path", spec.Name, name)
		}
	}
	spec.Name = n
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	old, ok := s.c.users[n]
	s.mu.RUnlock()
	var oldp *userRec
	if ok {
		oldp = &old
	}
	rec, err := s.build(spec, oldp)
	if err != nil {
		return User{}, false, err
	}
	s.mu.RLock()
	err = s.conflictLocked(rec)
	s.mu.RUnlock()
	if err != nil {
		return User{}, false, err
	}
	if err := s.commitUser(ctx, rec); err != nil {
		return User{}, false, err
	}
	return rec.view(), !ok, nil
}

// commitUser writes u and updates the cache; callers hold wmu.
func (s *Store) commitUser(ctx context.Context, u userRec) error {
	if err := s.put(ctx, prefixUser+u.Name, u); err != nil {
		return err
	}
	s.mu.Lock()
	s.c.dropUser(u.Name)
	s.c.addUser(u)
	s.mu.Unlock()
	s.changed()
	return nil
}

// DeleteUser removes a provisioned user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	n, err := NormalizeUserName(name)
	if err != nil {
		return err
	}
	if _, ok := s.opts.StaticUsers[n]; ok {
		return fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, ok := s.c.users[n]
	s.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, n)
	}
	if err := s.del(ctx, prefixUser+n); err != nil {
		return err
	}
	s.mu.Lock()
	s.c.dropUser(n)
	s.mu.Unlock()
	s.changed()
	return nil
}

// User returns one provisioned user.
func (s *Store) User(name string) (User, bool) {
	n, err := NormalizeUserName(name)
	if err != nil {
		return User{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.c.users[n]
	return u.view(), ok
}

// Users lists provisioned users by name.
func (s *Store) Users() []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]User, 0, len(s.c.users))
	for _, n := range keys(s.c.users) {
		out = append(out, s.c.users[n].view())
	}
	return out
}

// HA1 is the digest lookup for the SIP layer: static users first, then
// provisioned ones. The name is taken as the digest username.
func (s *Store) HA1(user string) (string, bool) {
	if h, ok := s.opts.StaticUsers[user]; ok {
		return strings.ToLower(h), true
	}
	s.mu.RLock()
	u, ok := s.c.users[user]
	s.mu.RUnlock()
	if !ok || u.HA1 == "" {
		return "", false
	}
	return u.HA1, true
}

// CheckPassword tells whether password is user's SIP password (for HTTP
// logins of provisioned users); it compares HA1s in constant time.
func (s *Store) CheckPassword(user, password string) bool {
	have, ok := s.HA1(user)
	want := HA1Of(user, s.opts.Domain, password)
	return subtle.ConstantTimeCompare([]byte(have), []byte(want)) == 1 && ok
}

// IMAddressOf maps an MSISDN to the AOR of the user it belongs to.
func (s *Store) IMAddressOf(msisdn msg.Address) (msg.Address, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.c.byMSISDN[msisdn]
	if !ok {
		return "", false
	}
	return s.c.users[n].AOR, true
}

// MSISDNOf maps an IM address (AOR) to the user's MSISDN.
func (s *Store) MSISDNOf(aor msg.Address) (msg.Address, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.c.byAOR[aor]
	if !ok || s.c.users[n].MSISDN == "" {
		return "", false
	}
	return s.c.users[n].MSISDN, true
}

// Domain is the SIP domain users are provisioned in.
func (s *Store) Domain() string { return s.opts.Domain }
