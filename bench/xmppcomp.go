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
// and the relay's egress for SMS→XMPP (Send: a chat message asking for
// a receipt, confirmed by the answer to a ping to the same full JID
// written after it, pings batched per client as the bridge batches them).
// It reads the stream with encoding/xml's raw tokens and writes stanzas as
// bytes: the ceiling is what the transport allows, not what an XMPP
// library costs.
type Component struct {
	conn   net.Conn
	domain string
	log    *slog.Logger

	wmu sync.Mutex // one stanza write at a time

	gap time.Duration // least time between two pings to one client

	mu      sync.Mutex
	pending map[string]chan error  // id of our message → its delivery
	pingers map[string]*compPinger // full JID → its ping state
	pings   map[string]*compPinger // id of a ping out → its client's state
	seq     atomic.Uint64

	got  atomic.Uint64 // messages with a body received
	done chan struct{} // closed when the stream has ended
}

// DialComponent connects to Prosody's component port at addr and
// authenticates for domain with secret; gap is the bridge's
// --xmpp-ping-gap.
func DialComponent(ctx context.Context, addr, domain, secret string, gap time.Duration, log *slog.Logger) (*Component, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component dial %s: %w", addr, err)
	}
	c := &Component{
		conn: conn, domain: domain, gap: gap, log: log, done: make(chan struct{}),
		pending: map[string]chan error{}, pingers: map[string]*compPinger{}, pings: map[string]*compPinger{},
	}
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

// complete hands the answer to stanza id to whoever waits for it: one
// delivery for a message, every message a ping confirms for a ping.
func (c *Component) complete(id string, err error) {
	c.mu.Lock()
	if p := c.pings[id]; p != nil {
		delete(c.pings, id)
		covers := p.covers
		p.out, p.covers = "", nil
		c.pingNextLocked(p)
		c.mu.Unlock()
		for _, ch := range covers {
			answer(ch, err)
		}
		return
	}
	ch := c.pending[id]
	c.mu.Unlock()
	if ch != nil {
		answer(ch, err)
	}
}

// answer gives a delivery its first answer; later ones are dropped.
func answer(ch chan error, err error) {
	select {
	case ch <- err:
	default:
	}
}

// compPinger is the component's ping state for one client, kept as the
// bridge keeps it: at most one ping out, and the messages written
// meanwhile wait for the next, written once it is answered and gap after
// the last, whichever is later.
type compPinger struct {
	to     string       // full JID
	out    string       // id of the ping out, "" if none
	outAt  time.Time    // when out was written
	covers []chan error // the messages out's answer confirms
	next   []chan error // written since out, waiting for the next ping
	last   time.Time    // when the last ping was written
	timer  bool         // a ping is due at last+gap
}

// pingGiveUp is how long an unanswered ping holds up its client's next.
const pingGiveUp = 30 * time.Second

// pingNextLocked schedules the ping for p's waiting messages: now (on a
// goroutine, off the read loop) or when the gap allows. c.mu is held.
func (c *Component) pingNextLocked(p *compPinger) {
	if len(p.next) == 0 || p.timer {
		return
	}
	p.timer = true
	wait := max(c.gap-time.Since(p.last), 0)
	time.AfterFunc(wait, func() { c.flush(p) })
}

// flush writes the ping for the messages waiting on p, unless one is out.
func (c *Component) flush(p *compPinger) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	p.timer = false
	if p.out != "" || len(p.next) == 0 {
		c.mu.Unlock()
		return
	}
	pid := c.roundLocked(p, nil)
	c.mu.Unlock()
	if _, err := c.conn.Write(c.appendPing(nil, pid, p.to)); err != nil {
		c.complete(pid, fmt.Errorf("component ping write: %w", err))
	}
}

// roundLocked makes the ping that confirms p's waiting messages and ch
// (if not nil), and returns its id. c.mu is held.
func (c *Component) roundLocked(p *compPinger, ch chan error) string {
	pid := "p" + strconv.FormatUint(c.seq.Add(1), 36)
	now := time.Now()
	if ch != nil {
		p.next = append(p.next, ch)
	}
	p.out, p.outAt, p.last = pid, now, now
	p.covers, p.next = p.next, nil
	c.pings[pid] = p
	return pid
}

// appendPing appends a XEP-0199 ping with id from the component to to.
func (c *Component) appendPing(b []byte, id, to string) []byte {
	b = append(b, "<iq type='get' id='"...)
	b = append(b, id...)
	b = append(b, "' from='"...)
	b = append(b, xmlEscaper.Replace(c.domain)...)
	b = append(b, "' to='"...)
	b = append(b, xmlEscaper.Replace(to)...)
	return append(b, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
}

// compDelivery is a message the component wrote, awaiting confirmation.
type compDelivery struct {
	c   *Component
	mid string
	ch  chan error
}

// Send writes text from the JID from to the full JID to as a chat message
// asking for a receipt. It is confirmed (Wait) by the answer to a ping to
// to written after it: with no ping to to out and the gap passed, that
// ping goes in the same write; else the message waits for the next ping.
func (c *Component) Send(from, to, text string) (*compDelivery, error) {
	d := &compDelivery{c: c, mid: "c" + strconv.FormatUint(c.seq.Add(1), 36), ch: make(chan error, 1)}
	b := make([]byte, 0, len(text)+384)
	b = append(b, "<message type='chat' id='"...)
	b = append(b, d.mid...)
	b = append(b, "' from='"...)
	b = append(b, xmlEscaper.Replace(from)...)
	b = append(b, "' to='"...)
	b = append(b, xmlEscaper.Replace(to)...)
	b = append(b, "'><body>"...)
	b = append(b, xmlEscaper.Replace(text)...)
	b = append(b, "</body><request xmlns='urn:xmpp:receipts'/></message>"...)

	// The write lock is held from the choice of ping to the write, so that
	// no ping that is to confirm this message is written before it.
	c.wmu.Lock()
	c.mu.Lock()
	c.pending[d.mid] = d.ch
	p := c.pingers[to]
	if p == nil {
		p = &compPinger{to: to}
		c.pingers[to] = p
	}
	if p.out != "" && time.Since(p.outAt) > pingGiveUp {
		delete(c.pings, p.out)
		p.out = ""
	}
	if p.out == "" && time.Since(p.last) >= c.gap {
		b = c.appendPing(b, c.roundLocked(p, d.ch), to)
	} else {
		p.next = append(p.next, d.ch)
		if p.out == "" {
			c.pingNextLocked(p)
		}
	}
	c.mu.Unlock()
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	if err != nil {
		d.forget()
		return nil, fmt.Errorf("component write: %w", err)
	}
	return d, nil
}

// Wait returns nil once the message is confirmed, the error of an error
// stanza for it or for its ping, or why it stopped waiting.
func (d *compDelivery) Wait(ctx context.Context) error {
	defer d.forget()
	select {
	case err := <-d.ch:
		return err
	case <-d.c.done:
		return errors.New("component stream closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *compDelivery) forget() {
	d.c.mu.Lock()
	delete(d.c.pending, d.mid)
	d.c.mu.Unlock()
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
