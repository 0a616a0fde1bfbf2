package login

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// UserStore owns the IM users that external accounts become on first login.
// The bridge's user directory implements it; MemoryUsers is the in-memory
// implementation for tests and labs.
type UserStore interface {
	// EnsureExternal returns the IM user name (a SIP user part) of the
	// external account kind ("partner" or "social", Kind.String) at site,
	// creating the user with display if it does not exist yet, and reports
	// whether it was created by this call. The store decides the name; the
	// same (kind, site, account) must always get the same name.
	EnsureExternal(ctx context.Context, kind, site, account, display string) (user string, created bool, err error)
}

// ErrUserConflict is returned by MemoryUsers when two external accounts
// would get the same IM user name (a hash collision).
var ErrUserConflict = errors.New("login: IM user name already taken by another account")

// Separators between the account and the site in external user names.
const (
	PartnerUserSep = "~" // "alice~shop": account alice of partner site shop
	SocialUserSep  = "!" // "vcase!weibo": account vcase of social site weibo
)

// lowerB32 is RFC 4648 base32 in lower case, so a hashed name stays lower
// case like the rest (AORs are compared lower-cased).
var lowerB32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func canonicalAccount(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ExternalUserName is the naming rule of MemoryUsers, in its simplest form:
// the account lower-cased, then "~" and the site for a partner account or
// "!" and the site for a social one ("alice~shop", "vcase!weibo"). An
// account that is not already lower-case [a-z0-9._-] gets "=" and 5 base32
// characters of SHA-256(account) before the separator, so that "VCase" and
// "vcase" stay two users ("vcase=3qh2r!weibo"); characters other than
// [a-z0-9._-] left after lower-casing become "_", so the name is always a
// valid SIP user part.
func ExternalUserName(kind, site, account string) (string, error) {
	var sep string
	switch kind {
	case Partner.String():
		sep = PartnerUserSep
	case Social.String():
		sep = SocialUserSep
	default:
		return "", fmt.Errorf("%w: external account kind %q", ErrBadName, kind)
	}
	if account == "" || site == "" {
		return "", fmt.Errorf("%w: empty account or site", ErrBadName)
	}
	if canonicalAccount(account) {
		return account + sep + site, nil
	}
	var b strings.Builder
	for _, r := range strings.ToLower(account) {
		if r < 0x80 && canonicalAccount(string(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	h := sha256.Sum256([]byte(account))
	b.WriteByte('=')
	b.WriteString(lowerB32.EncodeToString(h[:])[:5])
	return b.String() + sep + site, nil
}

// MemoryUsers is an in-memory UserStore named by ExternalUserName. Nothing
// survives the process: for tests and labs.
type MemoryUsers struct {
	mu      sync.Mutex
	display map[string]string // IM user → display name
	owner   map[string]string // IM user → kind "\x00" site "\x00" account
}

// NewMemoryUsers returns an empty store.
func NewMemoryUsers() *MemoryUsers {
	return &MemoryUsers{display: make(map[string]string), owner: make(map[string]string)}
}

// EnsureExternal implements UserStore.
func (u *MemoryUsers) EnsureExternal(_ context.Context, kind, site, account, display string) (string, bool, error) {
	user, err := ExternalUserName(kind, site, account)
	if err != nil {
		return "", false, err
	}
	id := kind + "\x00" + site + "\x00" + account
	u.mu.Lock()
	defer u.mu.Unlock()
	if o, ok := u.owner[user]; ok {
		if o != id {
			return "", false, fmt.Errorf("%w: %q", ErrUserConflict, user)
		}
		return user, false, nil
	}
	u.owner[user] = id
	u.display[user] = display
	return user, true, nil
}

// Lookup returns a user's display name.
func (u *MemoryUsers) Lookup(user string) (display string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	display, ok = u.display[user]
	return display, ok
}

// External returns the external account an IM user was created for.
func (u *MemoryUsers) External(user string) (kind, site, account string, ok bool) {
	u.mu.Lock()
	o, ok := u.owner[user]
	u.mu.Unlock()
	if !ok {
		return "", "", "", false
	}
	kind, rest, _ := strings.Cut(o, "\x00")
	site, account, _ = strings.Cut(rest, "\x00")
	return kind, site, account, true
}

// Len is the number of users.
func (u *MemoryUsers) Len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.display)
}
