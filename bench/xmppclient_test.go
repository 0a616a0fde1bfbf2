package main

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
)

const testStreamHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='x.test' version='1.0'>"

// wirePool is a pool of one user whose stream is a loopback TCP connection
// past its login: the test plays Prosody on srv.
func wirePool(t *testing.T) (p *XMPPPool, tr *Tracker, srv net.Conn, sr *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if srv, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); conn.Close() })
	if _, err := io.WriteString(srv, testStreamHeader); err != nil {
		t.Fatal(err)
	}
	m := &meter{r: conn, limit: xmppStanzaLimit}
	d := xml.NewDecoder(bufio.NewReader(m))
	if _, err := readStreamHeader(d); err != nil {
		t.Fatal(err)
	}
	u := &xmppClient{jid: "xu0@x.test/bench", conn: conn, in: &stanzaReader{d: d, m: m}, done: make(chan struct{})}
	tr = NewTracker()
	p = &XMPPPool{host: "x.test", domain: "sms.x.test", tr: tr, log: slog.New(slog.DiscardHandler),
		users: []*xmppClient{u}, pending: map[string]*xmppWait{}}
	go p.read(u)
	return p, tr, srv, bufio.NewReader(srv)
}

// readUntil reads from r up to and including end.
func readUntil(t *testing.T, r *bufio.Reader, end string) string {
	t.Helper()
	var b strings.Builder
	for !strings.HasSuffix(b.String(), end) {
		s, err := r.ReadString('>')
		if err != nil {
			t.Fatalf("read: %v (%q)", err, b.String())
		}
		b.WriteString(s)
	}
	return b.String()
}

// TestXMPPUserWire plays Prosody's side of a user's stream by hand: a ping
// answered, chat messages counted by token, a subscription approved, an
// unknown request refused, sends answered by the ping's result or by an
// error stanza (mapped to its type and condition), and a close handshake.
func TestXMPPUserWire(t *testing.T) {
	p, tr, srv, sr := wirePool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(srv, s); err != nil {
			t.Fatal(err)
		}
	}

	send("<iq type='get' id='p&amp;1' from='sms.x.test' to='xu0@x.test/bench'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := readUntil(t, sr, "/>"); got != "<iq to='sms.x.test' id='p&amp;1' type='result'/>" {
		t.Errorf("pong %q", got)
	}

	tok := tr.Next(SMSToXMPP)
	tr.Acked(tok)
	send("<message type='chat' id='m1' from='+861@sms.x.test' to='xu0@x.test/bench'>" +
		"<body>" + tok.String() + " a &lt; b</body><request xmlns='urn:xmpp:receipts'/></message>" +
		"<message from='+861@sms.x.test'><active xmlns='http://jabber.org/protocol/chatstates'/></message>" +
		"\n<message type='chat' from='+861@sms.x.test'><body>no token</body></message>" +
		"<presence type='subscribe' from='sms.x.test' to='xu0@x.test'/>")
	if got := readUntil(t, sr, "/>"); got != "<presence to='sms.x.test' type='subscribed'/>" {
		t.Errorf("approval %q", got)
	}
	if p.Received() != 2 || p.bad.Load() != 1 || tr.delivered[SMSToXMPP].Load() != 1 {
		t.Errorf("received %d, bad %d, delivered %d; want 2, 1, 1",
			p.Received(), p.bad.Load(), tr.delivered[SMSToXMPP].Load())
	}

	send("<iq type='get' id='v1' from='x.test'><query xmlns='jabber:iq:version'/></iq>")
	if got := readUntil(t, sr, "</iq>"); !strings.Contains(got, "id='v1' type='error'") || !strings.Contains(got, "service-unavailable") {
		t.Errorf("answer to an unknown request %q", got)
	}

	// A send answered by its ping's result, then one refused (the error
	// for the message comes before the ping's answer).
	done := make(chan error, 1)
	go func() { done <- p.Send(ctx, 0, "+862@sms.x.test", "x & y", "1") }()
	msg, ping := readUntil(t, sr, "</message>"), readUntil(t, sr, "</iq>")
	if !strings.Contains(msg, "id='m1'") || !strings.Contains(msg, "<body>x &amp; y</body>") ||
		!strings.Contains(ping, "id='p1'") || !strings.Contains(ping, "to='sms.x.test'") {
		t.Fatalf("send %q %q", msg, ping)
	}
	send("<iq type='result' id='p1' from='sms.x.test'/>")
	if err := <-done; err != nil {
		t.Fatalf("Send: %v", err)
	}
	go func() { done <- p.Send(ctx, 0, "+862@sms.x.test", "z", "2") }()
	readUntil(t, sr, "</iq>")
	send("<message type='error' id='m2' from='+862@sms.x.test'><body>z</body><error type='wait'>" +
		"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>slow down</text></error></message>" +
		"<iq type='result' id='p2' from='sms.x.test'/>")
	var se *xmppStanzaError
	if err := <-done; !errors.As(err, &se) || *se != (xmppStanzaError{"message", "wait", "resource-constraint"}) || !xmppThrottled(err) {
		t.Fatalf("Send refused: %v", err)
	}
	if p.Received() != 2 {
		t.Errorf("an error's body counted: received %d", p.Received())
	}

	go func() { done <- p.Ping(ctx, 0, "sms.x.test", "r1") }()
	readUntil(t, sr, "</iq>")
	send("<iq type='error' id='r1' from='sms.x.test'><ping xmlns='urn:xmpp:ping'/><error type='cancel'>" +
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text>" +
		"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	if err := <-done; !errors.As(err, &se) || *se != (xmppStanzaError{"iq", "cancel", "service-unavailable"}) {
		t.Fatalf("Ping answered with an error: %v", err)
	}

	// Close: the server answers the client's end of stream with its own.
	closed := make(chan struct{})
	start := time.Now()
	go func() { p.Close(); close(closed) }()
	readUntil(t, sr, "</stream:stream>")
	send("</stream:stream>")
	<-closed
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// A stanza past the size limit ends the stream and closes the connection,
// and the bytes read for it stay near the limit.
func TestXMPPUserStanzaLimit(t *testing.T) {
	p, _, srv, sr := wirePool(t)
	u := p.users[0]
	go func() {
		_, _ = io.WriteString(srv, "<message type='chat'><body>")
		chunk := strings.Repeat("a", 4096)
		for range 4 * xmppStanzaLimit / len(chunk) {
			if _, err := io.WriteString(srv, chunk); err != nil {
				return
			}
		}
	}()
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader still reads past the limit")
	}
	if n := u.in.m.n; n > xmppStanzaLimit+64<<10 {
		t.Errorf("read %d bytes of one stanza", n)
	}
	if _, err := sr.ReadString('>'); err == nil {
		t.Error("the connection is still open")
	}
	if p.Received() != 0 {
		t.Errorf("received %d", p.Received())
	}
}

// A stream error ends the reader; so does a server's end of stream.
func TestXMPPUserStreamEnd(t *testing.T) {
	for _, end := range []string{
		"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		"</stream:stream>",
	} {
		p, _, srv, _ := wirePool(t)
		if _, err := io.WriteString(srv, end); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.users[0].done:
		case <-time.After(5 * time.Second):
			t.Fatalf("reader still running after %q", end)
		}
		err := p.Ping(context.Background(), 0, "x.test", "late")
		if err == nil {
			t.Errorf("ping after %q answered", end)
		}
	}
}

// TestXMPPUserProsody logs users in to a real Prosody and exchanges stanzas
// with a go-xmpp client, an independent implementation.
func TestXMPPUserProsody(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody")
	}
	const host, pass = "x.test", "pw"
	srv := prosodytest.Start(t, prosodytest.Options{
		VHosts: []string{host}, ComponentDomain: "sms.x.test", Users: map[string]string{
			"xu0@" + host: pass, "xu1@" + host: pass, "peer@" + host: pass,
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := StartXMPPPool(ctx, srv, host, "wrong", 1, NewTracker(), slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "not-authorized") {
		t.Errorf("login with a wrong password: %v", err)
	}
	tr := NewTracker()
	p, err := StartXMPPPool(ctx, srv, host, pass, 2, tr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.users[1].jid; got != "xu1@"+host+"/"+xmppResource {
		t.Errorf("bound %q", got)
	}
	if err := p.Ping(ctx, 0, host, "s1"); err != nil {
		t.Errorf("ping to the server: %v", err)
	}
	// Nothing is attached on the component domain: Prosody answers for it.
	var se *xmppStanzaError
	if err := p.Ping(ctx, 0, "sms.x.test", "c1"); !errors.As(err, &se) || se.Kind != "iq" || se.Condition == "" {
		t.Errorf("ping to a detached component: %v", err)
	}

	peer := srv.Login(t, "peer@"+host, pass, "r")
	tok := tr.Next(SMSToXMPP)
	tr.Acked(tok)
	full := xmppUserName(0) + "@" + host + "/" + xmppResource
	if _, err := peer.SendOrg(fmt.Sprintf("<message type='chat' to='%s' id='c1'><body>%s hi</body></message>"+
		"<iq type='get' to='%s' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>", full, tok, full)); err != nil {
		t.Fatal(err)
	}
	if iq := peer.WaitIQ(t, "ping1"); iq.Type != "result" {
		t.Errorf("ping answered with %+v", iq)
	}
	if p.Received() != 1 || tr.delivered[SMSToXMPP].Load() != 1 {
		t.Errorf("received %d, delivered %d", p.Received(), tr.delivered[SMSToXMPP].Load())
	}
	// Prosody answers an approval with the new contact's presence.
	peer.RequestSubscription(xmppUserName(1) + "@" + host)
	peer.Wait(t, "xu1's approval", func(st any) bool {
		pr, ok := st.(goxmpp.Presence)
		return ok && pr.Type == "" && pr.From == p.users[1].jid
	})
}

// FuzzXMPPStanzas feeds a user's reader a stream body: it must neither
// panic nor keep more than the stanza limit, and it must end. More seeds
// are in testdata/fuzz/FuzzXMPPStanzas.
func FuzzXMPPStanzas(f *testing.F) {
	f.Add("<message type='chat' id='m1'><body>#e1.2# hi</body></message>")
	f.Fuzz(func(t *testing.T, s string) {
		m := &meter{r: strings.NewReader(testStreamHeader + s), limit: 4 << 10}
		r := &stanzaReader{d: xml.NewDecoder(bufio.NewReaderSize(m, 16)), m: m}
		if _, err := readStreamHeader(r.d); err != nil {
			t.Fatal(err)
		}
		for range len(s) + 1 {
			in, err := r.next()
			if err != nil {
				return
			}
			// The meter stops the reads once limit is reached; the last
			// read fills at most the 16-byte buffer.
			if len(in.body) > m.limit+16 {
				t.Fatalf("body of %d bytes past the %d limit", len(in.body), m.limit)
			}
			if in.kind == "" {
				t.Fatalf("a stanza without a name from %q", s)
			}
		}
		t.Fatalf("more stanzas than bytes in %q", s)
	})
}
