package main

// An opt-in profiling harness: the bridge's parts wired in-process as
// cmd/bridge/serve.go wires them (cmd/bridge is a main package and cannot be
// imported), driven by the bench's own generator and sinks, under a CPU
// profile. It asserts only the bench's invariants (nothing lost); run it
// with
//
//	BENCH_PROFILE=/tmp/cpu.pprof BENCH_MIX=sms-im:1 go test -run TestProfile -count=1 ./bench/
//	go tool pprof -top -nodecount=40 /tmp/cpu.pprof

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/sip"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smppgw"
	"github.com/smsbridge/bridge/smstext"
	"github.com/smsbridge/bridge/store"
)

func TestProfile(t *testing.T) {
	out := os.Getenv("BENCH_PROFILE")
	if out == "" {
		t.Skip("set BENCH_PROFILE=file to profile the bridge in-process")
	}
	mix := os.Getenv("BENCH_MIX")
	if mix == "" {
		mix = "sms-im:1"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	const domain = "bench.test"
	tr := NewTracker()
	smsc, err := StartSMSC(ctx, "127.0.0.1:0", 64, tr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer smsc.Close()
	pool, err := StartUAPool(ctx, domain, "benchpw", tr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	db, err := store.Open(store.Options{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pres, err := presence.Open(presence.Options{KV: db, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var sipSrv *sip.Server
	var gw *smppgw.Gateway
	rt := router.New(router.Config{Logger: log, Reporters: map[msg.Kind]router.Reporter{
		msg.FromESME: router.ReporterFunc(func(ctx context.Context, m *msg.Message, o router.Outcome) { gw.Report(ctx, m, o) }),
	}}, db, pres,
		map[string]router.IMSender{"sip": router.IMSenderFunc(func(ctx context.Context, m *msg.Message, b presence.Binding) error {
			return sipSrv.SendIM(ctx, m, b)
		})},
		router.SMSSenderFunc(func(ctx context.Context, m *msg.Message) error { return gw.SendSMS(ctx, m) }))
	pres.OnRegister(func(b presence.Binding) { rt.Online(b.AOR) })
	gw = smppgw.New(smppgw.Config{CountryCode: "86", Route: smppgw.Route{Upstream: true}, Logger: log, KV: db,
		OnReceipt: rt.Receipt, Reassembly: smstext.ReassemblyConfig{Timeout: time.Minute, Logger: log}}, rt)
	users := make([]string, 200)
	ha1 := map[string]string{}
	for i := range users {
		users[i] = userName(i)
		ha1[users[i]] = config.HA1(users[i], domain, "benchpw")
	}
	sipSrv, err = sip.New(sip.Config{Listen: "127.0.0.1:0", Domain: domain, CountryCode: "86",
		HA1: func(u string) (string, bool) { h, ok := ha1[u]; return h, ok }, Logger: log}, pres, rt)
	if err != nil {
		t.Fatal(err)
	}
	smppSrv := smpp.NewServer(smpp.ServerConfig{
		Auth:    func(string, string, smpp.CommandID, net.Addr) uint32 { return smpp.ESME_ROK },
		Handler: gw, Logger: log, SystemID: "bridge", Window: 64, InboundWindow: 64,
	})
	gw.AttachServer(smppSrv)
	up := smpp.NewClient(smpp.ClientConfig{Addr: smsc.Addr(), SystemID: "bridge", Password: "x", Handler: gw, Window: 64, Logger: log})
	gw.AttachUpstream(up)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rt.Run(ctx)
	go gw.Run(ctx)
	go sipSrv.Serve(ctx)
	go smppSrv.Serve(ctx, ln)
	go up.Run(ctx)
	defer smppSrv.Close()
	<-sipSrv.Ready()
	for smsc.Bound() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := registerAll(ctx, pool, sipSrv.Addr(), users); err != nil {
		t.Fatal(err)
	}
	routes, _ := Weights(mix, routeNames[:])
	alphas, _ := Weights("gsm7:1", alphabetNames[:])
	g := &Generator{tr: tr, pool: pool, log: log, load: Load{
		Duration: 15 * time.Second, Warmup: 2 * time.Second, Routes: routes, Alphas: alphas,
		Binds: 4, Window: 64, SIPWindow: 256, SMPPAddr: ln.Addr().String(), SIPAddr: sipSrv.Addr(),
		SIPAuth: true, Online: users, SMSNumbers: 10000,
	}}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	// The spawned bridge used well under two cores: where it waits matters
	// as much as where it computes.
	runtime.SetBlockProfileRate(10000)
	runtime.SetMutexProfileFraction(10)
	defer func() {
		for _, name := range []string{"block", "mutex"} {
			if bf, err := os.Create(out + "." + name); err == nil {
				_ = pprof.Lookup(name).WriteTo(bf, 0)
				bf.Close()
			}
		}
	}()
	res, err := runPhase(ctx, "inproc", g, os.Getpid(), 20*time.Second, io.Discard)
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in-process: %.0f acc/s %.0f dlv/s p50 %.2fms p99 %.2fms lost %d",
		res.AcceptedPerSec, res.DeliveredPerSec, res.Latency.P50Ms, res.Latency.P99Ms, res.Lost)
	if res.Lost != 0 {
		t.Fatalf("lost %d", res.Lost)
	}
}
