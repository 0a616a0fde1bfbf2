package mcp

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// TestIdleConnectionMemory: a connection that has sent nothing holds at
// most 8 KiB (heap and stacks of both ends, so the figure errs high): no
// codec state, read buffer or worker before its first byte.
func TestIdleConnectionMemory(t *testing.T) {
	const n = 400
	b := startBridge(t, func(c *Config) { c.MaxPreauth, c.MaxPreauthPerSource, c.LoginTimeout = n, n, time.Minute })
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		defer c.Close()
	}
	testutil.WaitFor(t, "every connection accepted", 5*time.Second, func() bool { return b.srv.Conns() == n })
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := ((after.HeapAlloc + after.StackInuse) - (before.HeapAlloc + before.StackInuse)) / n
	t.Logf("heap+stacks per idle connection: %d bytes (heap %d, stacks %d)", per,
		(after.HeapAlloc-before.HeapAlloc)/n, (after.StackInuse-before.StackInuse)/n)
	if per > 8<<10 && !testutil.Race {
		t.Errorf("an idle connection costs %d bytes, budget 8 KiB", per)
	}
}

// TestLoginDespiteIdleConnections: idle connections from one source keep
// at most MaxPreauthPerSource places and go after LoginTimeout; a handset
// logs in meanwhile and stays.
func TestLoginDespiteIdleConnections(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.MaxPreauth, c.MaxPreauthPerSource, c.LoginTimeout = 8, 4, time.Second })
	var idle []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	testutil.WaitFor(t, "4 idle left", 5*time.Second, func() bool { return b.srv.Conns() == 4 })
	h := b.login(t, "13800000001")
	time.Sleep(1500 * time.Millisecond)
	if n := b.srv.Conns(); n != 1 {
		t.Fatalf("%d connections past the login timeout, want the handset's alone", n)
	}
	if err := h.Keepalive(ctx(t)); err != nil {
		t.Fatalf("logged-in handset: %v", err)
	}
}
