package login

import (
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Social-account tokens. A social site that lets its users into IM signs
//
//	payload = <user id> "." <session id> "." <expiry, unix seconds>
//
// with HMAC-SHA256 under the key it shares with the bridge, and hands the
// user the token
//
//	base64url(payload, no padding) "." hex(HMAC-SHA256(key, payload))
//
// which the client sends as the password with user name "<user id>@<site>".
// The user id may contain dots (the payload is split from the right); the
// session id is 1-128 characters of [A-Za-z0-9_-]; the expiry is canonical
// decimal (no sign, no leading zeros). One token admits one
// login: the session id is remembered until the token expires.

// Social errors; test with errors.Is.
var (
	ErrMalformedToken = errors.New("login: malformed social token")
	ErrUnknownSocial  = errors.New("login: unknown social site")
	ErrBadSignature   = errors.New("login: bad social token signature")
	ErrWrongAccount   = errors.New("login: social token is for another account")
	ErrExpired        = errors.New("login: social token expired")
	ErrTooLong        = errors.New("login: social token lives longer than allowed")
	ErrReplayed       = errors.New("login: social token already used")
	ErrReplayFull     = errors.New("login: too many live social sessions, try later")
)

const maxTokenLen = 2048

// SocialToken is the parsed content of a token.
type SocialToken struct {
	UserID    string
	SessionID string
	Expires   time.Time
}

func validSessionID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func socialMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// SignSocialToken makes a token; it is what a social site runs (and what
// tests and the README use).
func SignSocialToken(key []byte, userID, sessionID string, expires time.Time) (string, error) {
	if userID == "" || strings.ContainsAny(userID, "@#\x00") {
		return "", fmt.Errorf("%w: user id %q", ErrMalformedToken, userID)
	}
	if !validSessionID(sessionID) {
		return "", fmt.Errorf("%w: session id %q", ErrMalformedToken, sessionID)
	}
	payload := userID + "." + sessionID + "." + strconv.FormatInt(expires.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + hex.EncodeToString(socialMAC(key, payload)), nil
}

// ParseSocialToken splits a token into its claims, the signed payload and the
// signature, checking only the form.
func ParseSocialToken(tok string) (t SocialToken, payload string, sig []byte, err error) {
	if len(tok) > maxTokenLen {
		return t, "", nil, fmt.Errorf("%w: %d bytes", ErrMalformedToken, len(tok))
	}
	b64, hexSig, ok := strings.Cut(tok, ".")
	if !ok {
		return t, "", nil, fmt.Errorf("%w: no signature", ErrMalformedToken)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	if err != nil {
		return t, "", nil, fmt.Errorf("%w: payload: %v", ErrMalformedToken, err)
	}
	if len(hexSig) != 2*sha256.Size {
		return t, "", nil, fmt.Errorf("%w: signature length", ErrMalformedToken)
	}
	sig, err = hex.DecodeString(hexSig)
	if err != nil {
		return t, "", nil, fmt.Errorf("%w: signature: %v", ErrMalformedToken, err)
	}
	payload = string(raw)
	i := strings.LastIndexByte(payload, '.')
	if i < 0 {
		return t, "", nil, fmt.Errorf("%w: payload has no expiry", ErrMalformedToken)
	}
	exp, err := strconv.ParseInt(payload[i+1:], 10, 64)
	// Only the canonical decimal form, so one claim set has one payload.
	if err != nil || exp <= 0 || payload[i+1:] != strconv.FormatInt(exp, 10) {
		return t, "", nil, fmt.Errorf("%w: expiry %q", ErrMalformedToken, payload[i+1:])
	}
	j := strings.LastIndexByte(payload[:i], '.')
	if j <= 0 {
		return t, "", nil, fmt.Errorf("%w: payload has no user or session id", ErrMalformedToken)
	}
	t = SocialToken{UserID: payload[:j], SessionID: payload[j+1 : i], Expires: time.Unix(exp, 0)}
	if !validSessionID(t.SessionID) || strings.ContainsAny(t.UserID, "@#\x00") {
		return SocialToken{}, "", nil, fmt.Errorf("%w: user or session id", ErrMalformedToken)
	}
	return t, payload, sig, nil
}

// SocialSite is a configured social network.
type SocialSite struct {
	ID  string // the "site" of "account@site"
	Key []byte // HMAC-SHA256 key shared with the site (≥ 32 bytes)
}

// SocialConfig configures SocialAccounts. Zero values take the defaults noted.
type SocialConfig struct {
	Sites      []SocialSite
	MaxTTL     time.Duration // tokens valid for longer are refused; default 15m (bounds replay memory)
	MaxEntries int           // live session ids remembered; default 100000
	Leeway     time.Duration // clock skew tolerated on expiry; default 0
	// Store keeps used session ids across restarts (nil = memory only: a
	// token used before a restart is accepted again after it).
	Store KV
	Now   func() time.Time
}

// SocialAccounts verifies social-account tokens. Safe for concurrent use.
type SocialAccounts struct {
	cfg  SocialConfig
	keys map[string][]byte
	used replaySet
}

// NewSocialAccounts checks the configuration.
func NewSocialAccounts(cfg SocialConfig) (*SocialAccounts, error) {
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 15 * time.Minute
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &SocialAccounts{cfg: cfg, keys: make(map[string][]byte, len(cfg.Sites))}
	s.used.init(cfg.MaxEntries)
	s.used.keep = cfg.Store != nil
	for _, site := range cfg.Sites {
		if site.ID == "" || strings.ContainsAny(site.ID, "@#\x00") {
			return nil, fmt.Errorf("login: social site id %q", site.ID)
		}
		if len(site.Key) < 32 {
			return nil, fmt.Errorf("login: social site %q key shorter than 32 bytes", site.ID)
		}
		if _, dup := s.keys[site.ID]; dup {
			return nil, fmt.Errorf("login: social site %q configured twice", site.ID)
		}
		s.keys[site.ID] = append([]byte(nil), site.Key...)
	}
	if cfg.Store != nil {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// load fills the replay set with the live session ids in the store and
// deletes the expired ones. A record that does not parse is kept for the
// longest a token can live (MaxTTL + Leeway from now), never forgotten early.
func (s *SocialAccounts) load() error {
	now := s.cfg.Now()
	var stale [][]byte
	err := s.cfg.Store.Iterate([]byte(kvSocialPrefix), func(key, val []byte) error {
		until, err := decodeSocialRecord(val)
		if err != nil {
			until = now.Add(s.cfg.MaxTTL + s.cfg.Leeway)
		}
		if !now.Before(until) {
			stale = append(stale, append([]byte(nil), key...))
			return nil
		}
		s.used.load(string(key[len(kvSocialPrefix):]), until)
		return nil
	})
	if err != nil {
		return fmt.Errorf("login: load used social sessions: %w", err)
	}
	for _, k := range stale {
		if err := s.cfg.Store.Delete(context.Background(), k); err != nil {
			return fmt.Errorf("login: delete expired social session: %w", err)
		}
	}
	return nil
}

// IsSite reports whether id is a configured social site; pass it to Classify.
func (s *SocialAccounts) IsSite(id string) bool {
	if s == nil {
		return false
	}
	_, ok := s.keys[id]
	return ok
}

// Verify checks token for login name account@site (given split) and, if it
// is good, marks its session id used; with a Store the session id is on
// disk before Verify returns success, so the token is refused after a
// restart too. The order matters: the signature is checked before anything
// is remembered, so only the site can fill the replay set.
func (s *SocialAccounts) Verify(ctx context.Context, account, site, token string) (SocialToken, error) {
	key, ok := s.keys[site]
	if !ok {
		return SocialToken{}, fmt.Errorf("%w %q", ErrUnknownSocial, site)
	}
	t, payload, sig, err := ParseSocialToken(token)
	if err != nil {
		return SocialToken{}, err
	}
	if !hmac.Equal(sig, socialMAC(key, payload)) {
		return SocialToken{}, ErrBadSignature
	}
	if t.UserID != account {
		return SocialToken{}, fmt.Errorf("%w: token names %q", ErrWrongAccount, t.UserID)
	}
	now := s.cfg.Now()
	if !now.Before(t.Expires.Add(s.cfg.Leeway)) {
		return SocialToken{}, fmt.Errorf("%w at %s", ErrExpired, t.Expires.UTC().Format(time.RFC3339))
	}
	if t.Expires.Sub(now) > s.cfg.MaxTTL {
		return SocialToken{}, fmt.Errorf("%w: expires in %s, limit %s", ErrTooLong, t.Expires.Sub(now).Round(time.Second), s.cfg.MaxTTL)
	}
	k := site + "\x00" + t.SessionID
	until := t.Expires.Add(s.cfg.Leeway)
	err = s.used.add(k, until, now)
	if s.cfg.Store != nil {
		defer s.forget(ctx)
	}
	if err != nil {
		return SocialToken{}, err
	}
	if s.cfg.Store != nil {
		// The session id is already taken in memory, so a concurrent replay
		// is refused while this write is in flight.
		if err := s.cfg.Store.Put(ctx, []byte(kvSocialPrefix+k), encodeSocialRecord(until)); err != nil {
			s.used.remove(k, until)
			return SocialToken{}, fmt.Errorf("login: record social session: %w", err)
		}
	}
	return t, nil
}

// forgetBatch bounds the store deletions one Verify makes for the session
// ids purged from memory: a burst of expiries is spread over later logins
// instead of delaying one.
const forgetBatch = 16

// forget deletes from the store a few of the session ids purged from memory
// (best effort: the next load deletes what stays).
func (s *SocialAccounts) forget(ctx context.Context) {
	for _, k := range s.used.takeStale(forgetBatch) {
		if s.used.has(k) { // used again meanwhile: its new record stays
			continue
		}
		_ = s.cfg.Store.Delete(ctx, []byte(kvSocialPrefix+k))
	}
}

// replaySet remembers used session ids until their expiry. A min-heap on
// expiry makes purging cheap; the cap makes memory bounded, and when it is
// reached with live entries we refuse rather than forget (forgetting would
// reopen replay).
type replaySet struct {
	mu    sync.Mutex
	max   int
	m     map[string]time.Time
	h     expHeap
	stale []string // purged from m, still to be deleted from the store
	keep  bool     // collect stale (there is a store)
}

func (r *replaySet) init(max int) {
	r.max = max
	r.m = make(map[string]time.Time)
}

// add remembers k until exp, or refuses: ErrReplayed if k is live,
// ErrReplayFull if the set is full of live entries.
func (r *replaySet) add(k string, exp, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.h) > 0 && !now.Before(r.h[0].exp) {
		e := heap.Pop(&r.h).(expItem)
		// A heap item whose entry was removed (or re-added later) is stale.
		if x, ok := r.m[e.k]; ok && x.Equal(e.exp) {
			delete(r.m, e.k)
			if r.keep {
				r.stale = append(r.stale, e.k)
			}
		}
	}
	if _, ok := r.m[k]; ok {
		return ErrReplayed
	}
	if len(r.m) >= r.max {
		return ErrReplayFull
	}
	r.m[k] = exp
	heap.Push(&r.h, expItem{k: k, exp: exp})
	return nil
}

// takeStale removes and returns up to n purged keys.
func (r *replaySet) takeStale(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = min(n, len(r.stale))
	out := append([]string(nil), r.stale[len(r.stale)-n:]...)
	r.stale = r.stale[:len(r.stale)-n]
	return out
}

// load adds a remembered entry regardless of the cap: what was used before a
// restart is never forgotten early.
func (r *replaySet) load(k string, exp time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.m[k]; ok && !exp.After(x) {
		return
	}
	r.m[k] = exp
	heap.Push(&r.h, expItem{k: k, exp: exp})
}

// remove undoes add(k, exp) when the session id could not be stored.
func (r *replaySet) remove(k string, exp time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.m[k]; ok && x.Equal(exp) {
		delete(r.m, k)
	}
}

func (r *replaySet) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[k]
	return ok
}

func (r *replaySet) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

type expItem struct {
	k   string
	exp time.Time
}

type expHeap []expItem

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expItem)) }
func (h *expHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
