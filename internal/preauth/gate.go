// Package preauth bounds the connections a listener holds before they
// authenticate: how many in all and how many from one source address.
package preauth

import (
	"container/list"
	"net"
	"sync"
)

// Gate admits unauthenticated connections. Past either cap the newcomer
// stays and the longest waiting one goes (of its source, when the source
// cap is the one reached): a flood then has to outpace a real peer's
// login, rather than merely hold the places, to keep it out.
type Gate struct {
	max, perSource int

	mu    sync.Mutex
	all   *list.List // of *Ticket, oldest first
	bySrc map[string]*list.List
}

// Ticket is one admitted connection's place, given up with Done.
type Ticket struct {
	g         *Gate
	src       string
	evict     func()
	inAll     *list.Element
	inSrc     *list.Element
	evicted   bool
	collected bool
}

// New returns a gate of places places, at most perSource per IP address.
func New(places, perSource int) *Gate {
	return &Gate{max: max(places, 1), perSource: max(perSource, 1), all: list.New(), bySrc: map[string]*list.List{}}
}

// Source is the IP address of addr (the whole address when it has no port).
func Source(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	s := addr.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// Admit takes a place for a connection from addr; evict closes that
// connection when a newcomer needs its place. evict is called without the
// gate's lock held, and it must not block for long.
func (g *Gate) Admit(addr net.Addr, evict func()) *Ticket {
	t := &Ticket{g: g, src: Source(addr), evict: evict}
	var out []*Ticket
	g.mu.Lock()
	sl := g.bySrc[t.src]
	if sl == nil {
		sl = list.New()
		g.bySrc[t.src] = sl
	}
	for sl.Len() >= g.perSource {
		out = append(out, g.removeLocked(sl.Front().Value.(*Ticket)))
	}
	for g.all.Len() >= g.max {
		out = append(out, g.removeLocked(g.all.Front().Value.(*Ticket)))
	}
	t.inAll = g.all.PushBack(t)
	if sl = g.bySrc[t.src]; sl == nil { // removeLocked may have dropped it
		sl = list.New()
		g.bySrc[t.src] = sl
	}
	t.inSrc = sl.PushBack(t)
	g.mu.Unlock()
	for _, o := range out {
		o.evict()
	}
	return t
}

func (g *Gate) removeLocked(t *Ticket) *Ticket {
	g.all.Remove(t.inAll)
	sl := g.bySrc[t.src]
	sl.Remove(t.inSrc)
	if sl.Len() == 0 {
		delete(g.bySrc, t.src)
	}
	t.evicted, t.collected = true, true
	return t
}

// Done gives the place up: the connection authenticated or ended. It
// reports false when the place had already been taken by a newcomer (the
// connection is being closed). Calling it again is harmless.
func (t *Ticket) Done() bool {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.collected {
		return !t.evicted
	}
	t.collected = true
	g.all.Remove(t.inAll)
	sl := g.bySrc[t.src]
	sl.Remove(t.inSrc)
	if sl.Len() == 0 {
		delete(g.bySrc, t.src)
	}
	return true
}

// Len is the number of places taken.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.all.Len()
}
