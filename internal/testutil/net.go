package testutil

import (
	"net"
	"testing"
)

// FreeTCPAddr is a loopback TCP address that was free a moment ago, for a
// server under test to listen on (another process may take it first; the
// tests that use it start their servers at once).
func FreeTCPAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
