package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Component is the ceiling phase's XEP-0114 component of the bench's
// Prosody, on the gateway's domain, playing both the bridge's XMPP roles
// with no logic behind them: the echo peer of XMPP→SMS (it answers the
// ping after each message and counts the message, reporting no delivery)
// and the relay's egress for SMS→XMPP (Deliver: a chat message asking for
// a receipt, then a ping to the same full JID, done on the ping's answer,
// as the bridge confirms a delivery). It reads the stream with
// encoding/xml's raw tokens and writes stanzas as bytes: the ceiling is
// what the transport allows, not what an XMPP library costs.
type Component struct {
	conn   net.Conn
	domain string
	log    *slog.Logger

	wmu sync.Mutex // one stanza write at a time

	mu      sync.Mutex
	pending map[string]chan error // id of our message or ping → its Deliver
	seq     atomic.Uint64

	got  atomic.Uint64 // messages with a body received
	done chan struct{} // closed when the stream has ended
}

// DialComponent connects to Prosody's component port at addr and
// authenticates for domain with secret.
func DialComponent(ctx context.Context, addr, domain, secret string, log *slog.Logger) (*Component, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component dial %s: %w", addr, err)
	}
	c := &Component{conn: conn, domain: domain, log: log, pending: map[string]chan error{}, done: make(chan struct{})}
	d := xml.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	if err := c.handshake(d, secret); err != nil {
		conn.Close()
		return nil, fmt.Errorf("component %s at %s: %w", domain, addr, err)
	}
	go c.read(d)
	return c, nil
}

func (c *Component) handshake(d *xml.Decoder, secret string) error {
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c.conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "+
		"xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", xmlEscaper.Replace(c.domain)); err != nil {
		return err
	}
	se, err := readStreamHeader(d)
	if err != nil {
		return err
	}
	id := attr(se, "id")
	if id == "" {
		return errors.New("stream header without id")
	}
	sum := sha1.Sum([]byte(id + secret))
	if _, err := fmt.Fprintf(c.conn, "<handshake>%s</handshake>", hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	for {
		t, err := d.RawToken()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Local != "handshake" {
				return fmt.Errorf("handshake refused: <%s>", t.Name.Local)
			}
		case xml.EndElement:
			// The stanzas that follow start at depth 1 for read.
			return nil
		}
	}
}

// Close ends the stream and the connection.
func (c *Component) Close() {
	_ = c.write([]byte("</stream:stream>"))
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	c.conn.Close()
	<-c.done
}

// Received counts the messages with a body the component got.
func (c *Component) Received() uint64 { return c.got.Load() }

func (c *Component) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

// stanza is what the component reads of an incoming stanza.
type stanza struct {
	kind, typ, id, from, to string
	body                    bool   // a message with a non-empty body
	ping                    bool   // an iq carrying <ping/>
	errType, errCond        string // of an error stanza
}

// read serves the stream until it ends.
func (c *Component) read(d *xml.Decoder) {
	defer close(c.done)
	var (
		cur          stanza
		depth        int
		inBody       bool
		inErr        bool
		streamClosed bool
	)
	for !streamClosed {
		t, err := d.RawToken()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Debug("component stream ended", "err", err)
			}
			return
		}
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1: // a stanza, under the stream header handshake read
				cur = stanza{kind: t.Name.Local, typ: attr(t, "type"), id: attr(t, "id"), from: attr(t, "from"), to: attr(t, "to")}
			case 2:
				switch t.Name.Local {
				case "body":
					inBody = true
				case "ping":
					cur.ping = true
				case "error":
					inErr, cur.errType = true, attr(t, "type")
				}
			case 3:
				if inErr && cur.errCond == "" && t.Name.Local != "text" {
					cur.errCond = t.Name.Local
				}
			}
		case xml.CharData:
			if inBody && len(t) > 0 {
				cur.body = true
			}
		case xml.EndElement:
			switch depth {
			case 0:
				streamClosed = true // </stream:stream>
			case 1:
				c.handle(cur)
			case 2:
				inBody, inErr = false, false
			}
			depth--
		}
	}
}

func (c *Component) handle(s stanza) {
	switch {
	case s.kind == "iq" && s.typ == "get" && s.ping:
		// The echo peer's acknowledgement of what came before on the stream.
		b := make([]byte, 0, 128)
		b = append(b, "<iq type='result' id='"...)
		b = append(b, xmlEscaper.Replace(s.id)...)
		b = append(b, "' from='"...)
		b = append(b, xmlEscaper.Replace(s.to)...)
		b = append(b, "' to='"...)
		b = append(b, xmlEscaper.Replace(s.from)...)
		b = append(b, "'/>"...)
		if err := c.write(b); err != nil {
			c.log.Debug("component pong", "err", err)
		}
	case s.kind == "iq" && s.typ == "result":
		c.complete(s.id, nil)
	case s.typ == "error":
		c.complete(s.id, &xmppStanzaError{Kind: s.kind, Type: s.errType, Condition: s.errCond})
	case s.kind == "message" && s.body:
		c.got.Add(1)
	}
}

func (c *Component) complete(id string, err error) {
	c.mu.Lock()
	ch := c.pending[id]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- err:
	default:
	}
}

// Deliver sends text from the JID from to the full JID to as a chat message
// asking for a receipt, then pings to on the same write, and returns when
// the ping is answered (nil), on an error stanza for either, or when ctx
// ends: the bridge's SendIM on the wire.
func (c *Component) Deliver(ctx context.Context, from, to, text string) error {
	n := strconv.FormatUint(c.seq.Add(1), 36)
	mid, pid := "c"+n, "c"+n+".p"
	ch := make(chan error, 1)
	c.mu.Lock()
	c.pending[mid], c.pending[pid] = ch, ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, mid)
		delete(c.pending, pid)
		c.mu.Unlock()
	}()
	b := make([]byte, 0, len(text)+384)
	b = append(b, "<message type='chat' id='"...)
	b = append(b, mid...)
	b = append(b, "' from='"...)
	b = append(b, xmlEscaper.Replace(from)...)
	b = append(b, "' to='"...)
	b = append(b, xmlEscaper.Replace(to)...)
	b = append(b, "'><body>"...)
	b = append(b, xmlEscaper.Replace(text)...)
	b = append(b, "</body><request xmlns='urn:xmpp:receipts'/></message><iq type='get' id='"...)
	b = append(b, pid...)
	b = append(b, "' from='"...)
	b = append(b, xmlEscaper.Replace(c.domain)...)
	b = append(b, "' to='"...)
	b = append(b, xmlEscaper.Replace(to)...)
	b = append(b, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
	if err := c.write(b); err != nil {
		return fmt.Errorf("component write: %w", err)
	}
	select {
	case err := <-ch:
		return err
	case <-c.done:
		return errors.New("component stream closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
