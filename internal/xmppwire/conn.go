package xmppwire

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
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

// WriteTimeout bounds each write on a connection Send writes to.
const WriteTimeout = 10 * time.Second

// Write bounds each write by WriteTimeout: Send gives mellium no deadline
// (see Send), so the connection keeps its own.
func (c *MeteredConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Output is a stream whose output a writer can hold for a while, and the
// connection under it (*xmpp.Session).
type Output interface {
	TokenWriter() xmlstream.TokenWriteFlushCloser
	Conn() net.Conn
}

// WriteRaw writes b, whole stanzas as XML text, to the connection under s
// while holding s's output lock: b goes between the stanzas s encodes,
// never into one, and s flushes what it encodes before it lets the lock
// go. It fails as s would once s's output stream is closed.
func WriteRaw(ctx context.Context, s Output, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tw := s.TokenWriter()
	defer tw.Close()
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := s.Conn().Write(b)
	return err
}

// Sender is a stream stanzas are written to (*xmpp.Session).
type Sender interface {
	Send(ctx context.Context, r xml.TokenReader) error
}

// Send writes the next stanza of t (consuming its tokens) if ctx is still
// live. It hands mellium a context that is
// never cancelled: mellium's Send watches the caller's context in a
// goroutine that may see it cancelled after Send returned and then set a
// past write deadline under another goroutine's write, failing that write
// and so the whole stream. The MeteredConn bounds each write instead.
func Send(ctx context.Context, s Sender, t *Tokens) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Send(context.Background(), t)
}
