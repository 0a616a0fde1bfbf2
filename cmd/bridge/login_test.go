package main

// Partner and social logins through the whole bridge: a partner site's user logs in over the
// HTTP API, gets a SIP password and REGISTERs with it; an SSO ticket issued
// by the bridge opens with the service's key.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/partnersite"
	"github.com/smsbridge/bridge/login/ssoticket"
	"github.com/smsbridge/bridge/mcp"
	"github.com/smsbridge/bridge/smpp"
)

func startPartner(t *testing.T, serverID string) string {
	t.Helper()
	h, err := partnersite.NewHandler(partnersite.Config{SiteID: "shop", ServerID: serverID, ServerSecret: "s3cret", Realm: testDomain,
		Users: []partnersite.User{{Name: "alice", Password: "wonderland", Display: "Alice", Contacts: []login.Contact{{User: "bob", Display: "Bob"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func postJSON(t *testing.T, url, token string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
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

func TestPartnerLoginThenSIPRegisterAndSSO(t *testing.T) {
	site := startPartner(t, "bridge-1")
	key := bytes.Repeat([]byte{7}, 32)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok",
		"--lab-allow-http-partners", "--partner-site", "shop,"+site+"/verify,bridge-1,s3cret,"+site+"/contacts",
		"--sso-service", "wiki:k1:"+hex.EncodeToString(key)+":1m")
	api := "http://" + b.addrs.HTTP

	// A wrong password is refused by the site.
	if code := postJSON(t, api+"/v1/login", "tok", map[string]string{"user": "alice#shop", "password": "nope"}, nil); code != 403 {
		t.Fatalf("wrong partner password: %d, want 403", code)
	}
	var res struct {
		User string `json:"user"`
		SIP  struct {
			Password string `json:"password"`
		} `json:"sip"`
	}
	if code := postJSON(t, api+"/v1/login", "tok", map[string]string{"user": "alice#shop", "password": "wonderland"}, &res); code != 200 {
		t.Fatalf("partner login: %d", code)
	}
	if res.User != "alice~shop" || res.SIP.Password == "" {
		t.Fatalf("login result %+v: want IM user alice~shop with an issued SIP password", res)
	}
	u := startUA(t, res.User, res.SIP.Password)
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER with the issued SIP password: %d", code)
	}
	bad := startUA(t, res.User, "guess")
	if code := bad.register(t, b, 3600); code == 200 {
		t.Fatal("REGISTER with a guessed password succeeded")
	}

	var tk struct {
		Ticket string `json:"ticket"`
	}
	if code := postJSON(t, api+"/v1/sso/tickets", "tok", map[string]string{"service": "wiki", "user": res.User, "password": res.SIP.Password}, &tk); code != 200 {
		t.Fatalf("SSO ticket: %d", code)
	}
	var k [32]byte
	copy(k[:], key)
	c, err := ssoticket.Verify(tk.Ticket, map[string][32]byte{"k1": k}, "wiki")
	if err != nil || !strings.HasPrefix(c.User, "alice~shop") {
		t.Fatalf("ticket %q: claims %+v, %v", tk.Ticket, c, err)
	}
	if _, err := ssoticket.Verify(tk.Ticket, map[string][32]byte{"k1": {1}}, "wiki"); err == nil {
		t.Fatal("ticket opened with the wrong key")
	}
	// The CLI a third party runs opens it too.
	var out, errb bytes.Buffer
	if rc := run([]string{"sso", "verify", "--key-id", "k1", "--key", hex.EncodeToString(key), "--service", "wiki", tk.Ticket}, nil, &out, &errb); rc != 0 || !strings.Contains(out.String(), "alice~shop") {
		t.Fatalf("bridge sso verify: rc %d out %q err %q", rc, out.String(), errb.String())
	}
}

func TestMetricsAndHealth(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000050", "8613700000050", pdutext.Raw("count me")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		res, err := http.Get(api + path)
		if err != nil || res.StatusCode != want {
			t.Fatalf("%s: %v %v", path, res, err)
		}
		res.Body.Close()
	}
	testutil.WaitFor(t, "metrics", 10*time.Second, func() bool {
		res, err := http.Get(api + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(res.Body)
		m := buf.String()
		return strings.Contains(m, "bridge_accepted_total 1") && strings.Contains(m, "bridge_smsc_up 1") &&
			strings.Contains(m, "bridge_sms_delivered_total 1") && strings.Contains(m, "# TYPE bridge_queue_depth gauge") &&
			strings.Contains(m, `bridge_delivery_seconds_count{route="sms"} 1`)
	})
}

// Provisioned through the API, without a restart: an SMPP account with
// allowed sources and a TPS limit, and a route that sends one prefix to a
// bound receiver instead of the SMSC.
func TestProvisionedAccountLimitsAndRoutes(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	if code := postJSON(t, api+"/v1/accounts", "tok", map[string]any{"system_id": "shop", "password": "shoppw", "allowed_sources": []string{"+86139"}, "tps": 3}, nil); code != 201 && code != 200 {
		t.Fatalf("create account: %d", code)
	}
	if code := postJSON(t, api+"/v1/accounts", "tok", map[string]any{"system_id": "rx", "password": "rxpw"}, nil); code != 201 && code != 200 {
		t.Fatalf("create account: %d", code)
	}
	body, _ := json.Marshal(map[string]any{"routes": []map[string]string{{"name": "default", "target": "smsc"}, {"name": "rx", "target": "esme:rx", "prefix": "+86136"}}})
	req, _ := http.NewRequest("PUT", api+"/v1/routes", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("routes: %v %v", res, err)
	}

	c := smpp.NewClient(smpp.ClientConfig{Addr: b.addrs.SMPP, SystemID: "shop", Password: "shoppw"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	submit := func(src, dst, text string) error {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		_, err := c.Send(sctx, &smpp.PDU{ID: smpp.SubmitSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: src,
			DestAddrTON: 1, DestAddrNPI: 1, DestAddr: dst, ShortMessage: []byte(text)})
		return err
	}
	var se *smpp.StatusError
	if err := submit("8613500000060", "8613700000060", "bad source"); !errors.As(err, &se) || se.Status != smpp.ESME_RINVSRCADR {
		t.Fatalf("source outside allowed_sources: %v, want ESME_RINVSRCADR", err)
	}
	throttled := 0
	for i := range 10 {
		if err := submit("8613900000060", "8613700000060", fmt.Sprintf("burst %d", i)); errors.As(err, &se) && se.Status == smpp.ESME_RTHROTTLED {
			throttled++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if throttled == 0 {
		t.Fatal("10 submits at once under a 3 TPS limit: none throttled")
	}

	// The route for +86136 goes to the receiver bound as rx.
	got := make(chan string, 4)
	rx := smpp.NewClient(smpp.ClientConfig{Addr: b.addrs.SMPP, SystemID: "rx", Password: "rxpw", Bind: smpp.BindReceiver,
		Handler: smpp.HandlerFunc(func(_ context.Context, _ *smpp.Session, req, _ *smpp.PDU) {
			got <- req.DestAddr + "|" + string(req.ShortMessage)
		})})
	go rx.Run(ctx)
	testutil.WaitFor(t, "receiver bind", 10*time.Second, rx.Bound)
	// Sent as soon as the TPS bucket has a token again.
	var err error
	testutil.WaitFor(t, "a submit under the TPS limit", 10*time.Second, func() bool {
		err = submit("8613900000060", "8613600000060", "to the receiver")
		return !errors.As(err, &se) || se.Status != smpp.ESME_RTHROTTLED
	})
	if err != nil {
		t.Fatal(err)
	}
	atReceiver := func(want, what string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("receiver got %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not reach the receiver", what)
		}
	}
	atReceiver("8613600000060|to the receiver", "routed message")

	// A route the sender names overrides the prefix routes: +86137 goes to
	// the SMSC by "default", this one to rx.
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000061", "to": "+8613700000061",
		"text": "named route", "route": "esme:rx"}, nil); code != 202 {
		t.Fatalf("POST /v1/messages with route esme:rx: %d", code)
	}
	atReceiver("8613700000061|named route", "message naming esme:rx")
}

// The same partner user on the handset link: it registers with the issued
// SIP password, gets its partner contacts with S GetContactList and an SSO
// ticket with S GetSSOTicket.
func TestPartnerUserOnHandsetLink(t *testing.T) {
	site := startPartner(t, "bridge-1")
	key := bytes.Repeat([]byte{9}, 32)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--mcp-listen", "127.0.0.1:0",
		"--lab-allow-http-partners", "--partner-site", "shop,"+site+"/verify,bridge-1,s3cret,"+site+"/contacts",
		"--sso-service", "wiki:k1:"+hex.EncodeToString(key))
	var res struct {
		User string `json:"user"`
		SIP  struct {
			Password string `json:"password"`
		} `json:"sip"`
	}
	if code := postJSON(t, "http://"+b.addrs.HTTP+"/v1/login", "tok", map[string]string{"user": "alice#shop", "password": "wonderland"}, &res); code != 200 {
		t.Fatalf("login: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := mcp.Dial(ctx, b.addrs.MCP, true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Register(ctx, res.User, res.SIP.Password, testDomain, 600); err != nil {
		t.Fatalf("handset register as %s: %v", res.User, err)
	}
	service := func(name, body string) *mcp.Message {
		m := &mcp.Message{Method: "S", Target: testDomain, Version: mcp.Version}
		m.Add("F", res.User)
		m.Add("I", name)
		m.Add("Q", "1 S")
		m.Add("N", name)
		m.SetBody([]byte(body))
		r, err := h.Request(ctx, m)
		if err != nil || r.Code != 200 {
			t.Fatalf("S %s: %+v %v", name, r, err)
		}
		return r
	}
	if r := service("GetContactList", "<args><contacts /></args>"); !strings.Contains(string(r.Body), "sip:bob~shop@"+testDomain) {
		t.Fatalf("contacts: %s", r.Body)
	}
	r := service("GetSSOTicket", `<args><service id="wiki" /></args>`)
	m := regexp.MustCompile(`value="([^"]+)"`).FindSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no ticket in %s", r.Body)
	}
	var k [32]byte
	copy(k[:], key)
	if c, err := ssoticket.Verify(string(m[1]), map[string][32]byte{"k1": k}, "wiki"); err != nil || !strings.HasPrefix(c.User, "alice~shop") {
		t.Fatalf("ticket over SIP-C: %+v %v", c, err)
	}
}
