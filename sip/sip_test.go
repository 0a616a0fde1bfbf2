package sip

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/store"
)

func TestRegisterDigest(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	const user = "8613800000001"

	first, final := ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 600), user, testPasswords[user])
	if first.StatusCode != 401 {
		t.Fatalf("first REGISTER: got %d, want 401", first.StatusCode)
	}
	wa := headerValue(first, "WWW-Authenticate")
	for _, want := range []string{`realm="` + testDomain + `"`, `qop="auth"`, "nonce=", "algorithm=MD5"} {
		if !strings.Contains(wa, want) {
			t.Errorf("WWW-Authenticate %q lacks %s", wa, want)
		}
	}
	if final.StatusCode != 200 {
		t.Fatalf("authenticated REGISTER: got %d %s, want 200", final.StatusCode, final.Reason)
	}
	c := final.Contact()
	if c == nil || c.Address.Port != ua.port {
		t.Fatalf("200 Contact = %v, want our contact", c)
	}
	if e, _ := c.Params.Get("expires"); e != "600" && e != "599" {
		t.Errorf("200 Contact expires = %q, want 600", e)
	}

	bs := b.pres.Bindings("+8613800000001")
	if len(bs) != 1 {
		t.Fatalf("bindings = %v, want one", bs)
	}
	got := bs[0]
	if got.AOR != "+8613800000001" || got.Contact != ua.contact(user) || got.Via != "sip" {
		t.Errorf("binding = %+v, want AOR +8613800000001 contact %s via sip", got, ua.contact(user))
	}
	if d := time.Until(got.Expires); d < 590*time.Second || d > 601*time.Second {
		t.Errorf("binding expires in %v, want ~600s", d)
	}
}

func TestRegisterWrongPassword(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	const user = "8613800000001"
	_, final := ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 600), user, "not-the-password")
	if final.StatusCode != 401 && final.StatusCode != 403 {
		t.Fatalf("wrong password: got %d, want 401 or 403", final.StatusCode)
	}
	if n := len(b.pres.Bindings("+8613800000001")); n != 0 {
		t.Fatalf("wrong password created %d bindings", n)
	}
	// Unknown user.
	_, final = ua.do(t, registerReq(t, b.srv, "mallory", ua.contact("mallory"), 600), "mallory", "x")
	if final.StatusCode != 401 && final.StatusCode != 403 {
		t.Fatalf("unknown user: got %d, want 401 or 403", final.StatusCode)
	}
}

func TestRegisterOtherUsersAOR(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	// carol's credentials for bob's AOR.
	req := registerReq(t, b.srv, "8613900000009", ua.contact("x"), 600)
	_, final := ua.do(t, req, "carol", testPasswords["carol"])
	if final.StatusCode != 403 {
		t.Fatalf("REGISTER of another user's AOR: got %d, want 403", final.StatusCode)
	}
	if n := len(b.pres.Bindings("+8613900000009")); n != 0 {
		t.Fatalf("binding created for someone else's AOR")
	}
}

func TestRegisterStaleNonce(t *testing.T) {
	var skew atomic.Int64 // how far the server clock is behind now
	b := startBridge(t, nil, func(s *Server) {
		s.nonces.now = func() time.Time { return time.Now().Add(-time.Duration(skew.Load())) }
	})
	ua := newTestUA(t, 200, "OK")
	const user = "carol"

	req := registerReq(t, b.srv, user, ua.contact(user), 600)
	ctx := context.Background()
	skew.Store(int64(10 * time.Minute)) // nonce issued "10 minutes ago"
	res, err := ua.client.Do(ctx, req)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v %v", res, err)
	}
	skew.Store(0)
	res, err = ua.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: testPasswords[user]})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 || !strings.Contains(headerValue(res, "WWW-Authenticate"), "stale=true") {
		t.Fatalf("answer with old nonce: got %d %q, want 401 with stale=true", res.StatusCode, headerValue(res, "WWW-Authenticate"))
	}
	// A fresh nonce now works.
	res, err = ua.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: testPasswords[user]})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("answer with fresh nonce: %v %v", res, err)
	}
}

func TestRegisterExpiryRules(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	const user = "carol"
	aor := msg.Address("sip:carol@" + testDomain)
	pw := testPasswords[user]

	// Too brief.
	_, final := ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 30), user, pw)
	if final.StatusCode != 423 || headerValue(final, "Min-Expires") != "60" {
		t.Fatalf("expires 30: got %d Min-Expires=%q, want 423 / 60", final.StatusCode, headerValue(final, "Min-Expires"))
	}
	if len(b.pres.Bindings(aor)) != 0 {
		t.Fatal("423 still registered")
	}

	// Too long is cut to MaxExpires.
	_, final = ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 999999), user, pw)
	if final.StatusCode != 200 {
		t.Fatalf("expires 999999: got %d", final.StatusCode)
	}
	bs := b.pres.Bindings(aor)
	if len(bs) != 1 || time.Until(bs[0].Expires) > 86401*time.Second {
		t.Fatalf("bindings %v, want one capped at 86400s", bs)
	}

	// Second contact via expires param; Expires header absent → default.
	req := registerReq(t, b.srv, user, "", -1)
	var u2 sip.Uri
	sip.ParseUri("sip:carol@127.0.0.1:5999;transport=tcp", &u2)
	req.AppendHeader(&sip.ContactHeader{Address: u2, Params: sip.HeaderParams{{K: "expires", V: "120"}}})
	_, final = ua.do(t, req, user, pw)
	if final.StatusCode != 200 {
		t.Fatalf("second contact: got %d", final.StatusCode)
	}
	if n := len(final.GetHeaders("Contact")); n != 2 {
		t.Errorf("200 lists %d contacts, want 2", n)
	}
	if bs = b.pres.Bindings(aor); len(bs) != 2 {
		t.Fatalf("bindings = %v, want 2", bs)
	}
	if bs[0].Contact != "sip:carol@127.0.0.1:5999;transport=tcp" {
		t.Errorf("freshest contact = %q, want uri params kept", bs[0].Contact)
	}

	// Unregister one contact with Expires: 0.
	_, final = ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 0), user, pw)
	if final.StatusCode != 200 {
		t.Fatalf("unregister: got %d", final.StatusCode)
	}
	if bs = b.pres.Bindings(aor); len(bs) != 1 || bs[0].Contact == ua.contact(user) {
		t.Fatalf("after unregister bindings = %v, want only the tcp one", bs)
	}

	// Contact: * without Expires 0 is malformed.
	_, final = ua.do(t, registerReq(t, b.srv, user, "*", 60), user, pw)
	if final.StatusCode != 400 {
		t.Fatalf("Contact * with Expires 60: got %d, want 400", final.StatusCode)
	}
	// Contact: * with Expires: 0 removes all.
	_, final = ua.do(t, registerReq(t, b.srv, user, "*", 0), user, pw)
	if final.StatusCode != 200 {
		t.Fatalf("Contact *: got %d", final.StatusCode)
	}
	if bs = b.pres.Bindings(aor); len(bs) != 0 {
		t.Fatalf("after Contact * bindings = %v", bs)
	}
}

// An unreachable contact (0.0.0.0) is replaced by the request's source.
func TestRegisterUnusableContact(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	_, final := ua.do(t, registerReq(t, b.srv, "carol", "sip:carol@0.0.0.0:5070", 600), "carol", testPasswords["carol"])
	if final.StatusCode != 200 {
		t.Fatalf("REGISTER: %d", final.StatusCode)
	}
	bs := b.pres.Bindings(msg.Address("sip:carol@" + testDomain))
	if len(bs) != 1 || !strings.HasPrefix(bs[0].Contact, "sip:carol@127.0.0.1:") || strings.HasSuffix(bs[0].Contact, ":5070") {
		t.Fatalf("bindings = %+v, want the source address", bs)
	}
}

func TestRegisterForeignDomain(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	req := registerReq(t, b.srv, "carol", ua.contact("carol"), 600)
	req.To().Address.Host = "elsewhere.example"
	_, final := ua.do(t, req, "carol", testPasswords["carol"])
	if final.StatusCode != 404 && final.StatusCode != 403 {
		t.Fatalf("foreign domain REGISTER: got %d, want 404", final.StatusCode)
	}
}

// An IM user sends to another; the real router delivers it with SendIM.
func TestMessageIMToIM(t *testing.T) {
	b := startBridge(t, nil)
	alice := newTestUA(t, 200, "OK")
	bob := newTestUA(t, 200, "OK")
	for _, r := range []struct {
		ua   *testUA
		user string
	}{{alice, "8613800000001"}, {bob, "8613900000009"}} {
		if _, final := r.ua.do(t, registerReq(t, b.srv, r.user, r.ua.contact(r.user), 600), r.user, testPasswords[r.user]); final.StatusCode != 200 {
			t.Fatalf("register %s: %d", r.user, final.StatusCode)
		}
	}

	text := "你好 Bob, 1+1=2 & <ok>"
	req := messageReq(t, b.srv, "8613800000001", "+8613900000009", "text/plain; charset=UTF-8", text)
	first, final := alice.do(t, req, "8613800000001", testPasswords["8613800000001"])
	if first.StatusCode != 401 {
		t.Errorf("unauthenticated MESSAGE: got %d, want 401", first.StatusCode)
	}
	if final.StatusCode != 202 {
		t.Fatalf("MESSAGE: got %d %s, want 202", final.StatusCode, final.Reason)
	}
	id := headerValue(final, "Imdn-Message-ID")
	if id == "" {
		t.Error("202 carries no Imdn-Message-ID")
	}

	got := bob.waitMessage(t)
	if string(got.Body()) != text {
		t.Errorf("bob got body %q, want %q", got.Body(), text)
	}
	if got.From().Address.User != "+8613800000001" || got.From().Address.Host != testDomain {
		t.Errorf("From = %s, want sip:+8613800000001@%s", got.From().Address.String(), testDomain)
	}
	if tag, _ := got.From().Params.Get("tag"); tag == "" {
		t.Error("From has no tag")
	}
	if got.To().Address.User != "+8613900000009" {
		t.Errorf("To = %s", got.To().Address.String())
	}
	if got.Recipient.Port != bob.port {
		t.Errorf("Request-URI %s is not bob's contact", got.Recipient.String())
	}
	if ct := headerValue(got, "Content-Type"); !strings.EqualFold(ct, "text/plain;charset=UTF-8") {
		t.Errorf("Content-Type = %q", ct)
	}
	if headerValue(got, "Imdn-Message-ID") != id {
		t.Errorf("Imdn-Message-ID %q, want %q", headerValue(got, "Imdn-Message-ID"), id)
	}
	testutil.WaitForState(t, 10*time.Second, func() bool { return b.rt.Stats().IMDelivered.Load() == 1 },
		func() string {
			return fmt.Sprintf("router never recorded the IM delivery (pending %d)", b.rt.Pending())
		})
}

func TestMessageRejections(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	const user = "carol"
	pw := testPasswords[user]

	cases := []struct {
		name        string
		req         *sip.Request
		pw          string
		code        int
		wantHeader  string
		headerValue string
	}{
		{"html", messageReq(t, b.srv, user, "8613900000009", "text/html", "<b>hi</b>"), pw, 415, "Accept", "text/plain"},
		{"no content type", messageReq(t, b.srv, user, "8613900000009", "", "hi"), pw, 415, "Accept", "text/plain"},
		{"empty body", messageReq(t, b.srv, user, "8613900000009", "text/plain", ""), pw, 400, "", ""},
		{"bad utf8", messageReq(t, b.srv, user, "8613900000009", "text/plain", "\xff\xfe"), pw, 400, "", ""},
		{"no password", messageReq(t, b.srv, user, "8613900000009", "text/plain", "hi"), "", 401, "WWW-Authenticate", ""},
		{"wrong password", messageReq(t, b.srv, user, "8613900000009", "text/plain", "hi"), "nope", 401, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, final := ua.do(t, c.req, user, c.pw)
			if final.StatusCode != c.code {
				t.Fatalf("got %d %s, want %d", final.StatusCode, final.Reason, c.code)
			}
			if c.wantHeader != "" {
				v := headerValue(final, c.wantHeader)
				if v == "" || (c.headerValue != "" && v != c.headerValue) {
					t.Errorf("%s = %q, want %q", c.wantHeader, v, c.headerValue)
				}
			}
		})
	}
	t.Run("sender spoofs another user", func(t *testing.T) {
		req := messageReq(t, b.srv, "8613800000001", "8613900000009", "text/plain", "hi")
		_, final := ua.do(t, req, user, pw)
		if final.StatusCode != 403 {
			t.Fatalf("got %d, want 403", final.StatusCode)
		}
	})
	t.Run("foreign domain", func(t *testing.T) {
		req := messageReq(t, b.srv, user, "bob", "text/plain", "hi")
		req.Recipient.Host = "elsewhere.example"
		req.SetDestination(b.srv.Addr())
		_, final := ua.do(t, req, user, pw)
		if final.StatusCode != 404 && final.StatusCode != 403 {
			t.Fatalf("got %d, want 404", final.StatusCode)
		}
	})
	if n := b.rt.Stats().Accepted.Load(); n != 0 {
		t.Errorf("router accepted %d rejected messages", n)
	}
}

// Submit errors map to SIP codes; all from a real router and store.
func TestMessageSubmitErrors(t *testing.T) {
	ua := newTestUA(t, 200, "OK")
	pres, _ := presence.Open(presence.Options{})
	db, err := store.Open(store.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// No SMS route and nobody online: the first message stays pending
	// (retried), so with QueueDepth 1 the second one is throttled.
	rt := router.New(router.Config{QueueDepth: 1, Workers: 1, RetryMin: time.Hour, Logger: testLogger()}, db, pres)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })
	cfg := baseConfig()
	cfg.OpenRegistration = true
	s := startServer(t, cfg, pres, rt)

	send := func(to string) *sip.Response {
		_, final := ua.do(t, messageReq(t, s, "carol", to, "text/plain", "hi"), "", "")
		return final
	}
	if r := send("8613900000009"); r.StatusCode != 202 {
		t.Fatalf("first: got %d, want 202", r.StatusCode)
	}
	r := send("8613900000009")
	if r.StatusCode != 503 || headerValue(r, "Retry-After") != "5" {
		t.Fatalf("overloaded: got %d Retry-After=%q, want 503 / 5", r.StatusCode, headerValue(r, "Retry-After"))
	}
	db.Close()
	rt2 := router.New(router.Config{Logger: testLogger()}, db, pres)
	s2 := startServer(t, cfg, pres, rt2)
	_, final := ua.do(t, messageReq(t, s2, "carol", "8613900000009", "text/plain", "hi"), "", "")
	if final.StatusCode != 500 {
		t.Fatalf("store closed: got %d, want 500", final.StatusCode)
	}
}

// submitFunc is a msg.Stager whose acceptance is f, over by the time Stage
// returns.
type submitFunc func(ctx context.Context, m *msg.Message) error

func (f submitFunc) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	if err := f(ctx, m); err != nil {
		return nil, err
	}
	return msg.Settled{}, nil
}

// The real router never answers ErrNoRoute for a SIP recipient (every SIP
// user is routable), so that mapping is checked with a stand-in.
func TestMessageNoRoute(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.OpenRegistration = true
	s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error {
		return fmt.Errorf("router: %w", msg.ErrNoRoute)
	}))
	ua := newTestUA(t, 200, "OK")
	_, final := ua.do(t, messageReq(t, s, "carol", "8613900000009", "text/plain", "hi"), "", "")
	if final.StatusCode != 404 {
		t.Fatalf("no route: got %d, want 404", final.StatusCode)
	}
}

func TestMaxInFlight(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var got []*msg.Message
	var mu sync.Mutex
	sub := submitFunc(func(ctx context.Context, m *msg.Message) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		entered <- struct{}{}
		<-release
		m.ID = "id-1"
		return nil
	})
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.OpenRegistration = true
	cfg.MaxInFlight = 1
	s := startServer(t, cfg, pres, sub)
	ua := newTestUA(t, 200, "OK")

	firstDone := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := ua.client.Do(ctx, messageReq(t, s, "carol", "8613900000009", "text/plain", "one"))
		if err != nil {
			res = nil
		}
		firstDone <- res
	}()
	<-entered // the only slot is taken
	_, second := ua.do(t, messageReq(t, s, "carol", "8613900000009", "text/plain", "two"), "", "")
	if second.StatusCode != 503 || headerValue(second, "Retry-After") == "" {
		t.Fatalf("over the limit: got %d Retry-After=%q, want 503 with Retry-After", second.StatusCode, headerValue(second, "Retry-After"))
	}
	close(release)
	if r := <-firstDone; r == nil || r.StatusCode != 202 {
		t.Fatalf("first message: %v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("submitted %d, want 1", len(got))
	}
	m := got[0]
	if m.From != "sip:carol@"+testDomain || m.To != "+8613900000009" || m.Text != "one" ||
		m.Origin.Kind != msg.FromSIP || m.Origin.Account != string(m.From) || m.Origin.Ref == "" {
		t.Errorf("submitted %+v", m)
	}
}

func TestOptionsAndOtherMethods(t *testing.T) {
	b := startBridge(t, nil)
	ua := newTestUA(t, 200, "OK")
	host, port := hostPort(t, b.srv.Addr())
	for _, tp := range []string{"udp", "tcp"} {
		uri := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.HeaderParams{{K: "transport", V: tp}}}
		res, _ := ua.do(t, sip.NewRequest(sip.OPTIONS, uri), "", "")
		if res.StatusCode != 200 || !strings.Contains(headerValue(res, "Allow"), "MESSAGE") {
			t.Errorf("OPTIONS over %s: got %d Allow=%q", tp, res.StatusCode, headerValue(res, "Allow"))
		}
	}
	res, _ := ua.do(t, sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: "carol", Host: host, Port: port}), "", "")
	if res.StatusCode != 405 || !strings.Contains(headerValue(res, "Allow"), "REGISTER") {
		t.Errorf("SUBSCRIBE: got %d Allow=%q, want 405 with Allow", res.StatusCode, headerValue(res, "Allow"))
	}
}

// MESSAGE over TCP on the same port as UDP.
func TestMessageOverTCP(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.OpenRegistration = true })
	ua := newTestUA(t, 200, "OK")
	req := messageReq(t, b.srv, "carol", "8613900000009", "text/plain", "over tcp")
	req.Recipient.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
	_, final := ua.do(t, req, "", "")
	if final.StatusCode != 202 {
		t.Fatalf("TCP MESSAGE: got %d", final.StatusCode)
	}
	if n := b.rt.Stats().Accepted.Load(); n != 1 {
		t.Fatalf("accepted %d", n)
	}
}

func TestSendIMOutcomes(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.MessageTimeout = 500 * time.Millisecond
	s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))
	m := &msg.Message{ID: "m-1", From: "+8613800000001", To: "sip:dave@" + testDomain, Text: "hello"}

	ok := newTestUA(t, 200, "OK")
	b := presence.Binding{AOR: m.To, Contact: ok.contact("dave"), Via: "sip"}
	if err := s.SendIM(context.Background(), m, b); err != nil {
		t.Fatalf("SendIM to a 200 UA: %v", err)
	}
	got := ok.waitMessage(t)
	if string(got.Body()) != "hello" || headerValue(got, "Imdn-Message-ID") != "m-1" || headerValue(got, "DateTime") == "" {
		t.Errorf("received %q Imdn-Message-ID=%q DateTime=%q", got.Body(), headerValue(got, "Imdn-Message-ID"), headerValue(got, "DateTime"))
	}
	if got.To().Address.String() != "sip:dave@"+testDomain {
		t.Errorf("To = %s", got.To().Address.String())
	}

	busy := newTestUA(t, 480, "Temporarily Unavailable")
	b.Contact = busy.contact("dave")
	err := s.SendIM(context.Background(), m, b)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 480 || se.Permanent() {
		t.Fatalf("SendIM to a 480 UA: %v, want transient *StatusError 480", err)
	}

	// A socket that never answers.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	b.Contact = "sip:dave@" + pc.LocalAddr().String()
	err = s.SendIM(context.Background(), m, b)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
		t.Fatalf("SendIM to a silent UA: %v, want wrapped deadline exceeded", err)
	}
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := pc.ReadFrom(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "MESSAGE sip:dave@") {
		t.Fatalf("silent UA did not get the MESSAGE: %v %q", err, buf[:n])
	}
}

func TestStatusErrorPermanent(t *testing.T) {
	for code, want := range map[int]bool{404: true, 403: true, 415: true, 408: false, 480: false, 486: false, 500: false, 503: false, 603: true, 302: false} {
		e := &StatusError{Code: code, Reason: "x"}
		if e.Permanent() != want {
			t.Errorf("%d Permanent = %v, want %v", code, e.Permanent(), want)
		}
		if !strings.Contains(e.Error(), strconv.Itoa(code)) {
			t.Errorf("Error() = %q", e.Error())
		}
	}
}

func TestOutboundProxy(t *testing.T) {
	proxy := newTestUA(t, 200, "OK")
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	cfg.OutboundProxy = proxy.addr
	s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))

	// The contact is unreachable: only the proxy can answer.
	b := presence.Binding{AOR: "+8613900000009", Contact: "sip:8613900000009@127.0.0.1:9", Via: "sip"}
	m := &msg.Message{ID: "p-1", From: "+8613800000001", To: b.AOR, Text: "via proxy"}
	if err := s.SendIM(context.Background(), m, b); err != nil {
		t.Fatalf("SendIM via proxy: %v", err)
	}
	got := proxy.waitMessage(t)
	if got.Recipient.String() != "sip:+8613900000009@"+testDomain {
		t.Errorf("Request-URI = %s, want the AOR", got.Recipient.String())
	}
	r := got.Route()
	if r == nil || r.Address.Port != proxy.port || !r.Address.UriParams.Has("lr") {
		t.Errorf("Route = %v, want the proxy with lr", r)
	}
	if string(got.Body()) != "via proxy" {
		t.Errorf("body %q", got.Body())
	}
}

type imdnDoc struct {
	XMLName   xml.Name `xml:"urn:ietf:params:xml:ns:imdn imdn"`
	MessageID string   `xml:"message-id"`
	DateTime  string   `xml:"datetime"`
	Status    struct {
		Delivered *struct{} `xml:"delivered"`
		Failed    *struct{} `xml:"failed"`
	} `xml:"delivery-notification>status"`
}

func TestIMDNBody(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, delivered := range []bool{true, false} {
		var d imdnDoc
		if err := xml.Unmarshal(imdnBody(`id<&>"1`, at, delivered), &d); err != nil {
			t.Fatalf("IMDN body is not XML: %v", err)
		}
		if d.MessageID != `id<&>"1` || d.DateTime != "2024-05-06T07:08:09Z" {
			t.Errorf("parsed %+v", d)
		}
		if (d.Status.Delivered != nil) != delivered || (d.Status.Failed != nil) == delivered {
			t.Errorf("delivered=%v: status %+v", delivered, d.Status)
		}
	}
}

func TestSendIMDN(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	cfg := baseConfig()
	s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))
	to := msg.Address("+8613800000001")
	if err := s.SendIMDN(context.Background(), to, "abc", true); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline: %v, want ErrOffline", err)
	}
	ua := newTestUA(t, 200, "OK")
	pres.Register(context.Background(), presence.Binding{AOR: to, Contact: ua.contact("8613800000001"), Via: "sip", Expires: time.Now().Add(time.Hour)})
	if err := s.SendIMDN(context.Background(), to, "abc", false); err != nil {
		t.Fatalf("SendIMDN: %v", err)
	}
	got := ua.waitMessage(t)
	if ct := headerValue(got, "Content-Type"); ct != "message/imdn+xml" {
		t.Errorf("Content-Type %q", ct)
	}
	var d imdnDoc
	if err := xml.Unmarshal(got.Body(), &d); err != nil || d.MessageID != "abc" || d.Status.Failed == nil {
		t.Errorf("IMDN %+v err %v", d, err)
	}
}

func TestListenPortZeroBothTransports(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	s := startServer(t, baseConfig(), pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("tcp on %s: %v", s.Addr(), err)
	}
	c.Close()
	// A second server on the same port must fail on both.
	cfg := baseConfig()
	cfg.Listen = s.Addr()
	s2, _ := New(cfg, pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))
	if err := s2.Serve(context.Background()); err == nil {
		t.Fatal("second Serve on a used port succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	pres, _ := presence.Open(presence.Options{})
	sub := submitFunc(func(context.Context, *msg.Message) error { return nil })
	if _, err := New(Config{}, pres, sub); err == nil {
		t.Error("no Domain accepted")
	}
	if _, err := New(Config{Domain: "d"}, pres, sub); err == nil {
		t.Error("no HA1 without OpenRegistration accepted")
	}
	if _, err := New(Config{Domain: "d", Issued: func(string) []string { return nil }}, pres, sub); err != nil {
		t.Errorf("Issued without HA1: %v", err)
	}
	if _, err := New(Config{Domain: "d", OpenRegistration: true}, nil, sub); err == nil {
		t.Error("nil Registrar accepted")
	}
}
