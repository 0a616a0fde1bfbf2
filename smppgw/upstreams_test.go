package smppgw

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
)

// upstreamsRig: a gateway bound, as three SMSCs a (weight 2), b (1) and s
// (standby), to one SMPP server that refuses the system_ids in refused.
type upstreamsRig struct {
	g       *Gateway
	srv     *smpp.Server
	mu      sync.Mutex
	refused map[string]bool
}

func newUpstreamsRig(t *testing.T) *upstreamsRig {
	t.Helper()
	r := &upstreamsRig{refused: map[string]bool{}}
	r.srv = smpp.NewServer(smpp.ServerConfig{
		Auth: func(id, _ string, _ smpp.CommandID, _ net.Addr) uint32 {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.refused[id] {
				return smpp.ESME_RBINDFAIL
			}
			return smpp.ESME_ROK
		},
		Handler: smpp.HandlerFunc(func(context.Context, *smpp.Session, *smpp.PDU, *smpp.PDU) {}),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); r.srv.Close() })
	go r.srv.Serve(ctx, ln)
	addr := ln.Addr().String()
	r.g = New(Config{CountryCode: "86", BindWait: 300 * time.Millisecond, Upstreams: []Upstream{
		{Name: "a", Addr: addr, SystemID: "a", Weight: 2},
		{Name: "b", Addr: addr, SystemID: "b", Weight: 1, Accounts: []string{"shop"}},
		{Name: "s", Addr: addr, SystemID: "s", Weight: 0},
	}}, nil)
	go r.g.Run(ctx)
	r.waitBound(t, "a", "b", "s")
	return r
}

func (r *upstreamsRig) waitBound(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range names {
		for !r.g.ups.byName[n].client.Bound() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not bound", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// down drops an SMSC's bind and keeps it down.
func (r *upstreamsRig) down(t *testing.T, name string) {
	t.Helper()
	r.mu.Lock()
	r.refused[name] = true
	r.mu.Unlock()
	for _, s := range r.srv.Sessions(name) {
		s.Close()
	}
	for r.g.ups.byName[name].client.Bound() {
		time.Sleep(10 * time.Millisecond)
	}
}

// shares picks n times among set and counts by name.
func (r *upstreamsRig) shares(t *testing.T, set []*upstream, to msg.Address, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		u, _, err := r.g.ups.pick(context.Background(), set, to)
		if err != nil {
			t.Fatal(err)
		}
		out[u.Name]++
	}
	return out
}

func TestChooserWeightsStandbyAndFailover(t *testing.T) {
	r := newUpstreamsRig(t)
	c := r.g.ups
	all := c.eligible("", "")
	if got := r.shares(t, all, "+8613700000001", 300); got["a"] != 200 || got["b"] != 100 || got["s"] != 0 {
		t.Fatalf("weights 2:1 and a standby: %v", got)
	}
	// A route's names, an account's SMSCs.
	if got := r.shares(t, c.eligible("s|b", ""), "+8613700000001", 10); got["b"] != 10 {
		t.Fatalf("smsc:s|b with b up: %v", got)
	}
	if got := r.shares(t, c.eligible("", "shop"), "+8613700000001", 10); got["b"] != 10 {
		t.Fatalf("account shop: %v", got)
	}
	if got := r.shares(t, c.eligible("s", "shop"), "+8613700000001", 3); got["s"] != 3 {
		t.Fatalf("a route's names before the account's: %v", got)
	}
	// A number whose MO came through b gets b back, while it is up.
	c.mo.note("+8613900000009", c.byName["b"])
	if got := r.shares(t, all, "+8613900000009", 5); got["b"] != 5 {
		t.Fatalf("reply to MO: %v", got)
	}
	r.down(t, "b")
	if got := r.shares(t, all, "+8613900000009", 30); got["a"] != 30 {
		t.Fatalf("b down: %v", got)
	}
	r.down(t, "a")
	if got := r.shares(t, all, "+8613700000001", 5); got["s"] != 5 {
		t.Fatalf("only the standby up: %v", got)
	}
	r.down(t, "s")
	start := time.Now()
	if _, _, err := c.pick(context.Background(), all, "+8613700000001"); err == nil || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("none up: %v after %v, want ErrNotBound after the bind wait", err, time.Since(start))
	}
	// A bind coming up wakes a waiting pick at once.
	done := make(chan string, 1)
	c.bindWait = 10 * time.Second
	go func() {
		u, _, err := c.pick(context.Background(), c.eligible("b", ""), "+8613700000001")
		if err != nil {
			done <- err.Error()
			return
		}
		done <- u.Name
	}()
	time.Sleep(100 * time.Millisecond)
	r.mu.Lock()
	r.refused["b"] = false
	r.mu.Unlock()
	select {
	case got := <-done:
		if got != "b" {
			t.Fatalf("woken pick: %s", got)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("a pick waiting for b was not woken by its bind")
	}
	if err := r.g.UpstreamReady(); err != nil {
		t.Fatalf("ready with b up: %v", err)
	}
}
