package main

// The fusion proxy end to end: a user of the bridge binds an account on
// another XMPP server (a second Prosody virtual host standing in for
// another IM system); the bridge logs in to it for them, merges its roster
// into their contacts and relays messages both ways between that network
// and the user's SIP phone, holding them while the user is offline.

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/mcp"
)

func TestFusionAccountRelaysBothWays(t *testing.T) {
	const other = "other.test"
	srv, _ := startXMPP(t, prosodytest.Options{
		VHosts: []string{xmppHost, other},
		Users:  map[string]string{"alice@" + other: "a-other", "bob@" + other: "b-other"},
	})
	// alice and bob are contacts of each other on the other network.
	srv.Befriend(t, "alice@"+other, "a-other", "bob@"+other, "b-other")
	bob := srv.Login(t, "bob@"+other, "b-other", "phone")

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok",
		"--fusion-key", strings.Repeat("ab", 32), "--fusion-ca", ca, "--fusion-server", other+"="+srv.C2SAddr, "--mcp-listen", "127.0.0.1:0")
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/users", "tok", map[string]string{"name": "alice", "password": "alicepw"}, nil); code != 201 {
		t.Fatalf("create alice: %d", code)
	}
	phone := startUA(t, "alice", "alicepw")
	if code := phone.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}

	if code := postJSON(t, api+"/v1/users/alice/accounts", "tok", map[string]string{"jid": "alice@" + other, "password": "wrong"}, nil); code != 403 {
		t.Fatalf("bind with a wrong password: %d, want 403", code)
	}
	var view struct{ JID, State string }
	if code := postJSON(t, api+"/v1/users/alice/accounts", "tok", map[string]string{"jid": "alice@" + other, "password": "a-other"}, &view); code != 200 {
		t.Fatalf("bind: %d", code)
	}
	var contacts struct {
		Contacts []struct{ Addresses []string }
	}
	testutil.WaitForState(t, 10*time.Second, func() bool {
		getJSON(t, api+"/v1/users/alice/contacts", "tok", &contacts)
		for _, c := range contacts.Contacts {
			if containsString(c.Addresses, "xmpp:bob@"+other) {
				return true
			}
		}
		return false
	}, func() string { return "bob not among alice's contacts" })
	waitOnline(t, api, "xmpp:bob@"+other, "fusion")

	// bob → alice's account on the other network → alice's SIP phone.
	bob.SendOrg(`<message to='alice@` + other + `' type='chat' id='b1'><body>hi alice, from the other network</body></message>`)
	testutil.WaitFor(t, "bob's message on alice's SIP phone", 10*time.Second, func() bool { return len(phone.received()) == 1 })
	if from := phone.fromOf(0); !strings.Contains(from, "bob%40"+other+"@") {
		t.Fatalf("bob shows to SIP as %q", from)
	}
	// alice answers from SIP: it leaves through her account there.
	if code := phone.message(t, b, "bob%40"+other, "hi bob, from SIP"); code != 202 {
		t.Fatalf("alice's MESSAGE to bob: %d", code)
	}
	got := bob.WaitChat(t, "alice's answer at bob", func(ch goxmpp.Chat) bool { return ch.Text == "hi bob, from SIP" })
	if !strings.HasPrefix(got.Remote, "alice@"+other) {
		t.Fatalf("alice's answer came from %q", got.Remote)
	}

	// alice offline everywhere: bob's next message waits for her.
	if code := phone.register(t, b, 0); code != 200 {
		t.Fatalf("unREGISTER: %d", code)
	}
	bob.SendOrg(`<message to='alice@` + other + `' type='chat' id='b2'><body>while you were away</body></message>`)
	time.Sleep(300 * time.Millisecond) // give it the time it would take to go anywhere
	if n := len(phone.received()); n != 1 {
		t.Fatalf("alice's phone got %d messages while unregistered", n)
	}
	if code := phone.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER again: %d", code)
	}
	testutil.WaitFor(t, "the held message once alice is back", 10*time.Second, func() bool {
		r := phone.received()
		return len(r) == 2 && strings.Contains(r[1], "while you were away")
	})

	// Her handset sees the account and may bind and unbind accounts too.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := registeredHandset(ctx, t, b, "alice", "alicepw")
	service := func(name, body string) *mcp.Message {
		t.Helper()
		m := &mcp.Message{Method: "S", Target: testDomain, Version: mcp.Version}
		m.Add("F", "alice")
		m.Add("I", name)
		m.Add("Q", "1 S")
		m.Add("N", name)
		if body != "" {
			m.SetBody([]byte(body))
		}
		resp, err := h.Request(ctx, m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return resp
	}
	if r := service("GetAccounts", ""); r.Code != 200 || !strings.Contains(string(r.Body), `<account jid="alice@`+other+`" state="online"/>`) {
		t.Fatalf("GetAccounts: %d %s", r.Code, r.Body)
	}
	if r := service("BindAccount", `<args><account jid="bob@`+other+`" password="wrong"/></args>`); r.Code != 403 {
		t.Fatalf("BindAccount with a wrong password: %+v", r)
	}

	req, _ := http.NewRequest("DELETE", api+"/v1/users/alice/accounts/"+url.PathEscape("alice@"+other), nil)
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("unbind: %d", res.StatusCode)
	}
	var list struct{ Accounts []any }
	if getJSON(t, api+"/v1/users/alice/accounts", "tok", &list); len(list.Accounts) != 0 {
		t.Fatalf("accounts after unbind: %+v", list.Accounts)
	}
}
