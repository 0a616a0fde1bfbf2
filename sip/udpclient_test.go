package sip

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// answer renders a response to the raw request req, copying the headers a
// UAS must copy (RFC 3261 §8.2.6.2).
func answer(req, status string) []byte {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, line := range strings.Split(strings.SplitN(req, "\r\n\r\n", 2)[0], "\r\n")[1:] {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "via", "from", "call-id", "cseq":
			b.WriteString(line + "\r\n")
		case "to":
			b.WriteString(line + ";tag=uas1\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// A UA that loses the first MESSAGE gets it again after T1 (same
// transaction, byte for byte), answers 100 then 200, and SendIM succeeds;
// a stray response for another branch changes nothing.
func TestUDPFastPathRetransmitsAndMatches(t *testing.T) {
	s, pc := fastPathPeer(t, 5*time.Second)
	m := &msg.Message{ID: "r-1", From: "+8613800000001", To: "sip:erin@" + testDomain, Text: "again 你好"}
	b := presence.Binding{AOR: m.To, Contact: "sip:erin@" + pc.LocalAddr().String(), Via: "sip"}
	errc := make(chan error, 1)
	go func() { errc <- s.SendIM(context.Background(), m, b) }()

	buf := make([]byte, 4096)
	read := func() (string, net.Addr) {
		t.Helper()
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return string(buf[:n]), from
	}
	first, _ := read()
	second, from := read() // the first was "lost": this is the retransmission
	if first != second {
		t.Fatalf("retransmission differs:\n%s\n---\n%s", first, second)
	}
	for _, want := range []string{"MESSAGE sip:erin@", "Via: SIP/2.0/UDP 127.0.0.1:", ";branch=z9hG4bK", "CSeq: 1 MESSAGE", "Imdn-Message-ID: r-1",
		"Content-Type: text/plain;charset=UTF-8", "Content-Length: 12\r\n\r\nagain 你好"} {
		if !strings.Contains(first, want) {
			t.Fatalf("request lacks %q:\n%s", want, first)
		}
	}
	stray := strings.Replace(first, ";branch=z9hG4bK", ";branch=z9hG4bKother", 1)
	pc.WriteTo(answer(stray, "500 Server Error"), from)
	pc.WriteTo(answer(first, "100 Trying"), from)
	// Negative check on a window: nothing shows when the 500 and 100 were taken, so they get 100ms to (wrongly) end SendIM.
	select {
	case err := <-errc:
		t.Fatalf("SendIM returned %v before the final response", err)
	case <-time.After(100 * time.Millisecond):
	}
	pc.WriteTo(answer(first, "200 OK"), from)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("SendIM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendIM did not return after 200")
	}
	if n := openTxs(s); n != 0 {
		t.Fatalf("%d transactions left after the final response", n)
	}
}

func openTxs(s *Server) int {
	c := s.udp.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.txs)
}

// A UA that never answers gets the MESSAGE at 0 and T1 (the next
// retransmission, at 3·T1, is after the timeout), and SendIM gives up at
// MessageTimeout, not before, leaving no transaction behind.
func TestUDPFastPathTimerF(t *testing.T) {
	timeout := 1200 * time.Millisecond
	s, pc := fastPathPeer(t, timeout)
	m := &msg.Message{ID: "f-2", From: "+8613800000001", To: "sip:gina@" + testDomain, Text: "anyone?"}
	b := presence.Binding{AOR: m.To, Contact: "sip:gina@" + pc.LocalAddr().String(), Via: "sip"}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- s.SendIM(context.Background(), m, b) }()
	var got []time.Duration
	buf := make([]byte, 4096)
	for {
		pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := pc.ReadFrom(buf); err == nil {
			got = append(got, time.Since(start))
		}
		select {
		case err := <-errc:
			took := time.Since(start)
			if err == nil {
				t.Fatal("SendIM to a silent UA succeeded")
			}
			if took < timeout || took > timeout+time.Second {
				t.Fatalf("gave up after %v, want about %v", took, timeout)
			}
			if len(got) != 2 || got[1] < timerT1 {
				t.Fatalf("MESSAGE sent at %v, want at 0 and after T1 (%v)", got, timerT1)
			}
			if n := openTxs(s); n != 0 {
				t.Fatalf("%d transactions left after timer F", n)
			}
			return
		default:
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("SendIM did not give up")
		}
	}
}

// fastPathPeer starts a server whose MESSAGEs to 127.0.0.1 take the UDP
// fast path, and a bare UDP socket to play the UA.
func fastPathPeer(t *testing.T, timeout time.Duration) (*Server, net.PacketConn) {
	t.Helper()
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.MessageTimeout = timeout
	s := startServer(t, cfg, pres, noSubmit())
	if s.udp.Load() == nil {
		t.Fatal("no UDP fast path on a 127.0.0.1 listener")
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return s, pc
}

// Targets the fast path cannot take (a host name, TCP) go through sipgo.
func TestUDPFastPathFallsBack(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	s := startServer(t, baseConfig(), pres, noSubmit())
	ua := newTestUA(t, 200, "OK")
	m := &msg.Message{ID: "f-1", From: "+8613800000001", To: "sip:fred@" + testDomain, Text: "by name"}
	b := presence.Binding{AOR: m.To, Contact: "sip:fred@localhost:" + strconv.Itoa(ua.port), Via: "sip"}
	if err := s.SendIM(context.Background(), m, b); err != nil {
		t.Fatalf("SendIM to a host name: %v", err)
	}
	if got := ua.waitMessage(t); string(got.Body()) != "by name" {
		t.Fatalf("body %q", got.Body())
	}
	for _, c := range []string{"sip:fred@localhost:5060", "sip:fred@127.0.0.1:5060;transport=tcp", "sips:fred@127.0.0.1", "sip:fred@127.0.0.1;maddr=10.0.0.1"} {
		u := parseURIForTest(t, c)
		if _, ok := udpTargetOf(&u); ok {
			t.Errorf("%s took the UDP fast path", c)
		}
	}
	u := parseURIForTest(t, "sip:fred@[::1]:5070;transport=UDP")
	if tg, ok := udpTargetOf(&u); !ok || tg.String() != "[::1]:5070" {
		t.Errorf("IPv6 literal: %v %v", tg, ok)
	}
}

func parseURIForTest(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return u
}

func TestParseResponseHead(t *testing.T) {
	for _, c := range []struct {
		in, branch string
		code       int
	}{
		{"SIP/2.0 200 OK\r\nFrom: <sip:a@b>\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport=5060;branch=z9hG4bKx1;received=10.0.0.9\r\n\r\n", "z9hG4bKx1", 200},
		{"SIP/2.0 100 Trying\r\nv: SIP/2.0/UDP [::1]:5070 ; branch=z9hG4bKa , SIP/2.0/TCP p;branch=z9hG4bKb\r\n\r\n", "z9hG4bKa", 100},
		{"SIP/2.0 480 Temporarily Unavailable\r\nVIA:SIP/2.0/UDP h;branch=z9hG4bKc\r\n\r\n", "z9hG4bKc", 480},
		{"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKr\r\n\r\n", "", 0},
		{"SIP/2.0 503 Busy\r\nRetry-After: 5\r\n\r\n", "", 0},
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=a;branch=b\r\n\r\n", "", 0},
		{"SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bKd\n\n", "", 0}, // bare LF: sipgo's job
	} {
		code, _, branch, ok := parseResponseHead([]byte(c.in))
		if ok != (c.code != 0) || code != c.code || string(branch) != c.branch {
			t.Errorf("%q: %d %q %v, want %d %q", c.in, code, branch, ok, c.code, c.branch)
		}
	}
}

// On a wildcard listener (the default ":5060") the fast path still sends
// from the listening socket, with our address toward the UA in Via.
func TestUDPFastPathWildcardListener(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.Listen = ":0"
	s := startServer(t, cfg, pres, noSubmit())
	if c := s.udp.Load(); c == nil || c.local != "" {
		t.Fatalf("want the fast path with no fixed local address on a wildcard listener")
	}
	ua := newTestUA(t, 200, "OK")
	m := &msg.Message{ID: "w-1", From: "+8613800000001", To: "sip:gina@" + testDomain, Text: "from anywhere"}
	b := presence.Binding{AOR: m.To, Contact: ua.contact("gina"), Via: "sip"}
	if err := s.SendIM(context.Background(), m, b); err != nil {
		t.Fatalf("SendIM: %v", err)
	}
	got := ua.waitMessage(t)
	if via := got.Via(); via == nil || via.Host != "127.0.0.1" {
		t.Fatalf("Via %v, want our address toward the UA", got.Via())
	}
	if string(got.Body()) != "from anywhere" {
		t.Fatalf("body %q", got.Body())
	}
}

// A MESSAGE the kernel will not send (an IPv6 destination from an IPv4
// listener) fails its SendIM at once, with the destination in the error,
// instead of waiting for Timer F.
func TestUDPFastPathSendRefused(t *testing.T) {
	timeout := 5 * time.Second
	s, _ := fastPathPeer(t, timeout)
	m := &msg.Message{ID: "f-3", From: "+8613800000001", To: "sip:hal@" + testDomain, Text: "unsendable"}
	b := presence.Binding{AOR: m.To, Contact: "sip:hal@[2001:db8::1]:5060", Via: "sip"}
	start := time.Now()
	err := s.SendIM(context.Background(), m, b)
	if err == nil {
		t.Fatal("SendIM over an IPv4 socket to an IPv6 address succeeded")
	}
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("failed after %v: waited for the timeout instead of the send's error (%v)", took, err)
	}
	if !strings.Contains(err.Error(), "[2001:db8::1]:5060") {
		t.Errorf("error %q does not name the destination", err)
	}
	if n := openTxs(s); n != 0 {
		t.Fatalf("%d transactions left", n)
	}
}
