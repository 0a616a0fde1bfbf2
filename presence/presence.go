package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// Binding says one IM user is reachable at one contact until Expires.
type Binding struct {
	AOR     msg.Address `json:"aor"`     // normalized identity: "+E164" or "sip:user@domain"
	Contact string      `json:"contact"` // where to send: a SIP URI, or an MCP connection id
	Via     string      `json:"via"`     // which adapter delivers to it: "sip", "mcp", "api"
	Expires time.Time   `json:"expires"`
	Updated time.Time   `json:"updated"`
	// Show is how available the user says they are at this contact
	// (XMPP show; SIP registrations are available): routing prefers
	// available over away over dnd, then Priority (XMPP priority, SIP q
	// scaled to 0..1000), then the most recent Updated.
	Show     Show `json:"show,omitempty"`
	Priority int  `json:"priority,omitempty"`
}

// Show is a binding's availability, best first.
type Show uint8

const (
	Available    Show = iota // online (SIP registration, XMPP presence without show or "chat")
	Away                     // XMPP "away"
	ExtendedAway             // XMPP "xa"
	DoNotDisturb             // XMPP "dnd"
)

// Better reports whether b is a better place to deliver to than c: more
// available, then higher priority, then more recently updated.
func (b Binding) Better(c Binding) bool {
	if b.Show != c.Show {
		return b.Show < c.Show
	}
	if b.Priority != c.Priority {
		return b.Priority > c.Priority
	}
	return b.Updated.After(c.Updated)
}

// KV is the durable store presence writes through; store.DB satisfies it.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

const keyPrefix = "p/"

func key(aor msg.Address, contact string) []byte {
	return []byte(keyPrefix + string(aor) + "\x00" + contact)
}

// Store is the presence index. It is safe for concurrent use.
type Store struct {
	kv  KV
	log *slog.Logger
	now func() time.Time

	mu    sync.RWMutex
	users map[msg.Address][]Binding // newest first

	watchMu  sync.Mutex
	watchers []func(Binding)
}

// Options configures a Store.
type Options struct {
	KV     KV // nil keeps presence in memory only (labs, tests of other packages)
	Logger *slog.Logger
	Now    func() time.Time
}

// Open builds the index from the KV, dropping bindings that expired while
// the bridge was down.
func Open(opts Options) (*Store, error) {
	s := &Store{kv: opts.KV, log: opts.Logger, now: opts.Now, users: make(map[msg.Address][]Binding)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.kv == nil {
		return s, nil
	}
	now := s.now()
	var stale [][]byte
	err := s.kv.Iterate([]byte(keyPrefix), func(k, v []byte) error {
		var b Binding
		if err := json.Unmarshal(v, &b); err != nil {
			s.log.Warn("presence: dropping unreadable binding", "key", string(k), "err", err)
			stale = append(stale, append([]byte(nil), k...))
			return nil
		}
		if !b.Expires.After(now) {
			stale = append(stale, append([]byte(nil), k...))
			return nil
		}
		s.insert(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("presence: load: %w", err)
	}
	for _, k := range stale {
		if err := s.kv.Delete(context.Background(), k); err != nil {
			return nil, fmt.Errorf("presence: drop expired: %w", err)
		}
	}
	s.log.Info("presence loaded", "online", s.Len(), "dropped_expired", len(stale))
	return s, nil
}

// insert adds or refreshes b; callers hold mu (or are single-threaded).
func (s *Store) insert(b Binding) {
	list := s.users[b.AOR]
	for i := range list {
		if list[i].Contact == b.Contact {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	list = append(list, b)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Updated.After(list[j].Updated) })
	s.users[b.AOR] = list
}

// Register puts b online (or refreshes it). It returns once the binding is
// durable, so a 200 OK to REGISTER means presence survives a crash.
func (s *Store) Register(ctx context.Context, b Binding) error {
	if b.AOR == "" || b.Contact == "" {
		return fmt.Errorf("presence: binding needs an AOR and a contact")
	}
	if b.Updated.IsZero() {
		b.Updated = s.now()
	}
	if s.kv != nil {
		v, err := json.Marshal(b)
		if err != nil {
			return fmt.Errorf("presence: encode: %w", err)
		}
		if err := s.kv.Put(ctx, key(b.AOR, b.Contact), v); err != nil {
			return fmt.Errorf("presence: register %s: %w", b.AOR, err)
		}
	}
	s.mu.Lock()
	s.insert(b)
	s.mu.Unlock()
	s.notify(b)
	return nil
}

// Unregister takes one contact of aor offline; contact "" removes them all.
func (s *Store) Unregister(ctx context.Context, aor msg.Address, contact string) error {
	s.mu.Lock()
	list := s.users[aor]
	var gone []Binding
	kept := list[:0]
	for _, b := range list {
		if contact == "" || b.Contact == contact {
			gone = append(gone, b)
		} else {
			kept = append(kept, b)
		}
	}
	if len(kept) == 0 {
		delete(s.users, aor)
	} else {
		s.users[aor] = kept
	}
	s.mu.Unlock()
	if s.kv != nil {
		for _, b := range gone {
			if err := s.kv.Delete(ctx, key(b.AOR, b.Contact)); err != nil {
				return fmt.Errorf("presence: unregister %s: %w", aor, err)
			}
		}
	}
	return nil
}

// Lookup returns the best unexpired binding of aor (Binding.Better): for
// bindings alike, the freshest.
func (s *Store) Lookup(aor msg.Address) (Binding, bool) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best Binding
	found := false
	for _, b := range s.users[aor] { // newest first, so ties keep the freshest
		if b.Expires.After(now) && (!found || b.Better(best)) {
			best, found = b, true
		}
	}
	return best, found
}

// Bindings returns all unexpired bindings of aor, freshest first.
func (s *Store) Bindings(aor msg.Address) []Binding {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Binding
	for _, b := range s.users[aor] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// Len counts users with at least one binding in the index (expired ones
// count until the next Sweep).
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// OnRegister calls fn after every successful Register (e.g. to drain an
// offline queue). fn must not block.
func (s *Store) OnRegister(fn func(Binding)) {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
}

func (s *Store) notify(b Binding) {
	s.watchMu.Lock()
	ws := s.watchers
	s.watchMu.Unlock()
	for _, fn := range ws {
		fn(b)
	}
}

// Sweep removes expired bindings from the index and the KV.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	var gone []Binding
	s.mu.Lock()
	for aor, list := range s.users {
		kept := list[:0]
		for _, b := range list {
			if b.Expires.After(now) {
				kept = append(kept, b)
			} else {
				gone = append(gone, b)
			}
		}
		if len(kept) == 0 {
			delete(s.users, aor)
		} else {
			s.users[aor] = kept
		}
	}
	s.mu.Unlock()
	if s.kv != nil {
		for _, b := range gone {
			if err := s.kv.Delete(ctx, key(b.AOR, b.Contact)); err != nil {
				return len(gone), fmt.Errorf("presence: sweep: %w", err)
			}
		}
	}
	return len(gone), nil
}

// Run sweeps every interval until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Sweep(ctx); err != nil {
				s.log.Warn("presence sweep failed", "err", err)
			} else if n > 0 {
				s.log.Debug("presence expired", "bindings", n)
			}
		}
	}
}
