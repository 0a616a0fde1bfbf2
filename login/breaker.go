package login

import (
	"sync"
	"time"
)

// breaker is a per-site circuit breaker. It opens after threshold
// consecutive failures; while open every call fails fast; after cooldown one
// probe is let through (half-open): its success closes the breaker, its
// failure opens it for another cooldown. Consecutive (not windowed) failures
// keep it cheap and predictable for a handful of partner sites.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	fails    int
	openedAt time.Time
	state    breakerState
	probing  bool
}

type breakerState int

const (
	closed breakerState = iota
	open
	halfOpen
)

func (s breakerState) String() string {
	switch s {
	case open:
		return "open"
	case halfOpen:
		return "half-open"
	}
	return "closed"
}

// allow reports whether a request may go out now.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case closed:
		return true
	case open:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state = halfOpen
		b.probing = true
		return true
	default: // half-open: only the one probe in flight
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
}

// success records a request the partner answered (allow or deny alike).
func (b *breaker) success() {
	b.mu.Lock()
	b.fails, b.state, b.probing = 0, closed, false
	b.mu.Unlock()
}

// failure records a transport error, timeout or 5xx.
func (b *breaker) failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	if b.state == halfOpen || b.fails >= b.threshold {
		b.state, b.openedAt, b.probing = open, b.now(), false
	}
}

func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
