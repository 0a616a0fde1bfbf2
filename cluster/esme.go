package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ESMEs bound to other nodes: an ESME may bind to any node, and a
// receipt (or any deliver_sm) for it is made where its message was
// accepted. Each node subscribes to bridge.esme.<account> while it holds
// a receiving bind of that account, so NATS's own interest routing finds
// the node: no bucket, nothing to expire when a node dies (its
// subscriptions go with its connection).

const (
	esmePrefix = "bridge.esme."
	// One of the nodes holding a bind of the account answers, as one of
	// an account's binds takes each deliver_sm on a single node.
	esmeQueue = "esme"
)

// ErrNoESME says no node holds a receiving bind of the account.
var ErrNoESME = errors.New("cluster: no node holds a receiving bind of the account")

// ESMEDeliverer sends an encoded PDU on one of this node's receiving binds
// of account and returns the ESME's command_status.
type ESMEDeliverer func(ctx context.Context, account string, pdu []byte) (status uint32, err error)

type esmeReply struct {
	Status uint32 `json:"status"`
	Error  string `json:"error,omitempty"`
}

// esmeSubject is the subject of account's binds; the account (an SMPP
// system_id, any printable string) is base64url, a valid NATS token.
func esmeSubject(account string) string {
	return esmePrefix + base64.RawURLEncoding.EncodeToString([]byte(account))
}

// ServeESMEs sets what delivers the PDUs other nodes send to this node's
// binds. It is called before Start.
func (n *Node) ServeESMEs(d ESMEDeliverer) {
	n.beforeStart("ServeESMEs", func() { n.esmeDeliver = d })
}

// HoldESME says whether this node now holds a receiving bind of account:
// while it does, other nodes' DeliverESME for the account may come here.
func (n *Node) HoldESME(account string, held bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sub, had := n.esmes[account]
	switch {
	case held && !had:
		n.esmes[account] = nil
		if n.nc != nil && !n.stopped {
			n.esmes[account] = n.subscribeESME(account)
		}
	case !held && had:
		delete(n.esmes, account)
		if sub != nil {
			if err := sub.Unsubscribe(); err != nil {
				n.log.Debug("cluster: unsubscribe from an ESME's subject", "esme", account, "err", err)
			}
		}
	}
}

// subscribeESME subscribes to account's subject; n.mu is held.
func (n *Node) subscribeESME(account string) *nats.Subscription {
	sub, err := n.nc.QueueSubscribe(esmeSubject(account), esmeQueue, func(m *nats.Msg) { n.serveESME(account, m) })
	if err != nil {
		n.log.Warn("cluster: cannot take deliveries for an ESME bound here", "esme", account, "err", err)
		return nil
	}
	return sub
}

// subscribeHeldESMEs subscribes to the accounts held before the connection
// existed.
func (n *Node) subscribeHeldESMEs() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, sub := range n.esmes {
		if sub == nil {
			n.esmes[a] = n.subscribeESME(a)
		}
	}
}

// serveESME delivers another node's PDU on a bind here, as deliveries
// are served (startServing: the ESME may take the whole response timeout).
func (n *Node) serveESME(account string, m *nats.Msg) {
	d := n.esmeDeliver
	if d == nil {
		n.reply(m, esmeReply{Error: "this node does not deliver to ESMEs"})
		return
	}
	err := n.startServing(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.DeliverTimeout)
		defer cancel()
		st, err := d(ctx, account, m.Data)
		r := esmeReply{Status: st}
		if err != nil {
			r.Error = err.Error()
		}
		n.reply(m, r)
	})
	if err != nil {
		n.reply(m, esmeReply{Error: err.Error()})
	}
}

// DeliverESME sends an encoded PDU to a receiving bind of account at
// another node and returns the ESME's command_status; ErrNoESME when no
// node holds one. It waits DeliverTimeout at most.
func (n *Node) DeliverESME(ctx context.Context, account string, pdu []byte) (uint32, error) {
	nc := n.conn.Load()
	if nc == nil {
		return 0, fmt.Errorf("cluster: deliver to ESME %q: not connected to NATS", account)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DeliverTimeout+time.Second)
	defer cancel()
	res, err := nc.RequestWithContext(ctx, esmeSubject(account), pdu)
	if errors.Is(err, nats.ErrNoResponders) {
		return 0, ErrNoESME
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: deliver to ESME %q: %w", account, err)
	}
	var r esmeReply
	if err := json.Unmarshal(res.Data, &r); err != nil {
		return 0, fmt.Errorf("cluster: deliver to ESME %q: unreadable reply: %w", account, err)
	}
	if r.Error != "" {
		return r.Status, fmt.Errorf("cluster: deliver to ESME %q at another node: %s", account, r.Error)
	}
	return r.Status, nil
}
