package fusion

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	bx "github.com/smsbridge/bridge/xmpp"
)

// handler serves the stanzas of one session. mellium calls it on the
// stream's read loop, one stanza at a time; what may block for long
// (presence writes, waiting for a commit) is handed off.
type handler struct{ s *session }

func (h handler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	in, err := xmppwire.Decode(*start, t)
	h.s.c.meter.Reset()
	if err != nil {
		return fmt.Errorf("read %s: %w", start.Name.Local, err)
	}
	switch in.Kind {
	case "message":
		h.s.onMessage(t, in)
	case "presence":
		h.s.onPresence(in)
	case "iq":
		return h.s.onIQ(t, in)
	}
	return nil
}

// onMessage takes a contact's message into the bridge for the account's
// user. A message with a body is staged or answered with a stanza error;
// one without (chat states, receipts) is consumed, a receipt completing
// our delivery.
func (s *session) onMessage(w xmlstream.TokenWriter, in xmppwire.Stanza) {
	switch {
	case in.Type == "error":
		s.complete(in.ID, in.From, xmppwire.AnswerError(in))
		return
	case in.ReceiptFor != "":
		s.complete(in.ReceiptFor, in.From, nil)
	}
	if !in.HasBody || (in.Body == "" && !in.BodyTooLong) {
		return
	}
	// Headlines take no reply, not even an error (RFC 6121 §5.2.2); the
	// session joins no rooms, so groupchat is nothing it asked for.
	if in.Type == "headline" || in.Type == "groupchat" {
		return
	}
	from, err := jid.Parse(in.From)
	if err != nil || from.Localpart() == "" || from.Bare().Equal(s.a.jid) {
		s.p.log.Debug("fusion: message without a contact as sender ignored", "account", s.a.jid.String(), "from", in.From, "id", in.ID)
		return
	}
	if in.BodyTooLong {
		s.reject(w, in, stanza.Modify, stanza.PolicyViolation, "message text longer than "+strconv.Itoa(MaxText)+" bytes")
		return
	}
	m := &msg.Message{
		From: bx.UserAddress(from), To: s.p.cfg.UserAddress(s.a.user), Text: in.Body,
		Origin: msg.Origin{Kind: msg.FromFusion, Account: s.a.jid.String(), Ref: in.ID},
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.p.cfg.Timeout)
	ack, err := s.p.cfg.Stager.Stage(ctx, m)
	cancel()
	if err != nil {
		s.refuse(w, in, m, err)
		return
	}
	if ack.Done() != nil {
		select {
		case s.p.settling <- struct{}{}:
			s.p.wg.Go(func() {
				defer func() { <-s.p.settling }()
				if err := s.settle(ack); err != nil {
					s.notStored(in, m, err, nil)
				}
			})
			return
		default: // too many waiting: wait here, which slows the stream down
		}
	}
	if err := s.settle(ack); err != nil {
		s.notStored(in, m, err, w)
		return
	}
	s.p.log.Debug("fusion: message accepted", "id", m.ID, "from", m.From, "to", m.To, "stanza", in.ID, "len", len(m.Text))
}

// settle waits for the message's commit. The session ending does not cut
// the wait short: the contact hears how it ended if the stream lasts.
func (s *session) settle(ack msg.Ack) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.p.cfg.Timeout)
	defer cancel()
	return ack.Settle(ctx)
}

// notStored tells the contact their message was not taken in, on w when
// called from the read loop, else on the stream.
func (s *session) notStored(in xmppwire.Stanza, m *msg.Message, err error, w xmlstream.TokenWriter) {
	s.p.log.Warn("fusion: message not stored", "account", s.a.jid.String(), "from", m.From, "to", m.To, "stanza", in.ID, "err", err)
	t := errorReply(in, stanza.Wait, stanza.ResourceConstraint, "not stored, send again later")
	if w != nil {
		if _, err := xmlstream.Copy(w, &t); err != nil {
			s.p.log.Debug("fusion: error reply not written", "to", in.From, "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.p.cfg.Timeout)
	defer cancel()
	if err := xmppwire.Send(ctx, s.c.xs, &t); err != nil {
		s.p.log.Info("fusion: error reply not sent", "to", in.From, "stanza", in.ID, "err", err)
	}
}

// refuse answers a message the bridge did not stage.
func (s *session) refuse(w xmlstream.TokenWriter, in xmppwire.Stanza, m *msg.Message, err error) {
	switch {
	case errors.Is(err, msg.ErrNoRoute):
		s.reject(w, in, stanza.Cancel, stanza.ItemNotFound, "no route to recipient")
	case errors.Is(err, msg.ErrTooLong):
		s.reject(w, in, stanza.Modify, stanza.NotAcceptable, "text too long for SMS")
	case errors.Is(err, msg.ErrOverloaded):
		s.reject(w, in, stanza.Wait, stanza.ResourceConstraint, "busy, send again later")
	default:
		s.p.log.Warn("fusion: message not accepted", "account", s.a.jid.String(), "from", m.From, "to", m.To, "stanza", in.ID, "err", err)
		s.reject(w, in, stanza.Wait, stanza.ResourceConstraint, "not stored, send again later")
	}
}

// reject answers in with a stanza error on the stream it came on.
func (s *session) reject(w xmlstream.TokenWriter, in xmppwire.Stanza, typ stanza.ErrorType, cond stanza.Condition, text string) {
	t := errorReply(in, typ, cond, text)
	if _, err := xmlstream.Copy(w, &t); err != nil {
		s.p.log.Debug("fusion: error reply not written", "to", in.From, "err", err)
	}
}

// errorReply is the error stanza answering in: same kind and id, sent to
// its sender (the server stamps our address as from).
func errorReply(in xmppwire.Stanza, typ stanza.ErrorType, cond stanza.Condition, text string) xmppwire.Tokens {
	return xmppwire.ErrorReply(in, "", typ, cond, text)
}

// onPresence binds the available resource of a roster contact in
// Config.Presence with Via "fusion" and unbinds it when it becomes
// unavailable.
// Subscription requests are left to the account owner's own client.
func (s *session) onPresence(in xmppwire.Stanza) {
	from, err := jid.Parse(in.From)
	if err != nil || from.Localpart() == "" || from.Bare().Equal(s.a.jid) {
		return // the server, or the account's own other resources
	}
	switch in.Type {
	case "":
		if from.Resourcepart() == "" {
			return
		}
		// Only the roster's contacts: a stranger's directed presence
		// makes no binding.
		s.a.mu.Lock()
		_, known := s.a.roster[from.Bare().String()]
		s.a.mu.Unlock()
		if !known {
			s.p.log.Debug("fusion: presence from outside the roster ignored", "account", s.a.jid.String(), "from", in.From)
			return
		}
		now := time.Now()
		b := presence.Binding{
			AOR: bx.UserAddress(from), Contact: contactOf(s.a.user, s.a.jid, from), Via: Via,
			Expires: now.Add(s.p.cfg.TTL), Updated: now,
			Show: xmppwire.ShowOf(in.Show), Priority: in.Priority,
		}
		s.enqueue(func(ctx context.Context) { s.register(ctx, b) })
	case "unavailable", "error":
		// An error for our presence says that contact cannot be reached
		// either.
		s.enqueue(func(ctx context.Context) { s.unbindContact(ctx, from) })
	case "subscribe":
		s.p.log.Info("fusion: subscription request left to the account owner", "user", s.a.user, "account", s.a.jid.String(), "from", from.Bare().String())
	}
}

// unbindContact removes the binding of the contact's resource, or of all
// its resources bound through this account when from is bare. Bindings
// of the same contact made by other accounts or edges stay.
func (s *session) unbindContact(ctx context.Context, from jid.JID) {
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.Timeout)
	defer cancel()
	aor := bx.UserAddress(from)
	var contacts []string
	s.a.mu.Lock()
	if from.Resourcepart() != "" {
		// Also one not known here: a binding left by an earlier process.
		contacts = append(contacts, contactOf(s.a.user, s.a.jid, from))
	} else {
		for c, b := range s.a.bound {
			if b.AOR == aor {
				contacts = append(contacts, c)
			}
		}
	}
	s.a.mu.Unlock()
	for _, c := range contacts {
		if err := s.p.cfg.Presence.Unregister(ctx, aor, c); err != nil {
			s.p.log.Warn("fusion: binding not removed", "aor", aor, "contact", c, "err", err)
			continue
		}
		s.a.mu.Lock()
		delete(s.a.bound, c)
		s.a.mu.Unlock()
	}
}

// onIQ answers pings and roster pushes; results and errors complete our
// pings. Other requests are left to mellium, which answers them
// service-unavailable.
func (s *session) onIQ(w xmlstream.TokenWriter, in xmppwire.Stanza) error {
	switch in.Type {
	case "result":
		s.complete(in.ID, in.From, nil)
		return nil
	case "error":
		s.complete(in.ID, in.From, xmppwire.AnswerError(in))
		return nil
	}
	res := xmppwire.El(xml.Name{Local: "iq"}, "type", "result", "id", in.ID, "to", in.From)
	switch {
	case in.Type == "get" && in.Payload == xml.Name{Space: xmppwire.NSPing, Local: "ping"}:
	case in.Type == "set" && in.Payload == xml.Name{Space: xmppwire.NSRoster, Local: "query"}:
		// Only the account's own server may push (RFC 6121 §2.1.6);
		// mellium blanks a from that is our own bare JID.
		if in.From != "" {
			return nil
		}
		s.rosterPush(in.Items)
	default:
		return nil
	}
	t := xmppwire.Empty(nil, res)
	_, err := xmlstream.Copy(w, &t)
	return err
}

// rosterPush applies a roster push and tells OnRoster the new roster.
func (s *session) rosterPush(items []xmppwire.PushItem) {
	s.a.mu.Lock()
	for _, it := range items {
		j, err := jid.Parse(it.JID)
		if err != nil || j.Localpart() == "" {
			continue
		}
		bare := j.Bare().String()
		if it.Subscription == "remove" {
			delete(s.a.roster, bare)
		} else {
			s.a.roster[bare] = RosterItem{JID: bare, Name: it.Name}
		}
	}
	s.a.mu.Unlock()
	s.enqueue(s.rosterChanged())
}

func sortRoster(items []RosterItem) {
	slices.SortFunc(items, func(x, y RosterItem) int { return strings.Compare(x.JID, y.JID) })
}
