package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// edge is a node's local IM edge: it records what it delivers, or fails
// with fail, or waits for its context when hang is set.
type edge struct {
	mu   sync.Mutex
	got  []string // "text|contact"
	fail error
	hang bool
	left time.Duration // time its last delivery was given
}

func (e *edge) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	e.mu.Lock()
	fail, hang := e.fail, e.hang
	if d, ok := ctx.Deadline(); ok {
		e.left = time.Until(d)
	}
	e.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail != nil {
		return fail
	}
	e.mu.Lock()
	e.got = append(e.got, m.Text+"|"+b.Contact)
	e.mu.Unlock()
	return nil
}

func (e *edge) delivered() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func (e *edge) set(fail error, hang bool) {
	e.mu.Lock()
	e.fail, e.hang = fail, hang
	e.mu.Unlock()
}

func TestDeliverSubjectIsOneToken(t *testing.T) {
	for name, want := range map[string]string{"n1": "bridge.deliver.n1", "bridge-2_b": "bridge.deliver.bridge-2_b"} {
		if got := deliverSubject(name); got != want {
			t.Fatalf("subject of %q: %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"host.example.com", "a b", "*", ">", "=x"} {
		s := deliverSubject(name)
		if tok := strings.TrimPrefix(s, "bridge.deliver."); strings.ContainsAny(tok, ". *>\t") || !strings.HasPrefix(tok, "=") {
			t.Fatalf("subject of %q: %q is not one plain token", name, s)
		}
	}
}

// The request handler delivers only to a binding this node holds now,
// unexpired and with an edge for it; any other binding is refused as not
// held, so the requester tries its next one.
func TestServeRejectsBindingNotHeld(t *testing.T) {
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: "a", Listen: "127.0.0.1:0", Presence: pres})
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{}
	n.AddIM("sip", e)
	ctx := context.Background()
	const aor = msg.Address("+8613800000041")
	held := presence.Binding{AOR: aor, Contact: "sip:u@10.0.0.1", Via: "sip", Expires: time.Now().Add(time.Hour)}
	if err := pres.Register(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := pres.Register(ctx, presence.Binding{AOR: aor, Contact: "sip:u@10.0.0.9", Via: "sip", Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := pres.Register(ctx, presence.Binding{AOR: aor, Contact: "conn-1", Via: "mcp", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ask := func(b presence.Binding) deliverReply {
		data, _ := json.Marshal(deliverRequest{Message: msg.Message{ID: "m1", To: aor, Text: "hi"}, Binding: b, TimeoutMS: 1000})
		return n.deliverLocal(ctx, data)
	}
	b := held
	b.Node = "a"
	for what, c := range map[string]func(*presence.Binding){
		"another contact": func(b *presence.Binding) { b.Contact = "sip:u@10.0.0.2" },
		"another node":    func(b *presence.Binding) { b.Node = "b" },
		"another via":     func(b *presence.Binding) { b.Via = "xmpp" },
		"expired":         func(b *presence.Binding) { b.Contact = "sip:u@10.0.0.9" },
		"no edge for it":  func(b *presence.Binding) { b.Contact, b.Via = "conn-1", "mcp" },
	} {
		x := b
		c(&x)
		if rep := ask(x); rep.OK || rep.Code != codeNotHeld {
			t.Fatalf("%s: %+v, want not held", what, rep)
		}
	}
	if rep := n.deliverLocal(ctx, []byte("{")); rep.OK || rep.Code != codeBad {
		t.Fatalf("garbage: %+v", rep)
	}
	if len(e.delivered()) != 0 {
		t.Fatalf("delivered %v for bindings not held", e.delivered())
	}
	if rep := ask(b); !rep.OK {
		t.Fatalf("held binding: %+v", rep)
	}
	if got := e.delivered(); len(got) != 1 || got[0] != "hi|sip:u@10.0.0.1" {
		t.Fatalf("delivered %v", got)
	}
	if e.left <= 0 || e.left > 900*time.Millisecond {
		t.Fatalf("the edge had %v of the requester's 1 s: want less, to answer in time", e.left)
	}
}

// Over real NATS: a node asks the owner of a binding to deliver and hears
// the outcome; a binding the owner does not hold, its edge failing or not
// answering, and the owner stopped are each a failure within the timeout.
func TestDeliverThroughOwner(t *testing.T) {
	edges := map[string]*edge{}
	ms := startClusterWith(t, func(n *Node) {
		e := &edge{}
		edges[n.Name()] = e
		n.AddIM("sip", e)
	}, "a", "b.example")
	a, b := ms["a"], ms["b.example"]
	ctx := context.Background()
	const aor, contact = msg.Address("+8613800000042"), "sip:u@10.0.0.1:5060"
	if err := a.pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a's binding at b", 5*time.Second, func() bool { _, ok := b.remote(aor, contact); return ok })
	rb, _ := b.remote(aor, contact)
	m := &msg.Message{ID: "m1", From: "+8613900000009", To: aor, Text: "through a"}
	if err := b.node.SendIM(ctx, m, rb); err != nil {
		t.Fatalf("deliver through a: %v", err)
	}
	if got := edges["a"].delivered(); len(got) != 1 || got[0] != "through a|"+contact {
		t.Fatalf("a's edge delivered %v", got)
	}

	// And back: a asks b, whose name is not a plain subject token.
	const bob = msg.Address("sip:bob@example.com")
	if err := b.pres.Register(ctx, presence.Binding{AOR: bob, Contact: "sip:bob@10.0.0.2", Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "b's binding at a", 5*time.Second, func() bool { return len(a.pres.Remote(bob)) == 1 })
	if err := a.node.SendIM(ctx, &msg.Message{ID: "m2", To: bob, Text: "through b"}, a.pres.Remote(bob)[0]); err != nil {
		t.Fatalf("deliver through b: %v", err)
	}

	stale := rb
	stale.Contact = "sip:u@10.0.0.7"
	if err := b.node.SendIM(ctx, m, stale); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("a binding a does not hold: %v, want ErrNotHeld", err)
	}
	edges["a"].set(errors.New("480 temporarily unavailable"), false)
	if err := b.node.SendIM(ctx, m, rb); err == nil || errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), "480") {
		t.Fatalf("a's edge failing: %v", err)
	}
	edges["a"].set(nil, true)
	start := time.Now()
	if err := b.node.SendIM(ctx, m, rb); err == nil {
		t.Fatal("a's edge not answering: delivered")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("a's edge not answering: failed after %v, want within the 2 s timeout", d)
	}

	a.cancel()
	a.node.Shutdown()
	start = time.Now()
	err := b.node.SendIM(ctx, m, rb)
	if err == nil {
		t.Fatal("a stopped: delivered")
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("a stopped: failed after %v (%v)", d, err)
	}
	t.Logf("a stopped: %v after %v (no responders: %v)", err, time.Since(start), errors.Is(err, nats.ErrNoResponders))
}

// BenchmarkCrossing: a delivery asked of the node holding the binding
// (request, the owner's lookup and edge, reply), two embedded nodes in
// this process, 64 requests at once; the edge does nothing. The cluster
// starts once, outside the measured sub-benchmark.
func BenchmarkCrossing(b *testing.B) {
	ms := startClusterWith(b, func(n *Node) { n.AddIM("sip", &edge{}) }, "a", "b")
	ctx := context.Background()
	const aor, contact = msg.Address("+8613800000042"), "sip:u@10.0.0.1:5060"
	if err := ms["a"].pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	testutil.WaitFor(b, "a's binding at b", 5*time.Second, func() bool { _, ok := ms["b"].remote(aor, contact); return ok })
	rb, _ := ms["b"].remote(aor, contact)
	b.Run("nodes=2", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			m := &msg.Message{ID: "1lhamslcn0hk00000001", From: "+8613900000009", To: aor, Text: "a short message of forty characters, or so",
				Accepted: time.Now(), Expires: time.Now().Add(24 * time.Hour)}
			for pb.Next() {
				if err := ms["b"].node.SendIM(ctx, m, rb); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
