package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeTCPAddr is a loopback TCP address that was free a moment ago, for a
// server under test to listen on (see FreePort).
func FreeTCPAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t, true, false))
}

// FreePort returns a loopback port free right now for TCP, UDP or both,
// picked at random below the kernel's ephemeral range: a port in that
// range can be taken, between the pick and the server's bind, by any
// outgoing connection or ":0" listener of the tests running beside it,
// while one below it is only ever taken by another explicit pick.
func FreePort(t testing.TB, tcp, udp bool) int {
	t.Helper()
	lo := ephemeralLow()
	const from = 20000
	for range 200 {
		port := from + rand.IntN(lo-from)
		if free(port, tcp, udp) && handOut(port) {
			return port
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// handedOut: the ports FreePort returned in this process, which it never
// returns again: two picks before either server binds (a bridge's SMPP
// and HTTP listeners) must not get the same free port.
var handedOut = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

func handOut(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.m[port] {
		return false
	}
	handedOut.m[port] = true
	return true
}

// free reports whether port could be bound on loopback for TCP and UDP as
// asked.
func free(port int, tcp, udp bool) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if tcp {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		defer ln.Close()
	}
	if udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		defer pc.Close()
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux;
// 32768 elsewhere or if unreadable).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 20100 {
				return n
			}
		}
	}
	return 32768
}
