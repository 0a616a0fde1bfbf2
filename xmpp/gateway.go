package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Via names this edge in presence bindings and to the router (AddIM).
const Via = "xmpp"

// Presence is where the gateway puts XMPP users' availability;
// *presence.Store satisfies it.
type Presence interface {
	Register(ctx context.Context, b presence.Binding) error
	Unregister(ctx context.Context, aor msg.Address, contact string) error
}

// KV durably keeps the users subscribed to the gateway; store.DB satisfies
// it (the interface of directory.KV). Put and Delete are durable when they
// return nil.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// Config configures a Gateway.
type Config struct {
	Server   string     // component address of the XMPP server, host:port
	Domain   string     // the component's domain, e.g. "sms.example.test"
	Secret   string     // the component secret the server is configured with
	Stager   msg.Stager // takes incoming messages in (the router)
	Presence Presence   // where bindings of XMPP users go
	KV       KV         // durable list of subscribed users; nil keeps it in memory
	// Local maps a localpart at Domain, already XEP-0106-unescaped, to the
	// bridge address it names; nil takes numbers only ("+8613900000002",
	// or digits read as an international number).
	Local   func(local string) (msg.Address, bool)
	Timeout time.Duration // bound of one delivery (default 5s)
	// PingGap is the least time between two pings to one client (0: a
	// ping as soon as the last is answered).
	PingGap time.Duration
	// TTL is how long a binding lives without news (default 10m); the
	// gateway probes its subscribers every TTL/2 so live users stay bound.
	TTL time.Duration
	// OnPing, if set, is given each answered ping's round trip, from its
	// write to the client's result (a metric: a server short of CPU shows
	// here first).
	OnPing func(time.Duration)
	Logger *slog.Logger
}

// Stats counts the gateway's traffic; /metrics exposes it.
type Stats struct {
	Streams     atomic.Uint64 // component streams opened: the first and each reconnection
	Sent        atomic.Uint64 // messages written to the stream by SendIM
	Confirmed   atomic.Uint64 // of those, answered by the client: a receipt, or a ping's result after it
	Unconfirmed atomic.Uint64 // of those, not: an error stanza, no answer in time, the stream lost
	Pings       atomic.Uint64 // pings written
}

// Errors SendIM returns (wrapped).
var (
	// ErrNotConnected: the component stream is down; the router tries the
	// next endpoint or SMS at once instead of waiting for it.
	ErrNotConnected = errors.New("xmpp: not connected to the server")
	// ErrNoAnswer: neither a receipt nor the ping's answer came in time.
	ErrNoAnswer = errors.New("xmpp: no receipt or ping answer")
)

// MaxText is the longest message body taken in, in bytes; a longer one is
// refused with a policy-violation stanza error.
const MaxText = xmppwire.MaxText

// Limits and timers.
const (
	// maxStanza bounds the bytes read for one incoming stanza; a server
	// that sends more is not one we can talk to, and the stream is
	// dropped. Prosody's own client limit is well below it.
	maxStanza = 1 << 20

	minBackoff       = 100 * time.Millisecond
	maxBackoff       = 10 * time.Second
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	stageTimeout     = 10 * time.Second // the same bound as a SIP MESSAGE's
	closeWait        = 2 * time.Second  // for the server to close its side, and for goodbyes
	// gatherDelay is how long the stream's writes are gathered into one
	// system call: under load it carries many stanzas, for the bridge's
	// CPU, at the cost of this much latency per delivery.
	gatherDelay = time.Millisecond

	presenceShards = 16
	presenceQueue  = 256
	maxSettling    = 1024 // settles waited for off the read loop

	// Where a receipt goes is kept in memory for at most maxOrigins
	// messages and maxOriginAge; beyond that it goes to the bare JID.
	maxOrigins   = 1 << 16
	maxOriginAge = 72 * time.Hour

	subPrefix = "xmpp/sub/"
)

// Gateway is the XMPP edge: an XEP-0114 component that takes messages from
// XMPP users into the bridge, delivers bridged messages to them, and keeps
// their presence. It is safe for concurrent use.
type Gateway struct {
	Stats Stats

	cfg       Config
	domain    jid.JID
	domainStr string // domain, canonical: senders' JIDs are written at it
	log       *slog.Logger
	local     func(string) (msg.Address, bool)
	nonce     string // makes our stanza ids unguessable
	seq       atomic.Uint64

	cur      atomic.Pointer[session] // the live stream, nil while down
	running  atomic.Bool
	settling chan struct{}
	pq       [presenceShards]chan presenceIn
	seed     maphash.Seed

	mu      sync.Mutex
	pending map[string]*delivery  // by stanza id: our messages
	pings   map[string]*pingRound // by stanza id: our pings
	pingers map[string]*pinger    // by full JID: the pings to one client
	subs    map[string]time.Time  // bare JID → subscribed since
	origins map[string]origin     // message ID → where its receipt goes
}

// origin is where an incoming message came from, for its receipt.
type origin struct {
	from string // the sender's full JID
	to   string // the JID it was sent to
	at   time.Time
}

// session is one component stream.
type session struct {
	xs     *xmpp.Session
	conn   *xmppwire.MeteredConn
	ctx    context.Context // Run's
	closed chan struct{}   // closed when the stream is over
}

// New checks cfg and loads the subscribed users from cfg.KV.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Server == "":
		return nil, errors.New("xmpp: no server address")
	case cfg.Secret == "":
		return nil, errors.New("xmpp: no component secret")
	case cfg.Stager == nil || cfg.Presence == nil:
		return nil, errors.New("xmpp: a Stager and a Presence are required")
	}
	domain, err := jid.Parse(cfg.Domain)
	if err != nil || domain.Localpart() != "" || domain.Resourcepart() != "" {
		return nil, fmt.Errorf("xmpp: component domain %q is not a domain JID (%v)", cfg.Domain, err)
	}
	cfg.Domain = domain.String()
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	g := &Gateway{
		cfg:       cfg,
		domain:    domain,
		domainStr: domain.String(),
		log:       cfg.Logger,
		local:     cfg.Local,
		settling:  make(chan struct{}, maxSettling),
		seed:      maphash.MakeSeed(),
		pending:   make(map[string]*delivery),
		pings:     make(map[string]*pingRound),
		pingers:   make(map[string]*pinger),
		subs:      make(map[string]time.Time),
		origins:   make(map[string]origin),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.local == nil {
		g.local = numberOf
	}
	var b [5]byte
	rand.Read(b[:])
	g.nonce = strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
	for i := range g.pq {
		g.pq[i] = make(chan presenceIn, presenceQueue)
	}
	if cfg.KV != nil {
		err := cfg.KV.Iterate([]byte(subPrefix), func(k, v []byte) error {
			var rec subRecord
			if json.Unmarshal(v, &rec) != nil {
				g.log.Warn("xmpp: unreadable subscription record", "key", string(k))
			}
			g.subs[string(k[len(subPrefix):])] = rec.Since
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("xmpp: load subscribers: %w", err)
		}
	}
	return g, nil
}

// subRecord is the KV value of one subscribed user.
type subRecord struct {
	Since time.Time `json:"since"`
}

// Connected reports whether the component stream is up.
func (g *Gateway) Connected() bool { return g.cur.Load() != nil }

// Pending is the number of deliveries written and awaiting an answer.
func (g *Gateway) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// Run connects to the server, authenticates as the component and serves
// the stream; when it drops it reconnects with capped exponential backoff.
// It returns nil once ctx is done.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return errors.New("xmpp: Run is already running")
	}
	defer g.running.Store(false)
	var workers sync.WaitGroup
	for i := range g.pq {
		workers.Go(func() { g.presenceWorker(ctx, g.pq[i]) })
	}
	defer workers.Wait()
	backoff := minBackoff
	for {
		began := time.Now()
		err := g.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) >= maxBackoff {
			backoff = minBackoff // it was up for a while: this is a new outage
		}
		delay := backoff/2 + mrand.N(backoff/2+1)
		g.log.Warn("xmpp: stream down, reconnecting", "server", g.cfg.Server, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce serves one component stream until it ends or ctx is done.
func (g *Gateway) runOnce(ctx context.Context) error {
	d := net.Dialer{
		Timeout: dialTimeout,
		// Keepalives notice a server that vanished without closing.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	raw, err := d.DialContext(ctx, "tcp", g.cfg.Server)
	if err != nil {
		return fmt.Errorf("xmpp: dial %s: %w", g.cfg.Server, err)
	}
	defer raw.Close()
	conn := xmppwire.NewMeteredConn(raw, maxStanza, "xmpp")
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	// Gathered above the metered connection: its write deadline is set once
	// per gathered write, not once per stanza.
	xs, err := component.NewSession(hctx, g.domain, []byte(g.cfg.Secret), xmppwire.NewGatherConn(conn, gatherDelay))
	cancel()
	if err != nil {
		return fmt.Errorf("xmpp: component handshake with %s as %s: %w", g.cfg.Server, g.cfg.Domain, err)
	}
	g.Stats.Streams.Add(1)
	s := &session{xs: xs, conn: conn, ctx: ctx, closed: make(chan struct{})}
	defer close(s.closed)
	defer g.dropPings(s)
	served := make(chan error, 1)
	go func() { served <- xs.Serve(handler{g: g, s: s}) }()
	g.cur.Store(s)
	defer g.cur.CompareAndSwap(s, nil)
	g.log.Info("xmpp: connected", "server", g.cfg.Server, "domain", g.cfg.Domain)
	go g.refresh(s)

	select {
	case err = <-served:
	case <-ctx.Done():
		g.cur.CompareAndSwap(s, nil) // deliveries from now on fail at once
		g.goodbye(s)
		xs.Close()
		select {
		case err = <-served:
		case <-time.After(closeWait):
			raw.Close()
			err = <-served
		}
		return nil
	}
	if err == nil {
		err = errors.New("the server closed the stream")
	}
	return fmt.Errorf("xmpp: stream: %w", err)
}

// refresh sends every subscriber our available presence and a probe when
// the stream is new, then a probe every TTL/2: their answers keep live
// users' bindings from expiring, and users who vanished expire.
func (g *Gateway) refresh(s *session) {
	g.announce(s, true)
	t := time.NewTicker(max(g.cfg.TTL/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			g.announce(s, false)
			g.pruneOrigins(time.Now())
		}
	}
}

func (g *Gateway) announce(s *session, hello bool) {
	ctx, cancel := context.WithTimeout(s.ctx, g.cfg.TTL/2)
	defer cancel()
	for _, bare := range g.subscribers() {
		var t xmppwire.Tokens
		if hello {
			// What we knew of their resources is stale on a new stream (a
			// restarted server lost every session): the probe's answers
			// bind the live ones again, and none is left that would make
			// the server hand a message to another resource.
			if j, err := jid.Parse(bare); err == nil {
				if err := g.cfg.Presence.Unregister(ctx, UserAddress(j), ""); err != nil {
					g.log.Warn("xmpp: stale bindings kept", "user", bare, "err", err)
				}
			}
			t = xmppwire.Empty(t, xmppwire.El(xml.Name{Local: "presence"}, "from", g.cfg.Domain, "to", bare))
		}
		t = xmppwire.Empty(t, xmppwire.El(xml.Name{Local: "presence"}, "type", "probe", "from", g.cfg.Domain, "to", bare))
		for len(t) > 0 {
			if err := xmppwire.Send(ctx, s.xs, &t); err != nil {
				g.log.Debug("xmpp: probe not sent", "to", bare, "err", err)
				return
			}
		}
	}
}

// goodbye tells subscribers the gateway is going away, within closeWait.
func (g *Gateway) goodbye(s *session) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeWait)
	defer cancel()
	for _, bare := range g.subscribers() {
		t := xmppwire.Empty(nil, xmppwire.El(xml.Name{Local: "presence"}, "type", "unavailable", "from", g.cfg.Domain, "to", bare))
		if err := xmppwire.Send(ctx, s.xs, &t); err != nil {
			return
		}
	}
}

func (g *Gateway) subscribers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.subs))
	for bare := range g.subs {
		out = append(out, bare)
	}
	return out
}

// send transmits one stanza on the live stream.
func (g *Gateway) send(ctx context.Context, t xmppwire.Tokens) error {
	s := g.cur.Load()
	if s == nil {
		return ErrNotConnected
	}
	return xmppwire.Send(ctx, s.xs, &t)
}
