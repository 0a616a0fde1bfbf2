package xmppwire

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
)

// ErrTooLarge ends a stream on which one stanza ran past its size limit.
var ErrTooLarge = errors.New("stanza exceeds the size limit")

// MeteredConn counts the bytes read since the last Reset and fails reads
// past its limit, so one stanza cannot make the decoder buffer without
// bound.
type MeteredConn struct {
	net.Conn
	limit    int64
	tooLarge error
	n        atomic.Int64
}

// NewMeteredConn meters reads from c up to limit bytes per stanza. role
// prefixes the error past the limit, as it does the role's other errors;
// errors.Is matches it to ErrTooLarge.
func NewMeteredConn(c net.Conn, limit int64, role string) *MeteredConn {
	return &MeteredConn{Conn: c, limit: limit, tooLarge: fmt.Errorf("%s: %w", role, ErrTooLarge)}
}

func (c *MeteredConn) Read(b []byte) (int, error) {
	if c.n.Load() >= c.limit {
		return 0, c.tooLarge
	}
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// Reset starts the count for the next stanza.
func (c *MeteredConn) Reset() { c.n.Store(0) }
