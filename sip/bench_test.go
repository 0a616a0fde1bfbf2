package sip

import (
	"context"
	"testing"
	"time"

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
		if _, err := n.verify(h, "REGISTER", "example.test", lookup); err != nil {
			b.Fatal(err)
		}
	}
}
