package udpbatch

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkEcho is the bench's SIP responder in miniature: a client keeps
// 64 requests of 500 bytes outstanding and a responder answers each with
// 300 bytes, one datagram per call through the net package, or reading
// with a Reader and answering what it read with one Flush. An op is one
// request and its answer; both ends run in this process, so both ends'
// CPU counts. Compare with
// `go test -run '^$' -bench Echo -count 6 ./internal/udpbatch/ | benchstat -col /io -`.
func BenchmarkEcho(b *testing.B) {
	for _, io := range []string{"net", "udpbatch"} {
		b.Run("io="+io, func(b *testing.B) {
			srv := listenBench(b)
			cli := listenBench(b)
			go respond(b, srv, io)
			dst := srv.LocalAddr().(*net.UDPAddr).AddrPort()
			req := make([]byte, 500)
			buf := make([]byte, SlotSize)
			const window = 64
			b.ResetTimer()
			sent, got := 0, 0
			for got < b.N {
				for sent < b.N && sent-got < window {
					if _, err := cli.WriteToUDPAddrPort(req, dst); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				_ = cli.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := cli.ReadFromUDPAddrPort(buf); err != nil {
					b.Fatalf("%d of %d answered: %v", got, b.N, err)
				}
				got++
			}
		})
	}
}

func listenBench(b *testing.B) *net.UDPConn {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { uc.Close() })
	_ = uc.SetReadBuffer(4 << 20)
	return uc
}

// respond answers every datagram on uc with 300 bytes until uc closes.
func respond(b *testing.B, uc *net.UDPConn, io string) {
	answer := make([]byte, 300)
	if io == "net" {
		buf := make([]byte, SlotSize)
		for {
			_, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = uc.WriteToUDPAddrPort(answer, from)
		}
	}
	r, err := NewReader(uc, 64)
	if err != nil {
		b.Error(err)
		return
	}
	w, err := NewWriter(uc, func(_ string, _ netip.AddrPort, err error) { b.Error(err) })
	if err != nil {
		b.Error(err)
		return
	}
	for {
		if r.Buffered() == 0 {
			w.Flush()
		}
		_, from, err := r.Read()
		if err != nil {
			return
		}
		w.Queue(answer, from, "")
	}
}
