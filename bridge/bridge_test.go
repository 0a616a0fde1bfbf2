package bridge

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/config"
)

func testConfig(t *testing.T, dataDir string, args ...string) *config.Config {
	t.Helper()
	base := []string{
		"--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--mcp-listen", "127.0.0.1:0", "--data-dir", dataDir, "--sip-domain", "bridge.test",
	}
	cfg, err := config.Load("test", append(base, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// New binds every listener, so Addrs is known before Run; Run serves until
// its context ends and releases the store, which the next bridge opens.
func TestNewRunAddrs(t *testing.T) {
	dir := t.TempDir()
	b, err := New(testConfig(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Addrs()
	if a.SMPP == "" || a.SIP == "" || a.HTTP == "" || a.MCP == "" || a.Admin != "" {
		t.Fatalf("addrs %+v: want SMPP, SIP, HTTP and MCP, no admin", a)
	}
	for _, addr := range []string{a.SMPP, a.HTTP, a.MCP} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s not listening before Run: %v", addr, err)
		}
		c.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
	res, err := http.Get("http://" + a.HTTP + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", res, err)
	}
	res.Body.Close()
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	b2, err := New(testConfig(t, dir), nil)
	if err != nil {
		t.Fatalf("reopening the data directory: %v", err)
	}
	b2.Close()
}

// A bridge that cannot start releases what it had acquired: its store
// opens again at once.
func TestNewFailureReleasesStore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	if _, err := New(testConfig(t, dir, "--http-listen", ln.Addr().String()), nil); err == nil || !strings.Contains(err.Error(), "http") {
		t.Fatalf("New with its HTTP port taken: %v", err)
	}
	b, err := New(testConfig(t, dir), nil)
	if err != nil {
		t.Fatalf("the failed bridge kept its store: %v", err)
	}
	b.Close()
}

// Without NATS settings the bridge is one node: no cluster part, no NATS.
func TestSingleNodeHasNoCluster(t *testing.T) {
	b, err := New(testConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.node != nil {
		t.Fatal("a bridge without NATS settings built a cluster node")
	}
}

// With an embedded NATS server the bridge is a node of its own one-node
// cluster: Run starts it and joins the presence bucket, and stops it.
func TestEmbeddedNATSNode(t *testing.T) {
	b, err := New(testConfig(t, t.TempDir(), "--nats-listen", "127.0.0.1:0", "--node-name", "n1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.node == nil || b.node.Name() != "n1" {
		t.Fatalf("node %v", b.node)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.node.Ready():
	case err := <-done:
		t.Fatalf("Run ended at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not join its bucket")
	}
	if !strings.HasPrefix(b.node.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("client URL %q", b.node.ClientURL())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
