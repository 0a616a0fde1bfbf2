package xmppwire

import (
	"net"
	"sync"
	"time"
)

// maxGather bounds the bytes a GatherConn holds: a writer past it waits
// until what is held has gone out.
const maxGather = 256 << 10

// GatherConn gathers the writes made within delay of the first into one
// write of the underlying connection: under load one system call carries
// many stanzas, and the server reads them in one go. Write returns once its
// bytes are held; a failed write closes the connection, so the stream's
// reader ends and what it awaited is given up, and later writes fail.
type GatherConn struct {
	net.Conn
	delay time.Duration

	wmu   sync.Mutex // one underlying write at a time, in order
	mu    sync.Mutex
	space *sync.Cond
	buf   []byte // held, not yet written
	spare []byte
	armed bool  // a flush is due
	err   error // of the first failed write
}

// NewGatherConn gathers writes to c for up to delay.
func NewGatherConn(c net.Conn, delay time.Duration) *GatherConn {
	g := &GatherConn{Conn: c, delay: delay}
	g.space = sync.NewCond(&g.mu)
	return g
}

func (g *GatherConn) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && len(g.buf) > 0 && len(g.buf)+len(b) > maxGather {
		g.space.Wait()
	}
	if g.err != nil {
		return 0, g.err
	}
	g.buf = append(g.buf, b...)
	if !g.armed {
		g.armed = true
		time.AfterFunc(g.delay, g.flush)
	}
	return len(b), nil
}

// flush writes what is held.
func (g *GatherConn) flush() {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.mu.Lock()
	out := g.buf
	g.buf, g.spare, g.armed = g.spare[:0], nil, false
	g.mu.Unlock()
	if len(out) == 0 {
		return
	}
	_, err := g.Conn.Write(out)
	g.mu.Lock()
	if g.spare == nil && cap(out) <= maxGather {
		g.spare = out[:0]
	}
	if err != nil && g.err == nil {
		g.err = err
		_ = g.Conn.Close()
	}
	g.space.Broadcast()
	g.mu.Unlock()
}

// Close writes what is held, then closes the connection.
func (g *GatherConn) Close() error {
	g.flush()
	return g.Conn.Close()
}
