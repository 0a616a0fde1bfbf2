package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
)

// xmppResource is the resource every bench XMPP user binds, so that a
// user's full JID follows from its number without asking anyone.
const xmppResource = "bench"

// xmppUserName is the i-th bench XMPP user's localpart (and, in the bridge
// phase, its directory user's name).
func xmppUserName(i int) string { return "xu" + strconv.Itoa(i) }

// xmppNumber is the number of the i-th bench XMPP user: SMS→XMPP sends to
// it, the bridge's directory binds it to the user's JID.
func xmppNumber(i int) string { return fmt.Sprintf("86135%08d", i) }

// xmppIndex reads a number of xmppNumber's back into its index.
func xmppIndex(number string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(number, "+"), "86135")
	if !ok || len(rest) != 8 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(rest) {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}

// XMPPPool is the generator's XMPP users: the bench's own lean clients
// (xmppclient.go) logged in to Prosody over STARTTLS with PLAIN inside TLS,
// one reader goroutine each. They count the chat messages they receive by
// token (SMS→XMPP deliveries), answer the XEP-0199 pings that confirm a
// delivery, approve the gateway's subscription request, and send chat
// messages to the gateway, each followed by a ping whose answer is the
// message's acknowledgement.
type XMPPPool struct {
	host   string // the users' vhost
	domain string // the gateway's component domain
	// tr is nil for a pool whose received messages must not count as
	// delivered; the pools of both phases count (SMS→XMPP ends here).
	tr    *Tracker
	log   *slog.Logger
	users []*xmppClient

	mu      sync.Mutex
	pending map[string]*xmppWait // stanza id → who waits for its answer

	got atomic.Uint64 // chat messages with a body received
	bad atomic.Uint64 // of those, without a token
}

// xmppWait is one send waiting for its answer: the first one wins (an error
// for the message comes before the ping's answer on the ordered stream).
type xmppWait struct{ ch chan error }

// errXMPPNoAnswer is a send whose ping got no answer in time.
var errXMPPNoAnswer = errors.New("no answer to the ping after the message")

// xmppStanzaError is an error stanza answering one of ours; Wait says the
// sender may try again later (type wait: the bridge's back-pressure).
type xmppStanzaError struct {
	Kind, Type, Condition string
}

func (e *xmppStanzaError) Error() string {
	return fmt.Sprintf("%s error %s/%s", e.Kind, e.Type, e.Condition)
}

// StartXMPPPool logs n users (xmppUserName(0..n-1)@host, one password) in to
// srv, eight at a time, and starts their readers.
func StartXMPPPool(ctx context.Context, srv *prosodytest.Server, host, password string, n int, tr *Tracker, log *slog.Logger) (*XMPPPool, error) {
	p := &XMPPPool{
		host: host, domain: srv.ComponentDomain, tr: tr, log: log,
		users: make([]*xmppClient, n), pending: map[string]*xmppWait{},
	}
	tlsConf := &tls.Config{RootCAs: srv.CertPool(), ServerName: host, MinVersion: tls.VersionTLS12}
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Pointer[error]
	)
	for range min(8, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil || ctx.Err() != nil {
					return
				}
				u, err := dialXMPP(ctx, srv.C2SAddr, xmppUserName(i), host, password, xmppResource, tlsConf)
				if err != nil {
					err = fmt.Errorf("xmpp login %s@%s: %w", xmppUserName(i), host, err)
					first.CompareAndSwap(nil, &err)
					return
				}
				p.users[i] = u
				go p.read(u)
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		p.Close()
		return nil, *e
	}
	if err := ctx.Err(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Len is the number of users.
func (p *XMPPPool) Len() int { return len(p.users) }

// Received counts the chat messages with a body the users got.
func (p *XMPPPool) Received() uint64 { return p.got.Load() }

// Close ends every stream and waits for its reader to see the server close
// it before closing the connection, so that Prosody ends each session
// cleanly.
func (p *XMPPPool) Close() {
	var wg sync.WaitGroup
	for _, u := range p.users {
		if u == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = u.write([]byte("</stream:stream>"))
			select {
			case <-u.done:
			case <-time.After(5 * time.Second):
			}
			_ = u.conn.Close()
			<-u.done
		}()
	}
	wg.Wait()
}

// read serves user u's stream until it ends. A stream that fails (a stream
// error, a stanza past the limit, bad XML) is closed here: nothing reads it
// any more.
func (p *XMPPPool) read(u *xmppClient) {
	defer close(u.done)
	for {
		in, err := u.in.next()
		if err == nil {
			err = p.handle(u, in)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Debug("xmpp user stream ended", "jid", u.jid, "err", err)
				_ = u.conn.Close()
			}
			return
		}
	}
}

// handle acts on one stanza of u's stream, as a client the gateway serves
// would: count a chat message, answer a ping, approve a subscription
// request, hand an answer to whoever waits for it.
func (p *XMPPPool) handle(u *xmppClient, in *xmppIn) error {
	switch in.kind {
	case "message":
		if in.typ == "error" {
			p.answer(in.id, in.stanzaError())
			return nil
		}
		if len(in.body) == 0 { // receipts, chat states
			return nil
		}
		p.got.Add(1)
		tok, ok := ParseToken(string(in.body))
		if !ok {
			p.bad.Add(1)
			return nil
		}
		p.tr.DeliveredAt(tok, AtXMPP)
	case "presence":
		if in.typ == "subscribe" {
			u.out = append(appendEscaped(append(u.out[:0], "<presence to='"...), in.from), "' type='subscribed'/>"...)
			return u.write(u.out)
		}
	case "iq":
		switch in.typ {
		case "result":
			p.answer(in.id, nil)
		case "error":
			p.answer(in.id, in.stanzaError())
		case "get", "set":
			b := append(appendEscaped(append(u.out[:0], "<iq to='"...), in.from), "' id='"...)
			b = appendEscaped(b, in.id)
			if in.typ == "get" && in.ping {
				b = append(b, "' type='result'/>"...)
			} else { // a request a client must answer (RFC 6120 8.2.3)
				b = append(b, "' type='error'><error type='cancel'><service-unavailable "+
					"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"...)
			}
			u.out = b
			return u.write(b)
		}
	case "error": // <stream:error>
		return fmt.Errorf("stream error: %s", in.errCond)
	}
	return nil
}

// answer hands the answer to stanza id to whoever waits for it.
func (p *XMPPPool) answer(id string, err error) {
	p.mu.Lock()
	w := p.pending[id]
	p.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.ch <- err:
	default:
	}
}

// xmlEscaper escapes text for an XML attribute or element.
var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

// Send writes a chat message from user i to the JID to, followed on the
// same write by a XEP-0199 ping to the gateway, and waits for the ping's
// answer. XMPP has no acknowledgement of a message: the gateway reads its
// stream in order, so its answer to the ping says it has read (and taken
// or refused) the message; a refusal is an error stanza for the message,
// which comes first. id must be unique in the pool.
func (p *XMPPPool) Send(ctx context.Context, i int, to, text, id string) error {
	u := p.users[i]
	w := &xmppWait{ch: make(chan error, 1)}
	mid, pid := "m"+id, "p"+id
	p.mu.Lock()
	p.pending[mid], p.pending[pid] = w, w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, mid)
		delete(p.pending, pid)
		p.mu.Unlock()
	}()
	b := make([]byte, 0, len(text)+256)
	b = append(b, "<message type='chat' id='"...)
	b = appendEscaped(b, mid)
	b = append(b, "' to='"...)
	b = appendEscaped(b, to)
	b = append(b, "'><body>"...)
	b = appendEscaped(b, text)
	b = append(b, "</body></message><iq type='get' id='"...)
	b = appendEscaped(b, pid)
	b = append(b, "' to='"...)
	b = appendEscaped(b, p.domain)
	b = append(b, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
	if err := u.write(b); err != nil {
		return fmt.Errorf("xmpp send: %w", err)
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case err := <-w.ch:
		return err
	case <-t.C:
		return errXMPPNoAnswer
	case <-u.done:
		return errors.New("xmpp stream closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ping pings the JID to from user i and waits for the answer (nil on a
// result): the bench asks the gateway whether it is attached to Prosody.
func (p *XMPPPool) Ping(ctx context.Context, i int, to, id string) error {
	u := p.users[i]
	w := &xmppWait{ch: make(chan error, 1)}
	p.mu.Lock()
	p.pending[id] = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	if err := u.write([]byte("<iq type='get' id='" + xmlEscaper.Replace(id) + "' to='" + xmlEscaper.Replace(to) + "'><ping xmlns='urn:xmpp:ping'/></iq>")); err != nil {
		return err
	}
	select {
	case err := <-w.ch:
		return err
	case <-u.done:
		return errors.New("xmpp stream closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe asks for user i's subscription to the gateway (its reader
// approves the gateway's request back); once both directions stand, the
// server tells the gateway the user is available.
func (p *XMPPPool) Subscribe(i int) {
	_ = p.users[i].write([]byte("<presence to='" + xmlEscaper.Replace(p.domain) + "' type='subscribe'/>"))
}

// xmppThrottled reports whether err is the gateway pushing back (an error
// of type wait: resource-constraint).
func xmppThrottled(err error) bool {
	var se *xmppStanzaError
	return errors.As(err, &se) && se.Type == "wait"
}
