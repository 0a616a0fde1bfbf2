package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"time"
)

// SIP digest never shows the password to the bridge, and a social token is
// single-use, so neither can be a SIP password. Instead, after a password
// login over HTTPS (POST /v1/login) the bridge issues a random short-lived
// SIP password for the IM user and the device that logged in; the device
// REGISTERs with it, and the SIP layer accepts any of the user's live
// issued credentials (Credentials.Issued, sip.Config.Issued). Each device
// has its own credential: a login from a second device leaves the first
// one's alone, and one device can be logged out (Revoke) without the others.
//
// With a KV store each credential is written before Issue returns (its HA1
// and expiry, never the password) and loaded again by NewCredentials, so a
// restart logs no device out.

// Credential errors; test with errors.Is.
var (
	// ErrTooManyCredentials is returned when the table is full of live entries.
	ErrTooManyCredentials = errors.New("login: too many live SIP credentials")
	// ErrBadDevice is returned for a device id that is not 1-64 characters
	// of [A-Za-z0-9._:-] (or a user name that cannot be stored).
	ErrBadDevice = errors.New("login: bad device id")
)

// Credential is an issued SIP password for one device of a user.
type Credential struct {
	User     string    `json:"user"`               // digest username and SIP user part
	Device   string    `json:"device"`             // the device it was issued to
	Password string    `json:"password,omitempty"` // given to the client once, over HTTPS; never stored
	HA1      string    `json:"-"`                  // md5(user:realm:password) for Realm
	Realm    string    `json:"realm"`
	Expires  time.Time `json:"expires"`
}

// CredentialsConfig configures Credentials.
type CredentialsConfig struct {
	Realm      string        // the bridge's SIP domain; required
	TTL        time.Duration // lifetime of an issued password; default 12h
	MaxEntries int           // live credentials over all users and devices; default 100000
	// MaxDevices bounds one user's credentials: a login from one more
	// device logs the user's oldest one out, so that no user can fill the
	// table for the others. Default 10.
	MaxDevices int
	// Store keeps issued credentials across restarts (nil = memory only).
	Store KV
	Now   func() time.Time
}

// Credentials issues and looks up short-lived SIP passwords, one per user
// and device. Safe for concurrent use.
type Credentials struct {
	cfg CredentialsConfig

	mu      sync.Mutex
	m       map[string]map[string]issued // user → device → credential
	n       int                          // entries in m
	pending int                          // Issues admitted under the cap, not yet in m
	stale   [][2]string                  // purged (user, device), still to be deleted from the store

	seed  maphash.Seed
	locks [64]sync.Mutex // one (user, device) is written by one call at a time: store and memory agree
}

type issued struct {
	ha1      string
	ha1s256  string // "" for a credential stored before SHA-256 ones were kept
	iat, exp time.Time
}

// NewCredentials makes the table, loading the live credentials from
// cfg.Store and deleting the expired ones (and those of another realm).
func NewCredentials(cfg CredentialsConfig) (*Credentials, error) {
	if cfg.Realm == "" {
		return nil, errors.New("login: credentials without a realm")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 12 * time.Hour
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Credentials{cfg: cfg, m: make(map[string]map[string]issued), seed: maphash.MakeSeed()}
	if cfg.Store == nil {
		return c, nil
	}
	now := cfg.Now()
	var stale [][]byte
	err := cfg.Store.Iterate([]byte(kvCredPrefix), func(key, val []byte) error {
		user, device, ok := splitCredKey(key)
		r, err := decodeCredRecord(val)
		if !ok || err != nil || r.Realm != cfg.Realm || !now.Before(time.Unix(0, r.Expires)) {
			// Unusable here: nothing can ever authenticate with it.
			stale = append(stale, append([]byte(nil), key...))
			return nil
		}
		c.insertLocked(user, device, issued{ha1: r.HA1, ha1s256: r.HA1S256, iat: time.Unix(0, r.Issued), exp: time.Unix(0, r.Expires)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("login: load issued credentials: %w", err)
	}
	for _, k := range stale {
		if err := cfg.Store.Delete(context.Background(), k); err != nil {
			return nil, fmt.Errorf("login: delete expired credential: %w", err)
		}
	}
	return c, nil
}

// Realm is the realm of the issued HA1s.
func (c *Credentials) Realm() string { return c.cfg.Realm }

func (c *Credentials) lock(user, device string) *sync.Mutex {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(user)
	h.WriteByte(0)
	h.WriteString(device)
	return &c.locks[h.Sum64()%uint64(len(c.locks))]
}

// insertLocked adds or replaces an entry; c.mu held (or c not shared yet).
func (c *Credentials) insertLocked(user, device string, e issued) {
	d := c.m[user]
	if d == nil {
		d = make(map[string]issued, 1)
		c.m[user] = d
	}
	if _, ok := d[device]; !ok {
		c.n++
	}
	d[device] = e
}

// removeLocked deletes an entry if present; c.mu held.
func (c *Credentials) removeLocked(user, device string) bool {
	d := c.m[user]
	if _, ok := d[device]; !ok {
		return false
	}
	delete(d, device)
	c.n--
	if len(d) == 0 {
		delete(c.m, user)
	}
	return true
}

// purgeLocked drops expired entries, queueing them for deletion from the
// store; c.mu held.
func (c *Credentials) purgeLocked(now time.Time) {
	var gone [][2]string
	for u, d := range c.m {
		for dev, e := range d {
			if !now.Before(e.exp) {
				gone = append(gone, [2]string{u, dev})
			}
		}
	}
	for _, g := range gone {
		c.removeLocked(g[0], g[1])
	}
	if c.cfg.Store != nil {
		c.stale = append(c.stale, gone...)
	}
}

// Issue makes a new SIP password for user on device, replacing only that
// device's earlier one; the user's other devices keep theirs. device ""
// picks a random device id, returned in Credential.Device. With a store the
// credential is on disk when Issue returns.
func (c *Credentials) Issue(ctx context.Context, user, device string) (Credential, error) {
	if device == "" {
		var d [8]byte
		if _, err := rand.Read(d[:]); err != nil {
			return Credential{}, fmt.Errorf("login: random device id: %w", err)
		}
		device = hex.EncodeToString(d[:])
	}
	if !validUser(user) || !validDevice(device) {
		return Credential{}, fmt.Errorf("%w: user %q device %q", ErrBadDevice, user, device)
	}
	var rnd [18]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Credential{}, fmt.Errorf("login: random sip password: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(rnd[:])
	now := c.cfg.Now()
	e := issued{ha1: HA1(user, c.cfg.Realm, pw), ha1s256: HA1SHA256(user, c.cfg.Realm, pw), iat: now, exp: now.Add(c.cfg.TTL)}

	l := c.lock(user, device)
	l.Lock()
	c.mu.Lock()
	_, replacing := c.m[user][device]
	if !replacing && c.n+c.pending >= c.cfg.MaxEntries {
		c.purgeLocked(now)
		if c.n+c.pending >= c.cfg.MaxEntries {
			c.mu.Unlock()
			l.Unlock()
			return Credential{}, ErrTooManyCredentials
		}
	}
	if !replacing {
		c.pending++
	}
	c.mu.Unlock()

	var err error
	if c.cfg.Store != nil {
		rec := credRecord{HA1: e.ha1, HA1S256: e.ha1s256, Realm: c.cfg.Realm, Issued: e.iat.UnixNano(), Expires: e.exp.UnixNano()}
		err = c.cfg.Store.Put(ctx, credKey(user, device), rec.encode())
	}
	c.mu.Lock()
	if !replacing {
		c.pending--
	}
	var oldest string
	var oldestAt time.Time
	if err == nil {
		c.insertLocked(user, device, e)
		if len(c.m[user]) > c.cfg.MaxDevices {
			for dev, x := range c.m[user] {
				if dev != device && (oldest == "" || x.iat.Before(oldestAt)) {
					oldest, oldestAt = dev, x.iat
				}
			}
		}
	}
	c.mu.Unlock()
	l.Unlock()
	if err != nil {
		return Credential{}, fmt.Errorf("login: store SIP credential: %w", err)
	}
	if oldest != "" {
		c.revokeIssued(ctx, user, oldest, oldestAt)
	}
	c.forget(ctx)
	return Credential{User: user, Device: device, Password: pw, HA1: e.ha1, Realm: c.cfg.Realm, Expires: e.exp}, nil
}

// forget deletes a few (forgetBatch) purged, expired credentials from the
// store, unless one was issued again for the same device meanwhile. Best
// effort: what stays is deleted by the next NewCredentials.
func (c *Credentials) forget(ctx context.Context) {
	if c.cfg.Store == nil {
		return
	}
	c.mu.Lock()
	n := min(forgetBatch, len(c.stale))
	gone := append([][2]string(nil), c.stale[len(c.stale)-n:]...)
	c.stale = c.stale[:len(c.stale)-n]
	c.mu.Unlock()
	for _, g := range gone {
		l := c.lock(g[0], g[1])
		l.Lock()
		c.mu.Lock()
		_, back := c.m[g[0]][g[1]]
		c.mu.Unlock()
		if !back {
			_ = c.cfg.Store.Delete(ctx, credKey(g[0], g[1]))
		}
		l.Unlock()
	}
}

// Revoke logs one device of user out: its credential stops working at once.
// An error means the store could not delete it; the device is logged out in
// this process but may come back after a restart until it expires.
func (c *Credentials) Revoke(ctx context.Context, user, device string) error {
	if !validUser(user) || !validDevice(device) {
		return fmt.Errorf("%w: user %q device %q", ErrBadDevice, user, device)
	}
	l := c.lock(user, device)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	c.removeLocked(user, device)
	c.mu.Unlock()
	if c.cfg.Store != nil {
		if err := c.cfg.Store.Delete(ctx, credKey(user, device)); err != nil {
			return fmt.Errorf("login: delete SIP credential: %w", err)
		}
	}
	return nil
}

// revokeIssued logs user's device out if its credential is still the one
// issued at iat (not issued again meanwhile). A failed store deletion is
// queued to be retried by later Issues.
func (c *Credentials) revokeIssued(ctx context.Context, user, device string, iat time.Time) {
	l := c.lock(user, device)
	l.Lock()
	defer l.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[user][device]
	if !ok || !e.iat.Equal(iat) {
		return
	}
	c.removeLocked(user, device)
	if c.cfg.Store == nil {
		return
	}
	c.mu.Unlock()
	err := c.cfg.Store.Delete(ctx, credKey(user, device))
	c.mu.Lock()
	if err != nil {
		c.stale = append(c.stale, [2]string{user, device})
	}
}

// RevokeAll logs every device of user out, with Revoke's error semantics.
func (c *Credentials) RevokeAll(ctx context.Context, user string) error {
	c.mu.Lock()
	devices := make([]string, 0, len(c.m[user]))
	for d := range c.m[user] {
		devices = append(devices, d)
	}
	c.mu.Unlock()
	var errs []error
	for _, d := range devices {
		if err := c.Revoke(ctx, user, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Issued returns the HA1s (for Realm) of user's live credentials, one per
// device: what sip.Config.Issued and mcp.Config.Issued take.
func (c *Credentials) Issued(user string) []string { return c.issued(user, false) }

// IssuedSHA256 is Issued for SHA-256 digest (RFC 8760).
func (c *Credentials) IssuedSHA256(user string) []string { return c.issued(user, true) }

func (c *Credentials) issued(user string, sha256 bool) []string {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.m[user]
	if len(d) == 0 {
		return nil
	}
	out := make([]string, 0, len(d))
	for _, e := range d {
		switch {
		case !now.Before(e.exp):
		case !sha256:
			out = append(out, e.ha1)
		case e.ha1s256 != "":
			out = append(out, e.ha1s256)
		}
	}
	return out
}

// Devices lists user's live credentials by device id, without passwords.
func (c *Credentials) Devices(user string) []Credential {
	now := c.cfg.Now()
	c.mu.Lock()
	out := make([]Credential, 0, len(c.m[user]))
	for dev, e := range c.m[user] {
		if now.Before(e.exp) {
			out = append(out, Credential{User: user, Device: dev, HA1: e.ha1, Realm: c.cfg.Realm, Expires: e.exp})
		}
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// Chain tries HA1 lookups in order and returns the first hit, e.g.
// Chain(staticUsers, provisioned).
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
