package fusion

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/roster"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/presence"
)

// conn is a logged-in client stream, not yet served.
type conn struct {
	xs    *xmpp.Session
	raw   net.Conn
	meter *xmppwire.MeteredConn
	addr  string
}

// close ends the stream and the connection without waiting for the
// server's side: it is used on streams nobody serves.
func (c *conn) close() {
	c.xs.Close()
	c.raw.Close()
}

// mechanisms are the SASL mechanisms offered, strongest first; PLAIN is
// left out so a password never crosses the wire, even inside TLS.
var mechanisms = []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1}

// login dials the server of the account bare, negotiates STARTTLS
// verified against Config.RootCAs, authenticates with SCRAM and binds a
// resource the server chooses, all within Config.Timeout.
func (p *Proxy) login(ctx context.Context, bare jid.JID, password string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	addr := p.resolve(bare.Domainpart())
	d := net.Dialer{
		// Keepalives notice a server that vanished without closing.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	meter := xmppwire.NewMeteredConn(raw, maxStanza, "fusion")
	tlsCfg := &tls.Config{RootCAs: p.cfg.RootCAs, ServerName: bare.Domainpart(), MinVersion: tls.VersionTLS12}
	xs, err := xmpp.NewClientSession(ctx, bare, meter,
		xmpp.StartTLS(tlsCfg), xmpp.SASL("", password, mechanisms...), xmpp.BindResource())
	if err != nil {
		raw.Close()
		if cond, ok := saslFailure(err); ok {
			switch cond {
			case "not-authorized", "account-disabled", "credentials-expired", "invalid-authzid":
				return nil, fmt.Errorf("log in at %s: %w (%s)", addr, ErrAuth, cond)
			}
			return nil, fmt.Errorf("log in at %s: SASL failure %s: %w", addr, cond, err)
		}
		return nil, fmt.Errorf("log in at %s: %w", addr, err)
	}
	// mellium does not authenticate outside TLS; this only makes sure.
	if xs.ConnectionState().Version == 0 {
		xs.Close()
		raw.Close()
		return nil, fmt.Errorf("log in at %s: the stream is not encrypted", addr)
	}
	meter.Reset()
	return &conn{xs: xs, raw: raw, meter: meter, addr: addr}, nil
}

// nsSASL is the namespace of a SASL <failure/> (RFC 6120 §6.4.5).
const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// saslFailure reports the condition of a SASL <failure/> the server
// answered with. mellium keeps its error type internal, but it marshals
// itself back to XML.
func saslFailure(err error) (cond string, ok bool) {
	var m interface{ TokenReader() xml.TokenReader }
	if !errors.As(err, &m) {
		return "", false
	}
	r := m.TokenReader()
	tok, _ := r.Token()
	if s, isStart := tok.(xml.StartElement); !isStart || s.Name != (xml.Name{Space: nsSASL, Local: "failure"}) {
		return "", false
	}
	if tok, _ = r.Token(); tok != nil {
		if s, isStart := tok.(xml.StartElement); isStart {
			return s.Name.Local, true
		}
	}
	return "", true
}

// keep keeps a's session until ctx ends: it logs in (unless given c),
// serves the session and reconnects with capped exponential backoff and
// jitter. A refusal of the credentials ends it in StateAuthFailed.
func (p *Proxy) keep(run, ctx context.Context, a *account, c *conn) {
	backoff := minBackoff
	var last error
	for {
		if c == nil {
			a.setState(StateConnecting, last)
			var err error
			c, err = p.login(ctx, a.jid, a.password)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				if errors.Is(err, ErrAuth) {
					p.log.Warn("fusion: credentials refused; not retrying until bound again", "user", a.user, "jid", a.jid.String(), "err", err)
					a.setState(StateAuthFailed, err)
					return
				}
				last = err
				if !p.pause(ctx, a, &backoff, err) {
					break
				}
				continue
			}
		}
		began := time.Now()
		err := p.serve(run, ctx, a, c)
		c = nil
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) >= stableAfter {
			backoff = minBackoff
		}
		last = err
		a.setState(StateConnecting, err)
		if !p.pause(ctx, a, &backoff, err) {
			break
		}
	}
	a.setState(StateOffline, nil)
}

// pause waits out the backoff before the next attempt (half of it fixed,
// half random, so accounts on one server do not reconnect in step) and
// doubles it up to maxBackoff. It reports false if ctx ended.
func (p *Proxy) pause(ctx context.Context, a *account, backoff *time.Duration, err error) bool {
	d := *backoff/2 + mrand.N(*backoff/2+1)
	p.log.Warn("fusion: session down, reconnecting", "user", a.user, "jid", a.jid.String(), "err", err, "retry_in", d)
	*backoff = min(2**backoff, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// session is one served client stream of an account.
type session struct {
	p      *Proxy
	a      *account
	c      *conn
	ctx    context.Context // ends with the session
	closed chan struct{}   // closed when the stream is over
	work   chan func(context.Context)

	mu      sync.Mutex
	pending map[string]*delivery // by stanza id: our messages and pings
}

// serve serves one logged-in stream until it ends or ctx does: it fetches
// the roster, announces itself available (so the server sends the
// contacts' presence) and renews the contacts' bindings every TTL/2. When
// the stream is lost the bindings made through it are removed; at
// shutdown (run ended) they are left to expire.
func (p *Proxy) serve(run, ctx context.Context, a *account, c *conn) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{
		p: p, a: a, c: c, ctx: sctx,
		closed:  make(chan struct{}),
		work:    make(chan func(context.Context), workQueue),
		pending: make(map[string]*delivery),
	}
	// Bindings left by an earlier session that ended at shutdown are not
	// known to be current.
	p.dropBindings(sctx, a)

	var workers sync.WaitGroup
	workers.Go(func() { s.worker() })
	served := make(chan error, 1)
	go func() { served <- c.xs.Serve(handler{s}) }()
	defer func() {
		close(s.closed)
		cancel()
		workers.Wait()
		if run.Err() == nil {
			p.dropBindings(context.Background(), a)
		}
	}()

	if err := s.start(); err != nil {
		c.xs.Close()
		c.raw.Close()
		<-served
		return err
	}
	a.cur.Store(s)
	a.setState(StateOnline, nil)
	p.log.Info("fusion: online", "user", a.user, "jid", a.jid.String(), "server", c.addr)
	defer a.cur.CompareAndSwap(s, nil)

	t := time.NewTicker(max(p.cfg.TTL/2, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case err := <-served:
			a.cur.CompareAndSwap(s, nil)
			c.raw.Close()
			if err == nil {
				err = errors.New("the server closed the stream")
			}
			return fmt.Errorf("stream with %s: %w", c.addr, err)
		case <-ctx.Done():
			a.cur.CompareAndSwap(s, nil) // deliveries from now on fail at once
			c.xs.Close()                 // the server tells the contacts we left
			select {
			case <-served:
			case <-time.After(closeWait):
				c.raw.Close()
				<-served
			}
			c.raw.Close()
			return nil
		case <-t.C:
			s.enqueue(s.renew)
		}
	}
}

// start fetches the roster, tells OnRoster, and sends initial presence.
func (s *session) start() error {
	ctx, cancel := context.WithTimeout(s.ctx, s.p.cfg.Timeout)
	defer cancel()
	it := roster.Fetch(ctx, s.c.xs)
	items := make(map[string]RosterItem)
	for it.Next() {
		item := it.Item()
		if item.Subscription == "remove" || item.JID.Localpart() == "" {
			continue
		}
		bare := item.JID.Bare().String()
		items[bare] = RosterItem{JID: bare, Name: xmppwire.RosterName(item.Name)}
	}
	err := it.Err()
	if err == nil {
		// Installed before the read loop resumes, so a push that follows
		// the result applies on top of it.
		s.a.mu.Lock()
		s.a.roster = items
		s.a.mu.Unlock()
	}
	it.Close()
	s.c.meter.Reset()
	if err != nil {
		return fmt.Errorf("roster of %s: %w", s.a.jid, err)
	}
	s.enqueue(s.rosterChanged())
	// Initial presence: the server answers with the contacts' presence.
	// Priority 0 keeps messages to the bare JID coming to us.
	t := xmppwire.Empty(nil, xmppwire.El(xml.Name{Local: "presence"}))
	if err := xmppwire.Send(ctx, s.c.xs, &t); err != nil {
		return fmt.Errorf("initial presence of %s: %w", s.a.jid, err)
	}
	return nil
}

// worker applies presence and roster changes in the order they came, off
// the read loop: the presence store writes durably.
func (s *session) worker() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case f := <-s.work:
			f(s.ctx)
		}
	}
}

// enqueue hands f to the worker; a full queue slows the read loop down.
func (s *session) enqueue(f func(context.Context)) {
	select {
	case s.work <- f:
	case <-s.ctx.Done():
	}
}

// rosterChanged returns the work that tells OnRoster the roster as it is
// now.
func (s *session) rosterChanged() func(context.Context) {
	a := s.a
	a.mu.Lock()
	items := make([]RosterItem, 0, len(a.roster))
	for _, it := range a.roster {
		items = append(items, it)
	}
	a.mu.Unlock()
	sortRoster(items)
	return func(ctx context.Context) {
		if s.p.cfg.OnRoster == nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, s.p.cfg.Timeout)
		defer cancel()
		s.p.cfg.OnRoster(ctx, a.user, a.jid.String(), items)
	}
}

// renew extends every binding made through this session by TTL.
func (s *session) renew(ctx context.Context) {
	a := s.a
	a.mu.Lock()
	list := make([]presence.Binding, 0, len(a.bound))
	for _, b := range a.bound {
		list = append(list, b)
	}
	a.mu.Unlock()
	for _, b := range list {
		now := time.Now()
		b.Expires = now.Add(s.p.cfg.TTL)
		s.register(ctx, b)
	}
}

// register stores b and remembers it as made through this account.
func (s *session) register(ctx context.Context, b presence.Binding) {
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.Timeout)
	defer cancel()
	if err := s.p.cfg.Presence.Register(ctx, b); err != nil {
		s.p.log.Warn("fusion: binding not stored", "aor", b.AOR, "contact", b.Contact, "err", err)
		return
	}
	s.a.mu.Lock()
	s.a.bound[b.Contact] = b
	s.a.mu.Unlock()
}
