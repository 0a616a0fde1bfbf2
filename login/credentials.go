package login

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SIP digest never shows the password to the bridge, and a social token is
// single-use, so neither can be a SIP password. Instead, after a password
// login over HTTPS (POST /v1/login) the bridge issues a random short-lived
// SIP password for the IM user; the client REGISTERs with it, and the SIP
// layer finds its HA1 through Credentials.HA1Func chained after the static
// users (Chain). One live password per user: a new login replaces the old.

// ErrTooManyCredentials is returned when the issued-password table is full
// of live entries.
var ErrTooManyCredentials = errors.New("login: too many live SIP credentials")

// Credential is an issued SIP password.
type Credential struct {
	User     string    `json:"user"`     // digest username and SIP user part
	Password string    `json:"password"` // give to the client once, over HTTPS
	HA1      string    `json:"-"`        // md5(user:realm:password) for the configured realm
	Realm    string    `json:"realm"`
	Expires  time.Time `json:"expires"`
}

// CredentialsConfig configures Credentials.
type CredentialsConfig struct {
	Realm      string        // the bridge's SIP domain
	TTL        time.Duration // lifetime of an issued password; default 12h
	MaxEntries int           // default 100000
	Now        func() time.Time
}

// Credentials issues and looks up short-lived SIP passwords. Safe for
// concurrent use.
type Credentials struct {
	cfg CredentialsConfig
	mu  sync.Mutex
	m   map[string]issued
}

type issued struct {
	password string
	exp      time.Time
}

// NewCredentials makes an empty table.
func NewCredentials(cfg CredentialsConfig) *Credentials {
	if cfg.TTL <= 0 {
		cfg.TTL = 12 * time.Hour
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Credentials{cfg: cfg, m: make(map[string]issued)}
}

// Issue makes a new SIP password for user, replacing any earlier one.
func (c *Credentials) Issue(user string) (Credential, error) {
	var rnd [18]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Credential{}, fmt.Errorf("login: random sip password: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(rnd[:])
	now := c.cfg.Now()
	exp := now.Add(c.cfg.TTL)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[user]; !ok && len(c.m) >= c.cfg.MaxEntries {
		for u, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, u)
			}
		}
		if len(c.m) >= c.cfg.MaxEntries {
			return Credential{}, ErrTooManyCredentials
		}
	}
	c.m[user] = issued{password: pw, exp: exp}
	return Credential{User: user, Password: pw, HA1: HA1(user, c.cfg.Realm, pw), Realm: c.cfg.Realm, Expires: exp}, nil
}

// Revoke forgets user's issued password (logout).
func (c *Credentials) Revoke(user string) {
	c.mu.Lock()
	delete(c.m, user)
	c.mu.Unlock()
}

// HA1 looks up user's live issued password for the configured realm; it has
// the signature the sip package takes.
func (c *Credentials) HA1(user string) (string, bool) { return c.HA1Func(c.cfg.Realm)(user) }

// HA1Func returns the lookup for another realm.
func (c *Credentials) HA1Func(realm string) func(user string) (string, bool) {
	return func(user string) (string, bool) {
		c.mu.Lock()
		e, ok := c.m[user]
		c.mu.Unlock()
		if !ok || !c.cfg.Now().Before(e.exp) {
			return "", false
		}
		return HA1(user, realm, e.password), true
	}
}

// Chain tries HA1 lookups in order and returns the first hit, e.g.
// Chain(staticUsers, creds.HA1).
func Chain(lookups ...func(user string) (string, bool)) func(user string) (string, bool) {
	return func(user string) (string, bool) {
		for _, f := range lookups {
			if f == nil {
				continue
			}
			if h, ok := f(user); ok {
				return h, true
			}
		}
		return "", false
	}
}
