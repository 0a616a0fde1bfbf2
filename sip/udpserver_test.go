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
		return rawMessage(branch+"@test", "1", "text/plain;charset=UTF-8", text,
			"Via: SIP/2.0/UDP "+pc.LocalAddr().String()+";rport;branch="+branch,
			"From: <sip:+8613800000001@"+testDomain+">;tag=a1")
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

// The 202 rendered straight from the request carries the same headers as
// sipgo's NewResponseFromRequest (Record-Route, every Via with rport filled
// in, From, To, Call-ID, CSeq), the To tag being the message id.
func TestAcceptedMatchesSipgo(t *testing.T) {
	req := parsedMessage(t, "10.0.0.9:5070",
		"Record-Route: <sip:10.0.0.9;lr>",
		"Via: SIP/2.0/UDP 10.0.0.9:5070;rport;branch=z9hG4bKproxy",
		"Via: SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.1;branch=z9hG4bKua",
		"From: \"Alice\" <sip:+8613800000001@"+testDomain+">;tag=a1")
	s := &Server{cfg: Config{UserAgent: "bridge-test"}}
	got, err := sip.ParseMessage(s.accepted(req, "0123456789abcdefghij"))
	if err != nil {
		t.Fatalf("rendered 202 does not parse: %v", err)
	}
	res := got.(*sip.Response)
	want := sip.NewResponseFromRequest(req, 202, "Accepted", nil)
	if res.StatusCode != 202 || res.Reason != "Accepted" {
		t.Fatalf("status %d %q", res.StatusCode, res.Reason)
	}
	for _, name := range []string{"Record-Route", "Via", "From", "Call-ID", "CSeq"} {
		var g, w []string
		for _, h := range res.GetHeaders(name) {
			g = append(g, h.Value())
		}
		for _, h := range want.GetHeaders(name) {
			w = append(w, h.Value())
		}
		if strings.Join(g, "\n") != strings.Join(w, "\n") || len(g) == 0 {
			t.Errorf("%s: got %q, sipgo has %q", name, g, w)
		}
	}
	if v := res.Via(); !strings.Contains(v.Value(), "rport=5070") || !strings.Contains(v.Value(), "received=10.0.0.9") {
		t.Errorf("top Via %q: rport not filled in", v.Value())
	}
	to := res.To()
	if tag, _ := to.Params.Get("tag"); tag != "0123456789abcdefghij" || to.Address.String() != req.To().Address.String() {
		t.Errorf("To %q: want the request's with tag=message id", to.Value())
	}
	if h := res.GetHeader("Imdn-Message-ID"); h == nil || h.Value() != "0123456789abcdefghij" {
		t.Errorf("Imdn-Message-ID %v", h)
	}
	if h := res.GetHeader("Server"); h == nil || h.Value() != "bridge-test" {
		t.Errorf("Server %v", h)
	}
	if res.ContentLength() == nil || res.ContentLength().Value() != "0" {
		t.Errorf("Content-Length %v", res.ContentLength())
	}
}

// BenchmarkAccepted202 compares the directly rendered 202 with sipgo's
// response construction and rendering, which it replaced on the UDP path.
func BenchmarkAccepted202(b *testing.B) {
	req := parsedMessage(b, "192.0.2.1:5060",
		"Via: SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKua1",
		"From: <sip:+8613800000001@"+testDomain+">;tag=a1")
	s := &Server{cfg: Config{UserAgent: "bridge"}}
	b.Run("sipgo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := sip.NewResponseFromRequest(req, 202, "Accepted", nil)
			res.AppendHeader(sip.NewHeader("Imdn-Message-ID", "0123456789abcdefghij"))
			res.AppendHeader(sip.NewHeader("Server", s.cfg.UserAgent))
			var buf strings.Builder
			res.StringWrite(&buf)
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.accepted(req, "0123456789abcdefghij")
		}
	})
}

// rawMessage is a MESSAGE to +8613800000002 carrying the given lines
// (Record-Route, Via, From) before To, Call-ID, CSeq and the body.
func rawMessage(callID, cseq, contentType, body string, lines ...string) string {
	return "MESSAGE sip:+8613800000002@" + testDomain + " SIP/2.0\r\n" + strings.Join(lines, "\r\n") + "\r\n" +
		"To: <sip:+8613800000002@" + testDomain + ">\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: " + cseq + " MESSAGE\r\nMax-Forwards: 70\r\n" +
		"Content-Type: " + contentType + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// parsedMessage parses rawMessage's MESSAGE as if received from source.
func parsedMessage(tb testing.TB, source string, lines ...string) *sip.Request {
	tb.Helper()
	m, err := sip.ParseMessage([]byte(rawMessage("c1@test", "7", "text/plain", "hi", lines...)))
	if err != nil {
		tb.Fatal(err)
	}
	req := m.(*sip.Request)
	req.SetSource(source)
	return req
}
