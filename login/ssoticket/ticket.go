// Package ssoticket seals and opens the bridge's single sign-on tickets. A
// third-party service imports only this package (stdlib only) to check a
// ticket that a user brings from the bridge.
//
// Wire form (one ASCII line, safe in URLs and headers):
//
//	sso1.<key-id>.<base64url(nonce[12] || AES-256-GCM(claims JSON) || tag[16])>
//
// The key id travels in clear so the verifier can pick the key; the whole
// header "sso1.<key-id>" is the GCM additional data, so swapping the key id
// breaks the seal. The claims carry the user, the service, the key id, the
// issue and expiry times and a random ticket id (jti) that a service can use
// to refuse a second use: Verifier.Replay (a ReplayCache such as
// MemoryReplay) does that.
package ssoticket

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Prefix starts every ticket; it names the format version.
const Prefix = "sso1"

const (
	nonceSize = 12
	tagSize   = 16
	// maxTicket bounds what Open will even look at, so a hostile caller
	// cannot make us base64-decode megabytes.
	maxTicket = 4096
	maxKeyID  = 64
)

// Errors returned by Open and Verify; test with errors.Is.
var (
	ErrMalformed    = errors.New("ssoticket: malformed ticket")
	ErrUnknownKey   = errors.New("ssoticket: unknown key id")
	ErrBadSeal      = errors.New("ssoticket: seal does not verify (tampered or wrong key)")
	ErrExpired      = errors.New("ssoticket: ticket expired")
	ErrNotYetValid  = errors.New("ssoticket: ticket issued in the future")
	ErrWrongService = errors.New("ssoticket: ticket is for another service")
	ErrReplayed     = errors.New("ssoticket: ticket replayed (already used)")
)

// ReplayCache remembers the ids of accepted tickets until they expire, so a
// Verifier with one refuses a second use. An implementation shared by
// several processes (e.g. a locked file) makes the check hold across them.
type ReplayCache interface {
	// Seen records ticket id as used until until and reports whether it was
	// already recorded and still live; then it records nothing.
	Seen(id string, until time.Time) (replayed bool, err error)
}

// Claims is what a ticket says. Times are Unix seconds.
type Claims struct {
	User     string `json:"sub"`            // IM identity, e.g. "alice@im.example"
	Display  string `json:"name,omitempty"` // display name, if known
	Service  string `json:"svc"`            // service id the ticket is for
	KeyID    string `json:"kid"`            // key id, repeated inside the seal
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	ID       string `json:"jti"` // random ticket id, hex
}

// ValidKeyID reports whether id may be used as a key id: 1-64 characters of
// [A-Za-z0-9_-], so it never contains the '.' separator.
func ValidKeyID(id string) bool {
	if id == "" || len(id) > maxKeyID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func header(keyID string) string { return Prefix + "." + keyID }

func aead(key [32]byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("ssoticket: aes: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("ssoticket: gcm: %w", err)
	}
	return g, nil
}

// Seal encrypts c under key. c.KeyID names the key and must be a ValidKeyID.
// A random jti is filled in when c.ID is empty.
func Seal(key [32]byte, c Claims) (string, error) {
	if !ValidKeyID(c.KeyID) {
		return "", fmt.Errorf("%w: key id %q", ErrMalformed, c.KeyID)
	}
	if c.ID == "" {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return "", fmt.Errorf("ssoticket: random id: %w", err)
		}
		c.ID = fmt.Sprintf("%x", id)
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("ssoticket: encode claims: %w", err)
	}
	g, err := aead(key)
	if err != nil {
		return "", err
	}
	buf := make([]byte, nonceSize, nonceSize+len(plain)+tagSize)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("ssoticket: random nonce: %w", err)
	}
	h := header(c.KeyID)
	buf = g.Seal(buf, buf[:nonceSize], plain, []byte(h))
	return h + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// ParseHeader splits a ticket into its key id and sealed body without
// decrypting anything.
func ParseHeader(ticket string) (keyID string, sealed []byte, err error) {
	ticket = strings.TrimSpace(ticket)
	if len(ticket) > maxTicket {
		return "", nil, fmt.Errorf("%w: %d bytes is too long", ErrMalformed, len(ticket))
	}
	prefix, rest, ok := strings.Cut(ticket, ".")
	if !ok || prefix != Prefix {
		return "", nil, fmt.Errorf("%w: not a %s ticket", ErrMalformed, Prefix)
	}
	keyID, body, ok := strings.Cut(rest, ".")
	if !ok || !ValidKeyID(keyID) {
		return "", nil, fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	sealed, err = base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return "", nil, fmt.Errorf("%w: body: %v", ErrMalformed, err)
	}
	if len(sealed) < nonceSize+tagSize {
		return "", nil, fmt.Errorf("%w: body too short", ErrMalformed)
	}
	return keyID, sealed, nil
}

// Open decrypts a ticket with the key its header names, from keys (key id →
// key). It checks the seal only; Verifier.Verify also checks times and the
// service.
func Open(ticket string, keys map[string][32]byte) (Claims, error) {
	var c Claims
	keyID, sealed, err := ParseHeader(ticket)
	if err != nil {
		return c, err
	}
	key, ok := keys[keyID]
	if !ok {
		return c, fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	}
	g, err := aead(key)
	if err != nil {
		return c, err
	}
	plain, err := g.Open(nil, sealed[:nonceSize], sealed[nonceSize:], []byte(header(keyID)))
	if err != nil {
		return c, ErrBadSeal
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		// Only we can seal, so this means a broken issuer, not an attacker.
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if c.KeyID != keyID {
		return Claims{}, fmt.Errorf("%w: key id inside %q differs from header %q", ErrBadSeal, c.KeyID, keyID)
	}
	return c, nil
}

// Verifier checks tickets for one service.
type Verifier struct {
	Keys    map[string][32]byte // key id → key
	Service string              // required service id; "" accepts any (not recommended)
	Now     func() time.Time    // clock; nil = time.Now
	Leeway  time.Duration       // tolerated clock skew for iat/exp
	// Replay, when set, makes tickets single-use: an accepted ticket's id is
	// recorded until its expiry (plus Leeway), and a ticket whose id is
	// recorded fails with ErrReplayed. nil = no replay check.
	Replay ReplayCache
}

// Verify opens the ticket and checks service, issue time and expiry.
func (v Verifier) Verify(ticket string) (Claims, error) {
	c, err := Open(ticket, v.Keys)
	if err != nil {
		return c, err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t := now()
	if v.Service != "" && c.Service != v.Service {
		return c, fmt.Errorf("%w: %q, want %q", ErrWrongService, c.Service, v.Service)
	}
	if t.After(time.Unix(c.Expires, 0).Add(v.Leeway)) {
		return c, fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	if time.Unix(c.IssuedAt, 0).After(t.Add(v.Leeway)) {
		return c, ErrNotYetValid
	}
	if v.Replay != nil {
		if !ValidTicketID(c.ID) {
			return c, fmt.Errorf("%w: ticket id %q cannot be remembered", ErrMalformed, c.ID)
		}
		replayed, err := v.Replay.Seen(c.ID, time.Unix(c.Expires, 0).Add(v.Leeway))
		if err != nil {
			return c, fmt.Errorf("ssoticket: replay check: %w", err)
		}
		if replayed {
			return c, fmt.Errorf("%w: jti %s", ErrReplayed, c.ID)
		}
	}
	return c, nil
}

// ValidTicketID reports whether id can be remembered by a ReplayCache: 1-128
// characters of [A-Za-z0-9_-] (the issuer makes 32 hex digits).
func ValidTicketID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// MemoryReplay is an in-process ReplayCache. The zero value is ready.
type MemoryReplay struct {
	Now func() time.Time // nil = time.Now

	mu    sync.Mutex
	seen  map[string]time.Time
	purge int // purge expired ids when the map reaches this size
}

// Seen implements ReplayCache; expired ids are dropped as the map grows.
func (m *MemoryReplay) Seen(id string, until time.Time) (bool, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]time.Time)
	}
	if u, ok := m.seen[id]; ok && t.Before(u) {
		return true, nil
	}
	if len(m.seen) >= m.purge {
		for k, u := range m.seen {
			if !t.Before(u) {
				delete(m.seen, k)
			}
		}
		m.purge = max(1024, 2*len(m.seen))
	}
	m.seen[id] = until
	return false, nil
}

// Verify is Verifier{Keys: keys, Service: service}.Verify(ticket) on the
// system clock.
func Verify(ticket string, keys map[string][32]byte, service string) (Claims, error) {
	return Verifier{Keys: keys, Service: service}.Verify(ticket)
}
