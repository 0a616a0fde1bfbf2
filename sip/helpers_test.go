package sip

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/store"
)

const testDomain = "example.test"

// Users known to the test registrar (user → password).
var testPasswords = map[string]string{
	"8613800000001": "alice-secret",
	"8613900000009": "bob-secret",
	"carol":         "carol-secret",
}

func testHA1(user string) (string, bool) {
	pw, ok := testPasswords[user]
	if !ok {
		return "", false
	}
	return config.HA1(user, testDomain, pw), true
}

// testLogger is silent unless SIP_TEST_LOG=1 (sipgo goroutines may log after
// a test ended, so t.Log cannot be used).
func testLogger() *slog.Logger {
	if os.Getenv("SIP_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func baseConfig() Config {
	return Config{
		Listen:      "127.0.0.1:0",
		Domain:      testDomain,
		CountryCode: "86",
		HA1:         testHA1,
		Logger:      testLogger(),
	}
}

// startServer runs a Server until the test ends.
func startServer(t testing.TB, cfg Config, reg Registrar, sub msg.Stager, prep ...func(*Server)) *Server {
	t.Helper()
	s, err := New(cfg, reg, sub)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, p := range prep {
		p(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s
}

// bridge is a SIP edge wired to a real router, store and presence index.
type bridge struct {
	srv  *Server
	pres *presence.Store
	db   *store.DB
	rt   *router.Router
}

func startBridge(t testing.TB, mod func(*Config), prep ...func(*Server)) *bridge {
	t.Helper()
	db, err := store.Open(store.Options{Logger: testLogger()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatalf("presence.Open: %v", err)
	}
	b := &bridge{pres: pres, db: db}
	b.rt = router.New(router.Config{Workers: 8, RetryMin: 100 * time.Millisecond, Logger: testLogger()}, db, pres)
	cfg := baseConfig()
	if mod != nil {
		mod(&cfg)
	}
	b.srv = startServer(t, cfg, pres, b.rt, prep...)
	b.rt.AddIM("sip", b.srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.rt.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func quietUA(t testing.TB) *sipgo.UserAgent {
	t.Helper()
	l := slog.New(slog.DiscardHandler)
	u, err := sipgo.NewUA(
		sipgo.WithUserAgentHostname(testDomain),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(l)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(l)),
	)
	if err != nil {
		t.Fatalf("NewUA: %v", err)
	}
	return u
}

// testUA is a sipgo user agent: a client for REGISTER/MESSAGE and a UDP
// listener that answers every incoming MESSAGE with code.
type testUA struct {
	ua     *sipgo.UserAgent
	client *sipgo.Client
	addr   string // UDP listen ip:port
	port   int
	got    chan *sip.Request
}

func newTestUA(t testing.TB, code int, reason string) *testUA {
	t.Helper()
	u := quietUA(t)
	srv, err := sipgo.NewServer(u, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(u, sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tu := &testUA{ua: u, client: client, addr: pc.LocalAddr().String(), got: make(chan *sip.Request, 64)}
	tu.port = pc.LocalAddr().(*net.UDPAddr).Port
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		select {
		case tu.got <- req.Clone():
		default:
		}
		tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	})
	go srv.ServeUDP(pc)
	t.Cleanup(func() {
		pc.Close()
		u.Close()
	})
	return tu
}

func (u *testUA) contact(user string) string {
	return "sip:" + user + "@" + u.addr
}

func (u *testUA) waitMessage(t testing.TB) *sip.Request {
	t.Helper()
	select {
	case r := <-u.got:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("UA received no MESSAGE")
		return nil
	}
}

func hostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func aorURI(user string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: testDomain}
}

// registerReq builds a REGISTER for user with one contact (or "*").
func registerReq(t testing.TB, s *Server, user, contact string, expires int) *sip.Request {
	t.Helper()
	host, port := hostPort(t, s.Addr())
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	req.AppendHeader(&sip.ToHeader{Address: aorURI(user)})
	from := &sip.FromHeader{Address: aorURI(user), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	if contact == "*" {
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Wildcard: true}})
	} else if contact != "" {
		var u sip.Uri
		if err := sip.ParseUri(contact, &u); err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(&sip.ContactHeader{Address: u})
	}
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	}
	return req
}

// do sends req and, when challenged and password is set, answers the
// challenge. It returns the first and the final response.
func (u *testUA) do(t testing.TB, req *sip.Request, user, password string) (first, final *sip.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	if res.StatusCode != 401 || password == "" {
		return res, res
	}
	res2, err := u.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		t.Fatalf("%s with digest: %v", req.Method, err)
	}
	return res, res2
}

// messageReq builds a MESSAGE from fromUser to toUser addressed to s.
func messageReq(t testing.TB, s *Server, fromUser, toUser, ctype, body string) *sip.Request {
	t.Helper()
	host, port := hostPort(t, s.Addr())
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: toUser, Host: host, Port: port})
	req.AppendHeader(&sip.ToHeader{Address: aorURI(toUser)})
	from := &sip.FromHeader{Address: aorURI(fromUser), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	if ctype != "" {
		ct := sip.ContentTypeHeader(ctype)
		req.AppendHeader(&ct)
	}
	req.SetBody([]byte(body))
	return req
}

func headerValue(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func TestMain(m *testing.M) {
	// sipgo logs a few connection-pool warnings through its package-level
	// default logger; keep test output readable unless asked.
	if os.Getenv("SIP_TEST_LOG") != "1" {
		sip.SetDefaultLogger(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}
