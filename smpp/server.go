package smpp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/internal/preauth"
)

// ServerConfig configures the server role.
type ServerConfig struct {
	// Auth checks a bind and returns the status to answer with (ESME_ROK,
	// ESME_RINVPASWD, ESME_RINVSYSID ...). Nil refuses every bind.
	Auth            func(systemID, password string, bind CommandID, remote net.Addr) uint32
	Handler         Handler
	Logger          *slog.Logger
	SystemID        string        // ours, in bind responses
	Window          int           // our requests (deliver_sm) in flight per session
	InboundWindow   int           // peer requests handled at once per session
	EnquireInterval time.Duration // default 30s
	RespTimeout     time.Duration // default 10s
	BindTimeout     time.Duration // a connection must bind within this (default 5s)
	MaxSessions     int           // bound sessions (default 1024); a bind beyond it is refused
	// Connections not bound yet have places of their own (default 256, 32
	// per source IP), so they never take a bound session's; past either cap
	// the longest waiting one is closed for the newcomer.
	MaxUnbound, MaxUnboundPerSource int
	MaxPDU                          int
	// OnReceivers, if set, is told that systemID's receiving sessions
	// (Sessions) may have changed: one bound as a receiver or transceiver,
	// or one ended. It runs on the session's goroutine, outside the
	// server's locks; calls for one systemID may overlap, so it reads
	// Sessions again rather than trust an order.
	OnReceivers func(systemID string)
}

// Server accepts ESME and SMSC binds.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	pool sync.Pool

	unbound *preauth.Gate

	mu       sync.Mutex
	sessions map[*Session]*entry
	waiting  map[net.Conn]struct{} // accepted, no byte read yet: no session built
	bound    int                   // sessions counted against MaxSessions
	lns      []net.Listener
	closed   bool
	rr       atomic.Uint32
	wg       sync.WaitGroup
}

// entry is what the server keeps of a session.
type entry struct {
	ticket  *preauth.Ticket // its place among the unbound
	counted bool            // bound: it holds one of MaxSessions
}

var errEvicted = errors.New("smpp: closed unbound for a newer connection (too many unbound)")

// NewServer builds a server; Serve runs it on a listener.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BindTimeout <= 0 {
		cfg.BindTimeout = 5 * time.Second
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.MaxUnbound <= 0 {
		cfg.MaxUnbound = 256
	}
	if cfg.MaxUnboundPerSource <= 0 {
		cfg.MaxUnboundPerSource = 32
	}
	if cfg.SystemID == "" {
		cfg.SystemID = "bridge"
	}
	srv := &Server{cfg: cfg, log: cfg.Logger, sessions: make(map[*Session]*entry), waiting: make(map[net.Conn]struct{}),
		unbound: preauth.New(cfg.MaxUnbound, cfg.MaxUnboundPerSource)}
	srv.pool.New = func() any { return new(PDU) }
	return srv
}

// Serve accepts connections on ln until ctx ends or Close; it returns nil
// then.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	srv.lns = append(srv.lns, ln)
	srv.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		srv.mu.Lock()
		for c := range srv.waiting {
			c.Close()
		}
		srv.mu.Unlock()
	})
	defer stop()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || srv.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: back off rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		srv.mu.Lock()
		closed := srv.closed
		if !closed {
			srv.waiting[conn] = struct{}{}
			srv.wg.Add(1)
		}
		srv.mu.Unlock()
		if closed {
			conn.Close()
			continue
		}
		go srv.await(ctx, conn)
	}
}

// await builds the session of conn once its first byte has come: a
// connection that never sends costs a parked read, not a session. The
// bind timeout counts from the accept.
func (srv *Server) await(ctx context.Context, conn net.Conn) {
	deadline := time.Now().Add(srv.cfg.BindTimeout)
	var sess atomic.Pointer[Session]
	ticket := srv.unbound.Admit(conn.RemoteAddr(), func() {
		if s := sess.Load(); s != nil {
			s.close(errEvicted)
		} else {
			conn.Close()
		}
	})
	conn.SetReadDeadline(deadline)
	var b [1]byte
	n, _ := conn.Read(b[:])
	srv.mu.Lock()
	delete(srv.waiting, conn)
	if n == 0 || srv.closed {
		srv.mu.Unlock()
		ticket.Done()
		conn.Close()
		srv.wg.Done()
		return
	}
	conn.SetReadDeadline(time.Time{})
	s := newSession(ctx, &firstByteConn{Conn: conn, b: b[0], has: true}, sessionConfig{
		Handler: srv.cfg.Handler, Logger: srv.log,
		Window: srv.cfg.Window, InboundWindow: srv.cfg.InboundWindow,
		EnquireInterval: srv.cfg.EnquireInterval, RespTimeout: srv.cfg.RespTimeout,
		MaxPDU: srv.cfg.MaxPDU, systemID: srv.cfg.SystemID,
		onBind: srv.bind, onBound: srv.cfg.OnReceivers,
	}, &srv.pool)
	srv.sessions[s] = &entry{ticket: ticket}
	sess.Store(s)
	srv.mu.Unlock()
	srv.run(s, deadline)
}

// firstByteConn gives back the byte await read before the rest of conn.
// Only the session's reader reads it.
type firstByteConn struct {
	net.Conn
	b   byte
	has bool
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	if c.has && len(p) > 0 {
		p[0], c.has = c.b, false
		return 1, nil
	}
	return c.Conn.Read(p)
}

func (srv *Server) run(s *Session, bindBy time.Time) {
	defer srv.wg.Done()
	// A connection that never binds is dropped.
	t := time.AfterFunc(time.Until(bindBy), func() {
		if !s.bound.Load() {
			s.close(errors.New("smpp: no bind within the bind timeout"))
		}
	})
	err := s.serve()
	t.Stop()
	srv.mu.Lock()
	e := srv.sessions[s]
	delete(srv.sessions, s)
	if e.counted {
		srv.bound--
	}
	srv.mu.Unlock()
	e.ticket.Done()
	if srv.cfg.OnReceivers != nil && s.wasReceiver() {
		srv.cfg.OnReceivers(s.SystemID())
	}
	if err != nil {
		srv.log.Info("session ended", "system_id", s.SystemID(), "peer", s.RemoteAddr().String(), "err", err)
	} else {
		srv.log.Debug("session ended", "system_id", s.SystemID(), "peer", s.RemoteAddr().String())
	}
}

// bind authenticates a bind and, when it succeeds, moves the session from
// the unbound places to one of MaxSessions.
func (srv *Server) bind(s *Session, req *PDU) uint32 {
	if srv.cfg.Auth == nil {
		return ESME_RBINDFAIL
	}
	if st := srv.cfg.Auth(req.SystemID, req.Password, req.ID, s.RemoteAddr()); st != ESME_ROK {
		return st
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	e := srv.sessions[s]
	if e == nil || e.counted {
		return ESME_RBINDFAIL
	}
	if srv.bound >= srv.cfg.MaxSessions {
		srv.log.Warn("bind refused: bound sessions at their cap", "system_id", req.SystemID, "max", srv.cfg.MaxSessions)
		return ESME_RBINDFAIL
	}
	if !e.ticket.Done() {
		return ESME_RBINDFAIL // closed for a newer connection meanwhile
	}
	e.counted = true
	srv.bound++
	return ESME_ROK
}

func (srv *Server) isClosed() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.closed
}

// Sessions returns the bound sessions of systemID that can take deliver_sm
// (receivers and transceivers).
func (srv *Server) Sessions(systemID string) []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var out []*Session
	for s := range srv.sessions {
		if s.CanReceive() && s.SystemID() == systemID {
			out = append(out, s)
		}
	}
	return out
}

// Bound counts bound sessions.
func (srv *Server) Bound() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	n := 0
	for s := range srv.sessions {
		if s.bound.Load() {
			n++
		}
	}
	return n
}

// BoundSessions describes the bound sessions, oldest bind first.
func (srv *Server) BoundSessions() []SessionInfo {
	srv.mu.Lock()
	ss := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		if s.bound.Load() {
			ss = append(ss, s)
		}
	}
	srv.mu.Unlock()
	out := make([]SessionInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.Info())
	}
	slices.SortFunc(out, func(a, b SessionInfo) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Remote, b.Remote)
	})
	return out
}

// Deliver sends p (deliver_sm, data_sm) to one of systemID's receiving
// sessions, spreading load round-robin, and returns the response.
func (srv *Server) Deliver(ctx context.Context, systemID string, p *PDU) (*PDU, error) {
	ss := srv.Sessions(systemID)
	if len(ss) == 0 {
		return nil, fmt.Errorf("%w: no receiver bound as %q", ErrNotBound, systemID)
	}
	s := ss[int(srv.rr.Add(1))%len(ss)]
	return s.Send(ctx, p)
}

// Close stops accepting, unbinds every session and waits for them.
func (srv *Server) Close() error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return nil
	}
	srv.closed = true
	for _, ln := range srv.lns {
		ln.Close()
	}
	ss := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		ss = append(ss, s)
	}
	for c := range srv.waiting {
		c.Close()
	}
	srv.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	srv.wg.Wait()
	return nil
}

// CheckPassword compares a configured password with the one a peer sent in
// constant time (hashing first so not even the length leaks).
func CheckPassword(want, got string) bool {
	a, b := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
