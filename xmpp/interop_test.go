package xmpp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// The tests here run the gateway against a real Prosody, with go-xmpp as
// the user's client: neither end of the XMPP traffic is this package's.

func TestPresenceFollowsClient(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	b := r.join(t, c)
	if b.AOR != "xmpp:carol@example.test" || b.Via != Via || b.Show != presence.Available {
		t.Fatalf("binding %+v", b)
	}
	if left := time.Until(b.Expires); left < 9*time.Minute || left > 10*time.Minute {
		t.Errorf("binding expires in %v, want the default TTL of 10m", left)
	}
	if !slices.Contains(r.gw.Subscribers(), carol) {
		t.Errorf("subscribers %v lack %s", r.gw.Subscribers(), carol)
	}
	if _, err := r.kv.Get([]byte(subPrefix + carol)); err != nil {
		t.Errorf("subscriber not in the KV: %v", err)
	}

	c.SendOrg("<presence><show>away</show><priority>5</priority></presence>")
	testutil.WaitForState(t, waitFor, func() bool {
		b, ok := r.pres.Lookup("xmpp:carol@example.test")
		return ok && b.Show == presence.Away && b.Priority == 5
	}, func() string {
		return "binding not away: " + strings.Join(bindingsOf(r, "xmpp:carol@example.test"), ", ")
	})

	c.SendPresence(goxmpp.Presence{Type: "unavailable"})
	testutil.WaitForState(t, waitFor, func() bool {
		return len(r.pres.Bindings("xmpp:carol@example.test")) == 0
	}, func() string { return "binding left: " + strings.Join(bindingsOf(r, "xmpp:carol@example.test"), ", ") })
}

func bindingsOf(r *rig, aor msg.Address) []string {
	var out []string
	for _, b := range r.pres.Bindings(aor) {
		out = append(out, b.Contact+" show="+string(rune('0'+b.Show)))
	}
	return out
}

func TestSubscriptionSurvivesAndUnsubscribeForgets(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	r.join(t, c)
	// A gateway started on the same KV knows carol without her asking again.
	g2, err := New(Config{Server: "127.0.0.1:1", Domain: domain, Secret: "x", Stager: r.rec, Presence: r.pres, KV: r.kv})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(g2.Subscribers(), carol) {
		t.Fatalf("subscribers loaded from the KV: %v", g2.Subscribers())
	}
	c.SendPresence(goxmpp.Presence{To: domain, Type: "unsubscribe"})
	testutil.WaitFor(t, "carol to be forgotten", waitFor, func() bool {
		_, err := r.kv.Get([]byte(subPrefix + carol))
		return !slices.Contains(r.gw.Subscribers(), carol) && err != nil
	})
	testutil.WaitFor(t, "carol's bindings to go", waitFor, func() bool {
		return len(r.pres.Bindings("xmpp:carol@example.test")) == 0
	})
}

func TestInboundMessageAndReceipt(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	c.SendOrg(`<message to='+8613900000002@sms.example.test' type='chat' id='c1'>` +
		`<body>hello &amp; goodbye</body><request xmlns='urn:xmpp:receipts'/></message>`)
	testutil.WaitFor(t, "the message to be staged", waitFor, func() bool { return len(r.rec.All()) == 1 })
	m := r.rec.All()[0]
	want := msg.Message{
		ID: "m1", From: "xmpp:carol@example.test", To: "+8613900000002", Text: "hello & goodbye",
		Origin:  msg.Origin{Kind: msg.FromXMPP, Account: carol, Ref: "c1"},
		Receipt: true,
	}
	if m != want {
		t.Fatalf("staged\n %+v\nwant\n %+v", m, want)
	}

	r.gw.Report(context.Background(), &m, msg.Outcome{Delivered: true, State: msg.Delivered, Via: msg.ViaSMS, At: time.Now()})
	got := c.WaitChat(t, "receipt", func(ch goxmpp.Chat) bool {
		e, ok := prosodytest.Elem(ch, "received")
		return ok && prosodytest.Attr(e, "id") == "c1"
	})
	if got.Remote != "+8613900000002@sms.example.test" {
		t.Errorf("receipt from %q", got.Remote)
	}

	// Digits without "+" are an international number too; no receipt was
	// asked for, so none comes; a failure comes back as an error.
	c.SendOrg(`<message to='8613900000003@sms.example.test' type='normal' id='c2'><body>x</body></message>`)
	testutil.WaitFor(t, "the second message", waitFor, func() bool { return len(r.rec.All()) == 2 })
	m2 := r.rec.All()[1]
	if m2.To != "+8613900000003" || m2.Receipt {
		t.Fatalf("second message %+v", m2)
	}
	r.gw.Report(context.Background(), &m2, msg.Outcome{State: msg.Expired, Via: msg.ViaSMS})
	e := c.WaitChat(t, "error for c2", func(ch goxmpp.Chat) bool { return ch.Type == "error" && ch.ID == "c2" })
	if el, ok := prosodytest.Elem(e, "error"); !ok || !strings.Contains(el.InnerXML, "recipient-unavailable") {
		t.Errorf("error for an expired message: %+v", e.OtherElem)
	}
}

func TestInboundRefusals(t *testing.T) {
	r := startRig(t, nil)
	r.rec.RefuseTo("+8613900000004", msg.ErrOverloaded)
	r.rec.RefuseTo("+8613900000005", msg.ErrNoRoute)
	r.rec.RefuseTo("+8613900000006", msg.ErrNotStored)
	c := r.srv.Login(t, carol, carolPW, "phone")
	cases := []struct{ to, id, cond string }{
		{"bob@sms.example.test", "e1", "item-not-found"}, // not a number, no Local mapping
		{"sms.example.test", "e2", "item-not-found"},     // the gateway itself
		{"+8613900000004@sms.example.test", "e3", "resource-constraint"},
		{"+8613900000005@sms.example.test", "e4", "item-not-found"},
		{"+8613900000006@sms.example.test", "e5", "resource-constraint"},
	}
	for _, tc := range cases {
		c.SendOrg(`<message to='` + tc.to + `' type='chat' id='` + tc.id + `'><body>hi</body></message>`)
	}
	big := strings.Repeat("x", MaxText+1)
	c.SendOrg(`<message to='+8613900000002@sms.example.test' type='chat' id='e6'><body>` + big + `</body></message>`)
	cases = append(cases, struct{ to, id, cond string }{"", "e6", "policy-violation"})
	for _, tc := range cases {
		e := c.WaitChat(t, "error for "+tc.id, func(ch goxmpp.Chat) bool { return ch.Type == "error" && ch.ID == tc.id })
		if el, ok := prosodytest.Elem(e, "error"); !ok || !strings.Contains(el.InnerXML, tc.cond) {
			t.Errorf("%s (to %s): error %+v, want %s", tc.id, tc.to, e.OtherElem, tc.cond)
		}
	}
	// Chat states and other bodiless messages are consumed without a word.
	c.SendOrg(`<message to='+8613900000002@sms.example.test' type='chat' id='s1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	c.SendOrg(`<message to='+8613900000002@sms.example.test' type='chat' id='ok'><body>fine</body></message>`)
	testutil.WaitFor(t, "the good message", waitFor, func() bool { return len(r.rec.All()) == 1 })
	if got := r.rec.All()[0]; got.Text != "fine" {
		t.Fatalf("staged %+v", got)
	}
}

func TestSendIMToClient(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	b := r.join(t, c)
	m := &msg.Message{ID: "out1", From: "+8613900000009", To: "xmpp:carol@example.test", Text: "hi\x00 there\x1b!"}
	if err := r.gw.SendIM(context.Background(), m, b); err != nil {
		t.Fatalf("SendIM: %v", err)
	}
	got := c.WaitChat(t, "the bridged message", func(ch goxmpp.Chat) bool { return ch.Text != "" })
	if got.Remote != "+8613900000009@sms.example.test" || got.Text != "hi there!" || got.Type != "chat" {
		t.Fatalf("client got %+v", got)
	}
	if _, ok := prosodytest.Elem(got, "request"); !ok {
		t.Errorf("no receipt request in %+v", got.OtherElem)
	}

	// A sender that is an XMPP user shows as their escaped JID.
	m2 := &msg.Message{ID: "out2", From: "xmpp:dave@example.test", To: "xmpp:carol@example.test", Text: "from dave"}
	if err := r.gw.SendIM(context.Background(), m2, b); err != nil {
		t.Fatalf("SendIM: %v", err)
	}
	got = c.WaitChat(t, "dave's message", func(ch goxmpp.Chat) bool { return ch.Text == "from dave" })
	if got.Remote != `dave\40example.test@sms.example.test` {
		t.Errorf("from %q", got.Remote)
	}

	// The client goes away; the binding is still in hand (as when the
	// router picked it just before): the server answers for the gone
	// client and SendIM fails well within the timeout.
	c.Close()
	start := time.Now()
	err := r.gw.SendIM(context.Background(), &msg.Message{ID: "out3", From: "+8613900000009", Text: "lost"}, b)
	if err == nil {
		t.Fatal("SendIM to a disconnected client succeeded")
	}
	if d := time.Since(start); d > r.gw.cfg.Timeout+time.Second {
		t.Errorf("SendIM took %v, timeout %v", d, r.gw.cfg.Timeout)
	}
	t.Logf("SendIM to the gone client: %v (%v)", err, time.Since(start).Round(time.Millisecond))
	r.gw.mu.Lock()
	left := len(r.gw.pending)
	r.gw.mu.Unlock()
	if left != 0 {
		t.Errorf("%d deliveries still pending", left)
	}
}

func TestSendIMTimesOutOnSilentContact(t *testing.T) {
	r := startRig(t, func(c *Config) { c.Timeout = 700 * time.Millisecond })
	c := r.srv.Login(t, carol, carolPW, "phone")
	b := r.join(t, c)
	// To a bare JID there is no client to ping, so only a receipt can
	// answer, and go-xmpp sends none: the message reaches carol's client
	// and SendIM still gives up after the timeout.
	bare := presence.Binding{AOR: b.AOR, Contact: carol, Via: Via}
	start := time.Now()
	err := r.gw.SendIM(context.Background(), &msg.Message{ID: "t1", From: "+8613900000009", Text: "unconfirmed"}, bare)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("SendIM to a silent bare JID: %v, want ErrNoAnswer", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond || d > 2*time.Second {
		t.Errorf("timed out after %v", d)
	}
	c.WaitChat(t, "the unconfirmed message", func(ch goxmpp.Chat) bool { return ch.Text == "unconfirmed" })
}

func TestReconnectAfterServerRestart(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	r.join(t, c)

	// A crash: the server is killed and starts again on the same ports.
	r.srv.Restart(t)
	testutil.WaitFor(t, "the gateway to reconnect", waitFor, r.gw.Connected)
	// The subscription is in carol's roster on the server: logging in
	// again is enough for her presence to reach the gateway.
	c2 := r.srv.Login(t, carol, carolPW, "laptop")
	b := r.waitBinding(t, c2.JID())
	if err := r.gw.SendIM(context.Background(), &msg.Message{ID: "o1", From: "+8613900000009", Text: "back"}, b); err != nil {
		t.Fatalf("SendIM after reconnect: %v", err)
	}
	c2.WaitChat(t, "the message after reconnect", func(ch goxmpp.Chat) bool { return ch.Text == "back" })

	// An outage: while the server is down SendIM fails at once, so the
	// router can turn to SMS; the gateway comes back with the server.
	r.srv.Stop()
	testutil.WaitFor(t, "the gateway to notice", waitFor, func() bool { return !r.gw.Connected() })
	start := time.Now()
	err := r.gw.SendIM(context.Background(), &msg.Message{ID: "o2", From: "+8613900000009", Text: "x"}, b)
	if !errors.Is(err, ErrNotConnected) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("SendIM while down: %v after %v, want ErrNotConnected at once", err, time.Since(start))
	}
	r.srv.Restart(t)
	testutil.WaitFor(t, "the gateway to reconnect", waitFor, r.gw.Connected)
	c3 := r.srv.Login(t, carol, carolPW, "tablet")
	b = r.waitBinding(t, c3.JID())
	if err := r.gw.SendIM(context.Background(), &msg.Message{ID: "o3", From: "+8613900000009", Text: "again"}, b); err != nil {
		t.Fatalf("SendIM after the outage: %v", err)
	}
	c3.WaitChat(t, "the message after the outage", func(ch goxmpp.Chat) bool { return ch.Text == "again" })
}

func TestDiscoPingAndUnknownIQ(t *testing.T) {
	r := startRig(t, nil)
	c := r.srv.Login(t, carol, carolPW, "phone")
	if _, err := c.RawInformation(c.JID(), domain, "d1", "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RawInformation(c.JID(), domain, "p1", "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RawInformation(c.JID(), domain, "u1", "get", "<query xmlns='jabber:iq:version'/>"); err != nil {
		t.Fatal(err)
	}
	disco := c.Wait(t, "disco#info result", func(st any) bool {
		d, ok := st.(goxmpp.DiscoResult)
		return ok && d.ID == "d1"
	}).(goxmpp.DiscoResult)
	if len(disco.Identities) != 1 || disco.Identities[0].Category != "gateway" || disco.Identities[0].Type != "sms" {
		t.Errorf("identities %+v", disco.Identities)
	}
	for _, f := range []string{xmppwire.NSReceipts, xmppwire.NSPing} {
		if !slices.Contains(disco.Features, f) {
			t.Errorf("features %v lack %s", disco.Features, f)
		}
	}
	if iq := c.WaitIQ(t, "p1"); iq.Type != "result" {
		t.Errorf("ping answered %+v", iq)
	}
	if iq := c.WaitIQ(t, "u1"); iq.Type != "error" || iq.Error.Condition != "service-unavailable" {
		t.Errorf("unknown IQ answered %+v", iq)
	}
}
