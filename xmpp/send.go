package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// delivery is one SendIM waiting for its answer.
type delivery struct {
	peer string     // bare JID of the contact: only its answers count
	done chan error // buffered: the first answer
}

// SendIM delivers m to the XMPP client at b.Contact (a full JID) as a chat
// message from m.From's JID at the gateway, asking for a receipt
// (XEP-0184), and pings the client (XEP-0199) after it. It returns nil on
// the receipt or the ping's result, whichever comes first: the client
// answered after our message on the same ordered stream, so it has it.
// Pings are batched per client (see pinger). It returns an error on an
// error stanza for either, on no answer within Config.Timeout
// (ErrNoAnswer), or at once while the stream is down (ErrNotConnected).
func (g *Gateway) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if m == nil {
		return errors.New("xmpp: SendIM of nil message")
	}
	s := g.cur.Load()
	if s == nil {
		return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, ErrNotConnected)
	}
	to, bare, resource, err := contactParts(b.Contact)
	if err != nil {
		return fmt.Errorf("xmpp: message %s: bad contact %q: %w", m.ID, b.Contact, err)
	}
	from, err := senderJID(m.From, g.domainStr)
	if err != nil {
		return fmt.Errorf("xmpp: message %s: sender: %w", m.ID, err)
	}
	id := g.stanzaID(m.ID)
	d := &delivery{peer: bare, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending[id] = d
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, id)
		g.mu.Unlock()
	}()

	// A timer, not a context derived from ctx: that would register with
	// ctx, shared by every delivery, under its lock.
	timeout := time.NewTimer(g.cfg.Timeout)
	defer timeout.Stop()
	out := xmppwire.AppendChat(make([]byte, 0, 256), id, from, to, m.Text)
	// A bare JID names no client to ping; only a receipt can answer then.
	// With no ping to the client unanswered, the message and its ping go
	// in one write; else the message joins the next ping once written.
	var r *pingRound
	if resource {
		r = g.roundFor(s, to, d, false)
	}
	if r != nil {
		out = xmppwire.AppendPing(out, r.id, g.cfg.Domain, r.p.to)
		if err := xmppwire.WriteRaw(ctx, s.xs, out); err != nil {
			g.answerPing(r.id, "", fmt.Errorf("ping: %w", err))
			return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, err)
		}
		g.Stats.Pings.Add(1)
	} else {
		if err := xmppwire.WriteRaw(ctx, s.xs, out); err != nil {
			return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, err)
		}
		if resource {
			if r := g.roundFor(s, to, d, true); r != nil {
				g.writePing(ctx, s, r)
			}
		}
	}
	g.Stats.Sent.Add(1)
	select {
	case err := <-d.done:
		if err != nil {
			g.Stats.Unconfirmed.Add(1)
			return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, err)
		}
		g.Stats.Confirmed.Add(1)
		return nil
	case <-s.closed:
		g.Stats.Unconfirmed.Add(1)
		return fmt.Errorf("xmpp: message %s to %s: stream lost: %w", m.ID, b.Contact, ErrNotConnected)
	case <-timeout.C:
		g.Stats.Unconfirmed.Add(1)
		return fmt.Errorf("xmpp: message %s to %s within %v: %w", m.ID, b.Contact, g.cfg.Timeout, ErrNoAnswer)
	case <-ctx.Done():
		g.Stats.Unconfirmed.Add(1)
		return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, ctx.Err())
	}
}

// pinger batches the pings to one client on one stream: at most one is
// unanswered, and the messages written meanwhile wait for the next, sent
// when that one is answered or Config.PingGap after it was written,
// whichever is later. Under load one ping (and its answer) then
// confirms many messages, where a ping each would cost the server two
// stanzas per message; alone, a message is pinged at once.
type pinger struct {
	s     *session
	to    string     // full JID
	out   *pingRound // written, unanswered; nil if none
	next  []*delivery
	last  time.Time // when the last ping was written
	timer bool      // a flush is due at last+Config.PingGap
}

// pingRound is one ping and the messages written before it that its
// answer confirms.
type pingRound struct {
	p      *pinger
	id     string
	at     time.Time
	covers []*delivery
}

// roundFor returns the ping round to write now that covers d, a message to
// to on s: a new one when no ping to to is out (an unanswered one older
// than the delivery timeout is given up: its messages have timed out, and
// the new ping covers the rest). With a ping out, or the last written less
// than Config.PingGap ago, it returns nil; d, if already written (written),
// waits for the next ping; if not, it joins once written (a message may
// only be covered by a ping written after it).
func (g *Gateway) roundFor(s *session, to string, d *delivery, written bool) *pingRound {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pingers[to]
	if p == nil || p.s != s {
		p = &pinger{s: s, to: to}
		g.pingers[to] = p
	}
	if p.out != nil && now.Sub(p.out.at) < g.cfg.Timeout {
		if written {
			p.next = append(p.next, d)
		}
		return nil
	}
	if p.out != nil {
		delete(g.pings, p.out.id)
		p.out = nil
	}
	if wait := g.cfg.PingGap - now.Sub(p.last); wait > 0 {
		if written {
			p.next = append(p.next, d)
		}
		g.flushLater(p, wait)
		return nil
	}
	return g.newRound(p, append(p.next, d), now)
}

// flushLater pings p's waiting messages after wait, unless a flush is
// already due; g.mu is held.
func (g *Gateway) flushLater(p *pinger, wait time.Duration) {
	if p.timer {
		return
	}
	p.timer = true
	time.AfterFunc(wait, func() { g.flush(p) })
}

// flush writes the ping for the messages waiting on p, if no ping is out
// (its answer sends the next); with none waiting, p is forgotten.
func (g *Gateway) flush(p *pinger) {
	g.mu.Lock()
	p.timer = false
	if p.out != nil || g.pingers[p.to] != p {
		g.mu.Unlock()
		return
	}
	if len(p.next) == 0 {
		delete(g.pingers, p.to)
		g.mu.Unlock()
		return
	}
	r := g.newRound(p, p.next, time.Now())
	g.mu.Unlock()
	g.sendRound(r)
}

// sendRound writes r's ping on its stream's lifetime.
func (g *Gateway) sendRound(r *pingRound) { g.writePing(r.p.s.ctx, r.p.s, r) }

// newRound makes the ping covering ds the one out; g.mu is held.
func (g *Gateway) newRound(p *pinger, ds []*delivery, now time.Time) *pingRound {
	r := &pingRound{p: p, id: g.stanzaID("") + ".p", at: now, covers: ds}
	p.out, p.next, p.last = r, nil, now
	g.pings[r.id] = r
	return r
}

// writePing sends r's ping; if it cannot, its messages fail with the error.
func (g *Gateway) writePing(ctx context.Context, s *session, r *pingRound) {
	b := xmppwire.AppendPing(make([]byte, 0, 128), r.id, g.cfg.Domain, r.p.to)
	if err := xmppwire.WriteRaw(ctx, s.xs, b); err != nil {
		g.answerPing(r.id, "", fmt.Errorf("ping: %w", err))
		return
	}
	g.Stats.Pings.Add(1)
}

// answerPing completes the messages ping id covers with err and, if more
// were written meanwhile, sends the next ping. It reports whether id was
// one of our pings. from is checked as in complete; "" is our own failure.
func (g *Gateway) answerPing(id, from string, err error) bool {
	g.mu.Lock()
	r := g.pings[id]
	if r == nil {
		g.mu.Unlock()
		return false
	}
	if from != "" && !sameBare(from, r.p.to) {
		g.mu.Unlock()
		g.log.Debug("xmpp: answer from another sender ignored", "id", id, "from", from, "want", r.p.to)
		return true
	}
	delete(g.pings, id)
	p := r.p
	var next *pingRound
	if p.out == r {
		p.out = nil
		now := time.Now()
		switch wait := g.cfg.PingGap - now.Sub(p.last); {
		case wait > 0:
			g.flushLater(p, wait)
		case len(p.next) > 0:
			next = g.newRound(p, p.next, now)
		case g.pingers[p.to] == p:
			delete(g.pingers, p.to)
		}
	}
	g.mu.Unlock()
	if f := g.cfg.OnPing; f != nil && err == nil && from != "" {
		f(time.Since(r.at))
	}
	for _, d := range r.covers {
		select {
		case d.done <- err:
		default:
		}
	}
	if next != nil {
		// Not on the read loop: a write may wait for the server to read.
		go g.sendRound(next)
	}
	return true
}

// dropPings forgets the pings of a stream that ended; their messages fail
// by the stream's end.
func (g *Gateway) dropPings(s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for to, p := range g.pingers {
		if p.s == s {
			delete(g.pingers, to)
		}
	}
	for id, r := range g.pings {
		if r.p.s == s {
			delete(g.pings, id)
		}
	}
}

func sameBare(a, b string) bool {
	ja, err1 := jid.Parse(a)
	jb, err2 := jid.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ja.Bare().String(), jb.Bare().String())
}

// stanzaID is unique per attempt: the message ID, our nonce and a counter.
func (g *Gateway) stanzaID(msgID string) string {
	n := strconv.FormatUint(g.seq.Add(1), 36)
	if msgID == "" {
		return g.nonce + n
	}
	return msgID + "." + g.nonce + n
}

// complete hands the answer to stanza id to its SendIM, if from is the
// contact it was sent to.
func (g *Gateway) complete(id, from string, err error) {
	if id == "" {
		return
	}
	g.mu.Lock()
	d := g.pending[id]
	g.mu.Unlock()
	if d == nil {
		g.answerPing(id, from, err)
		return
	}
	f, perr := jid.Parse(from)
	if perr != nil || !strings.EqualFold(f.Bare().String(), d.peer) {
		g.log.Debug("xmpp: answer from another sender ignored", "id", id, "from", from, "want", d.peer)
		return
	}
	select {
	case d.done <- err:
	default:
	}
}

// Report tells the XMPP user who sent m how it ended (router.Reporter):
// delivered, with the XEP-0184 receipt they asked for; failed or expired,
// with an error stanza for their message. Either goes from the JID they
// wrote to, to the client that sent it when that is still known, else to
// their bare JID (where a server drops an error stanza: RFC 6121 §8.5.2).
func (g *Gateway) Report(ctx context.Context, m *msg.Message, o msg.Outcome) {
	if m == nil || m.Origin.Kind != msg.FromXMPP {
		return
	}
	o0, known := g.takeOrigin(m.ID)
	if o.Delivered && (!m.Receipt || m.Origin.Ref == "") {
		return
	}
	to, from := o0.from, o0.to
	if !known {
		to = m.Origin.Account
		j, err := JIDOf(m.To, g.cfg.Domain)
		if err != nil {
			g.log.Info("xmpp: outcome not reported", "id", m.ID, "err", err)
			return
		}
		from = j.String()
	}
	var t xmppwire.Tokens
	if o.Delivered {
		ms := xmppwire.El(xml.Name{Local: "message"}, "from", from, "to", to)
		t = append(t, ms)
		t = xmppwire.Empty(t, xmppwire.El(xml.Name{Space: xmppwire.NSReceipts, Local: "received"}, "id", m.Origin.Ref))
		t = append(t, ms.End())
	} else {
		in := xmppwire.Stanza{Kind: "message", ID: m.Origin.Ref, From: to, To: from}
		cond, typ := stanza.ServiceUnavailable, stanza.Cancel
		if o.State == msg.Expired {
			cond, typ = stanza.RecipientUnavailable, stanza.Wait
		}
		t = errorReply(in, typ, cond, "not delivered: "+o.State.String())
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := g.send(ctx, t); err != nil {
		g.log.Info("xmpp: outcome not reported", "id", m.ID, "to", to, "delivered", o.Delivered, "err", err)
	}
}
