package main

// Test harness: a real bridge in-process on loopback ports, a real SMSC
// simulator (our smpp server role, which the bridge binds to as a client),
// and real SIP user agents (sipgo) that register and answer MESSAGE.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

const testDomain = "bridge.test"

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// running is a bridge started by startBridge.
type running struct {
	addrs  bridge.Addrs
	cancel context.CancelFunc
	done   chan error
}

// startBridge runs a bridge with test defaults plus args (flag syntax).
func startBridge(t *testing.T, dataDir string, args ...string) *running {
	t.Helper()
	base := []string{
		"--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0", "--http-listen", "", "--mcp-listen", "",
		"--data-dir", dataDir, "--sip-domain", testDomain, "--country-code", "86",
		"--smpp-account", "esme1:secret1", "--smpp-account", "esme2:secret2",
		"--enquire-interval", "5s",
	}
	cfg, err := config.Load("test", append(base, args...), func(string) string { return "" }, os.Stderr)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	br, err := bridge.New(cfg, testLogger(t))
	if err != nil {
		cancel()
		t.Fatalf("bridge: %v", err)
	}
	b := &running{cancel: cancel, done: make(chan error, 1), addrs: br.Addrs()}
	go func() { b.done <- br.Run(ctx) }()
	select {
	case <-br.Ready():
	case err := <-b.done:
		cancel()
		t.Fatalf("bridge exited at start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("bridge did not come up")
	}
	t.Cleanup(b.stop)
	return b
}

func (b *running) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		panic("bridge did not stop")
	}
}

// smsc is an SMSC simulator: the bridge binds to it and submits SMS.
type smsc struct {
	srv  *smpp.Server
	addr string
	mu   sync.Mutex
	got  []smpp.PDU
	at   []time.Time // when each of got came
	next int
	// refused answers every request of this command with that status.
	refused map[smpp.CommandID]uint32
}

func startSMSC(t *testing.T) *smsc {
	t.Helper()
	return startSMSCAt(t, "127.0.0.1:0")
}

// startSMSCAt starts the simulator on addr: one a bridge already tries to
// bind to, for tests of what happens before the SMSC is there.
func startSMSCAt(t *testing.T, addr string) *smsc {
	t.Helper()
	s := &smsc{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.srv = smpp.NewServer(smpp.ServerConfig{
		SystemID: "smsc-sim",
		Auth: func(id, pw string, _ smpp.CommandID, _ net.Addr) uint32 {
			if id == "bridge" && smpp.CheckPassword("bridgepw", pw) {
				return smpp.ESME_ROK
			}
			return smpp.ESME_RINVPASWD
		},
		Handler: s,
	})
	ctx, cancel := context.WithCancel(context.Background())
	go s.srv.Serve(ctx, ln)
	t.Cleanup(func() { cancel(); s.srv.Close() })
	return s
}

func (s *smsc) url() string { return "smpp://bridge:bridgepw@" + s.addr }

func (s *smsc) HandleSMPP(_ context.Context, _ *smpp.Session, req *smpp.PDU, resp *smpp.PDU) {
	cp := *req
	cp.ShortMessage = append([]byte(nil), req.ShortMessage...)
	cp.TLVs = append([]smpp.TLV(nil), req.TLVs...)
	s.mu.Lock()
	s.next++
	s.got = append(s.got, cp)
	s.at = append(s.at, time.Now())
	resp.MessageID = fmt.Sprintf("%X", 0xA000+s.next)
	if st, ok := s.refused[req.ID]; ok {
		resp.Status = st
	}
	s.mu.Unlock()
}

// refuse answers every later request of cmd with status.
func (s *smsc) refuse(cmd smpp.CommandID, status uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[smpp.CommandID]uint32{}
	}
	s.refused[cmd] = status
}

func (s *smsc) received() []smpp.PDU {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smpp.PDU(nil), s.got...)
}

// texts decodes what the SMSC received to (dest, text) pairs, joining parts.
func (s *smsc) texts(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, p := range s.received() {
		body := p.ShortMessage
		if p.ESMClass&0x40 != 0 {
			_, b, _, err := smstext.ParseUDH(body)
			if err != nil {
				t.Fatalf("smsc got bad UDH: %v", err)
			}
			body = b
		}
		txt, err := smstext.Decode(p.DataCoding, body)
		if err != nil {
			t.Fatalf("smsc got undecodable text (dcs %d): %v", p.DataCoding, err)
		}
		out[p.DestAddr] += txt
	}
	return out
}

// ua is a SIP user agent: it listens, registers with the bridge and records
// the MESSAGEs it receives.
type ua struct {
	user, password string
	port           int
	srv            *sipgo.Server
	cli            *sipgo.Client
	agent          *sipgo.UserAgent
	cancel         context.CancelFunc

	mu   sync.Mutex
	msgs []*sipmsg.Request
	code int // status to answer MESSAGE with (default 200)
}

func freeUDPPort(t *testing.T) int { return testutil.FreePort(t, false, true) }

// freeSIPPort returns a loopback port free for both UDP and TCP right now:
// a bridge's SIP listener binds both.
func freeSIPPort(t *testing.T) int { return testutil.FreePort(t, true, true) }

func startUA(t *testing.T, user, password string) *ua {
	t.Helper()
	u := &ua{user: user, password: password, code: 200}
	var err error
	u.agent, err = sipgo.NewUA(sipgo.WithUserAgent(user))
	if err != nil {
		t.Fatal(err)
	}
	u.srv, err = sipgo.NewServer(u.agent)
	if err != nil {
		t.Fatal(err)
	}
	u.srv.OnMessage(func(req *sipmsg.Request, tx sipmsg.ServerTransaction) {
		u.mu.Lock()
		u.msgs = append(u.msgs, req)
		code := u.code
		u.mu.Unlock()
		if code == 0 {
			return // a UA that never answers
		}
		tx.Respond(sipmsg.NewResponseFromRequest(req, code, "OK", nil))
	})
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	for attempt := 0; ; attempt++ {
		u.port = freeUDPPort(t)
		errc := make(chan error, 1)
		go func() { errc <- u.srv.ListenAndServe(ctx, "udp", "127.0.0.1:"+strconv.Itoa(u.port)) }()
		select {
		case err = <-errc:
			if attempt < 5 {
				continue
			}
			t.Fatalf("ua listen: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	u.cli, err = sipgo.NewClient(u.agent, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); u.agent.Close() })
	return u
}

func (u *ua) setCode(c int) { u.mu.Lock(); u.code = c; u.mu.Unlock() }

func (u *ua) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, r := range u.msgs {
		out = append(out, string(r.Body()))
	}
	return out
}

// fromOf is the From header of the i-th MESSAGE a UA received.
func (u *ua) fromOf(i int) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if i >= len(u.msgs) || u.msgs[i].From() == nil {
		return ""
	}
	return u.msgs[i].From().Value()
}

func bridgeURI(b *running) sipmsg.Uri {
	host, port, _ := net.SplitHostPort(b.addrs.SIP)
	p, _ := strconv.Atoi(port)
	return sipmsg.Uri{Scheme: "sip", Host: host, Port: p}
}

// register sends REGISTER (answering a digest challenge) and returns the
// final status code.
func (u *ua) register(t *testing.T, b *running, expires int) int {
	t.Helper()
	req := sipmsg.NewRequest(sipmsg.REGISTER, bridgeURI(b))
	aor := "<sip:" + u.user + "@" + testDomain + ">"
	req.AppendHeader(sipmsg.NewHeader("From", aor+";tag=reg"+strconv.Itoa(u.port)))
	req.AppendHeader(sipmsg.NewHeader("To", aor))
	req.AppendHeader(sipmsg.NewHeader("Contact", "<sip:"+u.user+"@127.0.0.1:"+strconv.Itoa(u.port)+">"))
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("REGISTER: %v", err)
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		res, err = u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: u.password})
		if err != nil {
			t.Fatalf("REGISTER with auth: %v", err)
		}
	}
	return int(res.StatusCode)
}

// message sends a MESSAGE to the recipient AOR user part and returns the
// final status code.
func (u *ua) message(t *testing.T, b *running, toUser, text string) int {
	t.Helper()
	to := sipmsg.Uri{Scheme: "sip", User: toUser, Host: testDomain}
	req := sipmsg.NewRequest(sipmsg.MESSAGE, to)
	req.AppendHeader(sipmsg.NewHeader("From", "<sip:"+u.user+"@"+testDomain+">;tag=m"+strconv.Itoa(u.port)))
	req.AppendHeader(sipmsg.NewHeader("To", "<sip:"+toUser+"@"+testDomain+">"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(text))
	req.SetDestination(b.addrs.SIP)
	if len(text) > 500 {
		// RFC 3261 §18.1.1: a request near the MTU goes over TCP.
		req.SetTransport("TCP")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("MESSAGE: %v", err)
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		res, err = u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: u.password})
		if err != nil {
			t.Fatalf("MESSAGE with auth: %v", err)
		}
	}
	return int(res.StatusCode)
}

func sipUserFlag(user, password string) []string {
	return []string{"--sip-user", user + ":" + config.HA1(user, testDomain, password)}
}

var errNotYet = errors.New("not yet")
