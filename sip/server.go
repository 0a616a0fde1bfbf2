package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/internal/preauth"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Config configures the SIP edge.
type Config struct {
	Listen           string                                  // "host:port" for both UDP and TCP; port 0 picks one free on both
	TLSListen        string                                  // "host:port" for SIP over TLS (RFC 3261 §26.2, usually :5061); "" = none
	TLS              *tls.Config                             // the TLS listener's server config (certificate); required with TLSListen
	Domain           string                                  // our SIP domain and digest realm; AORs are sip:user@Domain
	CountryCode      string                                  // default country code for msg.FromAOR
	OpenRegistration bool                                    // labs: accept any REGISTER/MESSAGE without authentication
	HA1              func(user string) (ha1 string, ok bool) // digest credentials: lower-case hex md5(user:realm:password)
	Issued           func(user string) []string              // optional: HA1s of the user's live issued credentials, one per device (login.Authenticator.Issued), tried when HA1 does not match
	// Optional SHA-256 digest credentials (RFC 8760): hex sha256(user:realm:password).
	HA1SHA256      func(user string) (ha1 string, ok bool)
	IssuedSHA256   func(user string) []string
	OutboundProxy  string        // "host:port" or SIP URI; when set every outgoing MESSAGE goes there
	MessageTimeout time.Duration // wait for a final response to our MESSAGE (default 5s)
	MinExpires     time.Duration // shorter REGISTER expiry gets 423 (default 60s)
	DefaultExpires time.Duration // when the REGISTER names none (default 3600s)
	MaxExpires     time.Duration // longer expiries are cut to this (default 86400s)
	MaxInFlight    int           // concurrently handled requests before 503 (default 1024)
	ReginfoFrom    []string      // IPs, CIDRs or host names allowed to PUBLISH/NOTIFY reg state (RFC 3680); empty refuses with 403
	UserAgent      string
	Logger         *slog.Logger
	// TCP and TLS connections that have not sent a well-formed request
	// yet: at most MaxPreauth (default 256), MaxPreauthPerSource from one
	// IP (default 32), the newest evicting the oldest, and each closed
	// if its first request has not come within PreauthTimeout (default 5s).
	// SIP authenticates requests, not connections, so a first request is
	// what a real client shows.
	MaxPreauth, MaxPreauthPerSource int
	PreauthTimeout                  time.Duration
}

func (c *Config) defaults() error {
	if c.Domain == "" {
		return errors.New("sip: Config.Domain is required")
	}
	if c.MaxPreauth <= 0 {
		c.MaxPreauth = 256
	}
	if c.MaxPreauthPerSource <= 0 {
		c.MaxPreauthPerSource = 32
	}
	if c.PreauthTimeout <= 0 {
		c.PreauthTimeout = 5 * time.Second
	}
	if c.Listen == "" {
		c.Listen = "0.0.0.0:5060"
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = 5 * time.Second
	}
	if c.MinExpires <= 0 {
		c.MinExpires = 60 * time.Second
	}
	if c.DefaultExpires <= 0 {
		c.DefaultExpires = 3600 * time.Second
	}
	if c.MaxExpires <= 0 {
		c.MaxExpires = 86400 * time.Second
	}
	if c.DefaultExpires < c.MinExpires {
		c.DefaultExpires = c.MinExpires
	}
	if c.MaxExpires < c.DefaultExpires {
		c.MaxExpires = c.DefaultExpires
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.UserAgent == "" {
		c.UserAgent = "smsbridge"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if !c.OpenRegistration && c.HA1 == nil && c.Issued == nil {
		return errors.New("sip: Config.HA1 is required unless OpenRegistration")
	}
	return nil
}

// Registrar keeps IM users' bindings (presence.Store).
type Registrar interface {
	Register(ctx context.Context, b presence.Binding) error
	Unregister(ctx context.Context, aor msg.Address, contact string) error
	Bindings(aor msg.Address) []presence.Binding
}

// Server is the SIP edge: registrar, MESSAGE receiver and MESSAGE sender.
type Server struct {
	cfg     Config
	preauth *preauth.Gate // stream connections before their first request
	reg     Registrar
	sub     msg.Stager
	log     *slog.Logger
	nonces  nonces
	now     func() time.Time

	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	proxy    *sip.Uri       // parsed OutboundProxy with ;lr, or nil
	proxyURI string         // proxy rendered, for Route headers
	proxyUDP netip.AddrPort // proxy's UDP fast-path target (udpTargetOf); invalid when it has none

	sem       chan struct{}        // MaxInFlight tokens
	onMessage sipgo.RequestHandler // handleMessage, bounded

	ready     chan struct{}
	readyOnce sync.Once
	served    sync.Once
	pc        net.PacketConn // bound by Listen, served by Serve
	ln        net.Listener
	tlsLn     net.Listener // SIP over TLS; nil without TLSListen

	mu      sync.RWMutex
	addr    string                    // actual ip:port after Ready
	tlsAddr string                    // the TLS listener's ip:port; "" without one
	udpAddr sip.Addr                  // UDP listener, used as the source of our requests
	udp     atomic.Pointer[udpClient] // our MESSAGEs over UDP, once Serve listens
	udpSrv  atomic.Pointer[udpServer] // MESSAGEs to us over UDP, once Serve listens
	baseCtx context.Context           // Serve's ctx, for handlers
}

// onUnmatchedResponse gets responses that match none of sipgo's client
// transactions: those of our UDP fast path, and late retransmissions.
func (s *Server) onUnmatchedResponse(res *sip.Response) {
	if c := s.udp.Load(); c != nil {
		c.onResponse(res)
	}
}

// allowed is what we answer in Allow headers.
const allowed = "REGISTER, MESSAGE, OPTIONS"

// New builds a server; call Serve to start it.
func New(cfg Config, reg Registrar, sub msg.Stager) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if reg == nil || sub == nil {
		return nil, errors.New("sip: New needs a Registrar and a msg.Stager")
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sip: nonce key: %w", err)
	}
	s := &Server{
		cfg: cfg, reg: reg, sub: sub, log: cfg.Logger,
		preauth: preauth.New(cfg.MaxPreauth, cfg.MaxPreauthPerSource),
		nonces:  nonces{key: key, now: time.Now},
		now:     time.Now,
		sem:     make(chan struct{}, cfg.MaxInFlight),
		ready:   make(chan struct{}),
		baseCtx: context.Background(),
	}
	if cfg.OutboundProxy != "" {
		u, err := parseProxy(cfg.OutboundProxy)
		if err != nil {
			return nil, err
		}
		s.proxy, s.proxyURI = u, u.String()
		s.proxyUDP, _ = udpTargetOf(u)
	}
	// sipgo's own logs go through a handler that drops raw message text, so
	// bodies never reach the logs even when its parser complains.
	sipLog := LibraryLogger(cfg.Logger)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(s.onUnmatchedResponse)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	s.ua, s.srv, s.client = ua, srv, client
	srv.OnRegister(s.bounded(s.handleRegister))
	s.onMessage = s.bounded(s.handleMessage)
	srv.OnMessage(s.onMessage)
	srv.OnOptions(s.bounded(s.handleOptions))
	srv.OnPublish(s.bounded(s.handleReginfo)) // reginfo.go
	srv.OnNotify(s.bounded(s.handleReginfo))
	srv.OnNoRoute(s.bounded(s.handleOther))
	return s, nil
}

// parseProxy accepts "host:port" or a SIP URI and returns a loose-routing URI.
func parseProxy(p string) (*sip.Uri, error) {
	raw := strings.Trim(strings.TrimSpace(p), "<>")
	if !strings.HasPrefix(raw, "sip:") && !strings.HasPrefix(raw, "sips:") {
		raw = "sip:" + raw
	}
	var u sip.Uri
	if err := sip.ParseUri(raw, &u); err != nil {
		return nil, fmt.Errorf("sip: OutboundProxy %q: %w", p, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("sip: OutboundProxy %q has no host", p)
	}
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	if !u.UriParams.Has("lr") {
		u.UriParams.Add("lr", "")
	}
	return &u, nil
}

// Ready is closed once both listeners are served.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the actual "ip:port" both listeners use (valid after Listen).
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.addr
}

// TLSAddr is the actual "ip:port" of the TLS listener (valid after
// Listen); "" without one.
func (s *Server) TLSAddr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tlsAddr
}

func (s *Server) ctx() context.Context {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.baseCtx
}

// listen opens UDP and TCP on the same port. With port 0 it lets the kernel
// pick a TCP port and tries UDP on it, retrying when that one is taken.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("sip: listen address %q: %w", addr, err)
	}
	udpNet, tcpNet := "udp", "tcp"
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		udpNet, tcpNet = "udp4", "tcp4"
	}
	if port != "0" {
		ln, err := net.Listen(tcpNet, addr)
		if err != nil {
			return nil, nil, fmt.Errorf("sip: listen tcp %s: %w", addr, err)
		}
		pc, err := net.ListenPacket(udpNet, addr)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("sip: listen udp %s: %w", addr, err)
		}
		return pc, ln, nil
	}
	var lastErr error
	for range 32 {
		ln, err := net.Listen(tcpNet, net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, nil, fmt.Errorf("sip: listen tcp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		pc, err := net.ListenPacket(udpNet, net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		lastErr = err
		ln.Close()
	}
	return nil, nil, fmt.Errorf("sip: no port free for both udp and tcp on %s: %w", host, lastErr)
}

// Listen binds UDP and TCP on the configured address (one port for both),
// so that Addr is known before Serve. Serve calls it if nobody did.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	pc, ln, err := listen(s.cfg.Listen)
	if err != nil {
		return err
	}
	if s.cfg.TLSListen != "" {
		if s.cfg.TLS == nil {
			pc.Close()
			ln.Close()
			return errors.New("sip: a TLS listen address needs Config.TLS")
		}
		raw, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			pc.Close()
			ln.Close()
			return fmt.Errorf("sip: listen tls %s: %w", s.cfg.TLSListen, err)
		}
		s.tlsLn = tls.NewListener(raw, s.cfg.TLS)
		s.tlsAddr = raw.Addr().String()
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	s.pc, s.ln = pc, ln
	s.addr = net.JoinHostPort(host, port)
	// Our requests leave from the UDP listener (so replies and NATs see the
	// registrar's address) unless it is a wildcard address, which sipgo
	// cannot match to its listener.
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		s.udpAddr = sip.Addr{IP: ip, Port: p, Hostname: host}
	}
	return nil
}

// Close releases listeners bound by Listen when Serve never ran.
func (s *Server) Close() {
	first := false
	s.served.Do(func() { first = true })
	s.mu.Lock()
	defer s.mu.Unlock()
	if !first {
		return
	}
	if s.ln != nil {
		s.pc.Close()
		s.ln.Close()
	}
	if s.tlsLn != nil {
		s.tlsLn.Close()
	}
	s.ua.Close()
}

// Serve serves UDP and TCP until ctx ends, then closes the listeners and
// the transaction layer. It returns nil when ctx ended.
func (s *Server) Serve(ctx context.Context) error {
	first := false
	s.served.Do(func() { first = true })
	if !first {
		return errors.New("sip: Serve called twice, or after Close")
	}
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	pc, ln, tlsLn := s.pc, s.ln, s.tlsLn
	s.baseCtx = ctx
	s.mu.Unlock()
	uc, isUDP := pc.(*net.UDPConn)
	if isUDP {
		// Bursts of MESSAGE and their 200s arrive faster than one read loop
		// drains them; a dropped datagram costs a 500 ms retransmission.
		uc.SetReadBuffer(4 << 20)
		uc.SetWriteBuffer(4 << 20)
	}

	// The UDP fast paths (udpclient.go, udpserver.go) sit between the
	// listener and sipgo.
	var served net.PacketConn = pc
	if isUDP {
		c, err := newUDPClient(uc)
		var us *udpServer
		if err == nil {
			us, err = newUDPServer(ctx, s, uc)
		}
		if err != nil {
			pc.Close()
			ln.Close()
			if tlsLn != nil {
				tlsLn.Close()
			}
			return err
		}
		s.udp.Store(c)
		s.udpSrv.Store(us)
		served = &interceptConn{UDPConn: uc, c: c, srv: us}
	}

	errc := make(chan error, 3)
	go func() { errc <- s.srv.ServeUDP(served) }()
	go func() { errc <- s.srv.ServeTCP(newScreenListener(ln, s)) }() // malformed.go
	if tlsLn != nil {
		// The same screening inside TLS: sipgo's TLS transport is its TCP
		// one over the connections the listener hands it.
		go func() { errc <- s.srv.ServeTLS(newScreenListener(tlsLn, s)) }()
	}
	// ServeUDP registers the listener in sipgo's connection pool from its
	// goroutine; until then a request sourced from it would try to bind the
	// port again. Wait for that so SendIM works as soon as Ready is closed.
	if s.udpAddr.IP != nil {
		for i := 0; i < 2000; i++ {
			if s.ua.TransportLayer().Pool("udp").Size() > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("sip listening", "addr", s.Addr(), "tls", s.TLSAddr(), "domain", s.cfg.Domain, "open_registration", s.cfg.OpenRegistration)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	pc.Close()
	ln.Close()
	if tlsLn != nil {
		tlsLn.Close()
	}
	s.ua.Close()
	if serveErr != nil && ctx.Err() == nil {
		return fmt.Errorf("sip: serve: %w", serveErr)
	}
	return nil
}

// bounded runs h only when a MaxInFlight token is free: sipgo spawns a
// goroutine per request, so without this a flood grows memory without limit.
func (s *Server) bounded(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		select {
		case s.sem <- struct{}{}:
		default:
			if req.IsAck() {
				return
			}
			s.reply(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
			return
		}
		defer func() { <-s.sem }()
		h(req, tx)
	}
}

func (s *Server) respond(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	s.logRequest(req, res.StatusCode, res.Reason)
	res.AppendHeader(sip.NewHeader("Server", s.cfg.UserAgent))
	s.logRespondErr(req, res.StatusCode, tx.Respond(res))
}

// logRequest logs a request with the status it is answered (at debug level,
// building no arguments otherwise).
func (s *Server) logRequest(req *sip.Request, code int, reason string) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("sip request", "method", req.Method, "call_id", callID(req), "source", req.Source(), "status", code, "reason", reason)
	}
}

// logRespondErr logs a response that could not be sent.
func (s *Server) logRespondErr(req *sip.Request, code int, err error) {
	if err != nil {
		s.log.Warn("sip respond failed", "method", req.Method, "call_id", callID(req), "status", code, "err", err)
	}
}

// reply answers req; see replyTagged.
func (s *Server) reply(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	s.replyTagged(tx, req, code, reason, "", hdrs...)
}

// replyTagged answers req. A final response on a fast-path transaction
// (udpserver.go) is rendered by renderResponse, with tag as the To tag when
// the request has none ("" for a random one); the rest goes through sipgo,
// which draws its own.
func (s *Server) replyTagged(tx sip.ServerTransaction, req *sip.Request, code int, reason, tag string, hdrs ...sip.Header) {
	if ftx, ok := tx.(*fastTx); ok && code >= 200 {
		s.logRequest(req, code, reason)
		s.logRespondErr(req, code, ftx.respondFinal(s.renderResponse(req, code, reason, tag, hdrs...)))
		return
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	s.respond(tx, req, res)
}

func callID(req *sip.Request) string {
	if c := req.CallID(); c != nil {
		return c.Value()
	}
	return ""
}

func (s *Server) handleOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(tx, req, 200, "OK",
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Accept", "text/plain"))
}

func (s *Server) handleOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return // ACK gets no response (RFC 3261 §17.2.1)
	}
	s.reply(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowed))
}

// ourDomain reports whether host names us: the configured domain, or an IP
// literal (a UA that addresses us by IP reached us, so the IP is ours).
func (s *Server) ourDomain(host string) bool {
	if strings.EqualFold(host, s.cfg.Domain) {
		return true
	}
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// LibraryLogger wraps l the way the server wraps its own logger for sipgo:
// raw SIP text (message bodies) is dropped. cmd/bridge installs it as sipgo's
// process-wide default logger, which sipgo uses where no logger can be
// passed in (connection pool warnings).
func LibraryLogger(l *slog.Logger) *slog.Logger {
	return slog.New(redactHandler{l.Handler()}).With("component", "sipgo")
}

// redactHandler drops the attributes in which sipgo logs raw SIP text
// ("data", "msg"), which would carry message bodies.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "data", "msg", "message", "sipmsg":
			out.AddAttrs(slog.String(a.Key, "[redacted]"))
		default:
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}
