package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// freePort is a loopback port free a moment ago.
var freePort = testutil.FreeTCPAddr

// member is one node under test with its presence store.
type member struct {
	node   *Node
	pres   *presence.Store
	cancel context.CancelFunc
}

// startCluster starts names as embedded nodes routed to one another, each
// sweeping its presence every 50 ms, and waits until all have joined.
func startCluster(t testing.TB, names ...string) map[string]*member {
	t.Helper()
	return startClusterWith(t, nil, names...)
}

// startClusterWith is startCluster with setup called on each node before
// it starts (to register its edges).
func startClusterWith(t testing.TB, setup func(*Node), names ...string) map[string]*member {
	t.Helper()
	routes := make([]string, len(names))
	for i := range names {
		routes[i] = "nats://" + freePort(t)
	}
	ms := make(map[string]*member)
	for i, name := range names {
		pres, err := presence.Open(presence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		others := append(append([]string(nil), routes[:i]...), routes[i+1:]...)
		n, err := New(Config{Name: name, Listen: freePort(t), ClusterListen: routes[i][len("nats://"):],
			Routes: others, DataDir: t.TempDir(), Presence: pres, Logger: testLogger(name), DeliverTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		n.watchCheck = 200 * time.Millisecond // a stalled watcher found at once
		if setup != nil {
			setup(n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		go pres.Run(ctx, 50*time.Millisecond)
		m := &member{node: n, pres: pres, cancel: cancel}
		ms[name] = m
		t.Cleanup(func() { cancel(); n.Shutdown() })
	}
	for name, m := range ms {
		select {
		case <-m.node.Ready():
		case <-time.After(40 * time.Second):
			t.Fatalf("node %s did not join the bucket", name)
		}
	}
	return ms
}

// remote is the binding of (aor, contact) node m learned from others.
func (m *member) remote(aor msg.Address, contact string) (presence.Binding, bool) {
	for _, b := range m.pres.Remote(aor) {
		if b.Contact == contact {
			return b, true
		}
	}
	return presence.Binding{}, false
}

// holds is every version of (aor, contact) in m's index, its own named.
func (m *member) holds(aor msg.Address, contact string) []presence.Binding {
	var out []presence.Binding
	for _, b := range m.pres.Bindings(aor) {
		if b.Contact == contact {
			b.Node = m.node.Name()
			out = append(out, b)
		}
	}
	if b, ok := m.remote(aor, contact); ok {
		out = append(out, b)
	}
	return out
}

func TestKeyIsValidAndReversible(t *testing.T) {
	valid := regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	for _, k := range []pkey{{"+8613800000001", "sip:a@10.0.0.1:5060;transport=tcp"}, {"sip:bob@example.com", "mcp-17"},
		{"xmpp:å@example.com", "xmpp:å@example.com/phone ☎"}} {
		key := Key(k.aor, k.contact)
		if !valid.MatchString(key) {
			t.Fatalf("key %q of %+v is not a NATS KV key", key, k)
		}
		if back, ok := parseKey(key); !ok || back != k {
			t.Fatalf("key %q reads back as %+v", key, back)
		}
	}
}

func TestNewNeedsOneNATS(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	for _, cfg := range []Config{
		{Presence: pres},
		{Presence: pres, URL: "nats://127.0.0.1:4222", Listen: "127.0.0.1:0"},
		{Presence: pres, URL: "nats://127.0.0.1:4222", Routes: []string{"nats://127.0.0.1:6222"}},
		{Listen: "127.0.0.1:0"},
		{Presence: pres, Listen: "127.0.0.1:0", Replicas: 7},
	} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("New(%+v) accepted", cfg)
		}
	}
	if r := autoReplicas(Config{Listen: "x:1", ClusterListen: "127.0.0.1:6222",
		Routes: []string{"nats://127.0.0.1:6222", "nats://10.0.0.2:6222"}}); r != 2 {
		t.Fatalf("replicas %d with one other node, want 2", r)
	}
	if r := autoReplicas(Config{Listen: "x:1", Routes: []string{"nats://a:1", "nats://b:1", "nats://c:1"}}); r != 3 {
		t.Fatalf("replicas %d with three other nodes, want 3", r)
	}
}

// Three embedded nodes share presence: a registration at one is seen at
// another, conflicting registrations settle on one value everywhere, and
// when a node dies the others keep the bucket and let its bindings expire.
func TestThreeNodes(t *testing.T) {
	ms := startCluster(t, "a", "b", "c")
	a, b, c := ms["a"], ms["b"], ms["c"]
	ctx := context.Background()
	const aor, contact = msg.Address("+8613800000001"), "sip:alice@10.0.0.1:5060"

	t.Run("each talks to its own server in memory", func(t *testing.T) {
		for name, m := range ms {
			cz, err := m.node.srv.Connz(&server.ConnzOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, conn := range cz.Conns {
				if conn.Name == "bridge "+name {
					found = true
					if conn.Port != 0 {
						t.Errorf("node %s reaches its own server from %s:%d, not in memory", name, conn.IP, conn.Port)
					}
				}
			}
			if !found {
				t.Errorf("node %s: no connection of its own among the %d of its server", name, len(cz.Conns))
			}
		}
	})

	t.Run("register and unregister travel", func(t *testing.T) {
		if err := a.pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "a's binding at c", 2*time.Second, func() bool { _, ok := c.remote(aor, contact); return ok })
		if rb, _ := c.remote(aor, contact); rb.Node != "a" || rb.Via != "sip" {
			t.Fatalf("at c: %+v, want node a", rb)
		}
		if _, ok := c.pres.Lookup(aor); ok {
			t.Fatal("c would deliver to a's binding itself")
		}
		if _, ok := a.remote(aor, contact); ok {
			t.Fatal("a learned its own binding back as a remote one")
		}
		if err := a.pres.Unregister(ctx, aor, contact); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "a's binding gone at c", 2*time.Second, func() bool {
			_, ok := c.remote(aor, contact)
			_, okB := b.remote(aor, contact)
			return !ok && !okB
		})
	})

	t.Run("concurrent writes settle on one value", func(t *testing.T) {
		kv, err := jetstream.New(a.node.nc)
		if err != nil {
			t.Fatal(err)
		}
		bucket, err := kv.KeyValue(ctx, DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 5 {
			contact := fmt.Sprintf("sip:both@10.0.0.2:%d", 5060+round)
			var wg sync.WaitGroup
			for i, m := range []*member{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m.pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Priority: 10 * (i + 1), Expires: time.Now().Add(time.Hour)})
				}()
			}
			wg.Wait()
			var last string
			testutil.WaitForState(t, 10*time.Second, func() bool {
				e, err := bucket.Get(ctx, Key(aor, contact))
				if err != nil {
					last = err.Error()
					return false
				}
				var want presence.Binding
				json.Unmarshal(e.Value(), &want)
				for _, m := range []*member{a, b, c} {
					h := m.holds(aor, contact)
					if len(h) != 1 || h[0].Node != want.Node || h[0].Priority != want.Priority || !h[0].Updated.Equal(want.Updated) {
						last = fmt.Sprintf("round %d: node %s holds %+v, bucket (revision %d) %+v", round, m.node.Name(), h, e.Revision(), want)
						return false
					}
				}
				return true
			}, func() string { return last })
		}
	})

	t.Run("a watcher fallen silent is replaced", func(t *testing.T) {
		const aor, contact = msg.Address("+8613800000077"), "sip:stall@10.0.0.7:5060"
		a.node.faultStall.Store(true)
		if err := b.pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "b's binding at c", 5*time.Second, func() bool { _, ok := c.remote(aor, contact); return ok })
		// What a's stalled watcher and the lost announcement missed comes
		// with the replay of the watcher that replaces it.
		testutil.WaitFor(t, "b's binding at a", 5*time.Second, func() bool { _, ok := a.remote(aor, contact); return ok })
		if a.node.Stats.WatcherStalls.Load() == 0 {
			t.Fatal("b's binding reached a with no watcher replaced")
		}
	})

	t.Run("a dead node's bindings expire at b and c", func(t *testing.T) {
		const aor, contact = msg.Address("+8613800000002"), "sip:dies@10.0.0.3"
		exp := time.Now().Add(4 * time.Second)
		if err := a.pres.Register(ctx, presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: exp}); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "a's binding at b and c", 2*time.Second, func() bool {
			_, okB := b.remote(aor, contact)
			_, okC := c.remote(aor, contact)
			return okB && okC
		})
		// A hard stop first: the server goes without its client closing,
		// then the node and its sweeper.
		a.node.srv.Shutdown()
		a.cancel()
		a.node.Shutdown()

		// b and c still serve the bucket: b's registrations reach c.
		const other = "sip:bob@10.0.0.4"
		if err := b.pres.Register(ctx, presence.Binding{AOR: "+8613800000003", Contact: other, Via: "sip", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		// A watcher whose consumer was on a's server is re-created once
		// its heartbeats are missed (nats.go: two of 5 s), so allow more.
		testutil.WaitForState(t, 30*time.Second, func() bool { _, ok := c.remote("+8613800000003", other); return ok }, func() string {
			return "b's binding not at c without a; in the bucket: " + bucketState(ctx, b.node, Key("+8613800000003", other))
		})

		if time.Now().Before(exp.Add(-500 * time.Millisecond)) {
			_, okB := b.remote(aor, contact)
			_, okC := c.remote(aor, contact)
			if !okB || !okC {
				t.Fatalf("a's binding went before it expired (b %v, c %v)", okB, okC)
			}
		}
		testutil.WaitFor(t, "a's binding expired at b and c", time.Until(exp)+2*time.Second, func() bool {
			_, okB := b.remote(aor, contact)
			_, okC := c.remote(aor, contact)
			return !okB && !okC
		})
		if time.Now().Before(exp) {
			t.Fatal("a's binding dropped before its expiry")
		}
	})
}

// testLogger logs to stderr when BRIDGE_TEST_LOG is set, else nowhere:
// forming clusters log route errors that are expected.
func testLogger(name string) *slog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// bucketState is what node n reads of key, for failure messages.
func bucketState(ctx context.Context, n *Node, key string) string {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return err.Error()
	}
	kv, err := js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		return err.Error()
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("revision %d: %s", e.Revision(), e.Value())
}
