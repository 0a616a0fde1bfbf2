package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
)

// TestXMPPRoutes runs SMS→XMPP and XMPP→SMS, ceiling then bridge, against a
// real Prosody and a spawned bridge for about two seconds, and checks that
// both routes delivered in both phases, with nothing lost, refused or
// unparsed, and that Prosody's CPU was read. Without prosody it skips
// (fails with BRIDGE_REQUIRE_INTEROP=1).
func TestXMPPRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a bridge and Prosody")
	}
	if err := prosodytest.Available(); err != nil {
		if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("%v and BRIDGE_REQUIRE_INTEROP=1", err)
		}
		t.Skipf("%v (Debian package prosody); set BRIDGE_REQUIRE_INTEROP=1 to make this fatal", err)
	}
	rep, progress := runBench(t,
		"--rate", "300", "--duration", "2s", "--warmup", "300ms", "--ceiling-duration", "1s",
		"--users", "4", "--xmpp-users", "10", "--binds", "2", "--window", "16", "--xmpp-window", "16",
		"--mix", "sms-xmpp:1,xmpp-sms:1", "--alphabet", "gsm7:2,ucs2:1,long:1",
		"--bridge-arg=--xmpp-ping-gap=50ms")
	// Both phases batch their pings with the bridge's gap, and Prosody runs
	// at the bench's priority (root only can raise it).
	if rep.Options.XMPPPingGap != 50*time.Millisecond {
		t.Errorf("ping gap %v, want the bridge's 50ms", rep.Options.XMPPPingGap)
	}
	if os.Geteuid() == 0 && (rep.Options.ProsodyNice != -10 || rep.Options.ProsodyNiceErr != "") {
		t.Errorf("prosody nice %d (%q), want -10 set", rep.Options.ProsodyNice, rep.Options.ProsodyNiceErr)
	}
	for _, name := range []string{"ceiling", "bridge"} {
		p := rep.Phase(name)
		if p == nil {
			t.Fatalf("no %s phase: %+v", name, rep.Phases)
		}
		for _, r := range []string{"sms-xmpp", "xmpp-sms"} {
			if rr := p.Routes[r]; rr.Delivered == 0 || rr.Lost != 0 {
				t.Errorf("%s %s: delivered %d, lost %d", name, r, rr.Delivered, rr.Lost)
			}
		}
		if p.Lost != 0 || p.Errors != 0 || p.Throttled != 0 || p.Duplicates != 0 || p.Unknown != 0 ||
			p.SMSCBad != 0 || p.XMPPBad != 0 || p.Elsewhere != 0 {
			t.Errorf("%s: lost %d (samples %v), errors %d, throttled %d, dups %d, unknown %d, bad %d/%d, elsewhere %d\n%s",
				name, p.Lost, p.LostSamples, p.Errors, p.Throttled, p.Duplicates, p.Unknown, p.SMSCBad, p.XMPPBad,
				p.Elsewhere, p.BridgeLogTail)
		}
		if p.Prosody == nil || p.Prosody.PID == 0 || p.Prosody.CPUSeconds <= 0 {
			t.Errorf("%s: Prosody's CPU not read: %+v", name, p.Prosody)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
	}
}

func TestTrackerElsewhere(t *testing.T) {
	tr := NewTracker()
	a, b := tr.Next(SMSToXMPP), tr.Next(SMSToXMPP)
	tr.Acked(a)
	tr.Acked(b)
	tr.DeliveredAt(a, AtXMPP)
	tr.DeliveredAt(b, AtSMS) // the bridge fell back to SMS
	tr.DeliveredAt(b, AtSMS) // a duplicate is not counted again
	if d, e := tr.delivered[SMSToXMPP].Load(), tr.elsewhere[SMSToXMPP].Load(); d != 2 || e != 1 {
		t.Errorf("delivered %d, elsewhere %d; want 2 and 1", d, e)
	}
	if f := tr.Census(); f.Lost != 0 || f.Delivered != 2 {
		t.Errorf("census %+v", f)
	}
}

func TestXMPPNumbers(t *testing.T) {
	for _, i := range []int{0, 7, 99999999} {
		if got, ok := xmppIndex(xmppNumber(i)); !ok || got != i {
			t.Errorf("xmppIndex(xmppNumber(%d)) = %d, %v", i, got, ok)
		}
		if got, ok := xmppIndex("+" + xmppNumber(i)); !ok || got != i {
			t.Errorf("with +: %d, %v", got, ok)
		}
	}
	for _, bad := range []string{"", "86135", "8613500000001x", "86139000000001", "861350000000012", "86135-0000001", "86135+0000001"} {
		if i, ok := xmppIndex(bad); ok {
			t.Errorf("xmppIndex(%q) = %d", bad, i)
		}
	}
}

// TestComponentWire plays Prosody's side of a component stream by hand:
// the handshake, a ping the echo peer answers, a message it counts, and a
// Deliver completed by the ping's answer or failed by an error stanza.
func TestComponentWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type server struct {
		conn net.Conn
		r    *bufio.Reader
	}
	srvc := make(chan server, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r := bufio.NewReader(c)
		// the stream header, answered with ours
		if _, err := r.ReadString('>'); err != nil { // <?xml ...?>
			return
		}
		if _, err := r.ReadString('>'); err != nil { // <stream:stream ...>
			return
		}
		fmt.Fprint(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='sms.x.test'>")
		hs, err := r.ReadString('/')
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte("s1" + "sec"))
		if !strings.Contains(hs, hex.EncodeToString(sum[:])) {
			fmt.Fprint(c, "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
			return
		}
		_, _ = r.ReadString('>')
		fmt.Fprint(c, "<handshake/>")
		srvc <- server{c, r}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	comp, err := DialComponent(ctx, ln.Addr().String(), "sms.x.test", "sec", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer comp.Close()
	srv := <-srvc
	defer srv.conn.Close()
	readStanza := func(end string) string {
		t.Helper()
		var b strings.Builder
		for !strings.HasSuffix(b.String(), end) {
			s, err := srv.r.ReadString('>')
			if err != nil {
				t.Fatalf("read: %v (%q)", err, b.String())
			}
			b.WriteString(s)
		}
		return b.String()
	}

	fmt.Fprint(srv.conn, "<message from='u@x.test/r' to='+861@sms.x.test' type='chat' id='m1'><body>#f1.2# hi</body></message>"+
		"<iq type='get' id='p1' from='u@x.test/r' to='sms.x.test'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := readStanza("/>"); !strings.Contains(got, "type='result'") || !strings.Contains(got, "id='p1'") ||
		!strings.Contains(got, "to='u@x.test/r'") || !strings.Contains(got, "from='sms.x.test'") {
		t.Errorf("pong %q", got)
	}
	if comp.Received() != 1 {
		t.Errorf("received %d messages, want 1", comp.Received())
	}

	done := make(chan error, 1)
	// deliver is what the relay does: write, then await the confirmation.
	deliver := func(from, to, text string) error {
		d, err := comp.Send(from, to, text)
		if err != nil {
			return err
		}
		return d.Wait(ctx)
	}
	go func() { done <- deliver("+862@sms.x.test", "u@x.test/r", "a < b") }()
	msg := readStanza("</message>")
	ping := readStanza("</iq>")
	if !strings.Contains(msg, "<body>a &lt; b</body>") || !strings.Contains(msg, "urn:xmpp:receipts") || !strings.Contains(ping, "urn:xmpp:ping") {
		t.Fatalf("delivery %q %q", msg, ping)
	}
	idOf := func(stanza string) string {
		id := stanza[strings.Index(stanza, "id='")+4:]
		return id[:strings.IndexByte(id, '\'')]
	}
	fmt.Fprintf(srv.conn, "<iq type='result' id='%s' from='u@x.test/r' to='sms.x.test'/>", idOf(ping))
	if err := <-done; err != nil {
		t.Fatalf("delivery: %v", err)
	}

	// Messages written while a ping to their client is out wait for the
	// next ping, and one answer confirms both, as the bridge batches.
	go func() { done <- deliver("+862@sms.x.test", "v@x.test/r", "1") }()
	readStanza("</message>")
	first := readStanza("</iq>")
	two := make(chan error, 2)
	for _, text := range []string{"2", "3"} {
		go func() { two <- deliver("+862@sms.x.test", "v@x.test/r", text) }()
	}
	for range 2 {
		if m := readStanza("</message>"); strings.Contains(m, "<iq") || !strings.Contains(m, "<body>") {
			t.Fatalf("want two messages without a ping, got %q", m)
		}
	}
	fmt.Fprintf(srv.conn, "<iq type='result' id='%s' from='v@x.test/r' to='sms.x.test'/>", idOf(first))
	if err := <-done; err != nil {
		t.Fatalf("Deliver before the batch: %v", err)
	}
	next := readStanza("</iq>")
	if !strings.Contains(next, "urn:xmpp:ping") || !strings.Contains(next, "to='v@x.test/r'") || idOf(next) == idOf(first) {
		t.Fatalf("the batch's ping %q", next)
	}
	select {
	case err := <-two:
		t.Fatalf("a batched message was confirmed before its ping's answer: %v", err)
	default:
	}
	fmt.Fprintf(srv.conn, "<iq type='result' id='%s' from='v@x.test/r' to='sms.x.test'/>", idOf(next))
	for range 2 {
		if err := <-two; err != nil {
			t.Fatalf("batched delivery: %v", err)
		}
	}

	go func() { done <- deliver("+862@sms.x.test", "u@x.test/r", "x") }()
	msg = readStanza("</message>")
	readStanza("</iq>")
	fmt.Fprintf(srv.conn, "<message type='error' id='%s' from='u@x.test/r' to='+862@sms.x.test'><error type='cancel'>"+
		"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", idOf(msg))
	var se *xmppStanzaError
	if err := <-done; !errors.As(err, &se) || se.Condition != "service-unavailable" || se.Type != "cancel" || xmppThrottled(err) {
		t.Fatalf("Deliver answered with an error stanza: %v", err)
	}
}

func TestWatchedExited(t *testing.T) {
	self := watch(&ProcResult{}, func() []int { return []int{os.Getpid()} })
	self.prev = self.sample()
	gone := watch(&ProcResult{}, func() []int { return []int{1 << 30} }) // beyond pid_max
	if s := gone.sample(); s != (ProcSample{}) || !gone.res.Exited {
		t.Errorf("sample of a missing process: %+v, exited %v", s, gone.res.Exited)
	}
	if self.res.Exited || self.prev.RSSBytes == 0 {
		t.Errorf("own process: %+v %+v", self.prev, self.res)
	}
}
