package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smsbridge/bridge/api"
	"github.com/smsbridge/bridge/cluster"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/dlr"
	"github.com/smsbridge/bridge/fusion"
	"github.com/smsbridge/bridge/group"
	"github.com/smsbridge/bridge/internal/tlsconf"
	"github.com/smsbridge/bridge/mcp"
	"github.com/smsbridge/bridge/moapp"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/provision"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/sip"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smppgw"
	"github.com/smsbridge/bridge/smstext"
	"github.com/smsbridge/bridge/store"
	"github.com/smsbridge/bridge/xmpp"
)

// Addrs are the addresses the bridge listens on, port 0 resolved; "" for a
// listener that is off.
type Addrs struct {
	SMPP, SIP, HTTP, MCP, Admin string
	SMPPTLS, SIPTLS             string // "" unless --smpp-tls-listen, --sip-tls-listen
}

// Bridge is one gateway process's parts, built and wired.
type Bridge struct {
	cfg *config.Config
	log *slog.Logger

	db     *store.DB
	pres   *presence.Store
	node   *cluster.Node       // nil unless clustered (--nats-url or --nats-listen)
	rep    *cluster.Replicated // nil unless --cluster-ack replicated
	dir    *directory.Directory
	prov   *provision.Store
	rt     *router.Router
	groups *group.Service // nil without --group-number
	robots *robots        // the groups' robots; nil without groups
	in     msg.Stager     // where the edges stage: groups, else the router
	lg     *logins
	gw     *smppgw.Gateway
	sip    *sip.Server
	mcp    *mcp.Server   // nil when the handset link is off
	xmpp   *xmpp.Gateway // nil without --xmpp-server
	fusion *fusion.Proxy // nil without --fusion-key
	api    *api.Server
	dlr    *dlr.Notifier // delivery reports to HTTP senders
	apps   *moapp.Table  // the applications of service numbers; nil without --mo-app
	app    *moapp.Sender // their edge; nil without --mo-app

	smppLn, httpLn, mcpLn, adminLn net.Listener
	smppTLSLn                      net.Listener // SMPP over TLS; nil when off

	// The certificate of every TLS listener, swapped by Reload; nil
	// without --tls-cert.
	cert *tlsconf.Cert

	// SMPP accounts from the configuration, swapped by Reload; provisioned
	// ones are in the store.
	accounts atomic.Pointer[map[string]string]
	latency  map[string]*api.Histogram // acceptance → final state, by route
	// the store's group commits (acknowledgements wait for them) and checkpoints
	commitTime, ckptTime *api.Histogram
	xmppPing             *api.Histogram // answered pings' round trips

	level     *slog.LevelVar // the loggers' level, changed through the API; nil: fixed
	ready     chan struct{}
	ran       atomic.Bool
	closeOnce sync.Once
}

// Option adjusts what New builds.
type Option func(*Bridge)

// WithLogLevel hands the API the level of log's handler, which GET and PUT
// /v1/admin/log-level read and change; without it the level is fixed.
func WithLogLevel(v *slog.LevelVar) Option { return func(b *Bridge) { b.level = v } }

// New builds every part of the bridge from cfg and binds its listeners, so
// Addrs is known at once; Run serves. log may be nil (discard). A Bridge
// whose Run is never called must be closed with Close.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Bridge, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bridge{cfg: cfg, log: log, ready: make(chan struct{})}
	for _, o := range opts {
		o(b)
	}
	acc := cfg.Accounts()
	b.accounts.Store(&acc)
	for _, step := range []struct {
		name  string
		build func() error
	}{
		{"tls", b.loadCert},
		{"store", b.openStore},
		{"directory", b.openDirectory},
		{"cluster", b.buildCluster},
		{"router", b.buildRouter},
		{"reports", b.buildReports},
		{"groups", b.buildGroups},
		{"apps", b.buildApps},
		{"logins", b.buildLogins},
		{"smpp", b.buildSMPP},
		{"sip", b.buildSIP},
		{"mcp", b.buildMCP},
		{"xmpp", b.buildXMPP},
		{"fusion", b.buildFusion},
		{"http", b.buildAPI},
		{"listeners", b.listen},
	} {
		if err := step.build(); err != nil {
			b.Close()
			return nil, fmt.Errorf("bridge: %s: %w", step.name, err)
		}
	}
	b.connect()
	return b, nil
}

func (b *Bridge) loadCert() error {
	if b.cfg.TLSCert == "" {
		return nil
	}
	c, err := tlsconf.Load(b.cfg.TLSCert, b.cfg.TLSKey, b.log.With("part", "tls"))
	b.cert = c
	return err
}

// storeBounds are the buckets of the store's timings, in seconds: an fsync
// takes a fraction of a millisecond to tens of them, a stall more.
var storeBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1}

func (b *Bridge) openStore() error {
	cfg := b.cfg
	if cfg.OpenRegistration {
		b.log.Warn("OPEN REGISTRATION IS ON: any SIP client can register as anyone. Labs only.")
	}
	b.commitTime, b.ckptTime = api.NewHistogram(storeBounds...), api.NewHistogram(storeBounds...)
	db, err := store.Open(store.Options{
		OnCommit: b.commitTime.ObserveDuration, OnCheckpoint: b.ckptTime.ObserveDuration,
		Dir: cfg.DataDir, Logger: b.log.With("part", "store"),
		// Every message the queue and the workers can hold stays cached, so
		// a backlog's final transitions do not read records back from badger.
		CacheRecords:   cfg.QueueDepth + cfg.Workers,
		MemTableSize:   int64(cfg.StoreMemtableMB) << 20,
		BlockCacheSize: int64(cfg.StoreCacheMB) << 20, IndexCacheSize: int64(cfg.StoreCacheMB) << 20,
		CommitInterval: cfg.StoreCommitInterval, DedupWindow: cfg.DedupWindow, ClientKeyWindow: cfg.IdempotencyWindow, DedupMaxKeys: cfg.DedupMaxKeys,
		KeepText: cfg.RetainText, Retention: cfg.Retention,
		Metrics: cfg.AdminListen != "",
	})
	if err != nil {
		return fmt.Errorf("open %q: %w", cfg.DataDir, err)
	}
	b.db = db
	return nil
}

// openDirectory opens who is who (the identity directory, with the SIP
// users of the configuration), who is online (presence) and the SMPP
// provisioning, all kept in the store.
func (b *Bridge) openDirectory() error {
	var err error
	if b.dir, err = directory.Open(directory.Options{KV: b.db, Domain: b.cfg.SIPDomain, CountryCode: b.cfg.CountryCode,
		Static: b.cfg.Users(), Logger: b.log.With("part", "directory")}); err != nil {
		return err
	}
	if b.pres, err = presence.Open(presence.Options{KV: b.db, Logger: b.log.With("part", "presence")}); err != nil {
		return err
	}
	b.prov, err = provision.Open(provision.Options{KV: b.db, Domain: b.cfg.SIPDomain, CountryCode: b.cfg.CountryCode,
		SMSC: len(b.cfg.SMSCs) > 0, SMSCs: b.cfg.SMSCNames(), ConfiguredAccount: b.configuredAccount,
		Logger: b.log.With("part", "provision")})
	if err != nil {
		return err
	}
	// The default SMS route must lead somewhere; the provisioned table was
	// checked when it was set, but the configuration may have changed since.
	if id := b.cfg.SMSRoute.ESME; id != "" && !b.prov.AccountKnown(id) {
		return fmt.Errorf("--sms-route esme:%s names no SMPP account (--smpp-account or provisioned)", id)
	}
	for _, r := range b.prov.Routes() {
		if err := b.prov.CheckTarget(r.Target); err != nil {
			b.log.Warn("provisioned route leads nowhere: its messages wait until it is fixed (PUT /v1/routes)", "route", r.Name, "err", err)
		}
	}
	return nil
}

// buildCluster makes the bridge a node sharing presence over NATS when
// the configuration asks for it; by default it is one node without NATS.
// Other nodes' bindings reach the presence store as remote ones; the
// router delivers to them by asking their node (connect).
func (b *Bridge) buildCluster() error {
	cfg := b.cfg
	if !cfg.Clustered() {
		return nil
	}
	n, err := cluster.New(cluster.Config{
		Name: cfg.NodeName, URL: cfg.NATSURL,
		Listen: cfg.NATSListen, ClusterListen: cfg.NATSClusterListen, ClusterAdvertise: cfg.NATSClusterAdvertise, Routes: cfg.NATSRoutes,
		DataDir: cfg.DataDir, Replicas: cfg.ClusterReplicas,
		// A delivery through another node waits as long as one here would.
		DeliverTimeout: cfg.IMTimeout,
		Presence:       b.pres, Logger: b.log.With("part", "cluster"),
	})
	b.node = n
	return err
}

// configuredAccount tells whether the configuration (as last reloaded)
// defines SMPP account id.
func (b *Bridge) configuredAccount(id string) bool {
	_, ok := (*b.accounts.Load())[id]
	return ok
}

func (b *Bridge) buildRouter() error {
	b.latency = map[string]*api.Histogram{"im": api.NewHistogram(), "sms": api.NewHistogram(), "app": api.NewHistogram(), "failed": api.NewHistogram()}
	var apps router.Apps
	if len(b.cfg.MOApps) > 0 {
		list := make([]moapp.App, len(b.cfg.MOApps))
		for i, a := range b.cfg.MOApps {
			list[i] = moapp.App{Name: a.Name(), Number: msg.Address(a.Number), Keyword: a.Keyword, URL: a.URL, Secret: []byte(a.Secret)}
		}
		t, err := moapp.NewTable(list)
		if err != nil {
			return err
		}
		b.apps, apps = t, t
	}
	b.rt = router.New(router.Config{
		Workers: b.cfg.Workers, MaxWorkers: b.cfg.WorkersMax, QueueDepth: b.cfg.QueueDepth, DefaultValidity: b.cfg.DefaultValidity,
		DedupWindow: b.cfg.DedupWindow, ClientKeyWindow: b.cfg.IdempotencyWindow, OnFinal: b.observeFinal, People: b.dir, Apps: apps,
		Logger: b.log.With("part", "router"),
		// The SMPP edge is built after the router; it is there before Run.
		CheckSMS: func(m *msg.Message) error { return b.gw.CheckSMS(m) },
	}, b.db, b.pres)
	return nil
}

// buildReports loads the delivery reports to HTTP senders that an earlier
// run left undelivered; Run posts them and the new ones.
func (b *Bridge) buildReports() error {
	n, err := dlr.New(dlr.Config{KV: b.db, Secret: []byte(b.cfg.DLRSecret), Logger: b.log.With("part", "dlr")})
	if err != nil {
		return err
	}
	if p := n.Pending(); p > 0 {
		b.log.Info("delivery reports waiting from the last run", "reports", p)
	}
	b.dlr = n
	return nil
}

// buildGroups puts group chat in front of the router when it has an
// access number: every edge stages through it (b.in).
func (b *Bridge) buildGroups() error {
	b.in = b.rt
	if b.node != nil && b.cfg.ClusterAck == config.AckReplicated {
		b.rep = b.node.Replicate(b.rt, b.knownMessage)
		b.in = b.rep
	}
	if b.cfg.GroupNumber == "" {
		return nil
	}
	rs, err := b.buildRobots()
	if err != nil {
		return err
	}
	g, err := group.New(group.Config{
		Access: b.cfg.GroupNumber, CountryCode: b.cfg.CountryCode, KV: b.db, People: b.dir, Robots: rs,
		ParseAddress: b.dir.ParseAddress,
		// A raised rate gets a burst of one second's worth: a burst below
		// the rate would refuse posts that arrive a few at a time.
		MemberRate: b.cfg.GroupMemberRate, MemberBurst: max(5, b.cfg.GroupMemberRate),
		GroupRate: b.cfg.GroupRate, GroupBurst: max(50, b.cfg.GroupRate),
		Logger: b.log.With("part", "groups"),
	}, b.in)
	if err != nil {
		rs.Close(context.Background())
		return err
	}
	b.groups, b.in, b.robots = g, g, rs
	return nil
}

// buildApps builds the edge of the applications of service numbers; their
// replies are staged as the edges stage, so a reply to a group is a post.
func (b *Bridge) buildApps() error {
	if b.apps == nil {
		return nil
	}
	s, err := moapp.New(moapp.Config{Table: b.apps, Replies: b.in, Logger: b.log.With("part", "moapp")})
	b.app = s
	return err
}

// observeFinal records the time from acceptance to the final state, by the
// network that delivered the message ("failed" when none did).
// knownMessage is the store's view of a message, for the replicated
// acknowledgement mode's recovery.
func (b *Bridge) knownMessage(id string) (found, final bool) {
	r, err := b.db.Message(id)
	return err == nil, err == nil && r.State.Final()
}

func (b *Bridge) observeFinal(m *msg.Message, o msg.Outcome) {
	if b.rep != nil {
		b.rep.Forget(m.ID)
	}
	route := "failed"
	if o.Delivered {
		route = string(o.Via)
	}
	if h := b.latency[route]; h != nil {
		h.Observe(time.Since(m.Accepted).Seconds())
	}
}

func (b *Bridge) buildLogins() error {
	lg, err := buildLogins(b.cfg, b.dir.HA1, b.dir.HA1SHA256, b.db, b.dir, b.log)
	b.lg = lg
	return err
}

var alphabets = map[config.Alphabet]smstext.Preference{
	config.AlphabetAuto: smstext.Auto, config.AlphabetUCS2: smstext.ForceUCS2, config.AlphabetLatin1: smstext.ForceLatin1,
}

func (b *Bridge) buildSMPP() error {
	cfg := b.cfg
	gc := smppgw.Config{
		CountryCode: cfg.CountryCode, Logger: b.log.With("part", "smpp"),
		Route: smppgw.Route{Upstream: cfg.SMSRoute.SMSC, SMSCs: strings.Join(cfg.SMSRoute.SMSCs, "|"), ESME: cfg.SMSRoute.ESME},
		KV:    b.db, OnReceipt: b.rt.Receipt, Policy: provPolicy{b.prov, b.alphaAllowed}, Control: b.rt,
		Alphabet: alphabets[cfg.SMSAlphabet], Payload: cfg.SMSPayload, AlwaysReceipts: cfg.SMSReceipts == config.ReceiptsAlways,
		Reassembly: smstext.ReassemblyConfig{Timeout: cfg.ReassemblyWait, Partial: cfg.ReassemblyPolicy == config.ReassemblyPartial,
			MaxPending: cfg.ReassemblyMaxPending, MaxBytes: cfg.ReassemblyMaxMB << 20,
			Logger: b.log.With("part", "reassembly")},
		Auth: b.authSMPP, SystemID: "bridge", Window: cfg.SMPPWindow, EnquireInterval: cfg.EnquireInterval,
		MaxSessions: cfg.SMPPMaxSessions, MaxUnbound: cfg.PreauthMax, MaxUnboundPerSource: cfg.PreauthPerSource,
		BindTimeout: cfg.PreauthTimeout,
	}
	if b.node != nil {
		gc.Elsewhere = b.node // receipts for ESMEs bound to other nodes
	}
	for _, s := range cfg.SMSCs {
		bind := smpp.BindTransceiver
		if s.Bind == config.BindTransmitter {
			bind = smpp.BindTransmitter
		}
		u := smppgw.Upstream{Name: s.Name, Addr: s.Addr, SystemID: s.SystemID, Password: s.Password, Bind: bind,
			Window: s.Window, TPS: s.TPS, Weight: s.Weight, Accounts: s.Accounts}
		if s.TLS {
			tc, err := tlsconf.ClientConfig(cfg.SMSCCA)
			if err != nil {
				return fmt.Errorf("smsc %s: %w", s.Name, err)
			}
			u.TLS = tc
		}
		gc.Upstreams = append(gc.Upstreams, u)
	}
	b.gw = smppgw.New(gc, b.in)
	return nil
}

// authSMPP checks a bind: configured accounts first, then provisioned ones.
func (b *Bridge) authSMPP(systemID, password string, _ smpp.CommandID, _ net.Addr) uint32 {
	if want, ok := (*b.accounts.Load())[systemID]; ok {
		if !smpp.CheckPassword(want, password) {
			return smpp.ESME_RINVPASWD
		}
		return smpp.ESME_ROK
	}
	switch ok, known := b.prov.CheckAccount(systemID, password); {
	case !known:
		return smpp.ESME_RINVSYSID
	case !ok:
		return smpp.ESME_RINVPASWD
	}
	return smpp.ESME_ROK
}

func (b *Bridge) buildSIP() error {
	cfg := b.cfg
	var sipTLS *tls.Config
	if cfg.SIPTLSListen != "" {
		sipTLS = b.cert.ServerConfig()
	}
	s, err := sip.New(sip.Config{
		Listen: cfg.SIPListen, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode,
		TLSListen: cfg.SIPTLSListen, TLS: sipTLS,
		OpenRegistration: cfg.OpenRegistration,
		// The directory's users, then SIP passwords issued to the devices
		// of partner and social logins by /v1/login.
		HA1: b.lg.auth.HA1, Issued: b.lg.auth.Issued,
		HA1SHA256: b.lg.auth.HA1SHA256, IssuedSHA256: b.lg.auth.IssuedSHA256,
		OutboundProxy: cfg.OutboundProxy, MessageTimeout: cfg.IMTimeout, MinExpires: cfg.SIPMinExpires,
		ReginfoFrom: cfg.ReginfoFrom,
		MaxPreauth:  cfg.PreauthMax, MaxPreauthPerSource: cfg.PreauthPerSource, PreauthTimeout: cfg.PreauthTimeout,
		Logger: b.log.With("part", "sip"),
	}, b.pres, b.in)
	b.sip = s
	return err
}

func (b *Bridge) buildMCP() error {
	cfg := b.cfg
	if cfg.MCPListen == "" {
		return nil
	}
	s, err := mcp.New(mcp.Config{
		Listen: cfg.MCPListen, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode,
		HA1: b.lg.auth.HA1, Issued: b.lg.auth.Issued, OpenRegistration: cfg.OpenRegistration, Lookup: b.pres.Lookup,
		Service: b.handsetService, MessageTimeout: cfg.IMTimeout,
		// Each stateful connection keeps its codec state: this bounds that memory.
		MaxConns:   10000,
		MaxPreauth: cfg.PreauthMax, MaxPreauthPerSource: cfg.PreauthPerSource, LoginTimeout: cfg.PreauthTimeout,
		Logger: b.log.With("part", "mcp"),
	}, b.pres, b.in)
	b.mcp = s
	return err
}

func (b *Bridge) buildXMPP() error {
	cfg := b.cfg
	if cfg.XMPPServer == "" {
		return nil
	}
	b.xmppPing = api.NewHistogram()
	g, err := xmpp.New(xmpp.Config{
		Server: cfg.XMPPServer, Domain: cfg.XMPPDomain, Secret: cfg.XMPPSecret,
		Stager: b.in, Presence: b.pres, KV: b.db, Local: b.xmppLocal, Timeout: cfg.IMTimeout, PingGap: cfg.XMPPPingGap,
		OnPing: b.xmppPing.ObserveDuration, Logger: b.log.With("part", "xmpp"),
	})
	b.xmpp = g
	return err
}

// xmppLocal reads a JID at the gateway's domain: a number, or the name of
// a user of the directory (their own address, so it reaches them wherever
// they are).
func (b *Bridge) xmppLocal(local string) (msg.Address, bool) {
	if a, err := msg.NormalizeNumber(local, msg.TONInternational, msg.NPIISDN, b.cfg.CountryCode); err == nil {
		return a, true
	}
	if u, ok := b.dir.User(local); ok && len(u.Addresses) > 0 {
		return u.Addresses[0], true
	}
	return "", false
}

func (b *Bridge) buildAPI() error {
	cfg := b.cfg
	b.api = api.New(api.Config{
		Tokens: cfg.APITokens, CountryCode: cfg.CountryCode, Logger: b.log.With("part", "http"),
		Ready: b.readiness, SMSCs: b.smscStates, Metrics: b.metrics,
		Domain: cfg.SIPDomain, Directory: b.dir, Provision: b.prov, Presence: b.pres,
		Logins: b.lg.auth, Tickets: b.lg.issuer, Partners: b.lg.partners,
		XMPPLogin: b.xmppLogin, Accounts: b.fusion, Groups: b.groups, RobotAuth: b.robotAuth(), ReportURL: cfg.DLRURL,
		HeaderTimeout: cfg.PreauthTimeout, Admin: admin{b}, LogLevel: b.level, Clients: apiClients(cfg.APIClients),
		LoginsPerMinute: cfg.LoginsPerMinute, AuthFailuresPerMinute: cfg.AuthFailuresPerMinute, MaxConnsPerSource: cfg.HTTPConnsPerSource,
		Control: b.rt, AlphaAllowed: b.alphaAllowed,
	}, b.in, b.db)
	return nil
}

func apiClients(cs []config.APIClient) []api.Client {
	out := make([]api.Client, len(cs))
	for i, c := range cs {
		out[i] = api.Client{Name: c.Name, Roles: c.Roles, Rate: c.Rate, Token: c.Token}
	}
	return out
}

// readiness is nil when the bridge can do its work: the store takes
// writes and, with upstream SMSCs configured, a bind to one is up (SMS
// fail over to it; with none, SMS only wait). Each part that is down is
// one error of the join.
func (b *Bridge) readiness() error {
	return errors.Join(append([]error{b.db.Healthy()}, b.gw.UpstreamErrors()...)...)
}

// listen binds every listener; "" leaves an optional one off.
func (b *Bridge) listen() error {
	bind := func(addr, name string, ln *net.Listener) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listen: %w", name, err)
		}
		*ln = l
		return nil
	}
	if err := bind(b.cfg.SMPPListen, "smpp", &b.smppLn); err != nil {
		return err
	}
	if b.smppLn == nil { // an empty SMPP address listens on any free port, as net.Listen does
		if err := bind(":0", "smpp", &b.smppLn); err != nil {
			return err
		}
	}
	if err := bind(b.cfg.HTTPListen, "http", &b.httpLn); err != nil {
		return err
	}
	if b.httpLn != nil && b.cfg.HTTPTLS {
		// fasthttp speaks HTTP/1.1 only: offer nothing else by ALPN.
		b.httpLn = tls.NewListener(b.httpLn, b.cert.ServerConfig("http/1.1"))
	}
	if err := bind(b.cfg.SMPPTLSListen, "smpp tls", &b.smppTLSLn); err != nil {
		return err
	}
	if b.smppTLSLn != nil {
		b.smppTLSLn = tls.NewListener(b.smppTLSLn, b.cert.ServerConfig())
	}
	if b.mcp != nil {
		if err := bind(b.cfg.MCPListen, "mcp", &b.mcpLn); err != nil {
			return err
		}
	}
	if err := bind(b.cfg.AdminListen, "admin", &b.adminLn); err != nil {
		return err
	}
	return b.sip.Listen()
}

// connect registers the edges that deliver and report with the router,
// and in a cluster with the node too, which delivers through them what
// other nodes ask it to.
func (b *Bridge) connect() {
	addIM := func(via string, s router.IMSender) {
		b.rt.AddIM(via, s)
		if b.node != nil {
			b.node.AddIM(via, s)
		}
	}
	if b.node != nil {
		b.rt.AddIM(router.ViaCluster, b.node)
		b.node.ServeESMEs(b.gw.DeliverESME)
		b.node.ServeReceipts(b.gw.MatchReceipt)
	}
	addIM("sip", b.sip)
	if b.mcp != nil {
		addIM("mcp", b.mcp)
	}
	if b.app != nil {
		b.rt.SetApp(b.app)
	}
	if r := b.cfg.SMSRoute; r.SMSC || r.ESME != "" {
		b.rt.SetSMS(b.gw)
	} else {
		b.log.Warn("no SMS route: messages for offline numbers wait until one is configured (--smsc or --sms-route esme:ID)")
	}
	// Originators hear how their message ended: ESMEs by delivery receipt,
	// IM users by IMDN, HTTP senders by a report to their URL.
	b.rt.AddReporter(msg.FromESME, b.gw)
	b.rt.AddReporter(msg.FromSIP, b.sip)
	b.rt.AddReporter(msg.FromAPI, b.dlr) // HTTP senders: signed POSTs to their report URL
	if b.fusion != nil {
		addIM(fusion.Via, b.fusion)
	}
	if b.xmpp != nil {
		addIM(xmpp.Via, b.xmpp)
		b.rt.AddReporter(msg.FromXMPP, b.xmpp)
	}
	if b.mcp != nil {
		b.dir.OnChange(b.pushContacts)
	}
}

// Addrs returns the addresses the bridge listens on.
func (b *Bridge) Addrs() Addrs {
	a := Addrs{SMPP: b.smppLn.Addr().String(), SIP: b.sip.Addr(), SIPTLS: b.sip.TLSAddr()}
	for _, l := range []struct {
		ln  net.Listener
		dst *string
	}{{b.httpLn, &a.HTTP}, {b.mcpLn, &a.MCP}, {b.adminLn, &a.Admin}, {b.smppTLSLn, &a.SMPPTLS}} {
		if l.ln != nil {
			*l.dst = l.ln.Addr().String()
		}
	}
	return a
}

// failStopGrace is how long a bridge whose store has failed keeps running,
// refusing messages and answering /readyz 503 with the reason, before it
// stops: a load balancer polling readiness sees why.
const failStopGrace = 2 * time.Second

// Ready is closed once every listener is served.
func (b *Bridge) Ready() <-chan struct{} { return b.ready }

// Run serves until ctx ends or a part fails, then shuts down: the edges stop
// taking work, in-flight deliveries end (unfinished ones stay in the store
// for the next start), and the store closes last. It may be called once.
func (b *Bridge) Run(ctx context.Context) (err error) {
	if !b.ran.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	defer func() {
		// A store that failed does not close cleanly: say why, and fail.
		if cerr := b.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("bridge: close: %w", cerr)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-b.db.Failed():
		case <-gctx.Done():
			return nil
		}
		ferr := b.db.Healthy()
		b.log.Error("bridge stopping: its store has failed", "err", ferr, "after", failStopGrace)
		select {
		case <-time.After(failStopGrace):
		case <-gctx.Done():
		}
		return fmt.Errorf("bridge: store failed: %w", ferr)
	})
	if b.adminLn != nil {
		g.Go(func() error { return serveAdmin(gctx, b.adminLn) })
	}
	if b.httpLn != nil {
		g.Go(func() error { return b.api.Serve(gctx, b.httpLn) })
	}
	g.Go(func() error { return b.rt.Run(gctx) })
	if b.groups != nil {
		g.Go(func() error { return b.groups.Run(gctx) })
	}
	g.Go(func() error { return b.dlr.Run(gctx) })
	g.Go(func() error { return b.gw.Run(gctx) })
	g.Go(func() error { return b.gw.Serve(gctx, b.smppLn) })
	if b.smppTLSLn != nil {
		g.Go(func() error { return b.gw.Serve(gctx, b.smppTLSLn) })
	}
	g.Go(func() error { b.pres.Run(gctx, 30*time.Second); return nil })
	if b.node != nil {
		// Start returns once the node is connected; it then follows the
		// cluster until gctx ends, and Close shuts it down.
		g.Go(func() error {
			if err := b.node.Start(gctx); err != nil {
				return fmt.Errorf("bridge: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return b.sip.Serve(gctx) })
	if b.xmpp != nil {
		g.Go(func() error { return b.xmpp.Run(gctx) })
	}
	if b.fusion != nil {
		g.Go(func() error { return b.fusion.Run(gctx) })
	}
	if b.mcp != nil {
		g.Go(func() error { return b.mcp.Serve(gctx, b.mcpLn) })
	}
	g.Go(func() error {
		select {
		case <-b.sip.Ready():
		case <-gctx.Done():
			return nil
		}
		a := b.Addrs()
		b.log.Info("bridge up", "smpp", a.SMPP, "sip", a.SIP, "http", a.HTTP, "https", b.cfg.HTTPTLS, "mcp", a.MCP,
			"smpp_tls", a.SMPPTLS, "sip_tls", a.SIPTLS,
			"data_dir", b.cfg.DataDir, "presence", b.pres.Len())
		close(b.ready)
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	b.log.Info("bridge stopped", "pending", b.rt.Pending())
	return err
}

// Close releases what New acquired; Run calls it when it ends.
func (b *Bridge) Close() error {
	var err error
	b.closeOnce.Do(func() {
		for _, ln := range []net.Listener{b.smppLn, b.httpLn, b.mcpLn, b.adminLn, b.smppTLSLn} {
			if ln != nil {
				ln.Close()
			}
		}
		if b.sip != nil {
			b.sip.Close() // only what Serve did not take over
		}
		if b.robots != nil {
			ctx, cancel := context.WithTimeout(context.Background(), robotsCloseWait)
			b.robots.Close(ctx)
			cancel()
		}
		if b.node != nil {
			b.node.Shutdown() // before the store: handing a binding over writes it
		}
		if b.db != nil {
			err = b.db.Close()
		}
	})
	return err
}

// Reload swaps in the SMPP accounts and SIP users of a re-read
// configuration, re-reads the provisioned accounts and the TLS certificate
// files (the paths the bridge started with; a certificate that does not load
// leaves the one in use); nothing else changes without a restart.
func (b *Bridge) Reload(cfg *config.Config) error {
	var certErr error
	if b.cert != nil {
		if certErr = b.cert.Reload(); certErr != nil {
			certErr = fmt.Errorf("bridge: reload certificate: %w", certErr)
		}
	}
	acc, usr := cfg.Accounts(), cfg.Users()
	b.accounts.Store(&acc)
	if err := b.dir.Reload(usr); err != nil {
		return errors.Join(certErr, fmt.Errorf("bridge: reload SIP users: %w", err))
	}
	if err := b.prov.Reload(); err != nil {
		return errors.Join(certErr, fmt.Errorf("bridge: reload provisioned accounts: %w", err))
	}
	b.log.Info("configuration reloaded", "smpp_accounts", len(acc), "sip_users", len(usr))
	return certErr
}

// serveAdmin serves Go's profiles, and the runtime's and badger's expvar
// counters (compactions in progress, bytes each level wrote) at
// /debug/vars, on a listener of its own, so they are never reachable
// through the public API port.
func serveAdmin(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// provPolicy gives the SMPP gateway the provisioned per-account limits and
// routes.
type provPolicy struct {
	p     *provision.Store
	alpha func(account, name string) bool
}

func (pp provPolicy) SourceAllowed(id, src string) bool { return pp.p.SourceAllowed(id, src) }

func (pp provPolicy) AlphaAllowed(id, name string) bool { return pp.alpha(id, name) }

// alphaAllowed tells whether an SMPP account or HTTP client ("client:NAME")
// may send from the alphanumeric name: a provisioned account's own list,
// else the --alpha-senders entries for it, else those for every account.
func (b *Bridge) alphaAllowed(account, name string) bool {
	account = strings.TrimPrefix(account, "client:")
	if own, ok := b.prov.AlphaSenders(account); ok {
		return slices.Contains(own, "*") || slices.Contains(own, name)
	}
	var own, all []string
	for _, a := range b.cfg.AlphaSenders {
		switch a.Account {
		case account:
			own = append(own, a.Name)
		case "":
			all = append(all, a.Name)
		}
	}
	if own == nil {
		own = all
	}
	return slices.Contains(own, "*") || slices.Contains(own, name)
}

func (pp provPolicy) TPS(id string) int {
	a, ok := pp.p.Account(id)
	if !ok {
		return 0
	}
	return a.TPS
}

func (pp provPolicy) RouteFor(to msg.Address) (string, bool) {
	r, ok := pp.p.RouteFor(to)
	return r.Target, ok
}
