package smpp

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// unboundCost opens n connections that never bind and returns the heap
// and goroutine stacks the process holds per connection (both ends: the
// clients' side is counted too, so the figure errs high).
func unboundCost(t *testing.T, srv *Server, addr string, n int) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	testutil.WaitFor(t, "every connection accepted", 5*time.Second, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.waiting)+len(srv.sessions) == n
	})
	time.Sleep(100 * time.Millisecond) // their goroutines reach their first read
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %d, stacks %d per connection", (after.HeapAlloc-before.HeapAlloc)/uint64(n), (after.StackInuse-before.StackInuse)/uint64(n))
	used := (after.HeapAlloc + after.StackInuse) - (before.HeapAlloc + before.StackInuse)
	return used / uint64(n)
}

// TestUnboundConnectionMemory: a connection that has not bound holds at
// most 8 KiB: until its first byte no session at all, then no 16 KiB read
// buffer, no handler pool or per-session goroutines beyond its reader
// until it binds.
func TestUnboundConnectionMemory(t *testing.T) {
	const n = 400
	srv, addr := startServer(t, &echo{}, func(c *ServerConfig) {
		c.BindTimeout = time.Minute
		c.MaxUnbound, c.MaxUnboundPerSource = n, n
	})
	per := unboundCost(t, srv, addr, n)
	t.Logf("heap+stacks per unbound connection: %d bytes", per)
	if per > 8<<10 && !testutil.Race {
		t.Errorf("an unbound connection costs %d bytes, budget 8 KiB", per)
	}
}
