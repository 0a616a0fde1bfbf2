package xmpp

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// The tests here run the gateway against a scripted XEP-0114 server, for
// what a real server does not send: malformed and oversized stanzas,
// answers from the wrong sender, a refused handshake. They need no Prosody.

const fakeSecret = "s3cret"

// fakeServer accepts component connections and hands each, after the
// handshake, to the test.
type fakeServer struct {
	l       net.Listener
	conns   chan *fakeConn
	accepts atomic.Int32
	refuse  atomic.Bool // answer the handshake with a stream error
}

type fakeConn struct {
	net.Conn
	dec *xml.Decoder
}

func startFake(t testing.TB) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{l: l, conns: make(chan *fakeConn, 16)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			go f.handshake(c)
		}
	}()
	return f
}

func (f *fakeServer) handshake(c net.Conn) {
	r := bufio.NewReader(c)
	if _, err := r.ReadString('>'); err != nil { // the stream header
		c.Close()
		return
	}
	fmt.Fprintf(c, `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='fake1' from='%s'>`, domain)
	dec := xml.NewDecoder(r)
	var hs struct {
		Value string `xml:",chardata"`
	}
	if err := dec.Decode(&hs); err != nil {
		c.Close()
		return
	}
	sum := sha1.Sum([]byte("fake1" + fakeSecret))
	if f.refuse.Load() || hs.Value != hex.EncodeToString(sum[:]) {
		io.WriteString(c, `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
		c.Close()
		return
	}
	io.WriteString(c, "<handshake/>")
	f.conns <- &fakeConn{Conn: c, dec: dec}
}

func (f *fakeServer) next(t testing.TB) *fakeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(waitFor):
		t.Fatal("the gateway did not connect")
		return nil
	}
}

// read returns the next stanza the gateway sent, as its start element and
// inner XML.
func (c *fakeConn) read(t testing.TB) (xml.StartElement, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			t.Fatalf("reading from the gateway: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			var inner struct {
				XML string `xml:",innerxml"`
			}
			if err := c.dec.DecodeElement(&inner, &s); err != nil {
				t.Fatal(err)
			}
			return s, inner.XML
		}
	}
}

// readUntil skips stanzas (presence sent on connect) until one named local.
func (c *fakeConn) readUntil(t testing.TB, local string) (xml.StartElement, string) {
	t.Helper()
	for {
		s, inner := c.read(t)
		if s.Name.Local == local {
			return s, inner
		}
	}
}

func (c *fakeConn) write(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func attrVal(s xml.StartElement, name string) string { return xmppwire.Attr(s, name) }

// startFakeGateway runs a gateway against a fake server.
func startFakeGateway(t testing.TB, f *fakeServer, tune func(*Config)) (*Gateway, *testutil.Stager, *presence.Store) {
	t.Helper()
	pres, _ := presence.Open(presence.Options{})
	rec := &testutil.Stager{}
	cfg := Config{
		Server: f.l.Addr().String(), Domain: domain, Secret: fakeSecret,
		Stager: rec, Presence: pres, Timeout: time.Second, Logger: testLogger(t),
	}
	if tune != nil {
		tune(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g, rec, pres
}

func TestFakeOversizedStanzaDropsStream(t *testing.T) {
	f := startFake(t)
	g, rec, _ := startFakeGateway(t, f, nil)
	c := f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
	c.write(t, `<message from='carol@example.test/x' to='+8613900000002@sms.example.test' type='chat' id='big'><body>`)
	chunk := strings.Repeat("y", 64<<10)
	var err error
	for i := 0; i < 2*maxStanza/len(chunk) && err == nil; i++ {
		_, err = io.WriteString(c, chunk)
	}
	// The gateway gives up on that stream and opens a new one.
	c2 := f.next(t)
	testutil.WaitFor(t, "reconnected", waitFor, g.Connected)
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d messages staged from the oversized stream", n)
	}
	// The new stream works.
	c2.write(t, `<message from='carol@example.test/x' to='+8613900000002@sms.example.test' type='chat' id='ok'><body>fine</body></message>`)
	testutil.WaitFor(t, "the message on the new stream", waitFor, func() bool { return len(rec.All()) == 1 })
}

func TestFakeOddStanzasKeepStream(t *testing.T) {
	f := startFake(t)
	g, rec, pres := startFakeGateway(t, f, nil)
	c := f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
	// An IQ from an address mellium cannot parse still gets our answer
	// (mellium would end the stream answering it itself).
	c.write(t, `<iq from='a@b@c' to='sms.example.test' type='get' id='q1'><query xmlns='urn:example'/></iq>`)
	s, inner := c.readUntil(t, "iq")
	if attrVal(s, "type") != "error" || attrVal(s, "id") != "q1" || !strings.Contains(inner, "service-unavailable") {
		t.Fatalf("odd IQ answered %v %s", s, inner)
	}
	for _, st := range []string{
		`<message to='+8613900000002@sms.example.test' type='chat' id='n1'><body>no sender</body></message>`,
		`<message from='carol@example.test/x' to='+8613900000002@sms.example.test' type='headline'><body>news</body></message>`,
		`<message from='carol@example.test/x' to='+8613900000002@sms.example.test' type='chat'><received xmlns='urn:xmpp:receipts' id='nobody'/></message>`,
		`<presence from='carol@example.test/x' to='sms.example.test'><priority>zillion</priority><x xmlns='urn:example'><deep><deeper/></deep></x></presence>`,
		`<iq from='carol@example.test/x' to='sms.example.test' type='result' id='unknown'/>`,
		`<unknown-top-level xmlns='urn:example'>ignored</unknown-top-level>`,
	} {
		c.write(t, st)
	}
	c.write(t, `<message from='carol@example.test/x' to='+8613900000002@sms.example.test' type='groupchat' id='g1'><body>room</body></message>`)
	s, inner = c.readUntil(t, "message")
	if attrVal(s, "type") != "error" || attrVal(s, "id") != "g1" || !strings.Contains(inner, "service-unavailable") {
		t.Fatalf("groupchat answered %v %s", s, inner)
	}
	c.write(t, `<iq from='carol@example.test/x' to='sms.example.test' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	s, _ = c.readUntil(t, "iq")
	if attrVal(s, "type") != "result" || attrVal(s, "id") != "p1" || attrVal(s, "from") != domain || attrVal(s, "to") != "carol@example.test/x" {
		t.Fatalf("ping answered %v", s)
	}
	if !g.Connected() || f.accepts.Load() != 1 {
		t.Fatalf("stream replaced: connected %v, %d connections", g.Connected(), f.accepts.Load())
	}
	if len(rec.All()) != 0 {
		t.Fatalf("staged %+v", rec.All())
	}
	testutil.WaitFor(t, "the binding of the odd presence", waitFor, func() bool {
		_, ok := pres.Lookup("xmpp:carol@example.test")
		return ok
	})
	if b, _ := pres.Lookup("xmpp:carol@example.test"); b.Priority != 0 || b.Contact != "carol@example.test/x" {
		t.Fatalf("binding from the odd presence: %+v", b)
	}
}

func TestFakeSendIMAnswers(t *testing.T) {
	f := startFake(t)
	var rtts atomic.Int64
	g, _, _ := startFakeGateway(t, f, func(c *Config) {
		c.OnPing = func(d time.Duration) {
			if d > 0 {
				rtts.Add(1)
			}
		}
	})
	c := f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
	b := presence.Binding{AOR: "xmpp:carol@example.test", Contact: "carol@example.test/x", Via: Via}

	cases := []struct {
		name   string
		answer func(msgID, pingID string) string
		want   error // nil: success; errNone: any error
	}{
		{"receipt", func(id, _ string) string {
			return `<message from='carol@example.test/x' to='+8613900000009@sms.example.test'><received xmlns='urn:xmpp:receipts' id='` + id + `'/></message>`
		}, nil},
		{"receipt from another resource of the user", func(id, _ string) string {
			return `<message from='carol@example.test/other' to='+8613900000009@sms.example.test'><received xmlns='urn:xmpp:receipts' id='` + id + `'/></message>`
		}, nil},
		{"ping result", func(_, pid string) string {
			return `<iq from='carol@example.test/x' to='sms.example.test' type='result' id='` + pid + `'/>`
		}, nil},
		{"message error", func(id, _ string) string {
			return `<message from='carol@example.test/x2' to='+8613900000009@sms.example.test' type='error' id='` + id + `'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`
		}, errAny},
		{"ping error", func(_, pid string) string {
			return `<iq from='carol@example.test/x' to='sms.example.test' type='error' id='` + pid + `'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`
		}, errAny},
		{"receipt forged by someone else", func(id, _ string) string {
			return `<message from='mallory@example.test/x' to='+8613900000009@sms.example.test'><received xmlns='urn:xmpp:receipts' id='` + id + `'/></message>`
		}, ErrNoAnswer},
		{"no answer", func(string, string) string { return "" }, ErrNoAnswer},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &msg.Message{ID: fmt.Sprintf("f%d", i), From: "+8613900000009", To: b.AOR, Text: "t<&>\x01"}
			// A resource each: a ping left unanswered holds back the next
			// one to the same client (see TestFakePingsBatched).
			b := b
			b.Contact = fmt.Sprintf("%s%d", b.Contact, i)
			errc := make(chan error, 1)
			go func() { errc <- g.SendIM(context.Background(), m, b) }()
			ms, inner := c.readUntil(t, "message")
			if !strings.Contains(inner, "t&lt;&amp;&gt;</body>") || !strings.Contains(inner, "urn:xmpp:receipts") {
				t.Errorf("message %s", inner)
			}
			ps, _ := c.readUntil(t, "iq")
			if attrVal(ps, "to") != b.Contact || attrVal(ms, "to") != b.Contact || attrVal(ps, "id") == attrVal(ms, "id") {
				t.Errorf("ping %v after message %v", ps, ms)
			}
			if a := tc.answer(attrVal(ms, "id"), attrVal(ps, "id")); a != "" {
				c.write(t, a)
			}
			err := <-errc
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("SendIM: %v", err)
			case tc.want == errAny && err == nil:
				t.Fatal("SendIM succeeded")
			case tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Fatalf("SendIM: %v, want %v", err, tc.want)
			}
		})
	}
	if n := g.Pending(); n != 0 {
		t.Fatalf("%d deliveries left pending", n)
	}
	// Each case wrote its message and a ping; three were answered, one of
	// them by the ping's result.
	st := &g.Stats
	if got := [...]uint64{st.Streams.Load(), st.Sent.Load(), st.Confirmed.Load(), st.Unconfirmed.Load(), st.Pings.Load(), uint64(rtts.Load())}; got != [...]uint64{1, 7, 3, 4, 7, 1} {
		t.Fatalf("streams, sent, confirmed, unconfirmed, pings, round trips = %v, want [1 7 3 4 7 1]", got)
	}
}

var errAny = errors.New("any error")

func TestFakeRefusedHandshakeRetries(t *testing.T) {
	f := startFake(t)
	f.refuse.Store(true)
	g, _, _ := startFakeGateway(t, f, nil)
	testutil.WaitFor(t, "three attempts", waitFor, func() bool { return f.accepts.Load() >= 3 })
	if g.Connected() {
		t.Fatal("connected with a refused handshake")
	}
	f.refuse.Store(false)
	f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
}

// Messages written to a client while a ping to it is unanswered wait for
// the next ping, sent once that one is answered: one ping confirms them
// all, and none is confirmed by a ping written before it.
func TestFakePingsBatched(t *testing.T) {
	f := startFake(t)
	g, _, _ := startFakeGateway(t, f, nil)
	c := f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
	b := presence.Binding{AOR: "xmpp:carol@example.test", Contact: "carol@example.test/y", Via: Via}
	send := func(i int, errc chan<- error) {
		m := &msg.Message{ID: fmt.Sprintf("b%d", i), From: "+8613900000009", To: b.AOR, Text: fmt.Sprint("batch ", i)}
		errc <- g.SendIM(context.Background(), m, b)
	}
	first := make(chan error, 1)
	go send(0, first)
	c.readUntil(t, "message")
	ping1, _ := c.read(t)
	if ping1.Name.Local != "iq" {
		t.Fatalf("%s after the first message, want its ping", ping1.Name.Local)
	}
	const more = 4
	rest := make(chan error, more)
	for i := 1; i <= more; i++ {
		go send(i, rest)
	}
	for range more {
		if s, _ := c.read(t); s.Name.Local != "message" {
			t.Fatalf("%s while the first ping is unanswered, want only messages", s.Name.Local)
		}
	}
	select {
	case err := <-rest:
		t.Fatalf("a message written after the first ping was confirmed by it (err %v)", err)
	default:
	}
	c.write(t, `<iq from='carol@example.test/y' to='sms.example.test' type='result' id='`+attrVal(ping1, "id")+`'/>`)
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	ping2, _ := c.read(t)
	if ping2.Name.Local != "iq" || attrVal(ping2, "id") == attrVal(ping1, "id") {
		t.Fatalf("after the first answer: %v, want the next ping", ping2)
	}
	c.write(t, `<iq from='carol@example.test/y' to='sms.example.test' type='result' id='`+attrVal(ping2, "id")+`'/>`)
	for range more {
		if err := <-rest; err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending)+len(g.pings)+len(g.pingers) != 0 {
		t.Fatalf("left: %d deliveries, %d pings, %d pingers", len(g.pending), len(g.pings), len(g.pingers))
	}
}

// With Config.PingGap the next ping to a client waits until that long
// after the last, however soon the last was answered; the pinger is
// forgotten once nothing waits on it.
func TestFakePingGap(t *testing.T) {
	const gap = 300 * time.Millisecond
	f := startFake(t)
	g, _, _ := startFakeGateway(t, f, func(c *Config) { c.PingGap = gap })
	c := f.next(t)
	testutil.WaitFor(t, "connected", waitFor, g.Connected)
	b := presence.Binding{AOR: "xmpp:carol@example.test", Contact: "carol@example.test/y", Via: Via}
	send := func(i int) <-chan error {
		errc := make(chan error, 1)
		m := &msg.Message{ID: fmt.Sprintf("g%d", i), From: "+8613900000009", To: b.AOR, Text: fmt.Sprint("gap ", i)}
		go func() { errc <- g.SendIM(context.Background(), m, b) }()
		return errc
	}
	start := time.Now() // before the first ping's round begins
	var second time.Time
	for i := range 2 {
		done := send(i)
		c.readUntil(t, "message")
		ping, _ := c.read(t)
		if ping.Name.Local != "iq" {
			t.Fatalf("%s after message %d, want its ping", ping.Name.Local, i)
		}
		second = time.Now()
		c.write(t, `<iq from='carol@example.test/y' to='sms.example.test' type='result' id='`+attrVal(ping, "id")+`'/>`)
		if err := <-done; err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if d := second.Sub(start); d < gap {
		t.Fatalf("second ping %v after the first began, want at least %v", d, gap)
	}
	testutil.WaitFor(t, "the pinger forgotten", waitFor, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending)+len(g.pings)+len(g.pingers) == 0
	})
}

// BenchmarkSendIM delivers to a client that answers every ping at once.
func BenchmarkSendIM(b *testing.B) {
	f := startFake(b)
	g, _, _ := startFakeGateway(b, f, nil)
	c := f.next(b)
	testutil.WaitFor(b, "connected", waitFor, g.Connected)
	go func() {
		for {
			tok, err := c.dec.Token()
			if err != nil {
				return
			}
			s, ok := tok.(xml.StartElement)
			if !ok || s.Name.Local != "iq" {
				continue
			}
			c.dec.Skip()
			fmt.Fprintf(c, `<iq from='%s' to='%s' type='result' id='%s'/>`, xmppwire.Attr(s, "to"), domain, xmppwire.Attr(s, "id"))
		}
	}()
	bind := presence.Binding{AOR: "xmpp:carol@example.test", Contact: "carol@example.test/x", Via: Via}
	m := &msg.Message{ID: "bench", From: "+8613900000009", To: bind.AOR, Text: "hello from the bench"}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.SendIM(context.Background(), m, bind); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) != 0 {
		b.Fatalf("%d deliveries left pending", len(g.pending))
	}
}
