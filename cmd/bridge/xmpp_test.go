package main

// XMPP as a second IM network, end to end: a real Prosody (started by the
// test on loopback), the bridge attached to it as a component, XMPP users
// as go-xmpp clients, a fiorix ESME and an SMSC simulator on the SMPP side,
// sipgo user agents on the SIP side.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/login"
)

const (
	xmppHost    = "example.test"
	xmppGateway = "sms.example.test"
)

// startXMPP starts Prosody with users, and returns the bridge flags that
// attach to it.
func startXMPP(t *testing.T, opts prosodytest.Options) (*prosodytest.Server, []string) {
	t.Helper()
	requireInterop(t, "prosody")
	srv := prosodytest.Start(t, opts)
	return srv, []string{"--xmpp-server", srv.ComponentAddr, "--xmpp-domain", srv.ComponentDomain, "--xmpp-secret", srv.Secret}
}

// waitOnline waits until the bridge holds a binding of address via via.
func waitOnline(t *testing.T, api, address, via string) {
	t.Helper()
	waitBinding(t, api, address, func(v string, _ int) bool { return v == via })
}

// waitBinding waits until the bridge holds a binding of address that ok
// accepts, as the API shows it.
func waitBinding(t *testing.T, api, address string, ok func(via string, priority int) bool) {
	t.Helper()
	var view struct {
		Bindings []struct {
			Via, Contact string
			Priority     int
		}
	}
	testutil.WaitForState(t, 10*time.Second, func() bool {
		view.Bindings = nil
		getJSON(t, api+"/v1/presence/"+url.PathEscape(address), "tok", &view)
		for _, b := range view.Bindings {
			if ok(b.Via, b.Priority) {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("%s bindings %+v", address, view.Bindings) })
}

// prosodyLogin logs in: err is nil when the server admitted it.
func prosodyLogin(srv *prosodytest.Server, user, pass string) (*prosodytest.Client, error) {
	return srv.Dial(user, pass, "probe")
}

// An SMS to an XMPP user's number arrives in XMPP from the sender's number
// at the gateway; the user's answer leaves as SMS from their number; the
// receipt they asked for comes back with the SMSC's delivery receipt.
func TestXMPPUserAndSMS(t *testing.T) {
	srv, xargs := startXMPP(t, prosodytest.Options{Users: map[string]string{"carol@" + xmppHost: "c4rol"}})
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(xargs, "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())...)
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/users", "tok", map[string]string{"name": "carol", "password": "carolpw", "msisdn": "+8613800000003"}, nil); code != 201 {
		t.Fatalf("create carol: %d", code)
	}
	if code := postJSON(t, api+"/v1/users/carol/addresses", "tok", map[string]string{"address": "xmpp:carol@" + xmppHost}, nil); code != 200 {
		t.Fatalf("bind carol's JID: %d", code)
	}
	c := srv.Login(t, "carol@"+xmppHost, "c4rol", "phone")
	c.RequestSubscription(xmppGateway)
	waitOnline(t, api, "xmpp:carol@"+xmppHost, "xmpp")

	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000003", pdutext.Raw("to carol's number")); err != nil {
		t.Fatal(err)
	}
	got := c.WaitChat(t, "the SMS in XMPP", func(ch goxmpp.Chat) bool { return ch.Text == "to carol's number" })
	if got.Remote != "+8613900000009@"+xmppGateway {
		t.Fatalf("the SMS came from %q", got.Remote)
	}
	testutil.WaitFor(t, "the delivery confirmed in /metrics", 10*time.Second, func() bool {
		return metricValue(t, b, "bridge_xmpp_confirmed_total") == 1
	})
	if up, sent, streams := metricValue(t, b, "bridge_xmpp_up"), metricValue(t, b, "bridge_xmpp_sent_total"), metricValue(t, b, "bridge_xmpp_streams_total"); up != 1 || sent != 1 || streams != 1 {
		t.Fatalf("bridge_xmpp_up %v, _sent_total %v, _streams_total %v; want 1 each", up, sent, streams)
	}

	c.SendOrg(`<message to='+8613900000009@` + xmppGateway + `' type='chat' id='r1'><body>carol answers</body><request xmlns='urn:xmpp:receipts'/></message>`)
	testutil.WaitFor(t, "carol's answer at the SMSC", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	p := sc.received()[0]
	if p.SourceAddr != "8613800000003" || p.SourceAddrTON != 1 || p.SourceAddrNPI != 1 || p.DestAddr != "8613900000009" || string(p.ShortMessage) != "carol answers" {
		t.Fatalf("carol's SMS: from %q TON %d NPI %d to %q text %q", p.SourceAddr, p.SourceAddrTON, p.SourceAddrNPI, p.DestAddr, p.ShortMessage)
	}
	if p.RegisteredDelivery&1 == 0 {
		t.Fatalf("carol asked for a receipt; the submit_sm asks the SMSC for none (registered_delivery %d)", p.RegisteredDelivery)
	}
	sc.deliverReceipt(t, sc.submittedIDs()[0], "8613900000009", "DELIVRD")
	c.WaitChat(t, "the receipt of carol's answer (XEP-0184, from the SMSC's DELIVRD)", func(ch goxmpp.Chat) bool {
		e, ok := prosodytest.Elem(ch, "received")
		return ok && prosodytest.Attr(e, "id") == "r1"
	})

	// A JID the gateway cannot route gets an error, not silence.
	c.SendOrg(`<message to='nobody-here@` + xmppGateway + `' type='chat' id='bad1'><body>x</body></message>`)
	c.WaitChat(t, "an error for an unroutable JID", func(ch goxmpp.Chat) bool { return ch.Type == "error" && ch.ID == "bad1" })
}

// alice is on SIP and on XMPP: each SMS goes to the better of the two; when
// XMPP goes unavailable the next one arrives on SIP within a second; with
// both offline it goes out as SMS.
func TestPersonOnSIPAndXMPP(t *testing.T) {
	srv, xargs := startXMPP(t, prosodytest.Options{Users: map[string]string{"alice@" + xmppHost: "4lice", "carol@" + xmppHost: "c4rol"}})
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(xargs, "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())...)
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/users", "tok", map[string]string{"name": "alice", "password": "alicepw", "msisdn": "+8613800000001"}, nil); code != 201 {
		t.Fatalf("create alice: %d", code)
	}
	if code := postJSON(t, api+"/v1/users/alice/addresses", "tok", map[string]string{"address": "xmpp:alice@" + xmppHost}, nil); code != 200 {
		t.Fatalf("bind alice's JID: %d", code)
	}
	sipUA := startUA(t, "alice", "alicepw")
	if code := sipUA.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	x := srv.Login(t, "alice@"+xmppHost, "4lice", "laptop")
	x.RequestSubscription(xmppGateway)
	waitOnline(t, api, "xmpp:alice@"+xmppHost, "xmpp")
	x.SendOrg("<presence><priority>5</priority></presence>")
	waitBinding(t, api, "xmpp:alice@"+xmppHost, func(via string, priority int) bool { return via == "xmpp" && priority == 5 })
	submit := func(text string) {
		t.Helper()
		if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000001", pdutext.Raw(text)); err != nil {
			t.Fatal(err)
		}
	}

	submit("one")
	x.WaitChat(t, "the first SMS in XMPP (priority 5 over SIP's 0)", func(ch goxmpp.Chat) bool { return ch.Text == "one" })

	x.SendPresence(goxmpp.Presence{Type: "unavailable"})
	testutil.WaitFor(t, "alice's XMPP binding gone", 10*time.Second, func() bool {
		var view struct{ Bindings []struct{ Via string } }
		getJSON(t, api+"/v1/presence/"+url.PathEscape("xmpp:alice@"+xmppHost), "tok", &view)
		return len(view.Bindings) == 0
	})
	start := time.Now()
	submit("two")
	testutil.WaitFor(t, "the second SMS on SIP", time.Second, func() bool {
		r := sipUA.received()
		return len(r) == 1 && strings.Contains(r[0], "two")
	})
	t.Logf("XMPP unavailable: the next SMS reached SIP in %v", time.Since(start))

	// An XMPP user writing to alice's number reaches her where she is: SIP.
	carol := srv.Login(t, "carol@"+xmppHost, "c4rol", "phone")
	carol.RequestSubscription(xmppGateway) // so that the gateway may write to her
	waitOnline(t, api, "xmpp:carol@"+xmppHost, "xmpp")
	carol.SendOrg(`<message to='+8613800000001@` + xmppGateway + `' type='chat' id='x1'><body>from carol in XMPP</body></message>`)
	testutil.WaitFor(t, "carol's XMPP message on alice's SIP phone", 10*time.Second, func() bool {
		r := sipUA.received()
		return len(r) == 2 && strings.Contains(r[1], "from carol in XMPP")
	})
	if n := len(sc.received()); n != 0 {
		t.Fatalf("%d SMS went out while alice was on SIP", n)
	}
	// Her SIP phone shows carol as sip:carol%40example.test@<domain>; the
	// reply to that reaches carol in XMPP, from alice's name at the gateway.
	if from := sipUA.fromOf(1); !strings.Contains(from, "carol%40example.test@") {
		t.Fatalf("carol shows to SIP as: %q", from)
	}
	if code := sipUA.message(t, b, "carol%40"+xmppHost, "alice answers carol"); code != 202 {
		t.Fatalf("alice's MESSAGE to carol: %d", code)
	}
	if got := carol.WaitChat(t, "alice's answer in XMPP", func(ch goxmpp.Chat) bool { return ch.Text == "alice answers carol" }); got.Remote != "alice@"+xmppGateway {
		t.Fatalf("alice's answer came from %q", got.Remote)
	}

	if code := sipUA.register(t, b, 0); code != 200 {
		t.Fatalf("unREGISTER: %d", code)
	}
	submit("three")
	testutil.WaitFor(t, "the third SMS at the SMSC", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	if p := sc.received()[0]; p.DestAddr != "8613800000001" || string(p.ShortMessage) != "three" {
		t.Fatalf("SMS to %q %q", p.DestAddr, p.ShortMessage)
	}
}

// An account of a social site logs in to the XMPP server with the site's
// signed token: the server asks the bridge (prosody/mod_auth_bridge.lua),
// the user is created in the directory at the first login with the JID
// bound; tampered, expired and replayed tokens are refused.
func TestSocialLoginToXMPP(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 7)
	}
	// The bridge's HTTP address must be in Prosody's config before the
	// bridge starts (it needs Prosody's component address): reserve one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	const social = "social.test"
	srv, xargs := startXMPP(t, prosodytest.Options{
		VHosts:      []string{xmppHost, social},
		PluginPaths: []string{filepath.Join(repoRoot(t), "prosody")},
		HostConfig: map[string]string{social: `	authentication = "bridge"
	bridge_auth_url = "http://` + httpAddr + `/v1/xmpp/auth"
	bridge_auth_token = "tok"`},
	})
	b := startBridge(t, t.TempDir(), append(xargs, "--http-listen", httpAddr, "--api-token", "tok",
		"--social-site", "weibo:"+hex.EncodeToString(key))...)
	api := "http://" + b.addrs.HTTP
	token := func(account, session string, ttl time.Duration) string {
		tok, err := login.SignSocialToken(key, account, session, time.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	jidOf := `vcase\40weibo@` + social

	good := token("vcase", "s1", 5*time.Minute)
	c := srv.Login(t, jidOf, good, "phone")
	c.RequestSubscription(xmppGateway)
	waitOnline(t, api, "xmpp:"+jidOf, "xmpp")
	var user struct {
		Name      string
		Addresses []string
	}
	if code := getJSON(t, api+"/v1/users/vcase!weibo", "tok", &user); code != 200 {
		t.Fatalf("the user of the first XMPP login: %d", code)
	}
	if !containsString(user.Addresses, "xmpp:"+jidOf) || !containsString(user.Addresses, "social:weibo:vcase") {
		t.Fatalf("vcase!weibo has %v", user.Addresses)
	}

	for name, pw := range map[string]string{
		"replayed": good,
		"expired":  token("vcase", "s2", -time.Minute),
		"tampered": good[:len(good)-2] + "AA",
		"other":    token("mallory", "s3", 5*time.Minute),
	} {
		if c, err := prosodyLogin(srv, jidOf, pw); err == nil {
			c.Close()
			t.Errorf("%s token admitted", name)
		}
	}
	// VCASE is another account: its escaped JID folds onto vcase's, which
	// it may not take; it logs in with its own IM user name instead.
	if c, err := prosodyLogin(srv, `VCASE\40weibo@`+social, token("VCASE", "s4", 5*time.Minute)); err == nil {
		c.Close()
		t.Error("VCASE took vcase's JID")
	}
	var caseUser struct{ User string }
	tok5 := token("VCASE", "s5", 5*time.Minute)
	if code := postJSON(t, api+"/v1/login", "tok", map[string]string{"user": "VCASE@weibo", "password": tok5}, &caseUser); code != 200 {
		t.Fatalf("VCASE's login at the API: %d", code)
	}
	c2, err := prosodyLogin(srv, caseUser.User+"@"+social, token("VCASE", "s6", 5*time.Minute))
	if err != nil {
		t.Fatalf("VCASE as %s: %v", caseUser.User, err)
	}
	c2.Close()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Prosody is killed and restarted while messages for an XMPP user keep
// coming over the HTTP API: every message the API acknowledged reaches the
// user once they are back (they wait in the store meanwhile); duplicates
// are counted and bounded.
func TestXMPPServerRestartUnderLoad(t *testing.T) {
	srv, xargs := startXMPP(t, prosodytest.Options{Users: map[string]string{"dave@" + xmppHost: "d4ve"}})
	b := startBridge(t, t.TempDir(), append(xargs, "--http-listen", "127.0.0.1:0", "--api-token", "tok")...)
	api := "http://" + b.addrs.HTTP
	dave := srv.Login(t, "dave@"+xmppHost, "d4ve", "phone")
	dave.RequestSubscription(xmppGateway)
	waitOnline(t, api, "xmpp:dave@"+xmppHost, "xmpp")

	const n = 300
	acked := make(chan string, n)
	var idOf sync.Map // text → message id, to report what went missing
	go func() {
		defer close(acked)
		for i := range n {
			body, _ := json.Marshal(map[string]string{"from": "+8613900000009", "to": "xmpp:dave@" + xmppHost, "text": fmt.Sprintf("m%03d", i)})
			req, _ := http.NewRequest("POST", api+"/v1/messages", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			var id struct{ ID string }
			json.NewDecoder(res.Body).Decode(&id)
			res.Body.Close()
			if res.StatusCode == 202 {
				idOf.Store(fmt.Sprintf("m%03d", i), id.ID)
				acked <- fmt.Sprintf("m%03d", i)
			}
			time.Sleep(5 * time.Millisecond) // a steady stream across the restart
		}
	}()
	testutil.WaitFor(t, "the first messages at dave", 10*time.Second, func() bool { return countTexts(dave) >= 50 })
	srv.Restart(t)
	// dave's client lost its server too: it logs in again, as clients do.
	dave2 := srv.Login(t, "dave@"+xmppHost, "d4ve", "phone2")
	dave2.SendOrg("<presence/>")
	var want []string
	for id := range acked {
		want = append(want, id)
	}
	if len(want) < n*9/10 {
		t.Fatalf("the API acknowledged only %d of %d messages", len(want), n)
	}
	seen := map[string]int{}
	testutil.WaitForState(t, 60*time.Second, func() bool {
		clear(seen)
		for _, c := range []*prosodytest.Client{dave, dave2} {
			for _, text := range chatTexts(c) {
				seen[text]++
			}
		}
		for _, id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}, func() string {
		var missing []string
		for _, text := range want {
			if seen[text] == 0 {
				id, _ := idOf.Load(text)
				var state json.RawMessage
				getJSON(t, api+"/v1/messages/"+id.(string), "tok", &state)
				missing = append(missing, fmt.Sprintf("%s %s", text, state))
			}
		}
		return fmt.Sprintf("%d of %d acknowledged messages at dave; missing: %s", len(seen), len(want), strings.Join(missing, "; "))
	})
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("acknowledged %d, all delivered, %d duplicates (messages in flight when the server died)", len(want), dups)
	if dups > len(want)/20 {
		t.Fatalf("%d duplicates of %d messages", dups, len(want))
	}
}

// chatTexts lists the bodies of the chat messages a client received.
func chatTexts(c *prosodytest.Client) []string {
	var out []string
	for _, st := range c.Received() {
		if ch, ok := st.(goxmpp.Chat); ok && ch.Text != "" {
			out = append(out, ch.Text)
		}
	}
	return out
}

func countTexts(c *prosodytest.Client) int { return len(chatTexts(c)) }

// The lab's Prosody config (docker-compose.yml) is one Prosody accepts.
func TestLabProsodyConfig(t *testing.T) {
	requireInterop(t, "prosody")
	cmd := exec.Command("prosodyctl", "--config", filepath.Join(repoRoot(t), "prosody", "prosody.cfg.lua"), "check", "config")
	cmd.Env = append(os.Environ(), "XMPP_DOMAIN=bridge.test", "XMPP_SECRET=s", "BRIDGE_API_TOKEN=t")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "All checks passed") {
		t.Fatalf("prosodyctl check config: %v\n%s", err, out)
	}
}
