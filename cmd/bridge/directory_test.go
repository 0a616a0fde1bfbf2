package main

// One person, many addresses, end to end: users provisioned over the API,
// a fiorix ESME and an SMSC simulator on the SMPP side, sipgo user agents
// on the SIP side, the handset simulator on the MCP link.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/mcp"
	"github.com/smsbridge/bridge/smpp"
)

func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// An SMS to a user's number reaches them in IM where they are registered
// under their name; their IM to a phone leaves with that number as its
// source (TON 1, NPI 1); the phone's reply to it comes back into IM.
func TestNumberReachesUserInIMAndRepliesReturn(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/users", "tok", map[string]string{"name": "bob", "password": "bobpw", "msisdn": "+8613800000002"}, nil); code != 201 {
		t.Fatalf("create bob: %d", code)
	}
	bob := startUA(t, "bob", "bobpw")
	if code := bob.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER bob: %d", code)
	}

	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000002", pdutext.Raw("to bob's number")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the SMS to bob's number in bob's IM", 10*time.Second, func() bool { return len(bob.received()) == 1 })
	if got := bob.received()[0]; !strings.Contains(got, "to bob's number") {
		t.Fatalf("bob got %q", got)
	}

	if code := bob.message(t, b, "8613900000009", "hi from bob"); code != 202 {
		t.Fatalf("bob's MESSAGE to a phone: %d", code)
	}
	testutil.WaitFor(t, "bob's IM at the SMSC", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	if len(sc.received()) != 1 {
		t.Fatalf("the SMS to bob's number went to the SMSC too: %d PDUs", len(sc.received()))
	}
	p := sc.received()[0]
	if p.SourceAddr != "8613800000002" || p.SourceAddrTON != 1 || p.SourceAddrNPI != 1 || p.DestAddr != "8613900000009" {
		t.Fatalf("bob's SMS left from %q TON %d NPI %d to %q; want his number, international ISDN", p.SourceAddr, p.SourceAddrTON, p.SourceAddrNPI, p.DestAddr)
	}

	// The phone replies: the SMSC delivers it to bob's number.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply := &smpp.PDU{ID: smpp.DeliverSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000009",
		DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000002", ShortMessage: []byte("reply to bob")}
	if _, err := sc.srv.Deliver(ctx, "bridge", reply); err != nil {
		t.Fatalf("deliver_sm of the reply: %v", err)
	}
	testutil.WaitFor(t, "the reply in bob's IM", 10*time.Second, func() bool { return len(bob.received()) == 2 })
	if got := bob.received()[1]; !strings.Contains(got, "reply to bob") {
		t.Fatalf("bob got %q", got)
	}
}

// A message for an IM-only user who registered once with nothing waiting,
// then went offline, is delivered when they register again.
func TestParkedMessageDrainsOnReRegister(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok")
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/users", "tok", map[string]string{"name": "dave", "password": "davepw"}, nil); code != 201 {
		t.Fatalf("create dave: %d", code)
	}
	dave := startUA(t, "dave", "davepw")
	if code := dave.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	if code := dave.register(t, b, 0); code != 200 {
		t.Fatalf("unREGISTER: %d", code)
	}
	var sent struct{ ID string }
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000009", "to": "sip:dave@" + testDomain, "text": "waiting for dave"}, &sent); code != 202 {
		t.Fatalf("POST message: %d", code)
	}
	if code := dave.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER again: %d", code)
	}
	testutil.WaitFor(t, "the parked message at dave", 10*time.Second, func() bool { return len(dave.received()) == 1 })
	var rec struct{ State string }
	testutil.WaitForState(t, 10*time.Second, func() bool {
		getJSON(t, api+"/v1/messages/"+sent.ID, "tok", &rec)
		return rec.State == "delivered"
	}, func() string { return "message state " + rec.State })
}

// Social accounts that differ only in case are two people: one logged in
// as VCASE gets VCASE's messages, never vcase's. Both logins, their users
// and their devices' SIP passwords survive a restart; a used token stays
// used.
func TestSocialAccountsByCaseAndAcrossRestart(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	dir := t.TempDir()
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok", "--social-site", "weibo:" + hex.EncodeToString(key)}
	b := startBridge(t, dir, args...)
	api := "http://" + b.addrs.HTTP
	type loginResult struct {
		User    string
		Created bool
		SIP     struct{ Password, Device string }
	}
	logIn := func(api, account, session, device string) (loginResult, int) {
		t.Helper()
		tok, err := login.SignSocialToken(key, account, session, time.Now().Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var r loginResult
		code := postJSON(t, api+"/v1/login", "tok", map[string]string{"user": account + "@weibo", "password": tok, "device": device}, &r)
		return r, code
	}
	lower, code := logIn(api, "vcase", "s1", "phone")
	if code != 200 {
		t.Fatalf("login vcase: %d", code)
	}
	upper, code := logIn(api, "VCASE", "s2", "phone")
	if code != 200 {
		t.Fatalf("login VCASE: %d", code)
	}
	if lower.User == upper.User || !lower.Created || !upper.Created {
		t.Fatalf("vcase → %q, VCASE → %q: want two new users", lower.User, upper.User)
	}
	vcase := startUA(t, upper.User, upper.SIP.Password)
	if code := vcase.register(t, b, 300); code != 200 {
		t.Fatalf("VCASE's REGISTER as %s: %d", upper.User, code)
	}
	for _, to := range []string{lower.User, upper.User} {
		if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000009", "to": "sip:" + to + "@" + testDomain, "text": "for " + to}, nil); code != 202 {
			t.Fatalf("POST to %s: %d", to, code)
		}
	}
	testutil.WaitFor(t, "VCASE's message", 10*time.Second, func() bool { return len(vcase.received()) >= 1 })
	if got := vcase.received(); len(got) != 1 || !strings.Contains(got[0], "for "+upper.User) {
		t.Fatalf("logged in as VCASE, got %q", got)
	}

	b.stop()
	b = startBridge(t, dir, args...)
	api = "http://" + b.addrs.HTTP
	if _, code := logIn(api, "VCASE", "s2", "phone"); code != 403 {
		t.Fatalf("the used token after a restart: %d, want 403", code)
	}
	again, code := logIn(api, "VCASE", "s3", "laptop")
	if code != 200 || again.User != upper.User || again.Created {
		t.Fatalf("VCASE after a restart: %d %+v, want the same user, not created", code, again)
	}
	// The phone's password survived the restart; the laptop got its own.
	phone := startUA(t, upper.User, upper.SIP.Password)
	laptop := startUA(t, upper.User, again.SIP.Password)
	for name, u := range map[string]*ua{"phone": phone, "laptop": laptop} {
		if code := u.register(t, b, 300); code != 200 {
			t.Fatalf("%s's REGISTER after the restart: %d", name, code)
		}
	}
	// Logging the phone out leaves the laptop in.
	req, _ := http.NewRequest("DELETE", api+"/v1/login/"+upper.User+"/phone", nil)
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 204 {
		t.Fatalf("logout phone: %v %v", res, err)
	}
	res.Body.Close()
	if code := phone.register(t, b, 300); code != 401 && code != 403 {
		t.Fatalf("the logged-out phone's REGISTER: %d", code)
	}
	if code := laptop.register(t, b, 300); code != 200 {
		t.Fatalf("the laptop's REGISTER after the phone's logout: %d", code)
	}
}

// A contact added over the API is pushed to the user's handset at once,
// and both the API and the handset's contact list show where it is online.
func TestContactsPushedToHandsetWithPresence(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--mcp-listen", "127.0.0.1:0")
	api := "http://" + b.addrs.HTTP
	for _, u := range []map[string]string{
		{"name": "carol", "password": "carolpw"},
		{"name": "bob", "password": "bobpw", "msisdn": "+8613800000002"},
	} {
		if code := postJSON(t, api+"/v1/users", "tok", u, nil); code != 201 {
			t.Fatalf("create %s: %d", u["name"], code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := mcp.Dial(ctx, b.addrs.MCP, true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Register(ctx, "carol", "carolpw", testDomain, 600); err != nil {
		t.Fatalf("handset REGISTER: %v", err)
	}
	bob := startUA(t, "bob", "bobpw")
	if code := bob.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER bob: %d", code)
	}
	// Carol knows bob by his number only: he is online under his name.
	var created struct {
		ID     string
		Online bool
		Where  []struct{ Address, Via string }
	}
	if code := postJSON(t, api+"/v1/users/carol/contacts", "tok", map[string]any{"display": "Bob", "addresses": []string{"+8613800000002"}}, &created); code != 201 {
		t.Fatalf("add contact: %d", code)
	}
	if !created.Online || len(created.Where) != 1 || created.Where[0].Address != "sip:bob@"+testDomain || created.Where[0].Via != "sip" {
		t.Fatalf("contact view %+v: want online as sip:bob@%s via sip", created, testDomain)
	}
	select {
	case n := <-h.Notifications():
		if n.Event != "contact" || !strings.Contains(string(n.Body), `local-name="Bob"`) || !strings.Contains(string(n.Body), `status="online"`) {
			t.Fatalf("pushed %q %s", n.Event, n.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no contact list pushed to the handset")
	}
	m := &mcp.Message{Method: "S", Target: testDomain, Version: mcp.Version}
	m.Add("F", "carol")
	m.Add("I", "contacts")
	m.Add("Q", "1 S")
	m.Add("N", "GetContactList")
	resp, err := h.Request(ctx, m)
	if err != nil || resp.Code != 200 || !strings.Contains(string(resp.Body), `id="`+created.ID+`"`) ||
		!strings.Contains(string(resp.Body), `<online address="sip:bob@`+testDomain+`" via="sip" />`) {
		t.Fatalf("GetContactList: %v %v", resp, err)
	}
	var list struct {
		Contacts []struct{ ID string }
	}
	if code := getJSON(t, api+"/v1/users/carol/contacts", "tok", &list); code != 200 || len(list.Contacts) != 1 {
		t.Fatalf("GET contacts: %d %+v", code, list)
	}
	// A second user's claim on bob's number is refused without naming bob.
	var refused struct{ Error string }
	if code := postJSON(t, api+"/v1/users/carol/addresses", "tok", map[string]string{"address": "+8613800000002"}, &refused); code != 409 || refused.Error == "" || strings.Contains(refused.Error, "bob") {
		t.Fatalf("carol binding bob's number: %d %q", code, refused.Error)
	}
}
