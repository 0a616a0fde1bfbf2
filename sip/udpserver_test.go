package sip

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// udpPeer is a UA's UDP socket on loopback exchanging raw datagrams with s.
type udpPeer struct {
	t   *testing.T
	pc  net.PacketConn
	dst net.Addr
	buf []byte
}

func newUDPPeer(t *testing.T, s *Server) *udpPeer {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	dst, err := net.ResolveUDPAddr("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return &udpPeer{t: t, pc: pc, dst: dst, buf: make([]byte, 4096)}
}

// message is a MESSAGE from +8613800000001 whose top Via (with rport) is
// this socket's, a proxy's Via below it.
func (p *udpPeer) message(branch, contentType, text string) string {
	return rawMessage(branch+"@test", "1", contentType, text,
		"Via: SIP/2.0/UDP "+p.pc.LocalAddr().String()+";rport;branch="+branch,
		"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKua77;received=192.0.2.7",
		"From: <sip:+8613800000001@"+testDomain+">;tag=a1")
}

// send sends req and returns the response datagram.
func (p *udpPeer) send(req string) []byte {
	p.t.Helper()
	if _, err := p.pc.WriteTo([]byte(req), p.dst); err != nil {
		p.t.Fatal(err)
	}
	return p.recv()
}

func (p *udpPeer) recv() []byte {
	p.t.Helper()
	p.pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := p.pc.ReadFrom(p.buf)
	if err != nil {
		p.t.Fatalf("no response: %v", err)
	}
	return append([]byte(nil), p.buf[:n]...)
}

// exchange is send, parsed.
func (p *udpPeer) exchange(req string) (*sip.Response, []byte) {
	p.t.Helper()
	raw := p.send(req)
	m, err := sip.ParseMessage(raw)
	if err != nil {
		p.t.Fatalf("response does not parse: %v\n%s", err, raw)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		p.t.Fatalf("got %q", raw)
	}
	return res, raw
}

// checkFastResponse checks the response to p.message(branch, ...) line by
// line: status line; every Via of the request in order, the top one with
// rport and received filled in (RFC 3581 §4); From; To with a tag added;
// Call-ID; CSeq; Content-Length; extra (exactly, or as a prefix when it
// ends in "..."); Server. It returns the To tag.
func (p *udpPeer) checkFastResponse(raw []byte, status, branch, extra string) string {
	p.t.Helper()
	head, ok := strings.CutSuffix(string(raw), "\r\n\r\n")
	if !ok {
		p.t.Fatalf("response does not end its headers with an empty line:\n%s", raw)
	}
	lines := strings.Split(head, "\r\n")
	port := strconv.Itoa(p.pc.LocalAddr().(*net.UDPAddr).Port)
	toPrefix := "To: <sip:+8613800000002@" + testDomain + ">;tag="
	want := []string{
		"SIP/2.0 " + status,
		"Via: SIP/2.0/UDP 127.0.0.1:" + port + ";rport=" + port + ";branch=" + branch + ";received=127.0.0.1",
		"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKua77;received=192.0.2.7",
		"From: <sip:+8613800000001@" + testDomain + ">;tag=a1",
		toPrefix,
		"Call-ID: " + branch + "@test",
		"CSeq: 1 MESSAGE",
		"Content-Length: 0",
		extra,
		"Server: smsbridge",
	}
	if len(lines) != len(want) {
		p.t.Fatalf("response has %d lines, want %d:\n%s", len(lines), len(want), raw)
	}
	var tag string
	for i, w := range want {
		got := lines[i]
		switch {
		case w == toPrefix:
			tag, ok = strings.CutPrefix(got, toPrefix)
			if !ok || tag == "" || strings.ContainsAny(tag, ";, ") {
				p.t.Errorf("line %d: %q, want %q and a tag", i, got, toPrefix)
			}
		case strings.HasSuffix(w, "..."):
			if !strings.HasPrefix(got, strings.TrimSuffix(w, "...")) {
				p.t.Errorf("line %d: %q, want %q", i, got, w)
			}
		case got != w:
			p.t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
	return tag
}

// A MESSAGE over UDP is handled once; its retransmission gets the same final
// response again, byte for byte, without a second submission (RFC 3261
// §17.2.2); a new transaction is a new message. The same holds for a
// failure response.
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
	p := newUDPPeer(t, s)
	first, raw := p.exchange(p.message("z9hG4bKone", "text/plain;charset=UTF-8", "hello"))
	if tag := p.checkFastResponse(raw, "202 Accepted", "z9hG4bKone", "Imdn-Message-ID: id-hello"); tag != "id-hello" {
		t.Errorf("To tag %q, want the message id", tag)
	}
	if again := p.send(p.message("z9hG4bKone", "text/plain;charset=UTF-8", "hello")); !bytes.Equal(again, raw) {
		t.Fatalf("retransmission answered\n%s\nwant\n%s", again, raw)
	}
	if first.StatusCode != 202 || submitted.Load() != 1 {
		t.Fatalf("status %d, submitted %d times, want 202 once", first.StatusCode, submitted.Load())
	}
	if res, _ := p.exchange(p.message("z9hG4bKtwo", "text/plain", "again")); res.StatusCode != 202 || submitted.Load() != 2 {
		t.Fatalf("new transaction: %d, submitted %d", res.StatusCode, submitted.Load())
	}
	u := s.udpSrv.Load()
	u.mu.Lock()
	handled := len(u.txs[0]) + len(u.txs[1])
	u.mu.Unlock()
	if handled != 2 {
		t.Fatalf("%d transactions in the UDP fast path, want 2", handled)
	}
	bad := p.message("z9hG4bKthree", "image/png", "x")
	res, raw := p.exchange(bad)
	if res.StatusCode != 415 || submitted.Load() != 2 {
		t.Fatalf("unsupported type: %d, submitted %d", res.StatusCode, submitted.Load())
	}
	if again := p.send(bad); !bytes.Equal(again, raw) {
		t.Fatalf("retransmitted 415\n%s\nwant\n%s", again, raw)
	}
}

// Failure responses on the UDP fast path carry what RFC 3261 §8.2.6 asks
// and what sipgo's responses carried: status line, every Via in order,
// From, To with a tag, Call-ID, CSeq, the challenge, Accept or Retry-After,
// Server. Their retransmissions get the same bytes without the handler
// running again (a second 401 would carry a new nonce and To tag).
func TestUDPFastPathFailureResponses(t *testing.T) {
	for _, c := range []struct {
		name, ctype, status, extra string
		open                       bool  // OpenRegistration: no challenge
		submits                    int32 // the store refuses each with ErrOverloaded
	}{
		{"401", "text/plain", "401 Unauthorized", `WWW-Authenticate: Digest realm="` + testDomain + `", nonce="...`, false, 0},
		{"415", "application/octet-stream", "415 Unsupported Media Type", "Accept: text/plain", true, 0},
		{"503", "text/plain", "503 Service Unavailable", "Retry-After: 5", true, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			pres, _ := presence.Open(presence.Options{})
			cfg := baseConfig()
			cfg.OpenRegistration = c.open
			var submitted atomic.Int32
			s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error {
				submitted.Add(1)
				return msg.ErrOverloaded
			}))
			p := newUDPPeer(t, s)
			branch := "z9hG4bK" + c.name + "x"
			req := p.message(branch, c.ctype, "hi")
			raw := p.send(req)
			p.checkFastResponse(raw, c.status, branch, c.extra)
			if again := p.send(req); !bytes.Equal(again, raw) {
				t.Fatalf("retransmission answered\n%s\nwant\n%s", again, raw)
			}
			if n := submitted.Load(); n != c.submits {
				t.Fatalf("submitted %d times, want %d", n, c.submits)
			}
		})
	}
}

// Beyond MaxInFlight a MESSAGE on the fast path is refused by bounded with a
// 503 and Retry-After, rendered like every other fast-path response.
func TestUDPFastPathOverload503(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.OpenRegistration = true
	cfg.MaxInFlight = 1
	entered, release := make(chan struct{}, 1), make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the server stops, should the test fail early
	s := startServer(t, cfg, pres, submitFunc(func(_ context.Context, m *msg.Message) error {
		entered <- struct{}{}
		<-release
		m.ID = "slow"
		return nil
	}))
	p := newUDPPeer(t, s)
	if _, err := p.pc.WriteTo([]byte(p.message("z9hG4bKslow", "text/plain", "slow")), p.dst); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first MESSAGE not handled")
	}
	req := p.message("z9hG4bKrefused", "text/plain", "refused")
	raw := p.send(req)
	p.checkFastResponse(raw, "503 Service Unavailable", "z9hG4bKrefused", "Retry-After: 5")
	if again := p.send(req); !bytes.Equal(again, raw) {
		t.Fatalf("retransmission answered\n%s\nwant\n%s", again, raw)
	}
	releaseOnce()
	if raw := p.recv(); !bytes.HasPrefix(raw, []byte("SIP/2.0 202 Accepted\r\n")) {
		t.Fatalf("first MESSAGE answered %q", raw)
	}
}

// The fast path's responses are what sipgo's NewResponseFromRequest and
// respond render, byte for byte (Record-Route on a 2xx only, every Via with
// rport filled in, From, To, Call-ID, CSeq, Content-Length, the extra
// headers, Server), but for the To tag a request without one gets: the
// message id for a 202, a random one otherwise.
func TestRenderResponseMatchesSipgo(t *testing.T) {
	s := &Server{cfg: Config{UserAgent: "bridge-test"}}
	for _, c := range []struct {
		code   int
		reason string
		tag    string
		hdrs   []sip.Header
	}{
		{202, "Accepted", "0123456789abcdefghij", []sip.Header{sip.NewHeader("Imdn-Message-ID", "0123456789abcdefghij")}},
		{401, "Unauthorized", "", []sip.Header{sip.NewHeader("WWW-Authenticate", `Digest realm="example.test", nonce="abc", algorithm=MD5, qop="auth"`)}},
		{415, "Unsupported Media Type", "", []sip.Header{sip.NewHeader("Accept", "text/plain")}},
		{503, "Service Unavailable", "", []sip.Header{sip.NewHeader("Retry-After", "5")}},
		{404, "Not Found (no route)", "", nil},
		{500, "Server Internal Error", "", nil},
	} {
		for _, toTag := range []string{"", "b2"} {
			req := parsedMessage(t, "10.0.0.9:5070",
				"Record-Route: <sip:10.0.0.9;lr>",
				"Via: SIP/2.0/UDP 10.0.0.9:5070;rport;branch=z9hG4bKproxy",
				"Via: SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.1;branch=z9hG4bKua",
				"From: \"Alice\" <sip:+8613800000001@"+testDomain+">;tag=a1")
			if toTag != "" {
				req.To().Params.Add("tag", toTag)
			}
			got := string(s.renderResponse(req, c.code, c.reason, c.tag, c.hdrs...))
			res := sip.NewResponseFromRequest(req, c.code, c.reason, nil)
			for _, h := range c.hdrs {
				res.AppendHeader(h)
			}
			res.AppendHeader(sip.NewHeader("Server", s.cfg.UserAgent))
			want := res.String()
			if toTag == "" {
				m, err := sip.ParseMessage([]byte(got))
				if err != nil {
					t.Fatalf("%d does not parse: %v\n%s", c.code, err, got)
				}
				tag, _ := m.(*sip.Response).To().Params.Get("tag")
				if tag == "" || c.tag != "" && tag != c.tag {
					t.Errorf("%d: To tag %q, want %q or a random one", c.code, tag, c.tag)
				}
				sipgoTag, _ := res.To().Params.Get("tag")
				want = strings.Replace(want, ";tag="+sipgoTag, ";tag="+tag, 1)
			}
			if got != want {
				t.Errorf("%d (request To tag %q):\n%s\nsipgo renders\n%s", c.code, toTag, got, want)
			}
		}
	}
	// Two responses without a given tag do not share one.
	req := parsedMessage(t, "10.0.0.9:5070", "Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKx", "From: <sip:a@"+testDomain+">;tag=a1")
	if a, b := s.renderResponse(req, 500, "x", ""), s.renderResponse(req, 500, "x", ""); bytes.Equal(a, b) {
		t.Errorf("random To tags repeat:\n%s", a)
	}
}

// BenchmarkAccepted202 compares the directly rendered 202 with sipgo's
// response construction and rendering, which the UDP path does not use.
func BenchmarkAccepted202(b *testing.B) {
	req := benchRequest(b)
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
			s.renderResponse(req, 202, "Accepted", "0123456789abcdefghij", sip.NewHeader("Imdn-Message-ID", "0123456789abcdefghij"))
		}
	})
}

func TestTopViaBranch(t *testing.T) {
	const start = "MESSAGE sip:a@b SIP/2.0\r\n"
	for _, c := range []struct{ in, branch string }{
		{"Via: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKa1\r\nFrom: x\r\n\r\n", "z9hG4bKa1"},
		{"From: x\r\n  folded\r\nv:SIP/2.0/UDP h;branch=z9hG4bKc\r\n\r\n", "z9hG4bKc"},                   // compact form after a folded header
		{"VIA :  SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKd;received=1.2.3.4  \r\n\r\n", "z9hG4bKd"}, // any case, trimmed, IPv6
		{"vIa: SIP/2.0/UDP h:1;branch=z9hG4bKe,SIP/2.0/UDP g;branch=z9hG4bKf\r\n\r\n", "z9hG4bKe"},       // first value only
		{"Via: SIP/2.0/UDP h;branch=z9hG4bKg\r\nVia: SIP/2.0/UDP g;branch=z9hG4bKh\r\n\r\n", "z9hG4bKg"}, // first header only
		{"Via: SIP/2.0/UDP h;branch=z9hG4bKi;branch=z9hG4bKj\r\n\r\n", "z9hG4bKj"},                       // sipgo keeps the last
		{"Via:\tSIP/2.0/UDP\th;branch=1\r\n\r\n", "1"},                                                   // no cookie: the caller's test
		{"Via: SIP/2.0/UDP h;branch=z9hG4bKk\r\n x\r\n\r\n", ""},                                         // folded Via
		{"Via: SIP/2.0/UDP h ;branch=z9hG4bKl\r\n\r\n", ""},                                              // whitespace before a param
		{"Via: SIP/2.0/UDP h;rport; branch=z9hG4bKm\r\n\r\n", ""},                                        // sipgo's name is " branch"
		{"Via: SIP/2.0/UDP h;branch=z9hG4bKn ;rport\r\n\r\n", ""},                                        // sipgo's value has the space
		{"Via: SIP/2.0/UDP h;Branch=z9hG4bKo\r\n\r\n", ""},                                               // sipgo reads no branch
		{"Via: SIP/2.0/UDP h;branch=\"z9hG4bKp\"\r\n\r\n", ""},                                           // quoted
		{"Via: SIP/2.0/UDP h:50x60;branch=z9hG4bKq\r\n\r\n", ""},                                         // sipgo drops the params
		{"Via: SIP/2.0/UDP a, SIP/2.0/UDP b;branch=z9hG4bKr\r\n\r\n", ""},                                // no params in the first value
		{"Via: SIP/2.0/UDP h;branch=\r\n\r\n", ""},                                                       // empty
		{"Via: SIP/2.0/UDP h;branch=z9hG4bKs\nX: y\r\n\r\n", ""},                                         // bare LF
		{"From: x\r\n\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKt\r\n", ""},                                    // in the body
		{"Via\r\n : SIP/2.0/UDP h;branch=z9hG4bKu\r\n\r\n", ""},                                          // colon on the folded line
		{"Viaa: SIP/2.0/UDP h;branch=z9hG4bKv\r\n\r\n", ""},
	} {
		branch, ok := topViaBranch([]byte(start + c.in))
		if ok != (c.branch != "") || string(branch) != c.branch {
			t.Errorf("%q: %q %v, want %q", c.in, branch, ok, c.branch)
		}
	}
}

// A retransmission is answered from a scan of the datagram: take does not
// run sipgo's parser on it (28 allocations), only builds the map key.
func TestTakeRetransmissionNoParse(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	src := netip.MustParseAddrPort("192.0.2.1:5060")
	d := []byte(rawMessage("c1@test", "1", "text/plain", "hi", "v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKrt", "f: <sip:a@"+testDomain+">;tag=1"))
	u := &udpServer{pc: pc, txs: [2]map[txKey]*fastTx{{}, {{"z9hG4bKrt", src}: {pc: pc, dst: src}}}, rotated: time.Now()}
	if n := testing.AllocsPerRun(100, func() {
		if !u.take(d, src) {
			t.Fatal("not taken")
		}
	}); n > 1 {
		t.Fatalf("%.0f allocations per retransmission", n)
	}
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
