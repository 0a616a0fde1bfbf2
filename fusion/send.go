package fusion

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"mellium.im/xmpp/jid"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	bx "github.com/smsbridge/bridge/xmpp"
)

// delivery is one SendIM waiting for its answer.
type delivery struct {
	peer jid.JID    // bare JID of the contact: only its answers count
	done chan error // buffered: the first answer
}

// SendIM delivers m to the external contact b names (router.IMSender):
// through the session of the account in b.Contact, as a chat message to
// the contact's full JID asking for a receipt (XEP-0184), followed by a
// ping (XEP-0199) to the same JID. It returns nil on the receipt or the
// ping's result, whichever comes first: the contact's client answered
// after our message on the ordered stream, so it holds it. It refuses a
// message whose sender Config.Owner does not map to the binding's user
// (ErrNotOwner): one user's messages never leave through another's
// account. An error stanza, no answer within Config.Timeout (ErrNoAnswer)
// or a session that is down (ErrNotConnected) fail the attempt.
func (p *Proxy) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if m == nil {
		return errors.New("fusion: SendIM of nil message")
	}
	user, account, to, err := parseContact(b.Contact)
	if err != nil {
		return fmt.Errorf("fusion: message %s: %w", m.ID, err)
	}
	if b.AOR != bx.UserAddress(to) {
		return fmt.Errorf("fusion: message %s: binding of %s names contact %s: %w", m.ID, b.AOR, to.Bare(), errContact)
	}
	if owner, ok := p.cfg.Owner(m.From); !ok || owner != user {
		return fmt.Errorf("fusion: message %s from %s through %s of %s: %w", m.ID, m.From, account, user, ErrNotOwner)
	}
	a := p.account(user, account.String())
	if a == nil {
		return fmt.Errorf("fusion: message %s: account %s of %s: %w", m.ID, account, user, ErrNotFound)
	}
	s := a.cur.Load()
	if s == nil {
		return fmt.Errorf("fusion: message %s to %s: account %s: %w", m.ID, to, account, ErrNotConnected)
	}
	return s.send(ctx, m, to)
}

func (s *session) send(ctx context.Context, m *msg.Message, to jid.JID) error {
	id := s.p.stanzaID(m.ID)
	pingID := id + ".p"
	d := &delivery{peer: to.Bare(), done: make(chan error, 1)}
	s.mu.Lock()
	s.pending[id] = d
	s.pending[pingID] = d
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		delete(s.pending, pingID)
		s.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.Timeout)
	defer cancel()
	// One write for both, as the gateway writes them. A bare JID names no
	// client to ping; only a receipt can answer then.
	out := xmppwire.AppendChat(make([]byte, 0, 256), id, "", to.String(), m.Text)
	if to.Resourcepart() != "" {
		out = xmppwire.AppendPing(out, pingID, "", to.String())
	}
	if err := xmppwire.WriteRaw(ctx, s.c.xs, out); err != nil {
		return fmt.Errorf("fusion: message %s to %s: %w", m.ID, to, err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("fusion: message %s to %s: %w", m.ID, to, err)
		}
		return nil
	case <-s.closed:
		return fmt.Errorf("fusion: message %s to %s: session lost: %w", m.ID, to, ErrNotConnected)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("fusion: message %s to %s: %w", m.ID, to, ErrNoAnswer)
		}
		return fmt.Errorf("fusion: message %s to %s: %w", m.ID, to, ctx.Err())
	}
}

// stanzaID is unique per attempt: the message ID, our nonce and a counter.
func (p *Proxy) stanzaID(msgID string) string {
	n := strconv.FormatUint(p.seq.Add(1), 36)
	if msgID == "" {
		return p.nonce + n
	}
	return msgID + "." + p.nonce + n
}

// complete hands the answer to stanza id to its SendIM, if from is the
// contact it was sent to.
func (s *session) complete(id, from string, err error) {
	if id == "" {
		return
	}
	s.mu.Lock()
	d := s.pending[id]
	s.mu.Unlock()
	if d == nil {
		return
	}
	f, perr := jid.Parse(from)
	if perr != nil || !f.Bare().Equal(d.peer) {
		s.p.log.Debug("fusion: answer from another sender ignored", "id", id, "from", from, "want", d.peer.String())
		return
	}
	select {
	case d.done <- err:
	default:
	}
}
