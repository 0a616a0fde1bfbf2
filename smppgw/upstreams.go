package smppgw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
)

// DefaultUpstream names the SMSC of a configuration that names none; its
// receipt mappings keep the keys a single SMSC always had.
const DefaultUpstream = "default"

// Upstream is one SMSC the gateway binds to as a client.
type Upstream struct {
	// Name is how routes (smsc:NAME), receipt mappings, metrics and logs
	// know it.
	Name                     string
	Addr, SystemID, Password string
	Bind                     smpp.CommandID // smpp.BindTransceiver or smpp.BindTransmitter
	TLS                      *tls.Config    // SMPP over TLS when set
	Window                   int            // requests in flight on its bind; 0 = Config.Window
	TPS                      float64        // submit_sm a second, a token bucket; 0 = no limit
	// Weight is its share among the eligible SMSCs whose bind is up; 0
	// makes it a standby, taken only while no weighted one is up.
	Weight int
	// Accounts are senders (SMPP system_id, API client) whose SMS on route
	// smsc go through this SMSC, or another that names them.
	Accounts []string
}

// upstream is one SMSC's bind, throughput limit and counters.
type upstream struct {
	Upstream
	client *smpp.Client
	limit  *rate.Limiter // nil = no limit
	credit int           // smooth weighted round robin; guarded by chooser.mu

	// Submits answered OK, failed (refused or unanswered) and held back
	// by the throughput limit.
	Submits, Errors, Throttled atomic.Uint64
}

// newUpstream is u without its client, which the gateway makes.
func newUpstream(u Upstream) *upstream {
	up := &upstream{Upstream: u}
	if u.TPS > 0 {
		// A twentieth of a second's worth at once: the rate holds over any
		// second, not only on average over a long run.
		up.limit = rate.NewLimiter(rate.Limit(u.TPS), max(1, int(u.TPS/20)))
	}
	return up
}

// maxWait is how far ahead a first part may reserve room: maxWaiting
// submits' worth, within [50ms, 2s].
func (u *upstream) maxWait() time.Duration {
	return min(2*time.Second, max(50*time.Millisecond, time.Duration(float64(maxWaiting)/u.TPS*float64(time.Second))))
}

// name is the SMSC's name for logs; "" for nil (an ESME's session).
func (u *upstream) name() string {
	if u == nil {
		return ""
	}
	return u.Name
}

// errThrottled: the SMSC's throughput limit has no room soon enough; the
// router tries the message again later.
var errThrottled = errors.New("at its throughput limit")

// maxWaiting bounds the submits waiting for an SMSC's throughput limit:
// each holds one of the router's workers, which IM deliveries share.
const maxWaiting = 64

// submit sends p over s, the upstream's session, within its throughput.
// The first part of a message waits for room a short while, else fails to
// be retried; later parts wait, so a long message is not cut in two.
func (u *upstream) submit(ctx context.Context, s *smpp.Session, p *smpp.PDU, first bool) (*smpp.PDU, error) {
	if u.limit != nil {
		r := u.limit.Reserve()
		if d := r.Delay(); d > 0 {
			u.Throttled.Add(1)
			if first && d > u.maxWait() {
				r.Cancel()
				return nil, fmt.Errorf("smsc %s: %w (%g/s)", u.Name, errThrottled, u.TPS)
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				return nil, fmt.Errorf("smsc %s: waiting for its throughput limit: %w", u.Name, ctx.Err())
			}
		}
	}
	resp, err := s.Send(ctx, p)
	if err != nil {
		u.Errors.Add(1)
		if errors.Is(err, smpp.ErrClosed) && ctx.Err() == nil {
			// The bind dropped before the answer: the router retries,
			// through whichever SMSC is up then.
			return nil, fmt.Errorf("smsc %s: %w: bind lost", u.Name, err)
		}
		return resp, fmt.Errorf("smsc %s: %w", u.Name, err)
	}
	u.Submits.Add(1)
	return resp, nil
}

// chooser picks the SMSC an SMS leaves through, the one place that
// decides between SMSCs: among those the route names (any, for route
// smsc, or those of the sender's account), the one the recipient's last
// MO came through while its bind is up, else by weight among those up.
type chooser struct {
	all       []*upstream
	byName    map[string]*upstream
	byAccount map[string][]*upstream
	bindWait  time.Duration // how long a message waits for a bind before it is retried later
	sets      sync.Map      // "NAME|NAME" → []*upstream, parsed once

	mu   sync.Mutex
	wake chan struct{} // closed, and replaced, when a bind comes up

	mo moCache
}

func newChooser(ups []*upstream, bindWait time.Duration) *chooser {
	c := &chooser{all: ups, byName: map[string]*upstream{}, byAccount: map[string][]*upstream{},
		bindWait: bindWait, wake: make(chan struct{}), mo: moCache{max: 100_000}}
	for _, u := range ups {
		c.byName[u.Name] = u
		for _, a := range u.Accounts {
			c.byAccount[a] = append(c.byAccount[a], u)
		}
	}
	return c
}

// bound wakes the messages waiting for a bind.
func (c *chooser) bound() {
	c.mu.Lock()
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

// eligible are the SMSCs a message may take: those names lists
// ("NAME|NAME"), else those of the sender's account, else all.
func (c *chooser) eligible(names, account string) []*upstream {
	if names != "" {
		if v, ok := c.sets.Load(names); ok {
			return v.([]*upstream)
		}
		var set []*upstream
		for _, n := range strings.Split(names, "|") {
			if u := c.byName[n]; u != nil {
				set = append(set, u)
			}
		}
		c.sets.Store(names, set)
		return set
	}
	if set := c.byAccount[account]; set != nil {
		return set
	}
	return c.all
}

// pick returns an SMSC among set whose bind is up, and its session,
// waiting up to bindWait (or ctx) for one to come up.
func (c *chooser) pick(ctx context.Context, set []*upstream, to msg.Address) (*upstream, *smpp.Session, error) {
	if len(set) == 0 {
		return nil, nil, errors.New("the route names no configured SMSC")
	}
	if len(set) == 1 { // the common case: no lock, no choice
		if s := set[0].client.Session(); s != nil {
			return set[0], s, nil
		}
	}
	var giveUp <-chan time.Time
	for {
		c.mu.Lock()
		wake := c.wake
		c.mu.Unlock()
		if u, s := c.choose(set, to); s != nil {
			return u, s, nil
		}
		if giveUp == nil {
			t := time.NewTimer(c.bindWait)
			defer t.Stop()
			giveUp = t.C
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %s: %w", smpp.ErrNotBound, names(set), ctx.Err())
		case <-giveUp:
			return nil, nil, fmt.Errorf("%w: %s after %v", smpp.ErrNotBound, names(set), c.bindWait)
		}
	}
}

// choose is pick without waiting: nil when no bind of set is up.
func (c *chooser) choose(set []*upstream, to msg.Address) (*upstream, *smpp.Session) {
	if len(set) == 1 {
		return set[0], set[0].client.Session()
	}
	if u := c.mo.get(to); u != nil {
		for _, e := range set {
			if e == u {
				if s := u.client.Session(); s != nil {
					return u, s
				}
				break
			}
		}
	}
	var (
		best     *upstream
		bestS    *smpp.Session
		standby  *upstream
		standbyS *smpp.Session
		total    int
	)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range set {
		s := u.client.Session()
		switch {
		case s == nil:
		case u.Weight == 0:
			if standby == nil {
				standby, standbyS = u, s
			}
		default:
			// Smooth weighted round robin: each up SMSC gains its weight,
			// the richest is taken and pays the total, so the shares hold
			// over any short run and change at once when a bind drops.
			u.credit += u.Weight
			total += u.Weight
			if best == nil || u.credit > best.credit {
				best, bestS = u, s
			}
		}
	}
	if best != nil {
		best.credit -= total
		return best, bestS
	}
	return standby, standbyS
}

func names(set []*upstream) string {
	var b strings.Builder
	b.WriteString("smsc ")
	for i, u := range set {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(u.Name)
	}
	return b.String()
}

// moCache remembers which SMSC each number's last MO came through, so a
// reply goes back the same way; two generations bound its size.
type moCache struct {
	mu       sync.Mutex
	cur, old map[msg.Address]*upstream
	max      int
}

func (m *moCache) note(from msg.Address, u *upstream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil || len(m.cur) >= m.max {
		m.old, m.cur = m.cur, make(map[msg.Address]*upstream)
	}
	m.cur[from] = u
}

func (m *moCache) get(to msg.Address) *upstream {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.cur[to]; ok {
		return u
	}
	return m.old[to]
}
