package main

// Malformed SIP requests, sent as raw bytes over UDP and TCP to a running
// bridge, each get the answer RFC 3261 gives them.

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// With -sip-corpus DIR the test writes each request it sends as a seed of
// the sip package's FuzzCheckRequest (sip/testdata/fuzz/FuzzCheckRequest).
var sipCorpus = flag.String("sip-corpus", "", "write the malformed SIP requests as fuzz seeds into this directory")

// rawReq is a SIP request as lines, so a case can break any part of it.
type rawReq struct {
	start  string
	hdrs   []string // "Name: value"
	body   string
	length string // Content-Length value; "" = the body's length, "-" = no header
	eol    string
}

func (r *rawReq) set(name, value string) {
	for i, h := range r.hdrs {
		if n, _, _ := strings.Cut(h, ":"); strings.EqualFold(n, name) {
			r.hdrs[i] = name + ": " + value
			return
		}
	}
	r.hdrs = append(r.hdrs, name+": "+value)
}

func (r *rawReq) del(name string) {
	out := r.hdrs[:0]
	for _, h := range r.hdrs {
		if n, _, _ := strings.Cut(h, ":"); !strings.EqualFold(n, name) {
			out = append(out, h)
		}
	}
	r.hdrs = out
}

func (r *rawReq) bytes() []byte {
	var b strings.Builder
	b.WriteString(r.start + r.eol)
	for _, h := range r.hdrs {
		b.WriteString(h + r.eol)
	}
	switch r.length {
	case "":
		b.WriteString("Content-Length: " + strconv.Itoa(len(r.body)) + r.eol)
	case "-":
	default:
		b.WriteString("Content-Length: " + r.length + r.eol)
	}
	b.WriteString(r.eol + r.body)
	return []byte(b.String())
}

// baseRequest is a well-formed request of method over transport ("UDP" or
// "TCP") from port, unique by id; the bridge answers it 401 (digest).
func baseRequest(method, transport string, port int, id string) *rawReq {
	user := "+8613800000001"
	r := &rawReq{eol: "\r\n"}
	r.hdrs = []string{
		"Via: SIP/2.0/" + transport + " 127.0.0.1:" + strconv.Itoa(port) + ";rport;branch=z9hG4bK" + id,
		"Max-Forwards: 70",
		"From: <sip:" + user + "@" + testDomain + ">;tag=f" + id,
	}
	if method == "REGISTER" {
		r.start = "REGISTER sip:" + testDomain + " SIP/2.0"
		r.hdrs = append(r.hdrs, "To: <sip:"+user+"@"+testDomain+">")
	} else {
		r.start = "MESSAGE sip:+8613800000002@" + testDomain + " SIP/2.0"
		r.hdrs = append(r.hdrs, "To: <sip:+8613800000002@"+testDomain+">")
	}
	r.hdrs = append(r.hdrs, "Call-ID: "+id+"@malformed.test", "CSeq: 1 "+method)
	if method == "REGISTER" {
		r.hdrs = append(r.hdrs, "Contact: <sip:"+user+"@127.0.0.1:"+strconv.Itoa(port)+">", "Expires: 60")
	} else {
		r.hdrs = append(r.hdrs, "Content-Type: text/plain")
		r.body = "hello"
	}
	return r
}

// malformedCase breaks a well-formed request. want is the status over both
// transports unless tcp says otherwise (-1: not sent over TCP); 0 means no
// answer. reason is a part of the reason phrase naming the fault.
type malformedCase struct {
	name   string
	only   string // "REGISTER" or "MESSAGE" when the case is for one method
	mutate func(r *rawReq, method string)
	want   int
	reason string
	tcp    int    // TCP status when it differs from want; -1 = UDP only
	tcpWhy string // its reason
	closes bool   // over TCP the connection ends after the answer: nothing after it can be framed
}

var malformedCases = []malformedCase{
	{name: "well-formed control", mutate: func(r *rawReq, m string) {}, want: 401, reason: "Unauthorized"},
	{name: "version 9.9", mutate: func(r *rawReq, m string) { r.start = strings.Replace(r.start, "SIP/2.0", "SIP/9.9", 1) }, want: 505, reason: "Version Not Supported"},
	{name: "version 1.0", mutate: func(r *rawReq, m string) { r.start = strings.Replace(r.start, "SIP/2.0", "SIP/1.0", 1) }, want: 505, reason: "Version Not Supported"},
	{name: "version HTTP", mutate: func(r *rawReq, m string) { r.start = strings.Replace(r.start, "SIP/2.0", "HTTP/1.1", 1) }, want: 400, reason: "Request-Line"},
	{name: "tel Request-URI", mutate: func(r *rawReq, m string) { r.start = m + " tel:+8613800000002 SIP/2.0" }, want: 416, reason: "Unsupported URI Scheme"},
	{name: "http Request-URI", mutate: func(r *rawReq, m string) { r.start = m + " http://bridge.test/ SIP/2.0" }, want: 416, reason: "Unsupported URI Scheme"},
	{name: "Request-URI without host", mutate: func(r *rawReq, m string) { r.start = m + " sip: SIP/2.0" }, want: 400, reason: "Request-URI"},
	{name: "Request-URI unterminated IPv6", mutate: func(r *rawReq, m string) { r.start = m + " sip:alice@[::1 SIP/2.0" }, want: 400, reason: "Request-URI"},
	{name: "Request-URI bad port", mutate: func(r *rawReq, m string) { r.start = m + " sip:bridge.test:99x SIP/2.0" }, want: 400, reason: "Request-URI"},
	{name: "no Request-URI", mutate: func(r *rawReq, m string) { r.start = m + " SIP/2.0" }, want: 400, reason: "Request-Line"},
	{name: "double space in Request-Line", mutate: func(r *rawReq, m string) { r.start = strings.Replace(r.start, " ", "  ", 1) }, want: 400, reason: "Request-Line"},
	{name: "CSeq method mismatch", mutate: func(r *rawReq, m string) { r.set("CSeq", "1 INVITE") }, want: 400, reason: "CSeq method"},
	{name: "CSeq not a number", mutate: func(r *rawReq, m string) { r.set("CSeq", "abc "+m) }, want: 400, reason: "CSeq"},
	{name: "CSeq over 2**31", mutate: func(r *rawReq, m string) { r.set("CSeq", "4294967296 "+m) }, want: 400, reason: "CSeq"},
	{name: "CSeq without method", mutate: func(r *rawReq, m string) { r.set("CSeq", "1") }, want: 400, reason: "CSeq"},
	{name: "no CSeq", mutate: func(r *rawReq, m string) { r.del("CSeq") }, want: 400, reason: "missing CSeq"},
	{name: "no From", mutate: func(r *rawReq, m string) { r.del("From") }, want: 400, reason: "missing From"},
	{name: "no To", mutate: func(r *rawReq, m string) { r.del("To") }, want: 400, reason: "missing To"},
	{name: "no Call-ID", mutate: func(r *rawReq, m string) { r.del("Call-ID") }, want: 400, reason: "missing Call-ID"},
	{name: "two From", mutate: func(r *rawReq, m string) { r.hdrs = append(r.hdrs, "From: <sip:+8613800000009@bridge.test>;tag=x") }, want: 400, reason: "more than one From"},
	{name: "two Call-ID", mutate: func(r *rawReq, m string) { r.hdrs = append(r.hdrs, "i: other@malformed.test") }, want: 400, reason: "more than one Call-ID"},
	{name: "empty Call-ID", mutate: func(r *rawReq, m string) { r.hdrs = append(r.hdrs, "Call-ID:") }, want: 400, reason: "Call-ID"},
	{name: "From not an address", mutate: func(r *rawReq, m string) { r.set("From", "<sip:+8613800000001@bridge.test;tag=1") }, want: 400, reason: "malformed From"},
	{name: "To not an address", mutate: func(r *rawReq, m string) { r.set("To", "\"unterminated <sip:x@bridge.test>") }, want: 400, reason: "malformed To"},
	{name: "Via without sent-by", mutate: func(r *rawReq, m string) { r.hdrs[0] = "Via: SIP/2.0/UDP" }, want: 400, reason: "malformed Via"},
	{name: "no Via", mutate: func(r *rawReq, m string) { r.del("Via") }, want: 0},
	{name: "header without colon", mutate: func(r *rawReq, m string) { r.hdrs = append(r.hdrs, "Garbage line") }, want: 400, reason: "colon"},
	{name: "Max-Forwards not a number", mutate: func(r *rawReq, m string) { r.set("Max-Forwards", "seventy") }, want: 400, reason: "Max-Forwards"},
	{name: "Max-Forwards 0", only: "MESSAGE", mutate: func(r *rawReq, m string) { r.set("Max-Forwards", "0") }, want: 483, reason: "Too Many Hops"},
	{name: "Contact not an address", only: "REGISTER", mutate: func(r *rawReq, m string) { r.set("Contact", "<sip:+8613800000001@127.0.0.1") }, want: 400, reason: "malformed Contact"},
	{name: "Content-Length beyond body", mutate: func(r *rawReq, m string) { r.length = strconv.Itoa(len(r.body) + 10) }, want: 400, reason: "exceeds the body", tcp: -1},
	{name: "Content-Length far beyond body", mutate: func(r *rawReq, m string) { r.length = "70000" }, want: 400, reason: "exceeds the body", tcp: 513, tcpWhy: "Message Too Large", closes: true},
	{name: "Content-Length negative", mutate: func(r *rawReq, m string) { r.length = "-5" }, want: 400, reason: "Content-Length", closes: true},
	{name: "Content-Length not a number", mutate: func(r *rawReq, m string) { r.length = "five" }, want: 400, reason: "Content-Length", closes: true},
	{name: "two Content-Length disagreeing", mutate: func(r *rawReq, m string) { r.hdrs = append(r.hdrs, "Content-Length: 3") }, want: 400, reason: "Content-Length", closes: true},
	{name: "no Content-Length over TCP", mutate: func(r *rawReq, m string) { r.length = "-" }, want: 401, tcp: 400, tcpWhy: "missing Content-Length", closes: true},
	{name: "bare LF line ends", mutate: func(r *rawReq, m string) { r.eol = "\n" }, want: 400, reason: "CRLF", tcp: -1},
}

// TestMalformedSIPAnswered: each malformed request, REGISTER and MESSAGE,
// over UDP and over TCP, gets its RFC 3261 status and a reason naming the
// fault, echoing the request's Via branch and Call-ID so the sender can
// match it (§8.2.6.2); a request with no Via is dropped. Over TCP the
// connection carries a well-formed request after a malformed one, unless
// the malformed one cannot be framed, when it is closed after the answer.
func TestMalformedSIPAnswered(t *testing.T) {
	b := startBridge(t, t.TempDir(), sipUserFlag("+8613800000001", "pw")...)
	variants := 0
	for _, transport := range []string{"UDP", "TCP"} {
		for _, method := range []string{"REGISTER", "MESSAGE"} {
			for i, c := range malformedCases {
				if c.only != "" && c.only != method {
					continue
				}
				want, reason := c.want, c.reason
				if transport == "TCP" && c.tcp != 0 {
					if c.tcp < 0 {
						continue
					}
					want = c.tcp
					if c.tcpWhy != "" {
						reason = c.tcpWhy
					}
				}
				if want == 401 {
					reason = "Unauthorized"
				}
				t.Run(transport+"/"+method+"/"+c.name, func(t *testing.T) {
					variants++
					id := fmt.Sprintf("%s%s%d", strings.ToLower(transport), strings.ToLower(method[:3]), i)
					if transport == "UDP" {
						sendMalformedUDP(t, b.addrs.SIP, method, id, c, want, reason)
					} else {
						sendMalformedTCP(t, b.addrs.SIP, method, id, c, want, reason)
					}
				})
			}
		}
	}
	if variants < 80 {
		t.Fatalf("only %d variants ran", variants)
	}
}

func writeSeed(t *testing.T, name string, req []byte) {
	if *sipCorpus == "" {
		return
	}
	_, name, _ = strings.Cut(name, "/") // the subtest: transport, method, case
	f := filepath.Join(*sipCorpus, strings.NewReplacer("/", "_", " ", "_").Replace(strings.ToLower(name)))
	if err := os.WriteFile(f, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(req))+")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sendMalformedUDP(t *testing.T, addr, method, id string, c malformedCase, want int, reason string) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	r := baseRequest(method, "UDP", port, id)
	c.mutate(r, method)
	req := r.bytes()
	writeSeed(t, t.Name(), req)
	dst, _ := net.ResolveUDPAddr("udp4", addr)
	if _, err := conn.WriteTo(req, dst); err != nil {
		t.Fatal(err)
	}
	wait := 3 * time.Second
	if want == 0 {
		wait = 500 * time.Millisecond
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, _, err := conn.ReadFrom(buf)
	if want == 0 {
		if err == nil {
			t.Fatalf("a request without Via was answered: %q", buf[:n])
		}
		return
	}
	if err != nil {
		t.Fatalf("no answer to %q: %v", req, err)
	}
	checkAnswer(t, req, buf[:n], want, reason)
}

func sendMalformedTCP(t *testing.T, addr, method, id string, c malformedCase, want int, reason string) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.TCPAddr).Port
	r := baseRequest(method, "TCP", port, id)
	c.mutate(r, method)
	req := r.bytes()
	writeSeed(t, t.Name(), req)
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if want == 0 {
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if res, err := readResponse(br); err == nil {
			t.Fatalf("a request without Via was answered: %q", res)
		}
		return
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := readResponse(br)
	if err != nil {
		t.Fatalf("no answer to %q: %v", req, err)
	}
	checkAnswer(t, req, res, want, reason)
	// The same connection afterwards: a well-formed request is answered,
	// or, when the stream could not be framed, the connection has ended.
	next := baseRequest(method, "TCP", port, id+"next").bytes()
	_, werr := conn.Write(next)
	res, err = readResponse(br)
	if c.closes {
		if err == nil {
			t.Fatalf("connection still open after an unframeable request: answered %q", res)
		}
		return
	}
	if werr != nil || err != nil {
		t.Fatalf("connection unusable after the malformed request: write %v, read %v", werr, err)
	}
	checkAnswer(t, next, res, 401, "Unauthorized")
}

// readResponse reads one SIP response off a stream.
func readResponse(br *bufio.Reader) ([]byte, error) {
	var head bytes.Buffer
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.Bytes(), err
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if n, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(n), "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	return append(head.Bytes(), body...), nil
}

// checkAnswer: status and reason, and the top Via's branch and the Call-ID
// of req (when it had exactly one) copied into res.
func checkAnswer(t *testing.T, req, res []byte, want int, reason string) {
	t.Helper()
	status, rest, _ := strings.Cut(string(res), "\r\n")
	parts := strings.SplitN(status, " ", 3)
	if len(parts) != 3 || parts[0] != "SIP/2.0" {
		t.Fatalf("not a SIP response: %q", res)
	}
	if code, _ := strconv.Atoi(parts[1]); code != want || !strings.Contains(strings.ToLower(parts[2]), strings.ToLower(reason)) {
		t.Fatalf("answered %q, want %d with %q in its reason\nrequest %q", status, want, reason, req)
	}
	if br := between(req, "branch=", ";\r\n"); br != nil && !strings.Contains(rest, "branch="+string(br)) {
		t.Fatalf("response %q lacks the request's branch %s", res, br)
	}
	if bytes.Count(req, []byte("Call-ID: ")) == 1 && !bytes.Contains(req, []byte("\ni: ")) {
		cid := "Call-ID: " + string(between(req, "Call-ID: ", "\r\n"))
		if !strings.Contains(rest, cid) {
			t.Fatalf("response %q lacks the request's %s", res, cid)
		}
	}
}

// between returns what follows start in b up to any byte of stops.
func between(b []byte, start, stops string) []byte {
	_, after, ok := bytes.Cut(b, []byte(start))
	if !ok {
		return nil
	}
	if i := bytes.IndexAny(after, stops); i >= 0 {
		return after[:i]
	}
	return after
}
