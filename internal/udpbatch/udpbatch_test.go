package udpbatch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	uc, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	_ = uc.SetReadBuffer(8 << 20)
	return uc
}

func addrOf(uc *net.UDPConn) netip.AddrPort { return uc.LocalAddr().(*net.UDPAddr).AddrPort() }

// readN reads n datagrams through a Reader, failing the test after 5 s.
func readN(t *testing.T, r *Reader, n int) (got [][]byte, from []netip.AddrPort) {
	t.Helper()
	_ = r.uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		b, ap, err := r.Read()
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(b))
		from = append(from, ap)
	}
	return got, from
}

func TestReaderTakesQueuedDatagramsInOrder(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	r, err := NewReader(rx, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Sizes from empty to the largest IPv4 UDP payload: none may be cut.
	sizes := []int{0, 1, 1300, 9000, 65507, 7, 512, 2, 3, 4}
	var want [][]byte
	for i, n := range sizes {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, b)
		if _, err := tx.WriteToUDPAddrPort(b, addrOf(rx)); err != nil {
			t.Fatal(err)
		}
	}
	got, from := readN(t, r, len(sizes))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d: %d bytes, want %d of %q", i, len(got[i]), len(want[i]), rune('a'+i))
		}
		if from[i] != addrOf(tx) {
			t.Errorf("datagram %d from %v, want %v", i, from[i], addrOf(tx))
		}
	}
	if r.Buffered() != 0 {
		t.Errorf("Buffered %d after reading everything sent", r.Buffered())
	}
}

func TestReaderBuffered(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	r, err := NewReader(rx, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := tx.WriteToUDPAddrPort([]byte{byte(i)}, addrOf(rx)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // all three queued before the first read
	readN(t, r, 1)
	if r.Buffered() != 2 {
		t.Fatalf("Buffered %d after the first of three queued datagrams, want 2 (one call for all three)", r.Buffered())
	}
}

func TestReaderClosed(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	r, err := NewReader(rx, 8)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := r.Read(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	rx.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return when its socket closed")
	}
}

// Goroutines queue and flush at once: every datagram goes once, each
// goroutine's in its order.
func TestWriterFromManyGoroutines(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	w, err := NewWriter(tx, func(tag string, dst netip.AddrPort, err error) { t.Errorf("%s to %v: %v", tag, dst, err) })
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(rx, 64)
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 8, 300
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Go(func() {
			buf := make([]byte, 0, 32)
			for i := 0; i < each; i++ {
				buf = fmt.Appendf(buf[:0], "%d/%d", g, i)
				w.Queue(buf, addrOf(rx), "")
				if i%7 == 0 {
					w.Flush()
				}
				buf[0] = 'x' // Queue copied it: reusing the buffer changes nothing sent
			}
			w.Flush()
		})
	}
	got, from := readN(t, r, senders*each)
	wg.Wait()
	seen := map[string]bool{}
	last := map[int]int{}
	for i, b := range got {
		var g, n int
		if _, err := fmt.Sscanf(string(b), "%d/%d", &g, &n); err != nil {
			t.Fatalf("datagram %q: %v", b, err)
		}
		if seen[string(b)] {
			t.Fatalf("%q twice", b)
		}
		seen[string(b)] = true
		if prev, ok := last[g]; ok && n <= prev {
			t.Fatalf("sender %d: %d after %d, out of its order", g, n, prev)
		}
		last[g] = n
		if from[i] != addrOf(tx) {
			t.Fatalf("from %v, want %v", from[i], addrOf(tx))
		}
	}
}

func TestWriterQueueWaitsForFlush(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	w, err := NewWriter(tx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(rx, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		w.Queue([]byte(s), addrOf(rx), "")
	}
	_ = rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, _, err := r.Read(); err == nil {
		t.Fatalf("%q arrived before Flush", b)
	}
	w.Flush()
	got, _ := readN(t, r, 3)
	if string(got[0]) != "one" || string(got[1]) != "two" || string(got[2]) != "three" {
		t.Fatalf("got %q", got)
	}
}

// A datagram the kernel refuses is reported under its tag, and the ones
// queued with it still go.
func TestWriterReportsRefusedAndGoesOn(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	var mu sync.Mutex
	failed := map[string]error{}
	w, err := NewWriter(tx, func(tag string, dst netip.AddrPort, err error) {
		mu.Lock()
		failed[tag] = err
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(rx, 8)
	if err != nil {
		t.Fatal(err)
	}
	w.Queue([]byte("before"), addrOf(rx), "a")
	w.Queue(make([]byte, 70000), addrOf(rx), "too-big")                        // over UDP's limit: EMSGSIZE
	w.Queue([]byte("v6"), netip.MustParseAddrPort("[2001:db8::1]:5060"), "v6") // an IPv4 socket cannot
	w.Queue([]byte("none"), netip.AddrPort{}, "invalid")
	w.Queue([]byte("after"), addrOf(rx), "b")
	w.Flush()
	got, _ := readN(t, r, 2)
	if string(got[0]) != "before" || string(got[1]) != "after" {
		t.Fatalf("got %q, want before, after", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, tag := range []string{"too-big", "v6", "invalid"} {
		var oe *net.OpError
		if !errors.As(failed[tag], &oe) {
			t.Errorf("%s: failure %v, want a *net.OpError", tag, failed[tag])
		}
	}
	if len(failed) != 3 {
		t.Errorf("failures %v, want too-big, v6 and invalid only", failed)
	}
}

func TestWriterDualStackSocket(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{}) // wildcard: AF_INET6, dual stack
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	rx := listen(t, "udp4", "127.0.0.1:0")
	var failure error
	w, err := NewWriter(uc, func(_ string, _ netip.AddrPort, err error) { failure = err })
	if err != nil {
		t.Fatal(err)
	}
	if !w.v6 {
		t.Skip("no IPv6 here: the wildcard socket is AF_INET")
	}
	w.Queue([]byte("mapped"), addrOf(rx), "")
	w.Flush()
	r, err := NewReader(rx, 8)
	if err != nil {
		t.Fatal(err)
	}
	if failure != nil {
		t.Fatal(failure)
	}
	got, from := readN(t, r, 1)
	if string(got[0]) != "mapped" || from[0].Port() != addrOf(uc).Port() {
		t.Fatalf("got %q from %v", got[0], from[0])
	}
	// And the reply reaches the dual-stack socket's Reader, its source v4-mapped as net's reads give it.
	if _, err := rx.WriteToUDPAddrPort([]byte("back"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), addrOf(uc).Port())); err != nil {
		t.Fatal(err)
	}
	r6, err := NewReader(uc, 8)
	if err != nil {
		t.Fatal(err)
	}
	got, from = readN(t, r6, 1)
	if string(got[0]) != "back" || from[0].Addr().Unmap() != netip.MustParseAddr("127.0.0.1") || from[0].Port() != addrOf(rx).Port() {
		t.Fatalf("got %q from %v", got[0], from[0])
	}
}
