package main

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

const sampleMessage = "MESSAGE sip:u7@127.0.0.1:5099 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKabc\r\n" +
	"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\r\n" +
	"From: <sip:+8613800000001@bench.test>;tag=f1\r\n" +
	"To: <sip:u7@bench.test>\r\n" +
	"Call-ID: c1@127.0.0.1\r\n" +
	"CSeq: 1 MESSAGE\r\n" +
	"Content-Type: text/plain\r\n" +
	"l: 11\r\n\r\n" +
	"#a1.2# hiXYZ"

// The raw responder answers a MESSAGE with a 200 sipgo accepts as the
// response to it, answers a retransmission again without counting it twice,
// and passes everything else through to its reader (sipgo).
func TestResponderConn(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var got []string
	rc, err := newResponderConn(pc.(*net.UDPConn), func(user string, body []byte) {
		mu.Lock()
		got = append(got, user+"|"+string(body))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	passed := make(chan string, 4)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := rc.ReadFrom(buf)
			if err != nil {
				return
			}
			passed <- string(buf[:n])
		}
	}()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	buf := make([]byte, 4096)
	for range 2 { // the original and a retransmission
		peer.WriteTo([]byte(sampleMessage), pc.LocalAddr())
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		m, err := sip.ParseMessage(buf[:n])
		if err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, buf[:n])
		}
		res, ok := m.(*sip.Response)
		if !ok || res.StatusCode != 200 || res.CallID().Value() != "c1@127.0.0.1" || res.CSeq().SeqNo != 1 {
			t.Fatalf("answer %q", buf[:n])
		}
		if vias := res.GetHeaders("Via"); len(vias) != 2 {
			t.Fatalf("answer has %d Vias, want both of the request's:\n%s", len(vias), buf[:n])
		}
		if br, _ := res.Via().Params.Get("branch"); br != "z9hG4bKabc" {
			t.Fatalf("top Via branch %q", br)
		}
		if tag, _ := res.To().Params.Get("tag"); tag == "" {
			t.Fatal("To without tag")
		}
	}
	options := strings.Replace(sampleMessage, "MESSAGE sip:", "OPTIONS sip:", 1)
	peer.WriteTo([]byte(options), pc.LocalAddr())
	select {
	case p := <-passed:
		if p != options {
			t.Fatalf("passed through %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OPTIONS was not passed through")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "u7|#a1.2# hiXY" {
		t.Fatalf("delivered %q, want one MESSAGE with an 11-byte body", got)
	}
}

// FuzzParseMessageRequest: never panics; what it accepts renders a 200 that
// sipgo parses with the request's Call-ID.
func FuzzParseMessageRequest(f *testing.F) {
	f.Add([]byte(sampleMessage))
	f.Add([]byte("MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=b\r\nf: a\r\nt: b\r\ni: c\r\nCSeq: 1 MESSAGE\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseMessageRequest(b)
		if !ok {
			return
		}
		out := m.appendOK(nil)
		if !strings.HasPrefix(string(out), "SIP/2.0 200 OK\r\n") || !strings.Contains(string(out), string(m.callID)+"\r\n") {
			t.Fatalf("%q rendered %q", b, out)
		}
	})
}

// MESSAGEs queued together are read in one call and all answered, each
// once, before the responder waits again.
func TestResponderConnBatch(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	count := 0
	rc, err := newResponderConn(pc.(*net.UDPConn), func(string, []byte) { mu.Lock(); count++; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	const n = 20
	for i := range n { // queued before the responder reads anything
		peer.WriteTo([]byte(strings.Replace(sampleMessage, "branch=z9hG4bKabc", "branch=z9hG4bKb"+strconv.Itoa(i), 1)), pc.LocalAddr())
	}
	go func() { buf := make([]byte, 4096); _, _, _ = rc.ReadFrom(buf) }()
	branches := map[string]bool{}
	buf := make([]byte, 4096)
	for len(branches) < n {
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%d of %d answered: %v", len(branches), n, err)
		}
		m, err := sip.ParseMessage(buf[:k])
		if err != nil {
			t.Fatal(err)
		}
		br, _ := m.(*sip.Response).Via().Params.Get("branch")
		if branches[br] {
			t.Fatalf("%s answered twice", br)
		}
		branches[br] = true
	}
	mu.Lock()
	defer mu.Unlock()
	if count != n {
		t.Fatalf("%d delivered, want %d", count, n)
	}
}
