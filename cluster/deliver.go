package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Stats count a node's work for other nodes and theirs for it.
type Stats struct {
	Sent, SentFailed     atomic.Uint64 // deliveries this node asked of others: done, failed
	Served, ServedFailed atomic.Uint64 // deliveries others asked of this node: done, refused or failed
	Announced, Heard     atomic.Uint64 // presence announcements sent, and applied from others
	WatcherStalls        atomic.Uint64 // bucket watchers replaced for falling silent behind the bucket
}

// IMSender is an edge that delivers to this node's own bindings (the
// router's IMSender: sip, mcp, xmpp, ...).
type IMSender interface {
	SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error
}

// Defaults of the delivery part of Config.
const (
	DefaultDeliverTimeout = 8 * time.Second
	DefaultMaxInFlight    = 256
	DefaultMaxServing     = 1024
)

const (
	deliverPrefix = "bridge.deliver."
	// One queue group per node's subject: should two connections of one
	// node overlap (a restart before NATS noticed the old one gone), one
	// of them delivers, not both.
	deliverQueue = "deliver"
)

// Reply codes of a delivery request.
const (
	codeNotHeld = "not_held" // the node does not hold that binding (any more)
	codeBusy    = "busy"     // the node serves MaxServing requests already
	codeFailed  = "failed"   // its edge did not deliver
	codeBad     = "bad_request"
)

// ErrNotHeld is the owner's answer for a binding it does not hold (any
// more): the requester tries the next binding.
var ErrNotHeld = errors.New("cluster: the node does not hold that binding")

// deliverRequest asks the node holding Binding to deliver Message. It
// crosses in the binary format of wire.go; the JSON form is still read.
type deliverRequest struct {
	Message msg.Message      `json:"message"`
	Binding presence.Binding `json:"binding"`
	// How long the requester waits; the owner gives up a little earlier,
	// so a late success is not taken for a failure and sent again.
	TimeoutMS int64 `json:"timeout_ms"`
}

type deliverReply struct {
	OK    bool   `json:"ok,omitempty"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// deliverSubject is the subject node serves deliveries on. A name that is
// not a plain NATS token (a host name with dots) is base64url after "=",
// which no plain name starts with.
func deliverSubject(node string) string {
	for _, r := range node {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return deliverPrefix + "=" + base64.RawURLEncoding.EncodeToString([]byte(node))
		}
	}
	return deliverPrefix + node
}

// AddIM registers the edge that delivers, for other nodes, to this node's
// bindings whose Via is via. Edges are registered before Start.
func (n *Node) AddIM(via string, s IMSender) {
	n.beforeStart("AddIM", func() { n.senders[via] = s })
}

// beforeStart runs set, which sets what serving other nodes reads without
// locks once started; after Start it panics.
func (n *Node) beforeStart(what string, set func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		panic("cluster: " + what + " after Start")
	}
	set()
}

// SendIM asks the node holding b (b.Node) to deliver m through its own
// edge, and returns nil once that node's edge has delivered it (the
// client's 2xx). It waits DeliverTimeout at most: a node that is down,
// partitioned or too slow is a failure like a client that does not answer.
// It is the router's IMSender for other nodes' bindings.
func (n *Node) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	err := n.sendIM(ctx, m, b)
	if err != nil {
		n.Stats.SentFailed.Add(1)
	} else {
		n.Stats.Sent.Add(1)
	}
	return err
}

func (n *Node) sendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if b.Node == "" || b.Node == n.name {
		return fmt.Errorf("cluster: deliver %s: binding of %s is not another node's", m.ID, b.AOR)
	}
	nc := n.conn.Load()
	if nc == nil {
		return fmt.Errorf("cluster: deliver %s to node %s: not connected to NATS", m.ID, b.Node)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DeliverTimeout)
	defer cancel()
	sem := n.outbound(b.Node)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("cluster: deliver %s to node %s: %d requests in flight: %w", m.ID, b.Node, cap(sem), ctx.Err())
	}
	defer func() { <-sem }()
	deadline, _ := ctx.Deadline()
	req := appendRequest(make([]byte, 0, 256+len(m.Text)), m, &b, time.Until(deadline).Milliseconds())
	res, err := nc.RequestWithContext(ctx, deliverSubject(b.Node), req)
	if err != nil {
		return fmt.Errorf("cluster: deliver %s to node %s: %w", m.ID, b.Node, err)
	}
	var rep deliverReply
	if err := json.Unmarshal(res.Data, &rep); err != nil {
		return fmt.Errorf("cluster: deliver %s to node %s: unreadable reply: %w", m.ID, b.Node, err)
	}
	switch {
	case rep.OK:
		return nil
	case rep.Code == codeNotHeld:
		return fmt.Errorf("cluster: deliver %s to node %s: %w", m.ID, b.Node, ErrNotHeld)
	}
	return fmt.Errorf("cluster: deliver %s to node %s: %s: %s", m.ID, b.Node, rep.Code, rep.Error)
}

// outbound is the semaphore bounding the requests in flight to node.
func (n *Node) outbound(node string) chan struct{} {
	n.outMu.Lock()
	defer n.outMu.Unlock()
	sem := n.out[node]
	if sem == nil {
		sem = make(chan struct{}, n.cfg.MaxInFlight)
		n.out[node] = sem
	}
	return sem
}

// Why startServing did not take a request.
var (
	errServingBusy = errors.New("cluster: this node serves as many requests of other nodes as it may (MaxServing)")
	errStopping    = errors.New("cluster: node stopping")
)

// startServing runs f, the serving of another node's request, on a
// goroutine of its own (an edge may take its whole timeout), MaxServing at
// once at most and only while the node runs; else it says why not. f's
// context ends with the node.
func (n *Node) startServing(f func(ctx context.Context)) error {
	select {
	case n.serving <- struct{}{}:
	default:
		return errServingBusy
	}
	n.mu.Lock()
	if n.stopped || n.runCtx == nil {
		n.mu.Unlock()
		<-n.serving
		return errStopping
	}
	ctx := n.runCtx
	n.wg.Add(1) // under mu: Shutdown's Wait comes after it sets stopped
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer func() { <-n.serving }()
		f(ctx)
	}()
	return nil
}

// serve answers one delivery request, or at once when MaxServing are
// running or the node is stopping.
func (n *Node) serve(req *nats.Msg) {
	err := n.startServing(func(ctx context.Context) {
		r := n.deliverLocal(ctx, req.Data)
		if r.OK {
			n.Stats.Served.Add(1)
		} else {
			n.Stats.ServedFailed.Add(1)
		}
		n.reply(req, r)
	})
	switch {
	case errors.Is(err, errServingBusy):
		n.reply(req, deliverReply{Code: codeBusy, Error: fmt.Sprintf("%d deliveries in flight", cap(n.serving))})
	case err != nil:
		n.reply(req, deliverReply{Code: codeFailed, Error: "node stopping"})
	}
}

// deliverLocal delivers a request's message to the binding it names, if
// this node still holds it unexpired, through its own edge.
func (n *Node) deliverLocal(ctx context.Context, data []byte) deliverReply {
	var dr deliverRequest
	if err := decodeRequest(data, &dr); err != nil {
		return deliverReply{Code: codeBad, Error: err.Error()}
	}
	b, ok := n.holds(dr.Binding)
	if !ok {
		n.log.Debug("cluster: delivery for a binding not held here", "id", dr.Message.ID, "aor", dr.Binding.AOR, "contact", dr.Binding.Contact)
		return deliverReply{Code: codeNotHeld, Error: fmt.Sprintf("node %s holds no binding of %s at %s", n.name, dr.Binding.AOR, dr.Binding.Contact)}
	}
	s := n.senders[b.Via]
	if s == nil {
		return deliverReply{Code: codeNotHeld, Error: fmt.Sprintf("node %s delivers nothing via %q", n.name, b.Via)}
	}
	wait := n.cfg.DeliverTimeout
	if dr.TimeoutMS > 0 {
		wait = time.Duration(dr.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, wait-wait/10)
	defer cancel()
	if err := s.SendIM(ctx, &dr.Message, b); err != nil {
		n.log.Info("cluster: delivery for another node failed", "id", dr.Message.ID, "aor", b.AOR, "via", b.Via, "contact", b.Contact, "err", err)
		return deliverReply{Code: codeFailed, Error: err.Error()}
	}
	n.log.Debug("cluster: delivered for another node", "id", dr.Message.ID, "aor", b.AOR, "via", b.Via, "contact", b.Contact)
	return deliverReply{OK: true}
}

// holds is this node's current binding matching b, if it holds one
// unexpired: the requester's copy may be stale.
func (n *Node) holds(b presence.Binding) (presence.Binding, bool) {
	if b.Node != n.name {
		return presence.Binding{}, false
	}
	for _, l := range n.pres.Bindings(b.AOR) {
		if l.Contact == b.Contact && l.Via == b.Via {
			return l, true
		}
	}
	return presence.Binding{}, false
}

// reply answers another node's request with rep as JSON.
func (n *Node) reply(req *nats.Msg, rep any) {
	data, err := json.Marshal(rep)
	if err == nil {
		err = req.Respond(data)
	}
	if err != nil {
		n.log.Warn("cluster: cannot answer another node's request", "subject", req.Subject, "err", err)
	}
}
