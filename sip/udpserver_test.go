package sip

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// A MESSAGE over UDP is handled once; its retransmission gets the same final
// response again without a second submission (RFC 3261 §17.2.2); a new
// transaction is a new message.
func TestUDPServerTransaction(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.OpenRegistration = true
	var submitted atomic.Int32
	s := startServer(t, cfg, pres, submitFunc(func(_ context.Context, m *msg.Message) error {
		submitted.Add(1)
		m.ID = "id-" + m.Text
		return nil
	}))
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dst, _ := net.ResolveUDPAddr("udp", s.Addr())
	request := func(branch, text string) string {
		return "MESSAGE sip:+8613800000002@" + testDomain + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + pc.LocalAddr().String() + ";rport;branch=" + branch + "\r\n" +
			"From: <sip:+8613800000001@" + testDomain + ">;tag=a1\r\n" +
			"To: <sip:+8613800000002@" + testDomain + ">\r\n" +
			"Call-ID: " + branch + "@test\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n" +
			"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: " + itoaT(len(text)) + "\r\n\r\n" + text
	}
	buf := make([]byte, 4096)
	exchange := func(req string) *sip.Response {
		t.Helper()
		if _, err := pc.WriteTo([]byte(req), dst); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			t.Fatalf("response does not parse: %v\n%s", err, buf[:n])
		}
		res, ok := m.(*sip.Response)
		if !ok {
			t.Fatalf("got %q", buf[:n])
		}
		return res
	}
	first := exchange(request("z9hG4bKone", "hello"))
	again := exchange(request("z9hG4bKone", "hello"))
	if first.StatusCode != 202 || again.StatusCode != 202 || headerValue(first, "Imdn-Message-ID") != "id-hello" || again.String() != first.String() {
		t.Fatalf("first %d %q, retransmission %d %q", first.StatusCode, headerValue(first, "Imdn-Message-ID"), again.StatusCode, headerValue(again, "Imdn-Message-ID"))
	}
	if tag, _ := first.To().Params.Get("tag"); tag == "" {
		t.Fatal("final response without To tag")
	}
	if n := submitted.Load(); n != 1 {
		t.Fatalf("submitted %d times, want once", n)
	}
	if res := exchange(request("z9hG4bKtwo", "again")); res.StatusCode != 202 || submitted.Load() != 2 {
		t.Fatalf("new transaction: %d, submitted %d", res.StatusCode, submitted.Load())
	}
	u := s.udpSrv.Load()
	u.mu.Lock()
	handled := len(u.txs[0]) + len(u.txs[1])
	u.mu.Unlock()
	if handled != 2 {
		t.Fatalf("%d transactions in the UDP fast path, want 2", handled)
	}
	bad := strings.Replace(request("z9hG4bKthree", "x"), "text/plain", "image/png", 1)
	if res := exchange(bad); res.StatusCode != 415 || submitted.Load() != 2 {
		t.Fatalf("unsupported type: %d, submitted %d", res.StatusCode, submitted.Load())
	}
}

func itoaT(n int) string { return strconv.Itoa(n) }
