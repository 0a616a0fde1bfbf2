package smpp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
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
	BindTimeout     time.Duration // a connection must bind within this (default 10s)
	MaxSessions     int           // default 1024; beyond it new connections are closed
	MaxPDU          int
}

// Server accepts ESME and SMSC binds.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	pool sync.Pool

	mu       sync.Mutex
	sessions map[*Session]struct{}
	lns      []net.Listener
	closed   bool
	rr       atomic.Uint32
	wg       sync.WaitGroup
}

// NewServer builds a server; Serve runs it on a listener.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BindTimeout <= 0 {
		cfg.BindTimeout = 10 * time.Second
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.SystemID == "" {
		cfg.SystemID = "bridge"
	}
	srv := &Server{cfg: cfg, log: cfg.Logger, sessions: make(map[*Session]struct{})}
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
	stop := context.AfterFunc(ctx, func() { ln.Close() })
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
		s := newSession(ctx, conn, sessionConfig{
			Handler: srv.cfg.Handler, Logger: srv.log,
			Window: srv.cfg.Window, InboundWindow: srv.cfg.InboundWindow,
			EnquireInterval: srv.cfg.EnquireInterval, RespTimeout: srv.cfg.RespTimeout,
			MaxPDU: srv.cfg.MaxPDU, systemID: srv.cfg.SystemID,
			onBind: srv.bind,
		}, &srv.pool)
		srv.mu.Lock()
		full := len(srv.sessions) >= srv.cfg.MaxSessions
		if !full && !srv.closed {
			srv.sessions[s] = struct{}{}
			srv.wg.Add(1)
		}
		closed := srv.closed
		srv.mu.Unlock()
		if full || closed {
			srv.log.Warn("connection refused", "peer", conn.RemoteAddr().String(), "sessions", srv.cfg.MaxSessions)
			conn.Close()
			continue
		}
		go srv.run(s)
	}
}

func (srv *Server) run(s *Session) {
	defer srv.wg.Done()
	// A connection that never binds is dropped.
	t := time.AfterFunc(srv.cfg.BindTimeout, func() {
		if !s.bound.Load() {
			s.close(errors.New("smpp: no bind within the bind timeout"))
		}
	})
	err := s.serve()
	t.Stop()
	srv.mu.Lock()
	delete(srv.sessions, s)
	srv.mu.Unlock()
	if err != nil {
		srv.log.Info("session ended", "system_id", s.SystemID(), "peer", s.RemoteAddr().String(), "err", err)
	} else {
		srv.log.Debug("session ended", "system_id", s.SystemID(), "peer", s.RemoteAddr().String())
	}
}

func (srv *Server) bind(s *Session, req *PDU) uint32 {
	if srv.cfg.Auth == nil {
		return ESME_RBINDFAIL
	}
	return srv.cfg.Auth(req.SystemID, req.Password, req.ID, s.RemoteAddr())
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
