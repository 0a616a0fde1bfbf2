package login

import (
	"sync"
	"time"
)

// ttlCache is a small expiring cache with a size bound. When full, expired
// entries go first, then the entry closest to expiry: that is the oldest,
// since every entry lives the same TTL.
type ttlCache[V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLCache[V any](ttl time.Duration, max int, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, max: max, now: now, m: make(map[string]ttlEntry[V])}
}

func (c *ttlCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(k string, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		var oldK string
		var oldT time.Time
		for kk, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, kk)
				continue
			}
			if oldK == "" || e.exp.Before(oldT) {
				oldK, oldT = kk, e.exp
			}
		}
		if len(c.m) >= c.max {
			delete(c.m, oldK)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, exp: now.Add(c.ttl)}
}

func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
