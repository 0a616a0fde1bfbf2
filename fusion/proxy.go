package fusion

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Via names this proxy in presence bindings and to the router (AddIM).
const Via = "fusion"

// Presence is where the proxy puts the presence of external contacts;
// *presence.Store satisfies it.
type Presence interface {
	Register(ctx context.Context, b presence.Binding) error
	Unregister(ctx context.Context, aor msg.Address, contact string) error
}

// KV durably keeps the bound accounts, sealed; store.DB satisfies it (the
// interface of directory.KV and xmpp.KV). Put and Delete are durable when
// they return nil.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// RosterItem is one contact in an external account's roster.
type RosterItem struct {
	JID  string // bare JID
	Name string // the name the account's owner gave the contact, if any
}

// AccountView describes a bound account; it never holds the password.
type AccountView struct {
	JID      string `json:"jid"`             // bare JID of the external account
	State    string `json:"state"`           // StateOnline, StateConnecting, StateAuthFailed, StateOffline or StateUnreadable
	Error    string `json:"error,omitempty"` // why it is not online, when known
	Contacts int    `json:"contacts"`        // roster items seen at the last login and pushes since
}

// Account states.
const (
	StateOnline     = "online"      // a session is up: messages flow both ways
	StateConnecting = "connecting"  // logging in, or waiting to retry after a failure
	StateAuthFailed = "auth-failed" // the server refused the stored credentials; bind again
	StateOffline    = "offline"     // Run is not running
	StateUnreadable = "unreadable"  // the stored record does not open with Config.Key; bind again or restore the key
)

// Config configures a Proxy.
type Config struct {
	// Key is the 32-byte AES-256-GCM key that seals stored accounts
	// (passwords included); required.
	Key []byte
	// KV keeps the accounts: "fusion/acct/<user>\x00<bare JID>" → sealed
	// JSON; required.
	KV KV
	// Stager takes messages from external contacts into the bridge (the
	// router); required.
	Stager msg.Stager
	// Presence receives the external contacts' presence; required.
	Presence Presence
	// Owner says which bridge user sent a message (the directory); SendIM
	// refuses any message whose owner is not the binding's user. Required.
	Owner func(from msg.Address) (user string, ok bool)
	// UserAddress is where messages for a bridge user go (their own AOR);
	// required.
	UserAddress func(user string) msg.Address
	// OnRoster is called with the whole roster after each login and after
	// each roster push; it may be nil.
	OnRoster func(ctx context.Context, user, account string, items []RosterItem)
	// RootCAs verifies the servers' certificates; nil = system roots.
	RootCAs *x509.CertPool
	// Resolve gives the host:port to dial for a JID's domain; nil dials
	// domain:5222. There is no SRV lookup (see the package doc).
	Resolve func(domain string) (addr string)
	// Timeout bounds one delivery and one login (default 8s).
	Timeout time.Duration
	// TTL is the life of a contact's binding without news (default 10m);
	// bindings are renewed every TTL/2 while the session is up.
	TTL    time.Duration
	Logger *slog.Logger
}

// Errors (wrapped).
var (
	// ErrAuth: the server refused the credentials (SASL not-authorized or
	// the like). Bind returns it; a stored account that meets it stops
	// retrying and shows StateAuthFailed.
	ErrAuth = errors.New("fusion: the server refused the credentials")
	// ErrInvalid: Bind was given a user name, JID or password it cannot
	// take; nothing was tried.
	ErrInvalid = errors.New("fusion: invalid account")
	// ErrNotFound: no such bound account.
	ErrNotFound = errors.New("fusion: no such account")
	// ErrNotConnected: the account's session is down; the router tries
	// the next binding or SMS at once instead of waiting.
	ErrNotConnected = errors.New("fusion: account not connected")
	// ErrNotOwner: SendIM of a message whose sender is not the user who
	// bound the account the binding goes through.
	ErrNotOwner = errors.New("fusion: sender does not own the account")
	// ErrNoAnswer: neither a receipt nor the ping's answer came in time.
	ErrNoAnswer = errors.New("fusion: no receipt or ping answer")
)

// MaxText is the longest message body taken in, in bytes (the XMPP edge's
// bound); a longer one is refused with policy-violation.
const MaxText = xmppwire.MaxText

// Limits and timers.
const (
	// maxStanza bounds the bytes read for one incoming stanza (a roster
	// result included); a server that sends more ends the session.
	maxStanza = 4 << 20

	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
	// stableAfter: a session that lasted this long ends an outage, and
	// the next reconnection starts again from minBackoff.
	stableAfter = maxBackoff
	closeWait   = 2 * time.Second // for the server to close its side
	workQueue   = 256             // presence and roster work waiting per session
	maxSettling = 1024            // commits waited for off the read loops
)

// Proxy keeps sessions with external XMPP accounts on behalf of bridge
// users. It is safe for concurrent use.
type Proxy struct {
	cfg      Config
	seal     sealer
	log      *slog.Logger
	nonce    string // makes our stanza ids unguessable
	seq      atomic.Uint64
	settling chan struct{}
	running  atomic.Bool
	wg       sync.WaitGroup // account loops

	bindMu sync.Mutex // serializes Bind and Unbind once they change state

	mu       sync.Mutex
	accounts map[string]*account // by storage key
	runCtx   context.Context     // Run's, nil while it is not running
}

// account is one bound external account.
type account struct {
	user     string
	jid      jid.JID // bare
	key      string  // storage key
	password string  // empty when unreadable
	bad      error   // why the stored record is unreadable

	cur atomic.Pointer[session] // the live session, nil while down

	mu      sync.Mutex
	state   string
	errText string
	roster  map[string]RosterItem       // by bare JID
	bound   map[string]presence.Binding // registered through this account, by Contact
	cancel  context.CancelFunc          // ends the loop; nil when not running
	done    chan struct{}               // closed when the loop has ended
	ready   chan struct{}               // closed at the first online or when the loop ends
}

func newAccount(user string, bare jid.JID, password string) *account {
	return &account{
		user: user, jid: bare, key: storageKey(user, bare.String()), password: password,
		state: StateOffline, roster: make(map[string]RosterItem), bound: make(map[string]presence.Binding),
	}
}

func (a *account) setState(state string, err error) {
	a.mu.Lock()
	a.state, a.errText = state, ""
	if err != nil {
		a.errText = err.Error()
	}
	if state == StateOnline && a.ready != nil {
		select {
		case <-a.ready:
		default:
			close(a.ready)
		}
	}
	a.mu.Unlock()
}

func (a *account) view() AccountView {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AccountView{JID: a.jid.String(), State: a.state, Error: a.errText, Contacts: len(a.roster)}
}

// New checks cfg and loads the stored accounts. A record that does not
// open with cfg.Key (sealed with another key, or damaged) is kept, shown
// as StateUnreadable and not connected; it is neither deleted nor
// overwritten until its user binds or unbinds that account again.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.KV == nil:
		return nil, errors.New("fusion: a KV is required")
	case cfg.Stager == nil || cfg.Presence == nil:
		return nil, errors.New("fusion: a Stager and a Presence are required")
	case cfg.Owner == nil || cfg.UserAddress == nil:
		return nil, errors.New("fusion: Owner and UserAddress are required")
	}
	s, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 8 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	p := &Proxy{
		cfg:      cfg,
		seal:     s,
		log:      cfg.Logger,
		settling: make(chan struct{}, maxSettling),
		accounts: make(map[string]*account),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	var b [5]byte
	rand.Read(b[:])
	p.nonce = strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))

	unreadable := 0
	err = cfg.KV.Iterate([]byte(keyPrefix), func(k, v []byte) error {
		key := string(k)
		user, bare, ok := splitKey(key)
		j, jerr := jid.Parse(bare)
		if !ok || jerr != nil {
			p.log.Warn("fusion: skipping a stored account with a malformed key", "key", strings.ReplaceAll(key, "\x00", " "))
			return nil
		}
		rec, err := p.seal.open(key, v)
		a := newAccount(user, j, rec.Password)
		if err != nil {
			a.bad, a.state, a.errText, a.password = err, StateUnreadable, err.Error(), ""
			unreadable++
		}
		p.accounts[key] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fusion: load accounts: %w", err)
	}
	if unreadable > 0 {
		p.log.Warn("fusion: stored accounts do not open with the configured key; they stay unconnected until bound again",
			"unreadable", unreadable, "accounts", len(p.accounts))
	}
	p.log.Info("fusion: accounts loaded", "accounts", len(p.accounts), "unreadable", unreadable)
	return p, nil
}

// Run keeps a session for every stored account that can be read, and for
// every account bound while it runs, until ctx ends; it returns nil then.
// Bindings of contacts are left to expire at shutdown (the next session
// renews those still online).
func (p *Proxy) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("fusion: Run is already running")
	}
	defer p.running.Store(false)
	p.mu.Lock()
	p.runCtx = ctx
	for _, a := range p.accounts {
		if a.bad == nil {
			p.start(ctx, a, nil)
		}
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.runCtx = nil
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// start runs a's loop under run; c, if not nil, is a session already
// logged in. Callers hold p.mu.
func (p *Proxy) start(run context.Context, a *account, c *conn) {
	ctx, cancel := context.WithCancel(run)
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done, a.ready = cancel, done, make(chan struct{})
	ready := a.ready
	a.mu.Unlock()
	p.wg.Go(func() {
		defer close(done)
		defer func() {
			a.mu.Lock()
			select {
			case <-ready:
			default:
				close(ready)
			}
			a.mu.Unlock()
		}()
		p.keep(run, ctx, a, c)
	})
}

// stop ends a's loop and waits for it.
func (p *Proxy) stop(a *account) {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Bind logs in to the external account jid as user's, once, to check the
// password (a refusal is ErrAuth, wrapped, and nothing is stored), stores
// it sealed and keeps its session while Run runs. Binding an account
// again replaces its password and session.
func (p *Proxy) Bind(ctx context.Context, user, jidStr, password string) (AccountView, error) {
	if !validUser(user) {
		return AccountView{}, fmt.Errorf("%w: bad user name %q", ErrInvalid, user)
	}
	j, err := jid.Parse(jidStr)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return AccountView{}, fmt.Errorf("%w: %q is not a bare JID user@domain", ErrInvalid, jidStr)
	}
	if strings.Contains(j.String(), sep) {
		return AccountView{}, fmt.Errorf("%w: a JID with %q cannot be bound: %s", ErrInvalid, sep, j)
	}
	if password == "" {
		return AccountView{}, fmt.Errorf("%w: empty password for %s", ErrInvalid, j)
	}
	c, err := p.login(ctx, j, password)
	if err != nil {
		return AccountView{}, fmt.Errorf("fusion: bind %s for %s: %w", j, user, err)
	}
	k := storageKey(user, j.String())
	sealed, err := p.seal.seal(k, record{User: user, JID: j.String(), Password: password, Bound: time.Now().UTC()})
	if err != nil {
		c.close()
		return AccountView{}, err
	}

	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	if err := p.cfg.KV.Put(ctx, []byte(k), sealed); err != nil {
		c.close()
		return AccountView{}, fmt.Errorf("fusion: store account %s of %s: %w", j, user, err)
	}
	p.mu.Lock()
	old := p.accounts[k]
	p.mu.Unlock()
	if old != nil {
		// The old session's cleanup must not remove bindings the new one
		// makes under the same contact names: it ends first.
		p.stop(old)
		p.dropBindings(ctx, old)
	}
	a := newAccount(user, j, password)
	p.mu.Lock()
	p.accounts[k] = a
	run := p.runCtx
	if run != nil {
		p.start(run, a, c)
	}
	p.mu.Unlock()
	if run == nil {
		c.close()
	} else {
		a.mu.Lock()
		ready := a.ready
		a.mu.Unlock()
		// The session it verified goes on: wait for its roster, briefly.
		t := time.NewTimer(p.cfg.Timeout)
		select {
		case <-ready:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	p.log.Info("fusion: account bound", "user", user, "jid", j.String(), "replaced", old != nil)
	return a.view(), nil
}

// Unbind ends the session of user's account jid, deletes it and removes
// the bindings of its contacts. It returns ErrNotFound if there is no
// such account.
func (p *Proxy) Unbind(ctx context.Context, user, jidStr string) error {
	j, err := jid.Parse(jidStr)
	if err != nil {
		return fmt.Errorf("fusion: unbind %q of %s: %w", jidStr, user, ErrNotFound)
	}
	k := storageKey(user, j.Bare().String())
	p.bindMu.Lock()
	defer p.bindMu.Unlock()
	p.mu.Lock()
	a := p.accounts[k]
	p.mu.Unlock()
	if a == nil {
		return fmt.Errorf("fusion: unbind %s of %s: %w", j.Bare(), user, ErrNotFound)
	}
	if err := p.cfg.KV.Delete(ctx, []byte(k)); err != nil {
		return fmt.Errorf("fusion: unbind %s of %s: %w", j.Bare(), user, err)
	}
	p.mu.Lock()
	delete(p.accounts, k)
	p.mu.Unlock()
	p.stop(a)
	p.dropBindings(ctx, a)
	p.log.Info("fusion: account unbound", "user", user, "jid", a.jid.String())
	return nil
}

// Accounts lists user's bound accounts by JID.
func (p *Proxy) Accounts(user string) []AccountView {
	p.mu.Lock()
	var as []*account
	for _, a := range p.accounts {
		if a.user == user {
			as = append(as, a)
		}
	}
	p.mu.Unlock()
	out := make([]AccountView, 0, len(as))
	for _, a := range as {
		out = append(out, a.view())
	}
	slices.SortFunc(out, func(x, y AccountView) int { return strings.Compare(x.JID, y.JID) })
	return out
}

// account finds user's account bare.
func (p *Proxy) account(user, bare string) *account {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accounts[storageKey(user, bare)]
}

// dropBindings unregisters every binding made through a.
func (p *Proxy) dropBindings(ctx context.Context, a *account) {
	a.mu.Lock()
	bound := a.bound
	a.bound = make(map[string]presence.Binding)
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Timeout)
	defer cancel()
	for _, b := range bound {
		if err := p.cfg.Presence.Unregister(ctx, b.AOR, b.Contact); err != nil {
			p.log.Warn("fusion: binding not removed", "aor", b.AOR, "contact", b.Contact, "err", err)
		}
	}
}

// resolve is where the server of domain is dialed.
func (p *Proxy) resolve(domain string) string {
	if p.cfg.Resolve != nil {
		return p.cfg.Resolve(domain)
	}
	return net.JoinHostPort(domain, "5222")
}
