package sip

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// BenchmarkSendIM: one MESSAGE transaction over loopback UDP to a sipgo UA
// that answers 200, per iteration (sequential: latency-bound).
func BenchmarkSendIM(b *testing.B) {
	pres, _ := presence.Open(presence.Options{})
	s := startServer(b, baseConfig(), pres, noSubmit())
	ua := newTestUA(b, 200, "OK")
	bd := presence.Binding{AOR: "+8613900000009", Contact: ua.contact("8613900000009"), Via: "sip", Expires: time.Now().Add(time.Hour)}
	m := &msg.Message{ID: "bench", From: "+8613800000001", To: bd.AOR, Text: "benchmark message text"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.SendIM(ctx, m, bd); err != nil {
			b.Fatal(err)
		}
		select { // drain what the UA recorded
		case <-ua.got:
		default:
		}
	}
}

// BenchmarkSendIMParallel: concurrent MESSAGE transactions (throughput).
func BenchmarkSendIMParallel(b *testing.B) {
	pres, _ := presence.Open(presence.Options{})
	s := startServer(b, baseConfig(), pres, noSubmit())
	ua := newTestUA(b, 200, "OK")
	go func() {
		for range ua.got {
		}
	}()
	bd := presence.Binding{AOR: "+8613900000009", Contact: ua.contact("8613900000009"), Via: "sip", Expires: time.Now().Add(time.Hour)}
	m := &msg.Message{ID: "bench", From: "+8613800000001", To: bd.AOR, Text: "benchmark message text"}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.SendIM(context.Background(), m, bd); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDigestVerify: parsing and checking one Authorization header.
func BenchmarkDigestVerify(b *testing.B) {
	n := nonces{key: []byte("bench-key"), now: time.Now}
	ha1 := config.HA1("alice", "example.test", "pw")
	lookup := func(string) (string, bool) { return ha1, true }
	c := credentials{Username: "alice", Realm: "example.test", Nonce: n.issue(), URI: "sip:example.test", QOP: "auth", NC: "00000001", CNonce: "abc"}
	c.Response = digestResponse(ha1, "REGISTER", c)
	h := `Digest username="alice", realm="example.test", nonce="` + c.Nonce + `", uri="sip:example.test", response="` + c.Response + `", qop=auth, nc=00000001, cnonce="abc", algorithm=MD5`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.verify(h, "REGISTER", "example.test", lookups{ha1: lookup}, lookups{}); err != nil {
			b.Fatal(err)
		}
	}
}

// retransmitBench is a MESSAGE as a UA retransmits it, and a fast-path
// server whose transaction map already holds its transaction.
func retransmitBench(b *testing.B) (u *udpServer, datagram []byte, src netip.AddrPort, tx *fastTx) {
	b.Helper()
	listen := func() *net.UDPConn {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		return pc
	}
	pc, sink := listen(), listen() // nobody reads sink: loopback drops what overflows it
	src = sink.LocalAddr().(*net.UDPAddr).AddrPort()
	datagram = []byte(rawMessage("5f3a9c1e-77b2-4d0e@192.0.2.1", "4711", "text/plain;charset=UTF-8", "benchmark message text",
		"Via: SIP/2.0/UDP "+src.String()+";rport;branch=z9hG4bK776asdhds.3f9a",
		"From: \"Alice\" <sip:+8613800000001@"+testDomain+">;tag=1928301774"))
	tx = &fastTx{pc: pc, dst: src}
	u = &udpServer{pc: pc, txs: [2]map[txKey]*fastTx{{{"z9hG4bK776asdhds.3f9a", src}: tx}, {}}, rotated: time.Now()}
	return u, datagram, src, tx
}

// BenchmarkTakeRetransmission: the UDP read loop's cost for a retransmitted
// MESSAGE, while it is still being handled (pending: no answer) and once
// answered (the final response is sent again).
func BenchmarkTakeRetransmission(b *testing.B) {
	b.Run("pending", func(b *testing.B) {
		u, d, src, _ := retransmitBench(b)
		b.ReportAllocs()
		for b.Loop() {
			if !u.take(d, src) {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("answered", func(b *testing.B) {
		u, d, src, tx := retransmitBench(b)
		tx.resp = []byte("SIP/2.0 202 Accepted\r\nContent-Length: 0\r\n\r\n")
		b.ReportAllocs()
		for b.Loop() {
			if !u.take(d, src) {
				b.Fatal("not taken")
			}
		}
	})
}

// benchRequest is a MESSAGE as the handler sees it.
func benchRequest(b *testing.B) *sip.Request {
	return parsedMessage(b, "192.0.2.1:5060",
		"Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKua1",
		"From: <sip:+8613800000001@"+testDomain+">;tag=a1")
}

// BenchmarkRender503: a 503 with Retry-After to a MESSAGE, rendered to the
// bytes the UDP fast path sends.
func BenchmarkRender503(b *testing.B) {
	req := benchRequest(b)
	s := &Server{cfg: Config{UserAgent: "bridge"}}
	b.ReportAllocs()
	for b.Loop() {
		s.renderResponse(req, 503, "Service Unavailable", "", sip.NewHeader("Retry-After", "5"))
	}
}

// BenchmarkReply503FastTx: the whole reply of a 503 on a fast-path
// transaction, sent over loopback UDP.
func BenchmarkReply503FastTx(b *testing.B) {
	u, _, src, _ := retransmitBench(b)
	req := benchRequest(b)
	s := &Server{cfg: Config{UserAgent: "bridge"}, log: slog.New(slog.DiscardHandler)}
	b.ReportAllocs()
	for b.Loop() {
		s.reply(&fastTx{pc: u.pc, dst: src}, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
	}
}
