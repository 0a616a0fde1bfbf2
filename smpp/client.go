package smpp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// ClientConfig configures a bind out to an SMSC.
type ClientConfig struct {
	Addr string // host:port
	// TLS, when set, runs the session over TLS (SMPP has no STARTTLS); an
	// empty ServerName is taken from Addr's host.
	TLS                  *tls.Config
	SystemID, Password   string
	SystemType           string
	Bind                 CommandID // BindTransceiver (default), BindTransmitter or BindReceiver
	Handler              Handler   // the SMSC's deliver_sm
	Logger               *slog.Logger
	Window               int
	InboundWindow        int
	EnquireInterval      time.Duration
	RespTimeout          time.Duration
	MinBackoff           time.Duration // first rebind delay (default 500ms), doubling
	MaxBackoff           time.Duration // default 30s
	DialTimeout          time.Duration // default 5s
	BindWait             time.Duration // how long Send waits for a bind before ErrNotBound (default 30s)
	OnBound, OnUnbound   func()
	MaxPDU               int
	AddrTON, AddrNPI     byte
	AddressRange         string
	InterfaceVersionByte byte // default 0x34
}

// Client keeps one bind to an SMSC up: it binds, keeps the link alive with
// enquire_link and rebinds with backoff and jitter after any loss.
type Client struct {
	cfg  ClientConfig
	log  *slog.Logger
	pool sync.Pool

	mu      sync.Mutex
	sess    *Session
	boundCh chan struct{} // closed while bound; replaced on loss
	lastErr error         // why the last bind attempt or session ended; nil while bound
	since   time.Time     // when the bind came up or went down (or the client was built)
}

// NewClient builds a client; Run keeps it bound.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Bind == 0 {
		cfg.Bind = BindTransceiver
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.BindWait <= 0 {
		cfg.BindWait = 30 * time.Second
	}
	if cfg.InterfaceVersionByte == 0 {
		cfg.InterfaceVersionByte = 0x34
	}
	c := &Client{cfg: cfg, log: cfg.Logger, boundCh: make(chan struct{}), since: time.Now()}
	c.pool.New = func() any { return new(PDU) }
	return c
}

// Run binds and rebinds until ctx ends; then it unbinds and returns nil.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := c.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 2*c.cfg.MaxBackoff {
			backoff = c.cfg.MinBackoff // it was up a good while: start over
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		// Full jitter keeps many gateways from rebinding in step.
		d := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("smsc bind lost", "addr", c.cfg.Addr, "err", err, "rebind_in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
	return nil
}

// dial connects to the SMSC, over TLS when configured: the handshake,
// certificate check included, completes within DialTimeout.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.cfg.DialTimeout}
	if c.cfg.TLS == nil {
		conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		return conn, nil
	}
	conf := c.cfg.TLS.Clone()
	if conf.ServerName == "" {
		host, _, err := net.SplitHostPort(c.cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		conf.ServerName = host
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	conn, err := (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial tls: %w", err)
	}
	return conn, nil
}

// once dials, binds and serves one session until it ends.
func (c *Client) once(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	s := newSession(ctx, conn, sessionConfig{
		Handler: c.cfg.Handler, Logger: c.log,
		Window: c.cfg.Window, InboundWindow: c.cfg.InboundWindow,
		EnquireInterval: c.cfg.EnquireInterval, RespTimeout: c.cfg.RespTimeout,
		MaxPDU: c.cfg.MaxPDU,
	}, &c.pool)
	served := make(chan error, 1)
	go func() { served <- s.serve() }()
	bctx, cancel := context.WithTimeout(ctx, s.cfg.RespTimeout)
	_, err = s.roundTrip(bctx, &PDU{
		ID: c.cfg.Bind, SystemID: c.cfg.SystemID, Password: c.cfg.Password,
		SystemType: c.cfg.SystemType, InterfaceVersion: c.cfg.InterfaceVersionByte,
		AddrTON: c.cfg.AddrTON, AddrNPI: c.cfg.AddrNPI, AddressRange: c.cfg.AddressRange,
	})
	cancel()
	if err != nil {
		s.close(err)
		<-served
		return fmt.Errorf("%v: %w", c.cfg.Bind, err)
	}
	s.setBound(c.cfg.SystemID, c.cfg.Bind)
	c.log.Info("bound to smsc", "addr", c.cfg.Addr, "bind", c.cfg.Bind)
	c.mu.Lock()
	c.sess = s
	c.lastErr = nil
	c.since = time.Now()
	close(c.boundCh)
	c.mu.Unlock()
	if c.cfg.OnBound != nil {
		c.cfg.OnBound()
	}
	select {
	case err = <-served:
	case <-ctx.Done():
		s.Close()
		err = <-served
	}
	c.mu.Lock()
	c.sess = nil
	c.boundCh = make(chan struct{})
	c.since = time.Now()
	c.mu.Unlock()
	if c.cfg.OnUnbound != nil {
		c.cfg.OnUnbound()
	}
	if err == nil {
		err = errors.New("smsc closed the session")
	}
	return err
}

// Session returns the bound session, or nil.
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Bound reports whether the client is bound now.
func (c *Client) Bound() bool { return c.Session() != nil }

// State reports whether the client is bound and, if not, why the last
// attempt failed or the last session ended (nil before the first attempt
// has ended), so readiness can say what is wrong, not only that it is.
func (c *Client) State() (bound bool, lastErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil, c.lastErr
}

// ClientInfo is what an operator sees of the bind to the SMSC.
type ClientInfo struct {
	Addr, SystemID string
	Bind           CommandID
	Bound          bool
	Since          time.Time // when the bind came up, or went down (or the client was built)
	LastErr        error     // while down: why the last attempt failed or the session ended
	Session        SessionInfo
}

// Info describes the bind now; Session is set while bound.
func (c *Client) Info() ClientInfo {
	c.mu.Lock()
	ci := ClientInfo{Addr: c.cfg.Addr, SystemID: c.cfg.SystemID, Bind: c.cfg.Bind, Bound: c.sess != nil, Since: c.since, LastErr: c.lastErr}
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		ci.Session = s.Info()
	}
	return ci
}

// Send sends p over the bind, waiting (up to ctx) for a bind if there is
// none right now.
func (c *Client) Send(ctx context.Context, p *PDU) (*PDU, error) {
	var giveUp <-chan time.Time // the bind wait's timer, made only if needed
	for {
		c.mu.Lock()
		s, ch := c.sess, c.boundCh
		c.mu.Unlock()
		if s != nil {
			resp, err := s.Send(ctx, p)
			if errors.Is(err, ErrClosed) && ctx.Err() == nil {
				// The bind dropped under us before the request was
				// answered; the caller decides whether to resend.
				return nil, fmt.Errorf("%w: bind lost", ErrClosed)
			}
			return resp, err
		}
		if giveUp == nil {
			t := time.NewTimer(c.cfg.BindWait)
			defer t.Stop()
			giveUp = t.C
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w to %s: %w", ErrNotBound, c.cfg.Addr, ctx.Err())
		case <-giveUp:
			return nil, fmt.Errorf("%w to %s after %v", ErrNotBound, c.cfg.Addr, c.cfg.BindWait)
		}
	}
}

// Probe binds once and unbinds: nil if the SMSC accepts the credentials.
// For health checks and tests; Run is what keeps a bind up.
func (c *Client) Probe(ctx context.Context) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	prev := c.cfg.OnBound
	c.cfg.OnBound = func() {
		errc <- nil
		cancel()
	}
	defer func() { c.cfg.OnBound = prev }()
	go func() { errc <- c.once(pctx) }()
	return <-errc
}
