package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// SMSC receipts that come to another node. An SMSC may send a receipt on
// any bind of the account that submitted the message, so with one SMSC
// account shared by the nodes a receipt can reach a node that never sent
// the message. That node offers it to all nodes on one subject (no queue
// group: each looks in its own mappings); the node that sent the message
// settles it and answers, the others stay silent.

const receiptSubject = "bridge.smsc-receipt"

// receiptWait bounds how long a node waits for the node that sent a
// receipt's message: the owner answers at once, so the wait is the
// silence of the others when none did.
const receiptWait = 2 * time.Second

// ReceiptMatcher settles a receipt that came to another node if this node
// sent its message (smsc names the SMSC's configuration, "" an ESME's
// session), and says whether it did.
type ReceiptMatcher func(ctx context.Context, smsc, id, stat string) bool

type receiptOffer struct {
	Node string `json:"node"` // the offering node, which has looked already
	SMSC string `json:"smsc"`
	ID   string `json:"id"`
	Stat string `json:"stat"`
}

// ServeReceipts sets what settles the receipts other nodes offer. It is
// called before Start.
func (n *Node) ServeReceipts(m ReceiptMatcher) {
	n.beforeStart("ServeReceipts", func() { n.matchReceipt = m })
}

// serveReceipt settles another node's receipt if this node sent its
// message, and answers only then.
func (n *Node) serveReceipt(req *nats.Msg) {
	var r receiptOffer
	if err := json.Unmarshal(req.Data, &r); err != nil || r.ID == "" {
		n.log.Debug("cluster: unreadable receipt offer", "err", err)
		return
	}
	if r.Node == n.name {
		return
	}
	err := n.startServing(func(ctx context.Context) {
		if n.matchReceipt(ctx, r.SMSC, r.ID, r.Stat) {
			n.reply(req, deliverReply{OK: true})
		}
	})
	if err != nil {
		n.log.Debug("cluster: receipt offer not looked at", "id", r.ID, "err", err)
	}
}

// ForwardReceipt offers a receipt that matched nothing here to the other
// nodes, and says whether the node that sent its message settled it.
func (n *Node) ForwardReceipt(ctx context.Context, smsc, id, stat string) (bool, error) {
	nc := n.conn.Load()
	if nc == nil {
		return false, fmt.Errorf("cluster: offer receipt %s: not connected to NATS", id)
	}
	data, err := json.Marshal(receiptOffer{Node: n.name, SMSC: smsc, ID: id, Stat: stat})
	if err != nil {
		return false, fmt.Errorf("cluster: offer receipt %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, receiptWait)
	defer cancel()
	res, err := nc.RequestWithContext(ctx, receiptSubject, data)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrNoResponders):
		return false, nil // no node sent it
	case err != nil:
		return false, fmt.Errorf("cluster: offer receipt %s: %w", id, err)
	}
	var rep deliverReply
	if err := json.Unmarshal(res.Data, &rep); err != nil {
		return false, fmt.Errorf("cluster: offer receipt %s: unreadable reply: %w", id, err)
	}
	return rep.OK, nil
}
