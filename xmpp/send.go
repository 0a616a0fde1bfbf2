package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
// (XEP-0184), and pings the client (XEP-0199) right after it. It returns
// nil on the receipt or the ping's result, whichever comes first: the
// client answered after our message on the same ordered stream, so it has
// it. It returns an error on an error stanza for either, on no answer
// within Config.Timeout (ErrNoAnswer), or at once while the stream is down
// (ErrNotConnected).
func (g *Gateway) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if m == nil {
		return errors.New("xmpp: SendIM of nil message")
	}
	s := g.cur.Load()
	if s == nil {
		return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, ErrNotConnected)
	}
	to, err := jid.Parse(b.Contact)
	if err != nil {
		return fmt.Errorf("xmpp: message %s: bad contact %q: %w", m.ID, b.Contact, err)
	}
	from, err := JIDOf(m.From, g.cfg.Domain)
	if err != nil {
		return fmt.Errorf("xmpp: message %s: sender: %w", m.ID, err)
	}
	id := g.stanzaID(m.ID)
	pingID := id + ".p"
	d := &delivery{peer: to.Bare().String(), done: make(chan error, 1)}
	g.mu.Lock()
	g.pending[id] = d
	g.pending[pingID] = d
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, id)
		delete(g.pending, pingID)
		g.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	t := xmppwire.Chat(id, from.String(), to.String(), m.Text)
	if err := xmppwire.Send(ctx, s.xs, &t); err != nil {
		return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, err)
	}
	// A bare JID names no client to ping; only a receipt can answer then.
	if to.Resourcepart() != "" {
		t = xmppwire.Ping(pingID, g.cfg.Domain, to.String())
		if err := xmppwire.Send(ctx, s.xs, &t); err != nil {
			return fmt.Errorf("xmpp: ping after message %s to %s: %w", m.ID, b.Contact, err)
		}
	}
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, err)
		}
		return nil
	case <-s.closed:
		return fmt.Errorf("xmpp: message %s to %s: stream lost: %w", m.ID, b.Contact, ErrNotConnected)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("xmpp: message %s to %s within %v: %w", m.ID, b.Contact, g.cfg.Timeout, ErrNoAnswer)
		}
		return fmt.Errorf("xmpp: message %s to %s: %w", m.ID, b.Contact, ctx.Err())
	}
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
