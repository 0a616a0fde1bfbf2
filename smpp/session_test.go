package smpp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
)

// echo answers every submit_sm/deliver_sm with a message id derived from
// the text, so a test can check each response went to its own request.
type echo struct {
	n     atomic.Int64
	delay time.Duration   // simulated work per request (a load shape, not a wait)
	hold  <-chan struct{} // if set, every request waits for it to close: never answered in time
}

func (e *echo) HandleSMPP(_ context.Context, _ *Session, req, resp *PDU) {
	e.n.Add(1)
	if e.delay > 0 {
		time.Sleep(e.delay)
	}
	if e.hold != nil {
		<-e.hold
	}
	resp.MessageID = "id-" + string(req.ShortMessage)
}

func startServer(t *testing.T, h Handler, mod func(*ServerConfig)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h, mod), ln.Addr().String()
}

// serveOn runs a server on ln until the test ends.
func serveOn(t *testing.T, ln net.Listener, h Handler, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{
		Handler: h,
		Auth: func(id, pw string, _ CommandID, _ net.Addr) uint32 {
			switch {
			case id != "esme1":
				return ESME_RINVSYSID
			case !CheckPassword("secret", pw):
				return ESME_RINVPASWD
			}
			return ESME_ROK
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv := NewServer(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-done })
	return srv
}

func startClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	c := NewClient(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func TestFiorixClientBindsAndSubmits(t *testing.T) {
	e := &echo{}
	_, addr := startServer(t, e, nil)
	tx := &fsmpp.Transceiver{Addr: addr, User: "esme1", Passwd: "secret", RespTimeout: 5 * time.Second}
	conn := tx.Bind()
	defer tx.Close()
	if st := <-conn; st.Error() != nil {
		t.Fatalf("bind: %v", st.Error())
	}
	for i := range 20 {
		sm, err := tx.Submit(&fsmpp.ShortMessage{Src: "1", Dst: "2", Text: pdutext.Raw(strconv.Itoa(i))})
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if want := "id-" + strconv.Itoa(i); sm.RespID() != want {
			t.Fatalf("submit %d got id %q, want %q", i, sm.RespID(), want)
		}
	}
	if e.n.Load() != 20 {
		t.Fatalf("handler saw %d, want 20", e.n.Load())
	}
}

func TestBindRefusedWithStatus(t *testing.T) {
	_, addr := startServer(t, &echo{}, nil)
	for _, c := range []struct {
		user, pw string
		want     uint32
	}{{"esme1", "nope", ESME_RINVPASWD}, {"stranger", "secret", ESME_RINVSYSID}} {
		cli := NewClient(ClientConfig{Addr: addr, SystemID: c.user, Password: c.pw})
		err := cli.once(context.Background())
		var se *StatusError
		if !errors.As(err, &se) || se.Status != c.want {
			t.Errorf("bind %s/%s: %v, want status %s", c.user, c.pw, err, StatusName(c.want))
		}
	}
}

// Both sides send at once on one transceiver: each side's responses must
// match its own requests even though the sequence numbers overlap.
func TestTransceiverBothDirections(t *testing.T) {
	srvEcho, cliEcho := &echo{delay: time.Millisecond}, &echo{delay: time.Millisecond}
	srv, addr := startServer(t, srvEcho, func(c *ServerConfig) { c.Window = 4 })
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", Handler: cliEcho, Window: 3})
	testutil.WaitFor(t, "bind", 10*time.Second, func() bool { return len(srv.Sessions("esme1")) == 1 })
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("up%d", i)
			resp, err := c.Send(context.Background(), &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte(text)})
			if err == nil && resp.MessageID != "id-"+text {
				err = fmt.Errorf("submit %q answered %q", text, resp.MessageID)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			text := fmt.Sprintf("down%d", i)
			resp, err := srv.Deliver(context.Background(), "esme1", &PDU{ID: DeliverSM, SourceAddr: "2", DestAddr: "1", ShortMessage: []byte(text)})
			if err == nil && resp.MessageID != "id-"+text {
				err = fmt.Errorf("deliver %q answered %q", text, resp.MessageID)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if srvEcho.n.Load() != n || cliEcho.n.Load() != n {
		t.Fatalf("server handled %d, client %d; want %d each", srvEcho.n.Load(), cliEcho.n.Load(), n)
	}
}

// rawBind opens a TCP connection and binds by hand.
func rawBind(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	writePDU(t, conn, &PDU{ID: BindTransceiver, Seq: 1, SystemID: "esme1", Password: "secret", InterfaceVersion: 0x34})
	r := bufio.NewReader(conn)
	p := readPDU(t, conn, r)
	if p.ID != BindTransceiverResp || p.Status != 0 {
		t.Fatalf("bind: %v status %x", p.ID, p.Status)
	}
	return conn, r
}

func writePDU(t *testing.T, conn net.Conn, p *PDU) {
	t.Helper()
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readPDU(t *testing.T, conn net.Conn, r *bufio.Reader) *PDU {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var p PDU
	if err := ReadPDU(r, &p, MaxPDU); err != nil {
		t.Fatalf("read: %v", err)
	}
	return &p
}

func TestMalformedGetsGenericNackAndSessionSurvives(t *testing.T) {
	_, addr := startServer(t, &echo{}, nil)
	conn, r := rawBind(t, addr)
	bad := [][]byte{
		fixLen(append(hdr(SubmitSM), 'n', 'o', 'n', 'u', 'l')),                                      // C-string without NUL
		{0, 0, 0, 16, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 42},                                    // unknown command
		fixLen(append(hdr(SubmitSM), 0, 1, 1, '1', 0, 1, 1, '2', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99)), // sm_length past end
	}
	for i, b := range bad {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
		p := readPDU(t, conn, r)
		if p.ID != GenericNack || p.Status == 0 || p.Seq != 42 {
			t.Fatalf("malformed #%d answered %v status %x seq %d, want generic_nack with seq 42", i, p.ID, p.Status, p.Seq)
		}
	}
	// Still up: a good submit_sm and enquire_link work.
	writePDU(t, conn, &PDU{ID: SubmitSM, Seq: 43, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("ok")})
	if p := readPDU(t, conn, r); p.ID != SubmitSMResp || p.Seq != 43 || p.MessageID != "id-ok" {
		t.Fatalf("after malformed: %v seq %d id %q", p.ID, p.Seq, p.MessageID)
	}
	writePDU(t, conn, &PDU{ID: EnquireLink, Seq: 44})
	if p := readPDU(t, conn, r); p.ID != EnquireLinkResp || p.Seq != 44 {
		t.Fatalf("enquire_link: %v seq %d", p.ID, p.Seq)
	}
	writePDU(t, conn, &PDU{ID: Unbind, Seq: 45})
	if p := readPDU(t, conn, r); p.ID != UnbindResp || p.Seq != 45 {
		t.Fatalf("unbind: %v seq %d", p.ID, p.Seq)
	}
}

// An SMSC may send deliver_sm right behind its bind_resp, in the same
// segment: the client must already count as bound when it reads it.
func TestDeliverRightAfterBindResp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *PDU, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var bind PDU
		if ReadPDU(r, &bind, 4096) != nil {
			return
		}
		b, _ := (&PDU{ID: bind.ID.Resp(), Seq: bind.Seq, SystemID: "smsc"}).AppendTo(nil)
		b, _ = (&PDU{ID: DeliverSM, Seq: 1, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("mo")}).AppendTo(b)
		conn.Write(b) // one write: both arrive in one read
		for {
			var p PDU
			if ReadPDU(r, &p, 4096) != nil {
				return
			}
			if p.ID == DeliverSMResp {
				got <- &p
				return
			}
		}
	}()
	startClient(t, ClientConfig{Addr: ln.Addr().String(), SystemID: "esme1", Password: "secret", Handler: &echo{}})
	select {
	case p := <-got:
		if p.Status != ESME_ROK || p.MessageID != "id-mo" {
			t.Fatalf("deliver_sm right after bind_resp answered %s, id %q", StatusName(p.Status), p.MessageID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no deliver_sm_resp")
	}
}

func TestSubmitBeforeBindRefused(t *testing.T) {
	_, addr := startServer(t, &echo{}, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	writePDU(t, conn, &PDU{ID: SubmitSM, Seq: 5, SourceAddr: "1", DestAddr: "2"})
	if p := readPDU(t, conn, bufio.NewReader(conn)); p.ID != SubmitSMResp || p.Status != ESME_RINVBNDSTS {
		t.Fatalf("got %v status %x, want submit_sm_resp ESME_RINVBNDSTS", p.ID, p.Status)
	}
}

func TestReceiverMayNotSubmit(t *testing.T) {
	_, addr := startServer(t, &echo{}, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	writePDU(t, conn, &PDU{ID: BindReceiver, Seq: 1, SystemID: "esme1", Password: "secret"})
	if p := readPDU(t, conn, r); p.Status != 0 {
		t.Fatalf("bind_receiver: %x", p.Status)
	}
	writePDU(t, conn, &PDU{ID: SubmitSM, Seq: 2, SourceAddr: "1", DestAddr: "2"})
	if p := readPDU(t, conn, r); p.Status != ESME_RINVBNDSTS {
		t.Fatalf("submit on receiver: status %x", p.Status)
	}
}

// The server probes an idle peer with enquire_link; a peer that answers
// stays bound, and the client side answers the server's probes by itself.
func TestEnquireLinkKeepsIdleBind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := serveOn(t, cl, &echo{}, func(c *ServerConfig) { c.EnquireInterval = 50 * time.Millisecond })
	c := startClient(t, ClientConfig{Addr: ln.Addr().String(), SystemID: "esme1", Password: "secret", EnquireInterval: 40 * time.Millisecond, Handler: &echo{}})
	testutil.WaitFor(t, "bind", 10*time.Second, c.Bound)
	s := c.Session()
	// Several probe intervals, both ways: enquire_link_resp read by the
	// server (the client answered its probes) and written by it (it answered
	// the client's).
	const probes = 3
	testutil.WaitForState(t, 10*time.Second, func() bool {
		return cl.in.count(EnquireLinkResp) >= probes && cl.out.count(EnquireLinkResp) >= probes
	}, func() string {
		return fmt.Sprintf("want %d enquire_link answered each way; the client answered %d, the server %d",
			probes, cl.in.count(EnquireLinkResp), cl.out.count(EnquireLinkResp))
	})
	if c.Session() != s || !c.Bound() || srv.Bound() != 1 {
		t.Fatal("idle bind with working enquire_link was dropped")
	}
}

// countingListener counts the PDUs its connections read and write.
type countingListener struct {
	net.Listener
	in, out pduCounter
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.in.add(p[:n])
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.out.add(p[:n])
	return n, err
}

// pduCounter counts PDUs by command id in a stream that arrives in pieces.
// One stream per counter: the test has one connection.
type pduCounter struct {
	mu   sync.Mutex
	buf  []byte
	seen map[CommandID]int
}

func (c *pduCounter) add(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 16 {
		n := int(binary.BigEndian.Uint32(c.buf))
		if n < 16 || len(c.buf) < n {
			break
		}
		if c.seen == nil {
			c.seen = map[CommandID]int{}
		}
		c.seen[CommandID(binary.BigEndian.Uint32(c.buf[4:]))]++
		c.buf = c.buf[n:]
	}
}

func (c *pduCounter) count(id CommandID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

// A peer that stops answering enquire_link is dropped.
func TestEnquireLinkDropsDeadPeer(t *testing.T) {
	srv, addr := startServer(t, &echo{}, func(c *ServerConfig) {
		c.EnquireInterval = 50 * time.Millisecond
		c.RespTimeout = 100 * time.Millisecond
	})
	conn, _ := rawBind(t, addr) // binds, then never reads again
	_ = conn
	testutil.WaitFor(t, "bound", 10*time.Second, func() bool { return srv.Bound() == 1 })
	testutil.WaitFor(t, "dead peer dropped", 10*time.Second, func() bool { return srv.Bound() == 0 })
}

func TestClientRebindsAfterLoss(t *testing.T) {
	srv, addr := startServer(t, &echo{}, nil)
	var binds atomic.Int32
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret",
		MinBackoff: 10 * time.Millisecond, OnBound: func() { binds.Add(1) }})
	testutil.WaitFor(t, "first bind", 10*time.Second, c.Bound)
	for _, s := range srv.Sessions("esme1") {
		s.close(errors.New("test kills the session"))
	}
	testutil.WaitFor(t, "rebind", 10*time.Second, func() bool { return binds.Load() == 2 && c.Bound() })
	resp, err := c.Send(context.Background(), &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("again")})
	if err != nil || resp.MessageID != "id-again" {
		t.Fatalf("after rebind: %v %v", resp, err)
	}
}

func TestClientSendWaitsForBind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = c.Send(ctx, &PDU{ID: SubmitSM})
	cancel()
	if !errors.Is(err, ErrNotBound) {
		t.Fatalf("send with no SMSC: %v, want ErrNotBound", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("late")})
		got <- err
	}()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port reuse raced: %v", err)
	}
	srv := NewServer(ServerConfig{Handler: &echo{}, Auth: func(string, string, CommandID, net.Addr) uint32 { return 0 }})
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	go srv.Serve(sctx, ln2)
	defer srv.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("send once the SMSC came up: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("send did not complete after the SMSC came up")
	}
}

// Without a deadline from the caller, Send gives up waiting for a bind
// after BindWait.
func TestClientBindWaitBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", BindWait: 150 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := c.Send(context.Background(), &PDU{ID: SubmitSM}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotBound) {
			t.Fatalf("send with no SMSC: %v, want ErrNotBound", err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("gave up after %v, before BindWait", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("send with no SMSC and no deadline still waiting after 5s")
	}
}

// A request nobody answers fails with ErrTimeout about RespTimeout after
// it was sent (the session's sweeper), and one in flight when the session
// ends gets ErrClosed at once, not at its timeout.
func TestUnansweredRequestTimesOutAndCloseAnswers(t *testing.T) {
	hold := make(chan struct{})
	e := &echo{hold: hold}
	_, addr := startServer(t, e, nil)
	t.Cleanup(func() { close(hold) }) // runs before the server's cleanup, which waits for handlers
	submit := func() *PDU { return &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("x")} }
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", RespTimeout: 200 * time.Millisecond})
	testutil.WaitFor(t, "bind", 10*time.Second, c.Bound)
	start := time.Now()
	if _, err := c.Send(context.Background(), submit()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("unanswered submit: %v, want %v", err, ErrTimeout)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v, want about 200ms", d)
	}

	c2 := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", RespTimeout: time.Minute})
	testutil.WaitFor(t, "second bind", 10*time.Second, c2.Bound)
	s := c2.Session()
	errc := make(chan error, 1)
	go func() { _, err := s.Send(context.Background(), submit()); errc <- err }()
	testutil.WaitFor(t, "submit in flight", 10*time.Second, func() bool { return e.n.Load() >= 2 })
	s.close(errors.New("test ends the session"))
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiter at close: %v, want %v", err, ErrClosed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not answered when the session closed")
	}
	if _, err := s.Send(context.Background(), submit()); !errors.Is(err, ErrClosed) {
		t.Fatalf("send on a closed session: %v, want %v", err, ErrClosed)
	}
}

func BenchmarkSubmitRoundTrip(b *testing.B) {
	srv := NewServer(ServerConfig{Handler: &echo{}, Window: 256, InboundWindow: 256,
		Auth: func(string, string, CommandID, net.Addr) uint32 { return 0 }})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	defer srv.Close()
	c := NewClient(ClientConfig{Addr: ln.Addr().String(), SystemID: "b", Window: 256})
	go c.Run(ctx)
	testutil.WaitFor(b, "bind", 10*time.Second, c.Bound)
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		p := &PDU{ID: SubmitSM, SourceAddr: "8613900000009", DestAddr: "8613800000001", ShortMessage: []byte("hello")}
		for pb.Next() {
			if _, err := c.Send(ctx, p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// gated is a Stager whose deferred responses become ready when gate is
// closed; text "pool" goes to HandleSMPP instead, "panic" panics.
type gated struct {
	echo
	gate             chan struct{}
	staged, finished atomic.Int64
}

type gatedResp struct {
	g    *gated
	text string
}

func (d gatedResp) Ready() <-chan struct{} { return d.g.gate }

func (d gatedResp) Finish(resp *PDU) {
	d.g.finished.Add(1)
	resp.MessageID = "staged-" + d.text
}

func (g *gated) StageSMPP(_ context.Context, _ *Session, req, resp *PDU) (Deferred, bool) {
	switch string(req.ShortMessage) {
	case "pool":
		return nil, false
	case "panic":
		panic("staging failed")
	case "now":
		resp.MessageID = "now"
		return nil, true
	}
	g.staged.Add(1)
	return gatedResp{g, string(req.ShortMessage)}, true
}

func TestStagedResponsesWaitForReady(t *testing.T) {
	g := &gated{gate: make(chan struct{})}
	_, addr := startServer(t, g, nil)
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret"})
	testutil.WaitFor(t, "bind", 10*time.Second, c.Bound)
	send := func(text string) (*PDU, error) {
		return c.Send(context.Background(), &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte(text)})
	}
	// Answered without the gate: the pool path, an immediate answer, a panic.
	if r, err := send("pool"); err != nil || r.MessageID != "id-pool" {
		t.Fatalf("pool path: %v %v", r, err)
	}
	if r, err := send("now"); err != nil || r.MessageID != "now" {
		t.Fatalf("immediate answer: %v %v", r, err)
	}
	var se *StatusError
	if _, err := send("panic"); !errors.As(err, &se) || se.Status != ESME_RSYSERR {
		t.Fatalf("panicking stager: %v, want ESME_RSYSERR", err)
	}
	const n = 20
	type result struct {
		i   int
		id  string
		err error
	}
	got := make(chan result, n)
	for i := range n {
		go func() {
			r, err := send(strconv.Itoa(i))
			res := result{i: i, err: err}
			if r != nil {
				res.id = r.MessageID
			}
			got <- res
		}()
	}
	testutil.WaitFor(t, "all staged", 10*time.Second, func() bool { return g.staged.Load() == n })
	select {
	case r := <-got:
		t.Fatalf("request %d answered before its response was ready: %q %v", r.i, r.id, r.err)
	default:
	}
	if f := g.finished.Load(); f != 0 {
		t.Fatalf("%d finished before ready", f)
	}
	close(g.gate)
	for range n {
		r := <-got
		if want := "staged-" + strconv.Itoa(r.i); r.err != nil || r.id != want {
			t.Fatalf("request %d: %q %v, want %q", r.i, r.id, r.err, want)
		}
	}
	// The session still serves the pool path afterwards.
	if r, err := send("pool"); err != nil || r.MessageID != "id-pool" {
		t.Fatalf("pool path after: %v %v", r, err)
	}
}

func TestStagedFinishedAfterSessionEnds(t *testing.T) {
	g := &gated{gate: make(chan struct{})}
	srv, addr := startServer(t, g, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	buf, _ := (&PDU{ID: BindTransmitter, Seq: 1, SystemID: "esme1", Password: "secret"}).AppendTo(nil)
	const n = 5
	for i := range n {
		buf, _ = (&PDU{ID: SubmitSM, Seq: uint32(2 + i), SourceAddr: "1", DestAddr: "2", ShortMessage: []byte(strconv.Itoa(i))}).AppendTo(buf)
	}
	w.Write(buf)
	w.Flush()
	testutil.WaitFor(t, "all staged", 10*time.Second, func() bool { return g.staged.Load() == n })
	conn.Close() // the peer is gone before any commit ended
	testutil.WaitFor(t, "session ended", 10*time.Second, func() bool { return srv.Bound() == 0 })
	close(g.gate)
	testutil.WaitFor(t, "every deferred request finished", 10*time.Second, func() bool { return g.finished.Load() == n })
}
