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
	// Node is the bridge node that holds the binding in a cluster; "" is
	// this node. Another node's binding is delivered to through that node.
	Node string `json:"node,omitempty"`
}

// Change is a change of this node's own presence, as OnChange reports it.
type Change struct {
	Binding Binding
	Gone    bool // unregistered or expired; false: registered or refreshed
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
	users map[msg.Address][]Binding // this node's, newest first
	// Other nodes' bindings, learned from the cluster: a map of their own so
	// Lookup and Bindings keep answering for this node only, at today's cost.
	remote map[msg.Address][]Binding

	watchMu  sync.Mutex
	watchers []func(Binding)
	changes  []func(Change)
	remotes  []func(Binding)
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
	s := &Store{kv: opts.KV, log: opts.Logger, now: opts.Now, users: make(map[msg.Address][]Binding),
		remote: make(map[msg.Address][]Binding)}
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
		s.insert(s.users, b)
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

// insert adds or refreshes b in index m; callers hold mu (or are
// single-threaded).
func (s *Store) insert(m map[msg.Address][]Binding, b Binding) {
	list := m[b.AOR]
	for i := range list {
		if list[i].Contact == b.Contact {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	list = append(list, b)
	sort.SliceStable(list, func(i, j int) bool { return list[i].Updated.After(list[j].Updated) })
	m[b.AOR] = list
}

// remove takes the bindings of aor matching contact ("" = all) out of
// index m and returns them; callers hold mu.
func remove(m map[msg.Address][]Binding, aor msg.Address, contact string) []Binding {
	list := m[aor]
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
		delete(m, aor)
	} else {
		m[aor] = kept
	}
	return gone
}

// Register puts b online (or refreshes it). It returns once the binding is
// durable, so a 200 OK to REGISTER means presence survives a crash.
func (s *Store) Register(ctx context.Context, b Binding) error {
	if b.AOR == "" || b.Contact == "" {
		return fmt.Errorf("presence: binding needs an AOR and a contact")
	}
	if b.Node != "" {
		return fmt.Errorf("presence: register %s: binding of node %q: other nodes' bindings go through ApplyRemote", b.AOR, b.Node)
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
	s.insert(s.users, b)
	s.mu.Unlock()
	s.notify(b)
	s.changed(Change{Binding: b})
	return nil
}

// Unregister takes one contact of aor offline; contact "" removes them all.
// Only this node's bindings are affected.
func (s *Store) Unregister(ctx context.Context, aor msg.Address, contact string) error {
	s.mu.Lock()
	gone := remove(s.users, aor, contact)
	s.mu.Unlock()
	err := s.forget(ctx, gone)
	for _, b := range gone {
		s.changed(Change{Binding: b, Gone: true})
	}
	if err != nil {
		return fmt.Errorf("presence: unregister %s: %w", aor, err)
	}
	return nil
}

// forget deletes bindings taken out of the index from the KV.
func (s *Store) forget(ctx context.Context, gone []Binding) error {
	if s.kv == nil {
		return nil
	}
	for _, b := range gone {
		if err := s.kv.Delete(ctx, key(b.AOR, b.Contact)); err != nil {
			return err
		}
	}
	return nil
}

// Yield takes this node's binding of (aor, contact) out of the index and
// the KV because another node now holds it (the user registered there
// later). Unlike Unregister it reports no Change: the new holder's binding
// must not be withdrawn from the cluster.
func (s *Store) Yield(ctx context.Context, aor msg.Address, contact string) error {
	if contact == "" {
		return fmt.Errorf("presence: yield %s: needs a contact", aor)
	}
	s.mu.Lock()
	gone := remove(s.users, aor, contact)
	s.mu.Unlock()
	if err := s.forget(ctx, gone); err != nil {
		return fmt.Errorf("presence: yield %s: %w", aor, err)
	}
	return nil
}

// ApplyRemote puts another node's binding (b.Node set) in the index of
// remote bindings, replacing any earlier one of the same AOR and contact.
// It is neither written to the KV (its node keeps it) nor reported to
// OnRegister or OnChange, so it is never published again; OnRemote hears it.
func (s *Store) ApplyRemote(b Binding) error {
	if b.AOR == "" || b.Contact == "" || b.Node == "" {
		return fmt.Errorf("presence: remote binding needs an AOR, a contact and a node")
	}
	s.mu.Lock()
	s.insert(s.remote, b)
	s.mu.Unlock()
	s.watchMu.Lock()
	fs := s.remotes
	s.watchMu.Unlock()
	for _, fn := range fs {
		fn(b)
	}
	return nil
}

// OnRemote calls fn after every ApplyRemote (e.g. to deliver messages
// waiting for a user who came online at another node). fn must not block.
func (s *Store) OnRemote(fn func(Binding)) {
	s.watchMu.Lock()
	s.remotes = append(s.remotes, fn)
	s.watchMu.Unlock()
}

// RemoveRemote takes another node's binding of (aor, contact) out of the
// index, quietly as ApplyRemote put it in.
func (s *Store) RemoveRemote(aor msg.Address, contact string) {
	s.mu.Lock()
	remove(s.remote, aor, contact)
	s.mu.Unlock()
}

// Remote returns the unexpired bindings of aor held by other nodes,
// freshest first.
func (s *Store) Remote(aor msg.Address) []Binding {
	return s.unexpired(s.remote, aor)
}

// Local returns every unexpired binding of this node, e.g. to publish them
// to the cluster at start.
func (s *Store) Local() []Binding {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Binding
	for _, list := range s.users {
		for _, b := range list {
			if b.Expires.After(now) {
				out = append(out, b)
			}
		}
	}
	return out
}

// Lookup returns the best unexpired binding of aor at this node
// (Binding.Better): for bindings alike, the freshest.
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

// Bindings returns all unexpired bindings of aor at this node, freshest
// first.
func (s *Store) Bindings(aor msg.Address) []Binding {
	return s.unexpired(s.users, aor)
}

func (s *Store) unexpired(m map[msg.Address][]Binding, aor msg.Address) []Binding {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Binding
	for _, b := range m[aor] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// Len counts users with at least one binding at this node (expired ones
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

// OnChange calls fn after every change of this node's own bindings:
// Register, Unregister and Sweep (e.g. to publish them to a cluster), never
// for ApplyRemote, RemoveRemote or Yield. fn must not block.
func (s *Store) OnChange(fn func(Change)) {
	s.watchMu.Lock()
	s.changes = append(s.changes, fn)
	s.watchMu.Unlock()
}

func (s *Store) changed(c Change) {
	s.watchMu.Lock()
	fs := s.changes
	s.watchMu.Unlock()
	for _, fn := range fs {
		fn(c)
	}
}

func (s *Store) notify(b Binding) {
	s.watchMu.Lock()
	ws := s.watchers
	s.watchMu.Unlock()
	for _, fn := range ws {
		fn(b)
	}
}

// Sweep removes expired bindings from the index and the KV, this node's and
// other nodes' alike (a node that died leaves its bindings to expire), and
// returns how many it removed.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	s.mu.Lock()
	gone := expire(s.users, now)
	n := len(gone) + len(expire(s.remote, now))
	s.mu.Unlock()
	err := s.forget(ctx, gone)
	for _, b := range gone {
		s.changed(Change{Binding: b, Gone: true})
	}
	if err != nil {
		return n, fmt.Errorf("presence: sweep: %w", err)
	}
	return n, nil
}

// expire takes the bindings expired at now out of index m and returns
// them; callers hold mu.
func expire(m map[msg.Address][]Binding, now time.Time) []Binding {
	var gone []Binding
	for aor, list := range m {
		kept := list[:0]
		for _, b := range list {
			if b.Expires.After(now) {
				kept = append(kept, b)
			} else {
				gone = append(gone, b)
			}
		}
		if len(kept) == 0 {
			delete(m, aor)
		} else {
			m[aor] = kept
		}
	}
	return gone
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
