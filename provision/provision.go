package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors callers classify with errors.Is.
var (
	ErrInvalid  = errors.New("provision: invalid")
	ErrNotFound = errors.New("provision: not found")
	ErrExists   = errors.New("provision: already exists")
	// ErrStatic refuses changing what the static configuration defines.
	ErrStatic = errors.New("provision: defined in the static configuration")
	// ErrInUse refuses deleting what something else still names.
	ErrInUse = errors.New("provision: in use")
)

// KV is the durable store provisioning writes through; store.DB satisfies
// it. Put and Delete must be durable when they return nil.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

const (
	prefixAccount = "prov/a/"
	keyRoutes     = "prov/routes"
)

// Options configures Open.
type Options struct {
	KV          KV     // nil keeps everything in memory (labs, tests of other packages)
	Domain      string // SIP domain and digest realm; required
	CountryCode string // for national MSISDNs
	// StaticAccounts maps system_id → plain password from the
	// configuration (--smpp-account).
	StaticAccounts map[string]string
	// ConfiguredAccount tells whether an account is defined outside the
	// store by a configuration that may change while running (the
	// bridge's, on reload); routes may name it. nil = none.
	ConfiguredAccount func(systemID string) bool
	// SMSC says an upstream SMSC is configured: only then may a route
	// target "smsc". SMSCs are their names, which "smsc:NAME|NAME" names.
	SMSC   bool
	SMSCs  []string
	Logger *slog.Logger
	Now    func() time.Time
	// HashIterations is the PBKDF2 cost for new SMPP passwords (default
	// 4096; binds are rare, so a few ms per check is affordable).
	HashIterations int
}

// Store is the provisioning database. Safe for concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger

	// wmu serializes writers so the KV and the cache change in the same
	// order; mu guards the cache for readers.
	wmu sync.Mutex
	mu  sync.RWMutex
	c   cache

	watchMu  sync.Mutex
	watchers []func()
}

type cache struct {
	accounts map[string]accountRec
	routes   []Route
}

func newCache() cache {
	return cache{accounts: map[string]accountRec{}}
}

// Open loads everything provisioned from opts.KV.
func Open(opts Options) (*Store, error) {
	if opts.Domain == "" {
		return nil, fmt.Errorf("%w: no SIP domain", ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HashIterations <= 0 {
		opts.HashIterations = 4096
	}
	s := &Store{opts: opts, log: opts.Logger, c: newCache()}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload rebuilds the in-memory copy from the KV (e.g. on SIGHUP after an
// offline import). Unreadable records are skipped with a warning.
func (s *Store) Reload() error {
	c := newCache()
	if s.opts.KV != nil {
		err := s.opts.KV.Iterate([]byte(prefixAccount), func(k, v []byte) error {
			var a accountRec
			if err := json.Unmarshal(v, &a); err != nil || a.SystemID == "" {
				s.log.Warn("provision: skipping unreadable account", "key", string(k), "err", err)
				return nil
			}
			c.accounts[a.SystemID] = a
			return nil
		})
		if err != nil {
			return fmt.Errorf("provision: load accounts: %w", err)
		}
		err = s.opts.KV.Iterate([]byte(keyRoutes), func(k, v []byte) error {
			if string(k) != keyRoutes {
				return nil
			}
			if err := json.Unmarshal(v, &c.routes); err != nil {
				s.log.Warn("provision: skipping unreadable route table", "err", err)
				c.routes = nil
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("provision: load routes: %w", err)
		}
	}
	s.wmu.Lock()
	s.mu.Lock()
	s.c = c
	s.mu.Unlock()
	s.wmu.Unlock()
	s.log.Info("provisioning loaded", "accounts", len(c.accounts), "routes", len(c.routes))
	s.changed()
	return nil
}

// OnChange calls fn after every change (and after Reload), e.g. to log or to
// let a component re-read the route table. fn must not block.
func (s *Store) OnChange(fn func()) {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
}

func (s *Store) changed() {
	s.watchMu.Lock()
	ws := slices.Clone(s.watchers)
	s.watchMu.Unlock()
	for _, fn := range ws {
		fn()
	}
}

func (s *Store) put(ctx context.Context, key string, v any) error {
	if s.opts.KV == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("provision: encode %s: %w", key, err)
	}
	if err := s.opts.KV.Put(ctx, []byte(key), b); err != nil {
		return fmt.Errorf("provision: write %s: %w", key, err)
	}
	return nil
}

func (s *Store) del(ctx context.Context, key string) error {
	if s.opts.KV == nil {
		return nil
	}
	if err := s.opts.KV.Delete(ctx, []byte(key)); err != nil {
		return fmt.Errorf("provision: delete %s: %w", key, err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// validToken allows printable ASCII without spaces and without the
// characters that carry meaning in SIP URIs, login names or our keys.
func validToken(s string, max int, extra string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > max {
		return fmt.Errorf("is longer than %d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0
		if !ok {
			return fmt.Errorf("has a character %q that is not allowed (letters, digits and %q only)", c, extra)
		}
	}
	return nil
}

// keys returns m's keys sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
