package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
)

// Options is everything a bench run is configured by.
type Options struct {
	AddrSMPP   string   `json:"addr_smpp,omitempty"` // running bridge; empty = spawn one
	AddrSIP    string   `json:"addr_sip,omitempty"`
	PID        int      `json:"pid,omitempty"`         // running bridge's pid, for CPU/RSS
	SMSCListen string   `json:"smsc_listen,omitempty"` // where our SMSC listens (a running bridge must bind to it)
	BridgeBin  string   `json:"bridge_bin,omitempty"`
	BridgeArgs []string `json:"bridge_args,omitempty"`
	Domain     string   `json:"sip_domain"`
	Password   string   `json:"-"`
	// Nodes > 1 spawns that many bridges as one cluster; Local keeps each
	// message on the node it was submitted at (see Load.Local).
	Nodes int  `json:"nodes"`
	Local bool `json:"cluster_local,omitempty"`
	// KillNode (1-based; 0 = none) is killed with SIGKILL KillAt into the
	// bridge phase and started again RestartAfter later.
	KillNode     int           `json:"kill_node,omitempty"`
	KillAt       time.Duration `json:"kill_at_ns,omitempty"`
	RestartAfter time.Duration `json:"restart_after_ns,omitempty"`

	Binds     int     `json:"binds"`
	Window    int     `json:"window"`
	SIPWindow int     `json:"sip_window"`
	Users     int     `json:"users"`
	Online    float64 `json:"online"`
	Numbers   int     `json:"sms_numbers"`
	// XMPPUsers log in to the bench's Prosody when the mix has XMPP
	// routes; XMPPWindow bounds their messages in flight.
	XMPPUsers  int `json:"xmpp_users"`
	XMPPWindow int `json:"xmpp_window"`
	// ProsodyNice is the scheduling priority (nice value) the bench gives
	// its Prosody, for both phases; ProsodyNiceErr says why it was not set.
	ProsodyNice    int    `json:"prosody_nice"`
	ProsodyNiceErr string `json:"prosody_nice_error,omitempty"`
	// XMPPPingGap is the bridge's --xmpp-ping-gap (from BridgeArgs), which
	// the ceiling's component keeps too: both confirm with the same pings.
	XMPPPingGap time.Duration `json:"xmpp_ping_gap_ns"`
	Mix         string        `json:"mix"`
	Alphabet    string        `json:"alphabet"`
	// Groups of GroupSize members each take the group route's posts.
	Groups    int `json:"groups"`
	GroupSize int `json:"group_size"`

	Rate            float64       `json:"rate"`
	CeilingRate     float64       `json:"ceiling_rate,omitempty"`
	Duration        time.Duration `json:"duration_ns"`
	Warmup          time.Duration `json:"warmup_ns"`
	Drain           time.Duration `json:"drain_ns"`
	CeilingDuration time.Duration `json:"ceiling_duration_ns"`
	CeilingOnly     bool          `json:"ceiling_only"`
	NoCeiling       bool          `json:"no_ceiling"`
	Out             string        `json:"out"`
	LogLevel        string        `json:"-"`
	CPUProfile      string        `json:"-"`
}

// userName is the i-th bench IM user: a number, so it is also an MSISDN.
func userName(i int) string { return fmt.Sprintf("86139%08d", i) }

// planLoad turns o into the load both phases share and the IM users.
func planLoad(o Options) (Load, []string, error) {
	routes, err := Weights(o.Mix, routeNames[:])
	if err != nil {
		return Load{}, nil, fmt.Errorf("--mix: %w", err)
	}
	alphas, err := Weights(o.Alphabet, alphabetNames[:])
	if err != nil {
		return Load{}, nil, fmt.Errorf("--alphabet: %w", err)
	}
	nOnline := int(float64(o.Users)*o.Online + 0.5)
	if (routes[SMSToIM] > 0 || routes[IMToIM] > 0 || routes[IMToSMS] > 0) && nOnline == 0 {
		return Load{}, nil, errors.New("the mix needs IM users online: raise --users or --online")
	}
	if needsXMPP(routes) && o.XMPPUsers < 1 {
		return Load{}, nil, errors.New("the mix needs XMPP users: raise --xmpp-users")
	}
	// The groups' IM members are online users of their own: as many are
	// provisioned and registered as they need.
	nUsers := o.Users
	if routes[Group] > 0 {
		nOnline = max(nOnline, groupUsers(o.Groups, o.GroupSize))
		nUsers = max(nUsers, nOnline)
	}
	users := make([]string, nUsers)
	for i := range users {
		users[i] = userName(i)
	}
	l := Load{
		Rate: o.Rate, Duration: o.Duration, Warmup: o.Warmup, Routes: routes, Alphas: alphas,
		Binds: o.Binds, Window: o.Window, SIPWindow: o.SIPWindow, Online: users[:nOnline], SMSNumbers: o.Numbers,
		XMPPWindow: o.XMPPWindow,
	}
	if routes[Group] > 0 {
		if l.Group, err = newGroupPlan(o.Groups, o.GroupSize, l.Online); err != nil {
			return Load{}, nil, err
		}
	}
	return l, users, nil
}

// needsXMPP reports whether any route with a weight needs Prosody.
func needsXMPP(routes []float64) bool {
	for r, w := range routes {
		if w > 0 && Route(r).XMPP() {
			return true
		}
	}
	return false
}

// xmppComponent is the gateway's component domain under the bench's vhost.
func xmppComponent(host string) string { return "sms." + host }

// prosodyOptions is the Prosody both phases share: the users of
// xmppUserName registered on the vhost o.Domain, the component domain
// xmppComponent(o.Domain), logging from info up (at debug, logging each
// stanza would cost it more than routing it).
func prosodyOptions(o Options) prosodytest.Options {
	users := make(map[string]string, o.XMPPUsers)
	for i := range o.XMPPUsers {
		users[xmppUserName(i)+"@"+o.Domain] = o.Password
	}
	return prosodytest.Options{
		VHosts: []string{o.Domain}, ComponentDomain: xmppComponent(o.Domain), Users: users, Quiet: true,
	}
}

// prosodyAlive fails a phase during which Prosody went away: its XMPP
// figures would measure the failure (and the bridge's fallback to SMS).
func prosodyAlive(res *PhaseResult, xs *prosodytest.Server) error {
	if res.Prosody == nil || !res.Prosody.Exited {
		return nil
	}
	return fmt.Errorf("prosody (pid %d) exited during the phase; its log:\n%s", res.Prosody.PID, xs.LogTail(30))
}

// Run runs the ceiling phase and the bridge phase as o asks and writes the
// report files. progress gets one line per second.
func Run(ctx context.Context, o Options, progress io.Writer, log *slog.Logger) (*Report, error) {
	load, users, err := planLoad(o)
	if err != nil {
		return nil, err
	}
	if o.Nodes > 1 && (needsXMPP(load.Routes) || load.Group != nil) {
		return nil, errors.New("--nodes: the XMPP and group routes run against one node (one component per XMPP domain; groups are set up over one API)")
	}
	rep := &Report{
		Started: time.Now().UTC(), GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(),
		Options: o,
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	// One Prosody serves both phases, so that the ratio of the two measures
	// the bridge and not a difference between two servers.
	var xs *prosodytest.Server
	if needsXMPP(load.Routes) {
		if o.AddrSMPP != "" && !o.CeilingOnly {
			return nil, errors.New("the XMPP routes need a spawned bridge: it is a component of the bench's own Prosody")
		}
		if xs, err = prosodytest.Launch(prosodyOptions(o)); err != nil {
			return nil, err
		}
		defer xs.Close()
		nice := fmt.Sprintf("nice %d", o.ProsodyNice)
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, xs.PID(), o.ProsodyNice); err != nil {
			rep.Options.ProsodyNiceErr = err.Error()
			nice = fmt.Sprintf("the default priority (nice %d refused: %v)", o.ProsodyNice, err)
		}
		fmt.Fprintf(progress, "prosody pid %d at %s: c2s %s component %s (%s)\n", xs.PID(), nice, xs.C2SAddr, xs.ComponentAddr, xs.ComponentDomain)
	}
	if load.Group != nil && !o.NoCeiling {
		if o.CeilingOnly {
			return nil, errors.New("the group route has no ceiling phase: " + groupNoCeiling)
		}
		rep.CeilingNote = "n/a: " + groupNoCeiling
		fmt.Fprintln(progress, "ceiling:", rep.CeilingNote)
	} else if !o.NoCeiling {
		res, err := runCeiling(ctx, o, load, xs, progress, log)
		if err == nil {
			err = prosodyAlive(res, xs)
		}
		if err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		rep.Phases = append(rep.Phases, *res)
	}
	if !o.CeilingOnly {
		res, err := runBridge(ctx, o, load, users, xs, progress, log)
		if err == nil {
			err = prosodyAlive(res, xs)
		}
		if err == nil && res.Bridge != nil && res.Bridge.Exited {
			err = fmt.Errorf("the bridge (pid %d) exited during the phase:\n%s", res.Bridge.PID, res.BridgeLogTail)
		}
		if err != nil {
			return nil, fmt.Errorf("bridge: %w", err)
		}
		rep.Phases = append(rep.Phases, *res)
	}
	rep.finish()
	if err := rep.Write(o.Out); err != nil {
		return rep, err
	}
	return rep, nil
}

// groupNoCeiling says why a mix with the group route runs no ceiling phase.
const groupNoCeiling = "a post's first leg is a deliver_sm from the bench's SMSC, which needs a bound receiver, and its " +
	"copies are the sms-im and sms-sms egress legs, whose ceilings those routes measure"

// ceiling is the ceiling phase's cast, everything the bridge phase has but
// the bridge, which a zero-logic Relay replaces. Leg 1 goes to inSMSC (SMS
// origin), inSIP (IM origin) or, through Prosody, to comp (XMPP origin),
// which acknowledge and count per destination but report no delivery; leg
// 2 goes to outSIP (IM destination), over the relay's one bind to outSMSC
// (SMS destination), or from comp through Prosody to the users of xmpp
// (XMPP destination), which count deliveries as the bridge phase's sinks do.
type ceiling struct {
	tr      *Tracker
	inSMSC  *SMSC
	inSIP   *UAPool
	senders *UAPool // the generator's IM users
	outSMSC *SMSC
	outSIP  *UAPool
	relayUA *UAPool
	relay   *Relay
	xmpp    *XMPPPool  // the generator's XMPP users; nil without Prosody
	comp    *Component // the gateway's domain, played with no logic
	prosody int        // Prosody's pid, 0 without it
}

// startCeiling starts the peers and the relay (with xs, the XMPP users and
// the component too); Close stops them.
func startCeiling(ctx context.Context, o Options, xs *prosodytest.Server, log *slog.Logger) (_ *ceiling, err error) {
	c := &ceiling{tr: NewTracker()}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.inSMSC, err = StartSMSC(ctx, "127.0.0.1:0", o.Window, nil, log); err != nil {
		return nil, fmt.Errorf("ingress smsc: %w", err)
	}
	if c.inSIP, err = StartUAPool(ctx, o.Domain, o.Password, nil, log); err != nil {
		return nil, fmt.Errorf("ingress sip responder: %w", err)
	}
	if c.senders, err = StartUAPool(ctx, o.Domain, o.Password, nil, log); err != nil {
		return nil, fmt.Errorf("sip senders: %w", err)
	}
	// One bind carries every *→SMS message, as the bridge's one bind to
	// its SMSC does; its window is what all the ingress binds had together.
	window := min(o.Window*o.Binds, maxRelayWindow)
	if c.outSMSC, err = StartSMSC(ctx, "127.0.0.1:0", window, c.tr, log); err != nil {
		return nil, fmt.Errorf("egress smsc: %w", err)
	}
	if c.outSIP, err = StartUAPool(ctx, o.Domain, o.Password, c.tr, log); err != nil {
		return nil, fmt.Errorf("egress sip responder: %w", err)
	}
	if c.relayUA, err = StartUAPool(ctx, o.Domain, o.Password, nil, log); err != nil {
		return nil, fmt.Errorf("relay sip ua: %w", err)
	}
	c.relay = StartRelay(ctx, c.outSMSC.Addr(), c.outSIP.Addr(), window, c.relayUA, log)
	if xs != nil {
		c.prosody = xs.PID()
		if c.xmpp, err = StartXMPPPool(ctx, xs, o.Domain, o.Password, o.XMPPUsers, c.tr, log); err != nil {
			return nil, err
		}
		if c.comp, err = DialComponent(ctx, xs.ComponentAddr, xs.ComponentDomain, xs.Secret, o.XMPPPingGap, log); err != nil {
			return nil, err
		}
		c.relay.xmpp, c.relay.xmppHost, c.relay.refused = c.comp, o.Domain, c.tr.Refused
	}
	return c, nil
}

// Close stops the relay first, so its bind unbinds from a live SMSC, and
// the component before the bridge phase's bridge takes its domain.
func (c *ceiling) Close() {
	if c.relay != nil {
		c.relay.Close()
	}
	if c.comp != nil {
		c.comp.Close()
	}
	if c.xmpp != nil {
		c.xmpp.Close()
	}
	for _, s := range []*SMSC{c.inSMSC, c.outSMSC} {
		if s != nil {
			s.Close()
		}
	}
	for _, p := range []*UAPool{c.inSIP, c.senders, c.outSIP, c.relayUA} {
		if p != nil {
			p.Close()
		}
	}
}

// run drives l open loop for o.CeilingDuration through both legs.
func (c *ceiling) run(ctx context.Context, o Options, l Load, progress io.Writer, log *slog.Logger) (*PhaseResult, error) {
	// Open loop: the ceiling is the most the transport takes. A rate
	// compares latency with the bridge's at the same load instead.
	l.Rate = o.CeilingRate
	l.Duration = o.CeilingDuration
	l.SMPPAddrs, l.SIPAddrs = []string{c.inSMSC.Addr()}, []string{c.inSIP.Addr()}
	l.XMPP = c.xmpp
	g := &Generator{load: l, tr: c.tr, pool: c.senders, relay: c.relay, log: log}
	res, err := runPhase(ctx, "ceiling", g, Procs{Prosody: c.prosody}, o.Drain, progress)
	if err != nil {
		return nil, err
	}
	res.SMSCBad = c.inSMSC.bad.Load() + c.outSMSC.bad.Load()
	res.SIPBad = c.inSIP.bad.Load() + c.outSIP.bad.Load()
	if c.xmpp != nil {
		res.XMPPBad = c.xmpp.bad.Load()
	}
	return res, nil
}

func runCeiling(ctx context.Context, o Options, l Load, xs *prosodytest.Server, progress io.Writer, log *slog.Logger) (*PhaseResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := startCeiling(ctx, o, xs, log)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.run(ctx, o, l, progress, log)
}

func runBridge(ctx context.Context, o Options, l Load, users []string, xs *prosodytest.Server, progress io.Writer, log *slog.Logger) (*PhaseResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress = &lockedWriter{w: progress} // the phase's lines and a node's kill and restart
	tr := NewTracker()
	smscAddr := o.SMSCListen
	if smscAddr == "" {
		smscAddr = "127.0.0.1:0"
	}
	if l.Group != nil {
		if o.AddrSMPP != "" {
			return nil, errors.New("the group route needs a spawned bridge: its groups are created over the API")
		}
		tr.group = newGroupTracker(l.Group) // before the sinks that report to it start
	}
	smsc, err := StartSMSC(ctx, smscAddr, o.Window, tr, log)
	if err != nil {
		return nil, err
	}
	defer smsc.Close()
	pool, err := StartUAPool(ctx, o.Domain, o.Password, tr, log)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	var procs Procs
	if o.PID > 0 {
		procs.Bridges = func() []int { return []int{o.PID} }
	}
	l.SMPPAddrs, l.SIPAddrs = []string{o.AddrSMPP}, []string{o.AddrSIP}
	if l.Group != nil {
		l.SMSC = smsc
	}
	var br *Bridge // the first node: the API the XMPP and group set-ups use
	var nodes []*Bridge
	if o.AddrSMPP == "" {
		dir, err := os.MkdirTemp("", "bench-bridge-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		bin := o.BridgeBin
		if bin == "" {
			root, err := ModuleRoot()
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(progress, "building ./cmd/bridge in %s\n", root)
			if bin, err = BuildBridge(ctx, root, dir); err != nil {
				return nil, err
			}
		}
		so := SpawnOptions{
			Bin: bin, DataDir: dir + "/data", Domain: o.Domain, SMSCAddr: smsc.Addr(),
			Users: users, Password: o.Password, Extra: o.BridgeArgs, Log: log,
		}
		if xs != nil {
			so.XMPPServer, so.XMPPDomain, so.XMPPSecret = xs.ComponentAddr, xs.ComponentDomain, xs.Secret
			so.APIToken = randomToken()
		}
		if l.Group != nil {
			so.APIToken, so.Groups = randomToken(), true
		}
		if o.Nodes > 1 {
			so.APIToken = randomToken() // to see the cluster share presence
		}
		nodes, err = spawnNodes(ctx, so, o.Nodes)
		defer func() {
			for _, n := range nodes {
				n.Stop()
			}
		}()
		if err != nil {
			return nil, err
		}
		br = nodes[0]
		l.SMPPAddrs, l.SIPAddrs = nil, nil
		for i, n := range nodes {
			l.SMPPAddrs, l.SIPAddrs = append(l.SMPPAddrs, n.SMPPAddr), append(l.SIPAddrs, n.SIPAddr)
			fmt.Fprintf(progress, "bridge %d pid %d: smpp %s sip %s smsc %s\n", i+1, n.PID(), n.SMPPAddr, n.SIPAddr, smsc.Addr())
		}
		l.Local = o.Local
		procs.Bridges = func() []int {
			var pids []int
			for _, n := range nodes {
				if !n.Down() {
					pids = append(pids, n.PID())
				}
			}
			return pids
		}
	}
	if xs != nil {
		procs.Prosody = xs.PID()
		api := &apiClient{base: "http://" + br.HTTPAddr, token: br.APIToken}
		if l.XMPP, err = joinXMPP(ctx, o, xs, api, tr, progress, log); err != nil {
			return nil, err
		}
		defer l.XMPP.Close()
	}
	if l.Group != nil {
		api := &apiClient{base: "http://" + br.HTTPAddr, token: br.APIToken}
		if err := setupGroups(ctx, api, l.Group, o.Domain, progress); err != nil {
			return nil, err
		}
	}
	// The SMS routes need the bridge bound to our SMSC.
	if l.Routes[SMSToSMS] > 0 || l.Routes[IMToSMS] > 0 || l.Routes[XMPPToSMS] > 0 || l.Routes[Group] > 0 {
		deadline := time.Now().Add(20 * time.Second)
		for smsc.Bound() < max(1, len(nodes)) { // each node binds to the SMSC
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("the bridge did not bind to our SMSC at %s within 20s", smsc.Addr())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := registerAll(ctx, pool, l.SIPAddrs, l.Online); err != nil {
		return nil, err
	}
	if len(nodes) > 1 {
		if err := awaitSharedPresence(ctx, nodes, l.Online, progress); err != nil {
			return nil, err
		}
	}
	l.SIPAuth = true
	if o.KillNode > 0 {
		go killAndRestart(ctx, nodes[o.KillNode-1], o, progress, log)
	}
	g := &Generator{load: l, tr: tr, pool: pool, log: log}
	res, err := runPhase(ctx, "bridge", g, procs, o.Drain, progress)
	if err != nil {
		return nil, err
	}
	res.SMSCBad = smsc.bad.Load()
	res.SIPBad = pool.bad.Load()
	if l.XMPP != nil {
		res.XMPPBad = l.XMPP.bad.Load()
	}
	if res.Elsewhere > 0 && len(nodes) > 1 {
		// Why IM went out as SMS: each node's IM and cluster counters.
		for i, n := range nodes {
			res.BridgeLogTail += fmt.Sprintf("node %d counters:\n%s", i+1, imCounters(ctx, n))
		}
	}
	for i, n := range nodes {
		if err := n.Stop(); err != nil {
			log.Warn("bridge stop", "node", i+1, "err", err)
		}
		if res.Lost > 0 || res.Elsewhere > 0 || res.Bridge.Exited {
			res.BridgeLogTail += n.Stderr()
		}
	}
	return res, nil
}

// killAndRestart kills node o.KillNode o.KillAt from now, as a crash
// would, and starts it again o.RestartAfter later on its data directory.
func killAndRestart(ctx context.Context, n *Bridge, o Options, progress io.Writer, log *slog.Logger) {
	select {
	case <-time.After(o.KillAt):
	case <-ctx.Done():
		return
	}
	n.Kill()
	fmt.Fprintf(progress, "node %d killed (SIGKILL)\n", o.KillNode)
	select {
	case <-time.After(o.RestartAfter):
	case <-ctx.Done():
		return
	}
	if err := n.Restart(ctx); err != nil {
		log.Error("restarting the killed node", "node", o.KillNode, "err", err)
		return
	}
	fmt.Fprintf(progress, "node %d restarted, pid %d\n", o.KillNode, n.PID())
}

// registerAll registers every online user, 16 at a time, users[i] at
// bridges[i mod their number].
func registerAll(ctx context.Context, pool *UAPool, bridges []string, users []string) error {
	var (
		wg    sync.WaitGroup
		first atomic.Pointer[error]
		next  atomic.Int64
	)
	for range min(16, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(users) || first.Load() != nil {
					return
				}
				var code int
				var err error
				// The SIP port may still be coming up right after spawn.
				for try := 0; try < 20; try++ {
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					code, err = pool.Register(rctx, bridges[i%len(bridges)], users[i], 3600)
					cancel()
					if err == nil && code == 200 {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err == nil && code != 200 {
					err = fmt.Errorf("REGISTER %s: status %d", users[i], code)
				}
				if err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}
