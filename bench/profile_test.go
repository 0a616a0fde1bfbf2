package main

// An opt-in profiling harness: the bridge in-process (package bridge, as
// cmd/bridge runs it), driven by the bench's own generator and sinks, under
// a CPU profile. It asserts only the bench's invariants (nothing lost); run it
// with
//
//	BENCH_PROFILE=/tmp/cpu.pprof BENCH_MIX=sms-im:1 go test -run TestProfile -count=1 ./bench/
//	go tool pprof -top -nodecount=40 /tmp/cpu.pprof

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/internal/testutil"
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

	users := make([]string, 200)
	args := []string{
		"--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0", "--http-listen", "", "--mcp-listen", "",
		"--data-dir", t.TempDir(), "--sip-domain", domain,
		"--smsc", "smpp://bridge:bridgepw@" + smsc.Addr(), "--smpp-account", "bench:benchpw",
	}
	for i := range users {
		users[i] = userName(i)
		args = append(args, "--sip-user", users[i]+":"+config.HA1(users[i], domain, "benchpw"))
	}
	cfg, err := config.Load("profile", args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addrs := br.Addrs()
	go br.Run(ctx)
	<-br.Ready()
	testutil.WaitFor(t, "the bridge's bind to the SMSC", 20*time.Second, func() bool { return smsc.Bound() > 0 })
	if err := registerAll(ctx, pool, []string{addrs.SIP}, users); err != nil {
		t.Fatal(err)
	}
	routes, _ := Weights(mix, routeNames[:])
	alphas, _ := Weights("gsm7:1", alphabetNames[:])
	g := &Generator{tr: tr, pool: pool, log: log, load: Load{
		Duration: 15 * time.Second, Warmup: 2 * time.Second, Routes: routes, Alphas: alphas,
		Binds: 4, Window: 64, SIPWindow: 256, SMPPAddrs: []string{addrs.SMPP}, SIPAddrs: []string{addrs.SIP},
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
	res, err := runPhase(ctx, "inproc", g, Procs{Bridges: func() []int { return []int{os.Getpid()} }}, 20*time.Second, io.Discard)
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
