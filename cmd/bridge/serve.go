package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smsbridge/bridge/api"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/mcp"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/provision"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/sip"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smppgw"
	"github.com/smsbridge/bridge/smstext"
	"github.com/smsbridge/bridge/store"
)

// Addrs are the addresses the bridge actually listens on (port 0 resolved).
type Addrs struct {
	SMPP, SIP, HTTP, MCP string
}

// serve builds every part of the bridge from cfg, runs it until ctx ends and
// shuts down in order: edges stop taking work first, the store closes last.
//
// reload, when not nil, re-reads the configuration on SIGHUP: SMPP accounts
// and SIP users change without a restart (provisioned ones change through
// the API at once).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(Addrs), reload func() (*config.Config, error)) error {
	if cfg.OpenRegistration {
		log.Warn("OPEN REGISTRATION IS ON: any SIP client can register as anyone. Labs only.")
	}
	db, err := store.Open(store.Options{
		Dir: cfg.DataDir, Logger: log.With("part", "store"),
		MemTableSize:   int64(cfg.StoreMemtableMB) << 20,
		BlockCacheSize: int64(cfg.StoreCacheMB) << 20, IndexCacheSize: int64(cfg.StoreCacheMB) << 20,
		CommitInterval: cfg.StoreCommitInterval, DedupWindow: cfg.DedupWindow,
		KeepText: cfg.RetainText, Retention: cfg.Retention,
	})
	if err != nil {
		return fmt.Errorf("open store %q: %w", cfg.DataDir, err)
	}
	defer db.Close()

	pres, err := presence.Open(presence.Options{KV: db, Logger: log.With("part", "presence")})
	if err != nil {
		return err
	}
	prov, err := provision.Open(provision.Options{KV: db, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode,
		Logger: log.With("part", "provision")})
	if err != nil {
		return err
	}

	route, err := smppgw.ParseRoute(cfg.SMSRoute)
	if err != nil {
		return err
	}
	if cfg.SMSRoute == "" && cfg.SMSC != "" {
		route.Upstream = true
	}

	// The router needs its senders and the edges need the router: the
	// router is built first over late-bound senders.
	var sipSrv *sip.Server
	var mcpSrv *mcp.Server
	var gw *smppgw.Gateway
	imSenders := map[string]router.IMSender{
		"sip": router.IMSenderFunc(func(ctx context.Context, m *msg.Message, b presence.Binding) error {
			return sipSrv.SendIM(ctx, m, b)
		}),
		"mcp": router.IMSenderFunc(func(ctx context.Context, m *msg.Message, b presence.Binding) error {
			if mcpSrv == nil {
				return errors.New("mcp: handset link is off")
			}
			return mcpSrv.SendIM(ctx, m, b)
		}),
	}
	var smsSender router.SMSSender
	if route.Upstream || route.ESME != "" {
		smsSender = router.SMSSenderFunc(func(ctx context.Context, m *msg.Message) error { return gw.SendSMS(ctx, m) })
	} else {
		log.Warn("no SMS route: messages for offline numbers wait until one is configured (--smsc or --sms-route esme:ID)")
	}
	// Originators hear how their message ended: ESMEs by delivery receipt,
	// IM users by IMDN (only for what left as SMS; IM clients report IM).
	reporters := map[msg.Kind]router.Reporter{
		msg.FromESME: router.ReporterFunc(func(ctx context.Context, m *msg.Message, o router.Outcome) { gw.Report(ctx, m, o) }),
		msg.FromSIP: router.ReporterFunc(func(ctx context.Context, m *msg.Message, o router.Outcome) {
			if o.Via != "sms" {
				return
			}
			if err := sipSrv.SendIMDN(ctx, m.From, m.ID, o.Delivered); err != nil {
				log.Info("imdn not sent", "id", m.ID, "to", m.From, "err", err)
			}
		}),
	}
	// Acceptance → final state, by the network that took it.
	latency := map[string]*api.Histogram{"im": api.NewHistogram(), "sms": api.NewHistogram(), "failed": api.NewHistogram()}
	onFinal := func(m *msg.Message, st store.State, detail string) {
		route := "failed"
		switch {
		case st == store.Delivered && strings.HasPrefix(detail, "im"):
			route = "im"
		case st == store.Delivered:
			route = "sms"
		}
		latency[route].Observe(time.Since(m.Accepted).Seconds())
	}
	rt := router.New(router.Config{
		Workers: cfg.Workers, QueueDepth: cfg.QueueDepth,
		DefaultValidity: cfg.DefaultValidity,
		Logger:          log.With("part", "router"), Reporters: reporters, DedupWindow: cfg.DedupWindow, OnFinal: onFinal,
	}, db, pres, imSenders, smsSender)
	pres.OnRegister(func(b presence.Binding) { rt.Online(b.AOR) })

	alphabet := map[string]smstext.Preference{"auto": smstext.Auto, "ucs2": smstext.ForceUCS2, "latin1": smstext.ForceLatin1}[cfg.SMSAlphabet]
	gw = smppgw.New(smppgw.Config{
		CountryCode: cfg.CountryCode, Route: route, Logger: log.With("part", "smpp"),
		KV: db, OnReceipt: rt.Receipt, Alphabet: alphabet, Payload: cfg.SMSPayload, AlwaysReceipts: cfg.SMSReceipts == "always", Policy: provPolicy{prov},
		Reassembly: smstext.ReassemblyConfig{Timeout: cfg.ReassemblyWait, Partial: cfg.ReassemblyPolicy == "partial", Logger: log.With("part", "reassembly")},
	}, rt)

	// Accounts and users from the configuration (swapped on SIGHUP) come
	// first; those provisioned through the API are in the store.
	var accounts, users atomic.Pointer[map[string]string]
	acc, usr := cfg.Accounts(), cfg.Users()
	accounts.Store(&acc)
	users.Store(&usr)
	ha1 := func(u string) (string, bool) {
		if h, ok := (*users.Load())[u]; ok {
			return h, true
		}
		return prov.HA1(u)
	}
	lg, err := buildLogins(cfg, ha1, log)
	if err != nil {
		return err
	}
	sipSrv, err = sip.New(sip.Config{
		Listen: cfg.SIPListen, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode,
		OpenRegistration: cfg.OpenRegistration,
		// Own users first, then SIP passwords issued to partner and social
		// logins by /v1/login.
		HA1:           lg.auth.HA1,
		OutboundProxy: cfg.OutboundProxy, MessageTimeout: cfg.IMTimeout, MinExpires: cfg.SIPMinExpires,
		ReginfoFrom: cfg.ReginfoFrom,
		Logger:      log.With("part", "sip"),
	}, pres, rt)
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}

	var mcpLn net.Listener
	if cfg.MCPListen != "" {
		mcpSrv, err = mcp.New(mcp.Config{
			Listen: cfg.MCPListen, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode,
			HA1: lg.auth.HA1, OpenRegistration: cfg.OpenRegistration, Lookup: pres.Lookup,
			Service: lg.mcpService(cfg.SIPDomain), MessageTimeout: cfg.IMTimeout,
			// ~92 KiB of codec state per stateful connection: 10,000 ≈ 0.9 GiB.
			MaxConns: 10000,
			Logger:   log.With("part", "mcp"),
		}, pres, rt)
		if err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		if mcpLn, err = net.Listen("tcp", cfg.MCPListen); err != nil {
			return fmt.Errorf("mcp listen: %w", err)
		}
	}

	smppSrv := smpp.NewServer(smpp.ServerConfig{
		Auth: func(systemID, password string, _ smpp.CommandID, _ net.Addr) uint32 {
			if want, ok := (*accounts.Load())[systemID]; ok {
				if !smpp.CheckPassword(want, password) {
					return smpp.ESME_RINVPASWD
				}
				return smpp.ESME_ROK
			}
			switch ok, known := prov.CheckAccount(systemID, password); {
			case !known:
				return smpp.ESME_RINVSYSID
			case !ok:
				return smpp.ESME_RINVPASWD
			}
			return smpp.ESME_ROK
		},
		Handler: gw, Logger: log.With("part", "smpp"), SystemID: "bridge",
		Window: cfg.SMPPWindow, InboundWindow: cfg.SMPPWindow, EnquireInterval: cfg.EnquireInterval,
	})
	gw.AttachServer(smppSrv)

	apiSrv := api.New(api.Config{
		Tokens: cfg.APITokens, CountryCode: cfg.CountryCode, Logger: log.With("part", "http"),
		Ready: db.Healthy,
		Metrics: func() []api.Metric {
			ms := metrics(rt, db, pres, gw, smppSrv)
			for _, route := range []string{"im", "sms", "failed"} {
				ms = append(ms, api.Metric{Name: "bridge_delivery_seconds", Help: "Time from acceptance to the final state, by route.",
					Type: "histogram", Histogram: latency[route], Labels: map[string]string{"route": route}})
			}
			return ms
		},
		Domain: cfg.SIPDomain, Provision: prov, Presence: pres,
		Logins: lg.auth, Tickets: lg.issuer, Partners: lg.partners, HA1: lg.auth.HA1,
	}, rt, db)

	smppLn, err := net.Listen("tcp", cfg.SMPPListen)
	if err != nil {
		return fmt.Errorf("smpp listen: %w", err)
	}

	var httpLn net.Listener
	if cfg.HTTPListen != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			smppLn.Close()
			return fmt.Errorf("http listen: %w", err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if cfg.AdminListen != "" {
		adminLn, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return fmt.Errorf("admin listen: %w", err)
		}
		g.Go(func() error { return serveAdmin(gctx, adminLn) })
	}
	if httpLn != nil {
		g.Go(func() error { return apiSrv.Serve(gctx, httpLn) })
	}
	if reload != nil {
		g.Go(func() error { return reloadOnHUP(gctx, reload, &accounts, &users, prov, log) })
	}
	g.Go(func() error { return rt.Run(gctx) })
	g.Go(func() error { return gw.Run(gctx) })
	g.Go(func() error { pres.Run(gctx, 30*time.Second); return nil })
	g.Go(func() error { return sipSrv.Serve(gctx) })
	if mcpLn != nil {
		g.Go(func() error { return mcpSrv.Serve(gctx, mcpLn) })
	}
	g.Go(func() error {
		err := smppSrv.Serve(gctx, smppLn)
		if gctx.Err() != nil {
			return nil
		}
		return err
	})
	if cfg.SMSC != "" {
		addr, id, pw, _ := config.ParseSMSC(cfg.SMSC)
		bind := smpp.BindTransceiver
		if cfg.SMSCBind == "transmitter" {
			bind = smpp.BindTransmitter
		}
		cli := smpp.NewClient(smpp.ClientConfig{
			Addr: addr, SystemID: id, Password: pw, Bind: bind, Handler: gw,
			Window: cfg.SMPPWindow, EnquireInterval: cfg.EnquireInterval,
			Logger: log.With("part", "smsc"),
		})
		gw.AttachUpstream(cli)
		g.Go(func() error { return cli.Run(gctx) })
	}
	g.Go(func() error {
		select {
		case <-sipSrv.Ready():
		case <-gctx.Done():
			return nil
		}
		a := Addrs{SMPP: smppLn.Addr().String(), SIP: sipSrv.Addr()}
		if mcpLn != nil {
			a.MCP = mcpLn.Addr().String()
		}
		if httpLn != nil {
			a.HTTP = httpLn.Addr().String()
		}
		log.Info("bridge up", "smpp", a.SMPP, "sip", a.SIP, "http", a.HTTP, "mcp", a.MCP, "data_dir", cfg.DataDir, "presence", pres.Len())
		if ready != nil {
			ready(a)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		smppSrv.Close()
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("bridge stopped", "pending", rt.Pending())
	return err
}

func metrics(rt *router.Router, db *store.DB, pres *presence.Store, gw *smppgw.Gateway, smppSrv *smpp.Server) []api.Metric {
	c := rt.Stats()
	counter := func(name, help string, v func() uint64) api.Metric {
		return api.Metric{Name: name, Help: help, Type: "counter", Value: func() float64 { return float64(v()) }}
	}
	return []api.Metric{
		counter("bridge_accepted_total", "Messages stored and acknowledged.", c.Accepted.Load),
		counter("bridge_throttled_total", "Messages refused because the bridge was saturated.", c.Throttled.Load),
		counter("bridge_not_stored_total", "Messages refused because the store could not take them.", c.NotStored.Load),
		counter("bridge_im_delivered_total", "Messages delivered into IM.", c.IMDelivered.Load),
		counter("bridge_im_failed_total", "IM delivery attempts that failed.", c.IMFailed.Load),
		counter("bridge_sms_delivered_total", "Messages handed to the SMS network.", c.SMSDelivered.Load),
		counter("bridge_sms_failed_total", "SMS attempts that failed.", c.SMSFailed.Load),
		counter("bridge_fallbacks_total", "IM failures that fell back to SMS.", c.Fallbacks.Load),
		counter("bridge_retries_total", "Delivery attempts scheduled again.", c.Retries.Load),
		counter("bridge_duplicates_total", "Resubmissions suppressed as duplicates.", c.Duplicates.Load),
		counter("bridge_expired_total", "Messages that expired undelivered.", c.Expired.Load),
		counter("bridge_parked_total", "Messages parked for an offline IM-only user.", c.Parked.Load),
		counter("bridge_smpp_received_total", "submit_sm/deliver_sm received.", gw.Received.Load),
		counter("bridge_smpp_rejected_total", "submit_sm/deliver_sm refused for bad content.", gw.Rejected.Load),
		counter("bridge_smpp_parts_total", "Parts of long SMS received.", gw.Parts.Load),
		counter("bridge_smsc_receipts_total", "Delivery receipts received from the SMSC.", gw.Receipts.Load),
		counter("bridge_smsc_receipts_unmatched_total", "SMSC receipts that matched no message.", gw.UnmatchedReceipts.Load),
		counter("bridge_esme_receipts_sent_total", "Delivery receipts delivered to ESMEs.", gw.ReceiptsSent.Load),
		counter("bridge_esme_receipts_dropped_total", "Delivery receipts given up.", gw.ReceiptsDropped.Load),
		{Name: "bridge_queue_depth", Help: "Accepted messages not yet final.", Type: "gauge", Value: func() float64 { return float64(rt.Pending()) }},
		{Name: "bridge_smpp_binds", Help: "SMPP sessions bound to us.", Type: "gauge", Value: func() float64 { return float64(smppSrv.Bound()) }},
		{Name: "bridge_smsc_up", Help: "1 while the bind to the upstream SMSC is up.", Type: "gauge", Value: func() float64 {
			if gw.UpstreamBound() {
				return 1
			}
			return 0
		}},
		{Name: "bridge_store_batches_total", Help: "Group commits (one fsync each).", Type: "counter", Value: func() float64 { return float64(db.Stats().Batches) }},
		{Name: "bridge_store_writes_total", Help: "Key writes handed to badger in group commits, failed ones included (a record's write superseded within its batch is not written, nor counted).", Type: "counter", Value: func() float64 { return float64(db.Stats().Commits) }},
		{Name: "bridge_presence_users", Help: "Users with a presence binding.", Type: "gauge", Value: func() float64 { return float64(pres.Len()) }},
	}
}

// serveAdmin serves Go's profiles on a listener of its own, so they are
// never reachable through the public API port.
func serveAdmin(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// reloadOnHUP swaps in the accounts and users of a re-read configuration on
// every SIGHUP; a configuration that does not load keeps the old one.
func reloadOnHUP(ctx context.Context, reload func() (*config.Config, error), accounts, users *atomic.Pointer[map[string]string], prov *provision.Store, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		}
		cfg, err := reload()
		if err != nil {
			log.Error("reload refused: keeping the running configuration", "err", err)
			continue
		}
		acc, usr := cfg.Accounts(), cfg.Users()
		accounts.Store(&acc)
		users.Store(&usr)
		if err := prov.Reload(); err != nil {
			log.Error("reloading provisioned users and accounts", "err", err)
		}
		log.Info("configuration reloaded", "smpp_accounts", len(acc), "sip_users", len(usr))
	}
}

// provPolicy gives the SMPP gateway the provisioned per-account limits and
// routes.
type provPolicy struct{ p *provision.Store }

func (pp provPolicy) SourceAllowed(id, src string) bool { return pp.p.SourceAllowed(id, src) }

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
