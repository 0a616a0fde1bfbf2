package fusion

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// The tests here run the proxy against a real Prosody serving other.test,
// with go-xmpp as bob's (and alice's own) client: neither end of the XMPP
// traffic is this package's.

func TestBindChecksPasswordAndReadsRoster(t *testing.T) {
	r := startRig(t)
	r.run(t)

	_, err := r.p.Bind(context.Background(), "alice", alice, "wrong")
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("Bind with a wrong password: %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	if n := r.kv.Len(); n != 0 || len(r.p.Accounts("alice")) != 0 {
		t.Fatalf("after a refused Bind: %d records, accounts %+v", n, r.p.Accounts("alice"))
	}

	r.bind(t)
	// Prosody writes its log with a delay.
	testutil.WaitFor(t, "an authentication with SCRAM in Prosody's log", waitFor, func() bool {
		return scramAuth(r.srv.LogTail(100000))
	})
	if v := r.state(); v.Contacts != 1 || v.Error != "" {
		t.Errorf("account %+v, want 1 contact", v)
	}
	testutil.WaitFor(t, "OnRoster with bob", waitFor, func() bool {
		got := r.rosters.last()
		return len(got) == 1 && got[0] == RosterItem{JID: bob}
	})
	if r.kv.Len() != 1 {
		t.Fatalf("%d records stored, want 1", r.kv.Len())
	}
	r.kv.Iterate(nil, func(k, v []byte) error {
		if strings.Contains(string(v), alicePW) || !strings.HasPrefix(string(k), keyPrefix+"alice\x00"+alice) {
			t.Fatalf("record %q = %q: not sealed, or under the wrong key", k, v)
		}
		return nil
	})
	// Another user's account view does not show alice's.
	if got := r.p.Accounts("eve"); len(got) != 0 {
		t.Errorf("eve sees %+v", got)
	}
}

func TestContactPresenceBindsAndUnbinds(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)

	c := r.srv.Login(t, bob, bobPW, "phone")
	b := r.waitBob(t, "phone")
	if b.Via != Via || b.Show != presence.Available || b.AOR != bobAOR {
		t.Fatalf("binding %+v", b)
	}
	if left := time.Until(b.Expires); left < 9*time.Minute || left > 10*time.Minute {
		t.Errorf("binding expires in %v, want the default TTL of 10m", left)
	}

	c.SendOrg("<presence><show>dnd</show><priority>7</priority></presence>")
	testutil.WaitFor(t, "bob dnd", waitFor, func() bool {
		b, ok := r.pres.Lookup(bobAOR)
		return ok && b.Show == presence.DoNotDisturb && b.Priority == 7
	})

	// carol is not in alice's roster: her directed presence binds nothing.
	proxy := c.Wait(t, "the proxy's presence", func(st any) bool {
		p, ok := st.(goxmpp.Presence)
		return ok && p.Type == "" && strings.HasPrefix(p.From, alice+"/")
	}).(goxmpp.Presence).From
	carol := r.srv.Login(t, "carol@other.test", "c4rol", "x")
	carol.SendOrg("<presence to='" + proxy + "'/>")
	carol.SendOrg("<message to='" + proxy + "' type='chat' id='c1'><body>after my presence</body></message>")
	testutil.WaitFor(t, "carol's message", waitFor, func() bool { return len(r.rec.All()) == 1 })
	r.flush(t)
	if got := r.pres.Bindings("xmpp:carol@other.test"); len(got) != 0 {
		t.Errorf("a stranger's presence bound: %+v", got)
	}

	c.SendPresence(goxmpp.Presence{Type: "unavailable"})
	testutil.WaitForState(t, waitFor, func() bool { return len(r.pres.Bindings(bobAOR)) == 0 },
		func() string { return "bindings left: " + bindings(r) })
}

func TestOwnResourcesAndRosterPushes(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)

	// alice's own client: its presence is not a contact's, and the roster
	// change it makes reaches the proxy as a push.
	own := r.srv.Login(t, alice, alicePW, "desk")
	own.SendOrg(`<iq type='set' id='add1'><query xmlns='jabber:iq:roster'><item jid='carol@other.test' name='Carol'/></query></iq>`)
	own.WaitIQ(t, "add1")
	testutil.WaitForState(t, waitFor, func() bool {
		got := r.rosters.last()
		return len(got) == 2 && got[0] == RosterItem{JID: bob} && got[1] == RosterItem{JID: "carol@other.test", Name: "Carol"}
	}, func() string { return "" })
	if v := r.state(); v.Contacts != 2 {
		t.Errorf("account %+v, want 2 contacts", v)
	}
	if got := r.pres.Bindings("xmpp:alice@other.test"); len(got) != 0 {
		t.Errorf("alice's own resource bound: %+v", got)
	}

	own.SendOrg(`<iq type='set' id='rm1'><query xmlns='jabber:iq:roster'><item jid='carol@other.test' subscription='remove'/></query></iq>`)
	own.WaitIQ(t, "rm1")
	testutil.WaitFor(t, "carol's removal", waitFor, func() bool { return len(r.rosters.last()) == 1 })
}

func TestInboundMessageStaged(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)
	c := r.srv.Login(t, bob, bobPW, "phone")

	// A chat state alone is consumed, not staged.
	c.SendOrg(`<message to='alice@other.test' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	c.SendOrg(`<message to='alice@other.test' type='chat' id='b1'><body>hi &amp; bye</body><request xmlns='urn:xmpp:receipts'/></message>`)
	testutil.WaitFor(t, "the message to be staged", waitFor, func() bool { return len(r.rec.All()) > 0 })
	want := msg.Message{
		ID: "m1", From: bobAOR, To: userAddress("alice"), Text: "hi & bye",
		Origin: msg.Origin{Kind: msg.FromFusion, Account: alice, Ref: "b1"},
	}
	if got := r.rec.All(); len(got) != 1 || got[0] != want {
		t.Fatalf("staged %+v\nwant %+v", got, want)
	}

	// Not taken in: the contact hears it, wait / resource-constraint.
	r.rec.Refuse(msg.ErrOverloaded)
	c.SendOrg(`<message to='alice@other.test' type='chat' id='b2'><body>busy?</body></message>`)
	expectError(t, c, "b2", "resource-constraint")
	r.rec.Refuse(nil)
	r.rec.FailSettle(true)
	c.SendOrg(`<message to='alice@other.test' type='normal' id='b3'><body>lost?</body></message>`)
	expectError(t, c, "b3", "resource-constraint")
	r.rec.FailSettle(false)

	// Too long: policy-violation, nothing staged.
	n := len(r.rec.All())
	c.SendOrg(`<message to='alice@other.test' type='chat' id='b4'><body>` + strings.Repeat("x", MaxText+1) + `</body></message>`)
	expectError(t, c, "b4", "policy-violation")
	if len(r.rec.All()) != n {
		t.Errorf("a too long message was staged")
	}
}

func expectError(t *testing.T, c *prosodytest.Client, id, cond string) {
	t.Helper()
	e := c.WaitChat(t, "error for "+id, func(ch goxmpp.Chat) bool { return ch.Type == "error" && ch.ID == id })
	if el, ok := prosodytest.Elem(e, "error"); !ok || !strings.Contains(el.InnerXML, cond) {
		t.Errorf("error for %s: %+v, want %s", id, e.OtherElem, cond)
	}
}

func TestSendIMOnlyForTheOwner(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)
	c := r.srv.Login(t, bob, bobPW, "phone")
	b := r.waitBob(t, "phone")
	ctx := context.Background()

	err := r.p.SendIM(ctx, &msg.Message{ID: "x1", From: eveAddr, To: bobAOR, Text: "from eve"}, b)
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("SendIM from another user: %v, want ErrNotOwner", err)
	}
	err = r.p.SendIM(ctx, &msg.Message{ID: "x2", From: "sip:nobody@bridge.test", To: bobAOR, Text: "from nobody"}, b)
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("SendIM from an unknown sender: %v, want ErrNotOwner", err)
	}
	// A binding naming another contact than its AOR is not followed.
	forged := b
	forged.AOR = "xmpp:carol@other.test"
	if err := r.p.SendIM(ctx, &msg.Message{ID: "x3", From: aliceAddr, Text: "forged"}, forged); err == nil {
		t.Fatal("SendIM through a binding whose contact is not its AOR succeeded")
	}

	if err := r.p.SendIM(ctx, &msg.Message{ID: "a1", From: aliceAddr, To: bobAOR, Text: "hello\x00 bob\uFFFE"}, b); err != nil {
		t.Fatalf("SendIM: %v", err)
	}
	foreign := ""
	got := c.WaitChat(t, "alice's message", func(ch goxmpp.Chat) bool {
		if ch.Text == "from eve" || ch.Text == "from nobody" || ch.Text == "forged" {
			foreign = ch.Text
		}
		return ch.Text == "hello bob"
	})
	if foreign != "" {
		t.Errorf("bob got %q", foreign)
	}
	if !strings.HasPrefix(got.Remote, alice+"/") || got.Type != "chat" {
		t.Errorf("message from %q type %q, want from alice's session", got.Remote, got.Type)
	}
	if _, ok := prosodytest.Elem(got, "request"); !ok {
		t.Errorf("no receipt request: %+v", got.OtherElem)
	}

	// A contact gone: the ping fails, and so does the delivery.
	c.Close()
	gone := b
	gone.Contact = strings.Replace(b.Contact, "/phone", "/gone", 1)
	if err := r.p.SendIM(ctx, &msg.Message{ID: "a2", From: aliceAddr, Text: "anyone?"}, gone); err == nil {
		t.Fatal("SendIM to an offline resource succeeded")
	}
}

func TestAccountsSurviveRestart(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)
	r.stop()
	if v := r.state(); v.State != StateOffline {
		t.Errorf("after Run ended: %+v, want offline", v)
	}

	// The same KV and key: back online without binding again.
	r.run(t)
	r.waitState(t, StateOnline)
	r.stop()

	// Another key: New succeeds, the account is shown unreadable, not
	// connected, and stays stored until bound again.
	r.key = newKey(t)
	r.run(t)
	v := r.state()
	if v.State != StateUnreadable || v.Error == "" {
		t.Fatalf("account under another key: %+v, want unreadable with a reason", v)
	}
	if r.kv.Len() != 1 {
		t.Fatalf("%d records, want the unreadable one kept", r.kv.Len())
	}
	r.bind(t) // binding again seals it under the new key
	r.stop()
	r.run(t)
	r.waitState(t, StateOnline)
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)
	c := r.srv.Login(t, bob, bobPW, "phone")
	b := r.waitBob(t, "phone")

	r.srv.Restart(t)
	c.Close() // its stream died with the server
	// The session is lost: its bindings go, it reconnects.
	testutil.WaitForState(t, waitFor, func() bool { return len(r.pres.Bindings(bobAOR)) == 0 },
		func() string { return "bindings left: " + bindings(r) })
	r.waitState(t, StateOnline)

	c2 := r.srv.Login(t, bob, bobPW, "phone")
	b = r.waitBob(t, "phone")
	if err := r.p.SendIM(context.Background(), &msg.Message{ID: "r1", From: aliceAddr, Text: "still here"}, b); err != nil {
		t.Fatalf("SendIM after the restart: %v", err)
	}
	c2.WaitChat(t, "the message after the restart", func(ch goxmpp.Chat) bool { return ch.Text == "still here" })
}

func TestWrongPasswordStopsRetrying(t *testing.T) {
	r := startRig(t)
	// A stored account whose password the server no longer takes (it
	// was changed elsewhere): sealed here as Bind would have.
	k := storageKey("alice", alice)
	s, err := newSealer(r.key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.seal(k, record{User: "alice", JID: alice, Password: "old-password", Bound: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r.kv.Put(context.Background(), []byte(k), sealed)
	var dials atomic.Int32
	cfg := r.config(t)
	resolve := cfg.Resolve
	cfg.Resolve = func(d string) string { dials.Add(1); return resolve(d) }
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	r.p = p
	r.waitState(t, StateAuthFailed)
	if v := r.state(); !strings.Contains(v.Error, ErrAuth.Error()) || strings.Contains(v.Error, "old-password") {
		t.Errorf("account %+v: want the refusal as its error, without the password", v)
	}
	a := p.account("alice", alice)
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("the account's loop still runs after the refusal")
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d logins, want 1: no retries after a refusal", n)
	}
	// Binding again with the right password brings it back.
	r.bind(t)
}

func TestUnbindEndsSessionAndBindings(t *testing.T) {
	r := startRig(t)
	r.run(t)
	r.bind(t)
	c := r.srv.Login(t, bob, bobPW, "phone")
	r.waitBob(t, "phone")

	if err := r.p.Unbind(context.Background(), "eve", alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Unbind of another user's account: %v, want ErrNotFound", err)
	}
	if err := r.p.Unbind(context.Background(), "alice", alice); err != nil {
		t.Fatalf("Unbind: %v", err)
	}
	if got := r.pres.Bindings(bobAOR); len(got) != 0 {
		t.Errorf("bob's bindings after Unbind: %+v", got)
	}
	if r.kv.Len() != 0 || len(r.p.Accounts("alice")) != 0 {
		t.Errorf("after Unbind: %d records, accounts %+v", r.kv.Len(), r.p.Accounts("alice"))
	}
	// bob sees alice's session leave.
	c.Wait(t, "alice's session to leave", func(st any) bool {
		p, ok := st.(goxmpp.Presence)
		return ok && p.Type == "unavailable" && strings.HasPrefix(p.From, alice+"/")
	})
	if err := r.p.Unbind(context.Background(), "alice", alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Unbind: %v, want ErrNotFound", err)
	}
}

func TestBindingsRenewedWhileUp(t *testing.T) {
	r := startRig(t)
	r.ttl = time.Second
	r.run(t)
	r.bind(t)
	r.srv.Login(t, bob, bobPW, "phone")
	first := r.waitBob(t, "phone")
	testutil.WaitFor(t, "the binding to be renewed", waitFor, func() bool {
		b, ok := r.pres.Lookup(bobAOR)
		return ok && b.Expires.After(first.Expires)
	})
}

func bindings(r *rig) string {
	var out []string
	for _, b := range r.pres.Bindings(bobAOR) {
		out = append(out, b.Contact)
	}
	return strings.Join(out, ", ")
}

func TestBindRefusesUnverifiedServer(t *testing.T) {
	r := startRig(t)
	cfg := r.config(t)
	cfg.RootCAs = x509.NewCertPool() // trusts nothing, the test server's certificate included
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Bind(context.Background(), "alice", alice, alicePW)
	if err == nil || errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Bind to a server with an unverifiable certificate: %v", err)
	}
	if r.kv.Len() != 0 {
		t.Fatal("stored although the login failed")
	}
	if scramAuth(r.srv.LogTail(100000)) {
		t.Fatal("credentials were sent to an unverified server")
	}
}

// A server that offers authentication without TLS gets no credentials:
// STARTTLS is demanded even when not offered.
func TestNoAuthenticationWithoutTLS(t *testing.T) {
	srv := prosodytest.Start(t, prosodytest.Options{
		VHosts: []string{"plain.test"},
		Users:  map[string]string{"dave@plain.test": "d4ve"},
		HostConfig: map[string]string{"plain.test": `modules_disabled = { "tls" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true`},
	})
	cfg := testConfig(testutil.NewMemKV(), newKey(t))
	cfg.RootCAs = srv.CertPool()
	cfg.Resolve = func(string) string { return srv.C2SAddr }
	cfg.Logger = logger(t)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(context.Background(), "dave", "dave@plain.test", "d4ve"); err == nil {
		t.Fatal("Bind succeeded on a server without TLS")
	} else {
		t.Logf("Bind without TLS: %v", err)
	}
	log := srv.LogTail(100000)
	if !strings.Contains(log, "Offering usable mechanisms") {
		t.Skip("the server did not offer authentication without TLS; nothing to refuse")
	}
	if strings.Contains(log, "<auth ") {
		t.Fatal("credentials were sent without TLS")
	}
}

// scramAuth reports whether Prosody's log shows a client starting SCRAM
// (Prosody writes the attributes in no fixed order).
func scramAuth(log string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "Received[c2s_unauthed]: <auth ") && strings.Contains(l, "mechanism='SCRAM-SHA-") {
			return true
		}
	}
	return false
}
