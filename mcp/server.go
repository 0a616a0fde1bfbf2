package mcp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/codec"
	"github.com/smsbridge/bridge/internal/preauth"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Config configures the handset link.
type Config struct {
	Listen           string                                  // "host:port" for ListenAndServe (default ":5070")
	Domain           string                                  // digest realm; handset AORs are sip:user@Domain
	CountryCode      string                                  // default country code for numbers (msg.FromAOR)
	HA1              func(user string) (ha1 string, ok bool) // lower-case hex md5(user:Domain:password), as for SIP
	Issued           func(user string) []string              // optional: HA1s of the user's live issued credentials, one per device (login.Authenticator.Issued), tried when HA1 does not match
	OpenRegistration bool                                    // labs: register without digest
	MaxFrame         int                                     // largest inbound frame (default 64 KiB)
	MaxConns         int                                     // connections beyond this are closed at once (default 10000)
	// Connections not logged in yet (no successful R): at most MaxPreauth
	// (default 256), MaxPreauthPerSource from one IP (default 32), past
	// which the longest waiting one is closed for the newcomer; each has
	// LoginTimeout (default 5s) to register. Until its first byte one holds
	// no read buffer, codec state or worker goroutine.
	MaxPreauth, MaxPreauthPerSource int
	LoginTimeout                    time.Duration
	IdleTimeout                     time.Duration // a handset silent this long is dropped (default 5m)
	MessageTimeout                  time.Duration // wait for the handset's answer to our M (default 10s)
	WriteTimeout                    time.Duration // one frame write (default 10s)
	// Stateless makes every frame stand alone (codec stateless mode);
	// the default, false, is one stateful codec per connection direction.
	Stateless bool
	// Lookup, when set (presence.Store.Lookup), lets an M to a number that
	// is not online in IM be answered "280 Send SMS OK" even without
	// N: SendCatSMS.
	Lookup func(msg.Address) (presence.Binding, bool)
	// Service, when set, answers S service requests first (e.g. an SSO
	// ticket, a partner user's contact list); handled=false falls back to
	// the built-in answers. user is the registered user of the connection.
	Service func(ctx context.Context, user string, aor msg.Address, name string, body []byte) (code int, reason string, result []byte, handled bool)
	Logger  *slog.Logger
}

func (c *Config) defaults() error {
	if c.Domain == "" {
		return errors.New("mcp: Config.Domain is required")
	}
	if !c.OpenRegistration && c.HA1 == nil && c.Issued == nil {
		return errors.New("mcp: Config.HA1 is required unless OpenRegistration")
	}
	if c.Listen == "" {
		c.Listen = ":5070"
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = 64 << 10
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 10000
	}
	if c.MaxPreauth <= 0 {
		c.MaxPreauth = 256
	}
	if c.MaxPreauthPerSource <= 0 {
		c.MaxPreauthPerSource = 32
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Registrar keeps handset bindings (presence.Store).
type Registrar interface {
	Register(ctx context.Context, b presence.Binding) error
	Unregister(ctx context.Context, aor msg.Address, contact string) error
}

// ErrGone is returned by SendIM when the binding's connection is closed or
// now belongs to someone else.
var ErrGone = errors.New("mcp: handset connection gone")

// StatusError is a non-2xx final response from the other side.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return "mcp: handset answered " + strconv.Itoa(e.Code) + " " + e.Reason
}

// Timing and size constants.
const (
	submitTimeout = 10 * time.Second // one M waiting for the store
	unregTimeout  = 5 * time.Second  // removing a binding after the connection closed
	reqQueue      = 32               // requests read ahead of the per-connection worker
	minExpires    = 60
	defExpires    = 600
	maxExpires    = 86400
	maxAuthFails  = 3
	dateFormat    = "Mon, 02 Jan 2006 15:04:05 GMT" // RFC 1123 in GMT, as in SIP-C D:
)

// Server is the handset link. It is safe for concurrent use.
type Server struct {
	cfg  Config
	reg  Registrar
	sub  msg.Stager
	log  *slog.Logger
	boot string // distinguishes this process's connection ids from a previous run's
	seq  atomic.Uint64
	addr atomic.Value // net.Addr once serving

	mu      sync.Mutex
	conns   map[string]*conn
	wg      sync.WaitGroup
	preauth *preauth.Gate
}

// New checks cfg and returns a server; start it with Serve or ListenAndServe.
func New(cfg Config, reg Registrar, sub msg.Stager) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if reg == nil || sub == nil {
		return nil, errors.New("mcp: a Registrar and a msg.Stager are required")
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("mcp: boot id: %w", err)
	}
	return &Server{
		cfg: cfg, reg: reg, sub: sub, log: cfg.Logger,
		boot:    hex.EncodeToString(b[:]),
		conns:   make(map[string]*conn),
		preauth: preauth.New(cfg.MaxPreauth, cfg.MaxPreauthPerSource),
	}, nil
}

// Conns is the number of open handset connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Addr is the listening address once Serve has started, else nil.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// ListenAndServe listens on Config.Listen (TCP) and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("mcp: listen %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts handset connections on ln until ctx ends, then closes them
// all (removing their bindings) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.addr.Store(ln.Addr())
	s.log.Info("mcp listening", "addr", ln.Addr().String(), "domain", s.cfg.Domain,
		"stateful", !s.cfg.Stateless, "open_registration", s.cfg.OpenRegistration)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
	}()
	var err error
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond) // transient (e.g. EMFILE): back off
				continue
			}
			err = fmt.Errorf("mcp: accept: %w", aerr)
			break
		}
		c := s.newConn(nc)
		s.mu.Lock()
		full := len(s.conns) >= s.cfg.MaxConns
		if !full {
			s.conns[c.id] = c
			s.wg.Add(1)
		}
		s.mu.Unlock()
		if full {
			s.log.Warn("mcp connection refused: MaxConns reached", "remote", nc.RemoteAddr().String(), "max", s.cfg.MaxConns)
			nc.Close()
			continue
		}
		c.ticket = s.preauth.Admit(nc.RemoteAddr(), func() { c.close("closed before login for a newer connection") })
		go func() {
			defer s.wg.Done()
			c.serve(ctx)
		}()
	}
	s.mu.Lock()
	for _, c := range s.conns {
		c.close("server shutting down")
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// SendIM delivers m to the handset connection of b (router.IMSender for
// Via "mcp"): nil once the handset answered 2xx.
func (s *Server) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if b.Via != "" && b.Via != "mcp" {
		return fmt.Errorf("mcp: binding via %q is not ours", b.Via)
	}
	s.mu.Lock()
	c := s.conns[b.Contact]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("mcp: send %s to %s at %s: %w", m.ID, b.AOR, b.Contact, ErrGone)
	}
	user, aor, ok := c.registration()
	if !ok || aor != b.AOR {
		// A binding that outlived its registration (e.g. from durable
		// presence) must never reach another user on a reused connection.
		return fmt.Errorf("mcp: send %s to %s: %s is not registered as that user: %w", m.ID, b.AOR, b.Contact, ErrGone)
	}
	from := m.From.SIPURI(s.cfg.Domain)
	if m.From.IsMSISDN() {
		from = "tel:" + string(m.From)
	}
	callID := strconv.FormatUint(c.outSeq.Add(1), 10)
	req := &Message{Method: "M", Target: user, Version: Version}
	req.Add("I", callID)
	req.Add("Q", "1 M")
	req.Add("F", from)
	req.Add("C", "text/plain")
	req.Add("D", time.Now().UTC().Format(dateFormat))
	if m.ID != "" && validText(m.ID) {
		req.Add("XI", m.ID)
	}
	req.SetBody([]byte(m.Text))
	resp, err := c.request(ctx, req, s.cfg.MessageTimeout)
	if err != nil {
		return fmt.Errorf("mcp: send %s to %s at %s: %w", m.ID, b.AOR, b.Contact, err)
	}
	if resp.Code < 200 || resp.Code > 299 {
		return fmt.Errorf("mcp: send %s to %s at %s: %w", m.ID, b.AOR, b.Contact, &StatusError{resp.Code, resp.Reason})
	}
	return nil
}

// Notify pushes a BN request with event N: event and body to every handset
// connection registered as aor (e.g. a changed contact list), and returns
// how many answered it with a 2xx. A handset that does not answer in time
// is not retried: its next GetContactList has the change.
func (s *Server) Notify(ctx context.Context, aor msg.Address, event string, body []byte) int {
	s.mu.Lock()
	var targets []*conn
	for _, c := range s.conns {
		if _, a, ok := c.registration(); ok && a == aor {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range targets {
		user, _, ok := c.registration()
		if !ok {
			continue
		}
		req := &Message{Method: "BN", Target: user, Version: Version}
		req.Add("I", strconv.FormatUint(c.outSeq.Add(1), 10))
		req.Add("Q", "1 BN")
		req.Add("N", event)
		req.SetBody(body)
		if resp, err := c.request(ctx, req, s.cfg.MessageTimeout); err == nil && resp.Code >= 200 && resp.Code <= 299 {
			n++
		}
	}
	return n
}

// conn is one handset connection. The reader goroutine owns dec and
// matches responses; the worker goroutine owns the request-handling state
// below "worker only"; writes are serialized by wmu because the stateful
// encoder's order is the wire order.
type conn struct {
	s      *Server
	id     string
	nc     net.Conn
	log    *slog.Logger
	dec    *codec.Decoder // nil when stateless
	closed chan struct{}
	once   sync.Once
	why    string // first close reason, set inside once
	born   time.Time
	ticket *preauth.Ticket // its place among those not logged in
	authed atomic.Bool     // registered once: LoginTimeout no longer applies

	wmu                     sync.Mutex
	enc                     *codec.Encoder // nil when stateless
	rawBuf, frameBuf, wrBuf []byte

	outSeq  atomic.Uint64 // call ids of our requests
	pmu     sync.Mutex
	pending map[string]chan *Message // I+"\x00"+Q of our requests → waiter

	rmu        sync.Mutex // registration, read by SendIM
	user       string
	aor        msg.Address
	registered bool
	expires    time.Time

	// worker only
	nonce     string
	fails     int
	regCallID string
}

func (s *Server) newConn(nc net.Conn) *conn {
	id := "mcp:" + s.boot + "." + strconv.FormatUint(s.seq.Add(1), 10)
	c := &conn{
		s: s, id: id, nc: nc,
		log:     s.log.With("conn", id, "remote", nc.RemoteAddr().String()),
		closed:  make(chan struct{}),
		pending: make(map[string]chan *Message),
		born:    time.Now(),
	}
	return c
}

func (c *conn) registration() (user string, aor msg.Address, ok bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.user, c.aor, c.registered && time.Now().Before(c.expires)
}

// close shuts the connection once, remembering the first reason.
func (c *conn) close(why string) {
	c.once.Do(func() {
		c.why = why
		close(c.closed)
		c.nc.Close()
	})
}

func (c *conn) reason() string {
	select {
	case <-c.closed:
		return c.why
	default:
		return ""
	}
}

// loggedIn marks the connection authenticated: it leaves the places of
// those not logged in, and LoginTimeout no longer applies.
func (c *conn) loggedIn() {
	if c.authed.Swap(true) {
		return
	}
	if c.ticket != nil {
		c.ticket.Done()
	}
	// The reader may wait under the login deadline; it gets the idle one.
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
}

// serve runs the connection: this goroutine reads, a worker (started with
// the first request) handles requests in order. It returns after the
// connection is closed and its binding gone.
func (c *conn) serve(ctx context.Context) {
	c.log.Debug("mcp connection open")
	var reqs chan *Message
	done := make(chan struct{})
	start := func() chan<- *Message {
		reqs = make(chan *Message, reqQueue)
		go func() {
			defer close(done)
			for m := range reqs {
				c.handle(ctx, m)
			}
		}()
		return reqs
	}
	why := c.read(start)
	c.close(why)
	if c.ticket != nil {
		c.ticket.Done()
	}
	if reqs != nil {
		close(reqs)
		<-done
	}
	c.pmu.Lock()
	for k, ch := range c.pending {
		delete(c.pending, k)
		close(ch) // waiters see the close as ErrGone
	}
	c.pmu.Unlock()
	c.rmu.Lock()
	aor, was := c.aor, c.registered
	c.registered = false
	c.rmu.Unlock()
	if was {
		uctx, cancel := context.WithTimeout(context.Background(), unregTimeout)
		if err := c.s.reg.Unregister(uctx, aor, c.id); err != nil {
			c.log.Warn("mcp: unregister after close failed", "aor", aor, "err", err)
		}
		cancel()
	}
	c.s.mu.Lock()
	delete(c.s.conns, c.id)
	c.s.mu.Unlock()
	c.log.Info("mcp connection closed", "reason", c.reason(), "aor", aor)
}

// read loops over inbound frames and returns why it stopped. The read
// buffer, the decoder and the worker (start) come with the first byte.
func (c *conn) read(start func() chan<- *Message) string {
	var br *bufio.Reader
	var reqs chan<- *Message
	var raw []byte
	for {
		authed := c.authed.Load()
		deadline := time.Now().Add(c.s.cfg.IdleTimeout)
		if !authed {
			deadline = c.born.Add(c.s.cfg.LoginTimeout)
		}
		if err := c.nc.SetReadDeadline(deadline); err != nil {
			return "set deadline: " + err.Error()
		}
		if !authed && c.authed.Load() { // logged in meanwhile: loggedIn's deadline was overwritten
			c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		}
		if br == nil {
			var first [1]byte
			if _, err := io.ReadFull(c.nc, first[:]); err != nil {
				return c.readErr(err)
			}
			br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(first[:]), c.nc), 4096)
			if !c.s.cfg.Stateless {
				c.wmu.Lock()
				c.dec, c.enc = codec.NewDecoder(true), codec.NewEncoder(true)
				c.wmu.Unlock()
			}
		}
		frame, err := codec.ReadFrame(br, c.s.cfg.MaxFrame)
		if err != nil {
			if errors.Is(err, codec.ErrFrameTooLarge) {
				c.badRequest(nil, "frame too large")
				return err.Error()
			}
			return c.readErr(err)
		}
		if c.dec != nil {
			raw, err = c.dec.Decode(raw[:0], frame)
		} else {
			raw, err = codec.Decode(raw[:0], frame)
		}
		if err != nil {
			c.badRequest(nil, "undecodable frame")
			if c.dec != nil {
				// The decoder refuses everything from now on; the handset
				// must reconnect so that both ends start from scratch.
				return "codec state mismatch: " + err.Error()
			}
			c.log.Info("mcp: undecodable frame", "err", err)
			continue
		}
		m, err := Parse(raw)
		if err != nil {
			c.log.Info("mcp: malformed SIP-C", "err", err)
			c.badRequest(raw, err.Error())
			continue
		}
		if m.IsResponse() {
			c.deliver(m)
			continue
		}
		if reqs == nil {
			reqs = start()
		}
		select {
		case reqs <- m:
		case <-c.closed:
			return c.reason()
		}
	}
}

// readErr is why a read failed.
func (c *conn) readErr(err error) string {
	if why := c.reason(); why != "" {
		return why
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "handset closed the connection"
	case errors.As(err, &ne) && ne.Timeout() && !c.authed.Load():
		return "no login within " + c.s.cfg.LoginTimeout.String()
	case errors.As(err, &ne) && ne.Timeout():
		return "idle timeout " + c.s.cfg.IdleTimeout.String()
	}
	return "read: " + err.Error()
}

// deliver hands a final response to the SendIM waiting for it.
func (c *conn) deliver(m *Message) {
	if m.Code < 200 {
		return // provisional: keep waiting for the final one
	}
	key := m.Get("I") + "\x00" + m.Get("Q")
	c.pmu.Lock()
	ch := c.pending[key]
	delete(c.pending, key)
	c.pmu.Unlock()
	if ch == nil {
		c.log.Debug("mcp: response matches no request", "i", m.Get("I"), "q", m.Get("Q"), "code", m.Code)
		return
	}
	ch <- m // buffered 1, and only one sender per key
}

// request sends req (with I and Q set) and waits for its final response.
func (c *conn) request(ctx context.Context, req *Message, timeout time.Duration) (*Message, error) {
	key := req.Get("I") + "\x00" + req.Get("Q")
	ch := make(chan *Message, 1)
	c.pmu.Lock()
	select {
	case <-c.closed:
		c.pmu.Unlock()
		return nil, ErrGone
	default:
	}
	c.pending[key] = ch
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		if c.pending[key] == ch {
			delete(c.pending, key)
		}
		c.pmu.Unlock()
	}()
	if err := c.send(req); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, ErrGone
		}
		return resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("no answer within %s", timeout)
	}
}

// send encodes and writes one message. Any failure closes the connection:
// the peer's decoder cannot follow a stream with a hole in it.
func (c *conn) send(m *Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return ErrGone
	default:
	}
	c.rawBuf = m.AppendTo(c.rawBuf[:0])
	var err error
	if c.enc != nil {
		c.frameBuf, err = c.enc.Encode(c.frameBuf[:0], c.rawBuf)
	} else {
		c.frameBuf, err = codec.Encode(c.frameBuf[:0], c.rawBuf)
	}
	if err != nil {
		c.close("encode: " + err.Error())
		return fmt.Errorf("mcp: encode: %w", err)
	}
	c.wrBuf = codec.AppendFrame(c.wrBuf[:0], c.frameBuf)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout)); err != nil {
		c.close("set write deadline: " + err.Error())
		return fmt.Errorf("mcp: write: %w", err)
	}
	if _, err := c.nc.Write(c.wrBuf); err != nil {
		c.close("write: " + err.Error())
		return fmt.Errorf("mcp: write: %w", err)
	}
	return nil
}

// badRequest answers 400 to something that could not be parsed, echoing
// its I and Q when they can be found so the handset can match it.
func (c *conn) badRequest(raw []byte, why string) {
	resp := &Message{Code: 400, Reason: "Bad Request", Version: Version}
	if raw != nil {
		i, q := sniff(raw)
		if i != "" {
			resp.Add("I", i)
		}
		if q != "" {
			resp.Add("Q", q)
		}
	}
	if err := c.send(resp); err != nil {
		c.log.Debug("mcp: could not answer 400", "why", why, "err", err)
	}
}
