package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
)

// handler serves the stanzas of one stream. mellium calls it on the
// stream's read loop, one stanza at a time; what may block for long
// (presence writes, waiting for a commit) is handed off.
type handler struct {
	g *Gateway
	s *session
}

func (h handler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	in, err := xmppwire.Decode(*start, t)
	h.s.conn.Reset()
	if err != nil {
		return fmt.Errorf("read %s: %w", start.Name.Local, err)
	}
	switch in.Kind {
	case "message":
		h.g.onMessage(h.s, t, in)
	case "presence":
		h.g.queuePresence(h.s.ctx, in)
	case "iq":
		return h.g.onIQ(t, in)
	}
	return nil
}

// onMessage takes a message from an XMPP user into the bridge. A message
// with a body is staged or answered with a stanza error; one without (chat
// states, receipts) is consumed, a receipt completing our delivery.
func (g *Gateway) onMessage(s *session, w xmlstream.TokenWriter, in xmppwire.Stanza) {
	switch {
	case in.Type == "error":
		g.complete(in.ID, in.From, xmppwire.AnswerError(in))
		return
	case in.ReceiptFor != "":
		g.complete(in.ReceiptFor, in.From, nil)
	}
	if !in.HasBody || (in.Body == "" && !in.BodyTooLong) {
		return
	}
	switch in.Type {
	case "headline": // no reply is expected, not even an error (RFC 6121 §5.2.2)
		return
	case "groupchat":
		g.reject(w, in, stanza.Cancel, stanza.ServiceUnavailable, "the gateway is not a chat room")
		return
	}
	from, err := jid.Parse(in.From)
	if err != nil || from.Localpart() == "" {
		g.log.Debug("xmpp: message from a bad sender dropped", "from", in.From, "id", in.ID)
		return
	}
	to, err := jid.Parse(in.To)
	switch {
	case err != nil || to.Domainpart() != g.cfg.Domain:
		g.reject(w, in, stanza.Cancel, stanza.ItemNotFound, "not an address of this gateway")
		return
	case to.Localpart() == "":
		g.reject(w, in, stanza.Cancel, stanza.ItemNotFound, "write to a number at this gateway, e.g. +8613900000002@"+g.cfg.Domain)
		return
	case in.BodyTooLong:
		g.reject(w, in, stanza.Modify, stanza.PolicyViolation, "message text longer than "+strconv.Itoa(MaxText)+" bytes")
		return
	}
	dest, ok := g.local(Unescape(to.Localpart()))
	if !ok {
		g.reject(w, in, stanza.Cancel, stanza.ItemNotFound, "no such recipient")
		return
	}
	m := &msg.Message{
		From: UserAddress(from), To: dest, Text: in.Body,
		Origin:  msg.Origin{Kind: msg.FromXMPP, Account: from.Bare().String(), Ref: in.ID},
		Receipt: in.ReceiptRequest && in.ID != "",
	}
	ctx, cancel := context.WithTimeout(s.ctx, stageTimeout)
	ack, err := g.cfg.Stager.Stage(ctx, m)
	cancel()
	if err != nil {
		g.refuse(w, in, m, err)
		return
	}
	if m.ID != "" {
		g.keepOrigin(m.ID, origin{from: from.String(), to: to.String(), at: time.Now()})
	}
	if ack.Done() == nil {
		g.settled(s, in, m, ack.Settle(s.ctx))
		return
	}
	select {
	case g.settling <- struct{}{}:
		go func() {
			defer func() { <-g.settling }()
			g.settle(s, in, m, ack)
		}()
	default: // too many waiting: wait here, which slows the stream down
		g.settle(s, in, m, ack)
	}
}

// settle waits for the message's commit. Shutting down does not cut the
// wait short: the sender then hears how it ended.
func (g *Gateway) settle(s *session, in xmppwire.Stanza, m *msg.Message, ack msg.Ack) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), stageTimeout)
	defer cancel()
	g.settled(s, in, m, ack.Settle(ctx))
}

func (g *Gateway) settled(s *session, in xmppwire.Stanza, m *msg.Message, err error) {
	if err == nil {
		g.log.Debug("xmpp: message accepted", "id", m.ID, "from", m.From, "to", m.To, "stanza", in.ID, "len", len(m.Text))
		return
	}
	g.log.Warn("xmpp: message not stored", "from", m.From, "to", m.To, "stanza", in.ID, "err", err)
	g.dropOrigin(m.ID)
	t := errorReply(in, stanza.Wait, stanza.ResourceConstraint, "not stored, send again later")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), g.cfg.Timeout)
	defer cancel()
	if err := g.send(ctx, t); err != nil {
		g.log.Info("xmpp: error reply not sent", "to", in.From, "stanza", in.ID, "err", err)
	}
}

// refuse answers a message the bridge did not stage.
func (g *Gateway) refuse(w xmlstream.TokenWriter, in xmppwire.Stanza, m *msg.Message, err error) {
	switch {
	case errors.Is(err, msg.ErrNoRoute):
		g.reject(w, in, stanza.Cancel, stanza.ItemNotFound, "no route to recipient")
	case errors.Is(err, msg.ErrTooLong):
		g.reject(w, in, stanza.Modify, stanza.NotAcceptable, "text too long for SMS")
	case errors.Is(err, msg.ErrOverloaded):
		g.reject(w, in, stanza.Wait, stanza.ResourceConstraint, "busy, send again later")
	default:
		g.log.Warn("xmpp: message not accepted", "from", m.From, "to", m.To, "stanza", in.ID, "err", err)
		g.reject(w, in, stanza.Wait, stanza.ResourceConstraint, "not stored, send again later")
	}
}

// reject answers in with a stanza error on the stream it came on.
func (g *Gateway) reject(w xmlstream.TokenWriter, in xmppwire.Stanza, typ stanza.ErrorType, cond stanza.Condition, text string) {
	t := errorReply(in, typ, cond, text)
	if _, err := xmlstream.Copy(w, &t); err != nil {
		g.log.Debug("xmpp: error reply not written", "to", in.From, "err", err)
	}
}

// errorReply is the error stanza answering in: same kind and id, addresses
// swapped.
func errorReply(in xmppwire.Stanza, typ stanza.ErrorType, cond stanza.Condition, text string) xmppwire.Tokens {
	return xmppwire.ErrorReply(in, in.To, typ, cond, text)
}

// onIQ answers ping and disco#info, and service-unavailable to every other
// request; results and errors complete our pings. Its answers go through
// w, so mellium sees the IQ answered.
func (g *Gateway) onIQ(w xmlstream.TokenWriter, in xmppwire.Stanza) error {
	switch in.Type {
	case "result":
		g.complete(in.ID, in.From, nil)
		return nil
	case "error":
		g.complete(in.ID, in.From, xmppwire.AnswerError(in))
		return nil
	case "get", "set":
	default:
		return nil
	}
	res := xmppwire.El(xml.Name{Local: "iq"}, "type", "result", "id", in.ID, "from", in.To, "to", in.From)
	var t xmppwire.Tokens
	switch {
	case in.Type == "get" && in.Payload == xml.Name{Space: xmppwire.NSPing, Local: "ping"}:
		t = xmppwire.Empty(t, res)
	case in.Type == "get" && in.Payload == xml.Name{Space: nsDiscoInfo, Local: "query"}:
		t = append(t, res)
		t = g.discoInfo(t, in.To)
		t = append(t, res.End())
	default:
		t = errorReply(in, stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	_, err := xmlstream.Copy(w, &t)
	return err
}

// nsDiscoInfo is the namespace of the XEP-0030 queries the gateway answers.
const nsDiscoInfo = "http://jabber.org/protocol/disco#info"

// discoInfo describes the gateway (XEP-0030): an SMS gateway, and each
// number behind it an SMS client, both with receipts and ping.
func (g *Gateway) discoInfo(t xmppwire.Tokens, to string) xmppwire.Tokens {
	q := xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}}
	t = append(t, q)
	if j, err := jid.Parse(to); err == nil && j.Localpart() == "" {
		t = xmppwire.Empty(t, xmppwire.El(xml.Name{Local: "identity"}, "category", "gateway", "type", "sms", "name", "SMS"))
	} else {
		t = xmppwire.Empty(t, xmppwire.El(xml.Name{Local: "identity"}, "category", "client", "type", "sms"))
	}
	for _, f := range []string{nsDiscoInfo, xmppwire.NSReceipts, xmppwire.NSPing} {
		t = xmppwire.Empty(t, xmppwire.El(xml.Name{Local: "feature"}, "var", f))
	}
	return append(t, q.End())
}

// keepOrigin remembers where the receipt for message id goes.
func (g *Gateway) keepOrigin(id string, o origin) {
	g.mu.Lock()
	if len(g.origins) < maxOrigins {
		g.origins[id] = o
	}
	g.mu.Unlock()
}

func (g *Gateway) takeOrigin(id string) (origin, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o, ok := g.origins[id]
	delete(g.origins, id)
	return o, ok
}

func (g *Gateway) dropOrigin(id string) { g.takeOrigin(id) }

func (g *Gateway) pruneOrigins(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, o := range g.origins {
		if now.Sub(o.at) > maxOriginAge {
			delete(g.origins, id)
		}
	}
}
