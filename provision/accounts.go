package provision

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// AccountSpec is what a client gives to create an SMPP account.
type AccountSpec struct {
	SystemID string `json:"system_id"`
	Password string `json:"password"`
	// AllowedSources are prefixes of the source address a submit_sm may
	// carry (digits, optionally with "+"); none = any.
	AllowedSources []string `json:"allowed_sources,omitempty"`
	TPS            int      `json:"tps,omitempty"`    // submits per second; 0 = unlimited
	Window         int      `json:"window,omitempty"` // in-flight requests; 0 = the bridge default
	// AlphaSenders are the alphanumeric sources (TON 5) the account may
	// use, "*" any; none = the bridge's --alpha-senders.
	AlphaSenders []string `json:"alpha_senders,omitempty"`
}

// Account is an SMPP account as shown to clients: no password material.
type Account struct {
	SystemID       string    `json:"system_id"`
	AllowedSources []string  `json:"allowed_sources,omitempty"`
	TPS            int       `json:"tps"`
	Window         int       `json:"window"`
	AlphaSenders   []string  `json:"alpha_senders,omitempty"`
	Static         bool      `json:"static,omitempty"` // from the configuration, read-only
	Created        time.Time `json:"created"`
}

type accountRec struct {
	Account
	Salt string `json:"salt"` // hex
	Hash string `json:"hash"` // hex PBKDF2-SHA256(password, salt, Iter)
	Iter int    `json:"iter"`
}

const hashLen = 32

func hashPassword(password string, salt []byte, iter int) (string, error) {
	k, err := pbkdf2.Key(sha256.New, password, salt, iter, hashLen)
	if err != nil {
		return "", fmt.Errorf("provision: hash password: %w", err)
	}
	return hex.EncodeToString(k), nil
}

// normalizeSources strips "+" (source addresses arrive in every TON) and
// checks the prefixes are digits.
func normalizeSources(in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		d := strings.TrimPrefix(strings.TrimSpace(p), "+")
		if d == "" || len(d) > 20 || strings.Trim(d, "0123456789") != "" {
			return nil, invalid("allowed source prefix %q is not digits", p)
		}
		out = append(out, d)
	}
	return out, nil
}

// CreateAccount adds an SMPP account; ErrExists if the system_id is taken.
func (s *Store) CreateAccount(ctx context.Context, spec AccountSpec) (Account, error) {
	// SMPP 3.4 system_id is a C-Octet String of at most 16 octets.
	if err := validToken(spec.SystemID, 15, "._-"); err != nil {
		return Account{}, invalid("system_id %q %v", spec.SystemID, err)
	}
	if spec.Password == "" || len(spec.Password) > 64 {
		return Account{}, invalid("password must be 1 to 64 bytes (SMPP 3.4 peers send at most 8)")
	}
	if spec.TPS < 0 || spec.TPS > 1_000_000 {
		return Account{}, invalid("tps %d out of range 0..1000000", spec.TPS)
	}
	if spec.Window < 0 || spec.Window > 65535 {
		return Account{}, invalid("window %d out of range 0..65535", spec.Window)
	}
	src, err := normalizeSources(spec.AllowedSources)
	if err != nil {
		return Account{}, err
	}
	for _, a := range spec.AlphaSenders {
		if a != "*" && (a == "" || len(a) > 11 || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r > 0x7e })) {
			return Account{}, invalid("alphanumeric sender %q: 1 to 11 printable ASCII characters, or *", a)
		}
	}
	if _, ok := s.opts.StaticAccounts[spec.SystemID]; ok {
		return Account{}, fmt.Errorf("%w: account %q", ErrStatic, spec.SystemID)
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return Account{}, fmt.Errorf("provision: salt: %w", err)
	}
	h, err := hashPassword(spec.Password, salt[:], s.opts.HashIterations)
	if err != nil {
		return Account{}, err
	}
	a := accountRec{
		Account: Account{SystemID: spec.SystemID, AllowedSources: src, TPS: spec.TPS, Window: spec.Window, AlphaSenders: spec.AlphaSenders,
			Created: s.opts.Now().UTC()},
		Salt: hex.EncodeToString(salt[:]), Hash: h, Iter: s.opts.HashIterations,
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, taken := s.c.accounts[a.SystemID]
	s.mu.RUnlock()
	if taken {
		return Account{}, fmt.Errorf("%w: account %q", ErrExists, a.SystemID)
	}
	if err := s.put(ctx, prefixAccount+a.SystemID, a); err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	s.c.accounts[a.SystemID] = a
	s.mu.Unlock()
	s.changed()
	return a.Account, nil
}

// DeleteAccount removes a provisioned account. Sessions already bound stay
// up; the next bind is refused. An account a route targets stays (ErrInUse).
func (s *Store) DeleteAccount(ctx context.Context, systemID string) error {
	if _, ok := s.opts.StaticAccounts[systemID]; ok {
		return fmt.Errorf("%w: account %q", ErrStatic, systemID)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	_, ok := s.c.accounts[systemID]
	s.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: account %q", ErrNotFound, systemID)
	}
	s.mu.RLock()
	for _, r := range s.c.routes {
		if r.Target == "esme:"+systemID {
			s.mu.RUnlock()
			return fmt.Errorf("%w: account %q is the target of route %s; change the routes first", ErrInUse, systemID, r.Name)
		}
	}
	s.mu.RUnlock()
	if err := s.del(ctx, prefixAccount+systemID); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.c.accounts, systemID)
	s.mu.Unlock()
	s.changed()
	return nil
}

// Account returns one account, static ones included.
func (s *Store) Account(systemID string) (Account, bool) {
	if _, ok := s.opts.StaticAccounts[systemID]; ok {
		return Account{SystemID: systemID, Static: true}, true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.c.accounts[systemID]
	return a.Account, ok
}

// Accounts lists all accounts by system_id, static ones included.
func (s *Store) Accounts() []Account {
	s.mu.RLock()
	ids := keys(s.c.accounts)
	out := make([]Account, 0, len(ids)+len(s.opts.StaticAccounts))
	for _, id := range ids {
		if _, ok := s.opts.StaticAccounts[id]; !ok {
			out = append(out, s.c.accounts[id].Account)
		}
	}
	s.mu.RUnlock()
	for _, id := range keys(s.opts.StaticAccounts) {
		out = append(out, Account{SystemID: id, Static: true})
	}
	return out
}

// CheckAccount checks an SMPP bind: known tells whether systemID exists
// (ESME_RINVSYSID if not), ok whether password is right (ESME_RINVPASWD).
func (s *Store) CheckAccount(systemID, password string) (ok, known bool) {
	if want, found := s.opts.StaticAccounts[systemID]; found {
		a, b := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(password))
		return subtle.ConstantTimeCompare(a[:], b[:]) == 1, true
	}
	s.mu.RLock()
	a, found := s.c.accounts[systemID]
	s.mu.RUnlock()
	if !found {
		return false, false
	}
	salt, err := hex.DecodeString(a.Salt)
	if err != nil || a.Iter <= 0 {
		s.log.Warn("provision: account has an unreadable hash; refusing", "system_id", systemID)
		return false, true
	}
	got, err := hashPassword(password, salt, a.Iter)
	if err != nil {
		return false, true
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.Hash)) == 1, true
}

// SourceAllowed tells whether account systemID may send from source (an
// address as the ESME gave it). Static accounts and accounts without
// prefixes may send from anything.
func (s *Store) SourceAllowed(systemID, source string) bool {
	s.mu.RLock()
	a, ok := s.c.accounts[systemID]
	s.mu.RUnlock()
	if !ok || len(a.AllowedSources) == 0 {
		return true
	}
	d := strings.TrimPrefix(source, "+")
	for _, p := range a.AllowedSources {
		if strings.HasPrefix(d, p) {
			return true
		}
	}
	return false
}

// AlphaSenders is the list of alphanumeric sources a provisioned account
// may use; false when it has none of its own (the bridge's default applies).
func (s *Store) AlphaSenders(systemID string) ([]string, bool) {
	s.mu.RLock()
	a, ok := s.c.accounts[systemID]
	s.mu.RUnlock()
	if !ok || len(a.AlphaSenders) == 0 {
		return nil, false
	}
	return a.AlphaSenders, true
}
