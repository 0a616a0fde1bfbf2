package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// ParseFlags turns the command line into Options.
func ParseFlags(args []string, usage io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.AddrSMPP, "addr-smpp", "", "SMPP address of a running bridge (empty: spawn one)")
	fs.StringVar(&o.AddrSIP, "addr-sip", "", "SIP address of a running bridge")
	fs.IntVar(&o.PID, "pid", 0, "pid of the running bridge, for CPU and RSS")
	fs.StringVar(&o.SMSCListen, "smsc-listen", "", "where the bench's SMSC listens (a running bridge needs --smsc smpp://bridge:bridgepw@THIS)")
	fs.StringVar(&o.BridgeBin, "bridge-bin", "", "bridge binary to spawn (default: go build ./cmd/bridge)")
	var extra listFlag
	fs.Var(&extra, "bridge-arg", "extra flag for the spawned bridge, e.g. --bridge-arg=--workers=256 (repeatable)")
	fs.IntVar(&o.Nodes, "nodes", 1, "bridges to spawn as one cluster (embedded NATS servers routed to each other); ESME binds and SIP users are spread over them")
	fs.BoolVar(&o.Local, "cluster-local", false, "with --nodes: send each message only to users registered at the node it is submitted at (no delivery crosses nodes)")
	fs.IntVar(&o.KillNode, "kill-node", 0, "kill this node (1-based) with SIGKILL during the bridge phase and start it again (0 = none)")
	fs.DurationVar(&o.KillAt, "kill-at", 10*time.Second, "with --kill-node: when, from the bridge phase's start (warm-up included)")
	fs.DurationVar(&o.RestartAfter, "restart-after", 5*time.Second, "with --kill-node: how long the node stays down")
	fs.StringVar(&o.Domain, "sip-domain", "bench.test", "SIP domain (the spawned bridge gets it too)")
	fs.StringVar(&o.Password, "sip-password", "benchpw", "password of every bench SIP user")
	fs.IntVar(&o.Binds, "binds", 4, "SMPP binds (ESME sessions)")
	fs.IntVar(&o.Window, "window", 64, "SMPP window per bind")
	fs.IntVar(&o.SIPWindow, "sip-window", 256, "SIP MESSAGEs in flight (IM-originated traffic)")
	fs.IntVar(&o.Users, "users", 200, "SIP users (all provisioned on the spawned bridge)")
	fs.Float64Var(&o.Online, "online", 1, "fraction of the SIP users that register")
	fs.IntVar(&o.Numbers, "sms-numbers", 10000, "distinct non-IM numbers the SMS routes send to")
	fs.IntVar(&o.XMPPUsers, "xmpp-users", 100, "XMPP users logged in to the bench's Prosody (XMPP routes only)")
	fs.IntVar(&o.XMPPWindow, "xmpp-window", 256, "XMPP messages in flight (XMPP-originated traffic)")
	fs.IntVar(&o.ProsodyNice, "prosody-nice", -10, "nice value of the bench's Prosody, both phases (below 0 needs root): its one thread is the XMPP routes' bottleneck on a box the bridge and the bench share")
	fs.StringVar(&o.Mix, "mix", "sms-im:1", "traffic mix, weights of sms-im, sms-sms, im-sms, im-im, sms-xmpp, xmpp-sms, group")
	fs.IntVar(&o.Groups, "groups", 20, "groups the group route posts into (created over the bridge's API)")
	fs.IntVar(&o.GroupSize, "group-size", 50, "members of each group: half bench SIP users (registered: IM), half SMS numbers")
	fs.StringVar(&o.Alphabet, "alphabet", "gsm7:1", "text mix, weights of gsm7, ucs2 (Chinese), long (3 parts)")
	fs.Float64Var(&o.Rate, "rate", 0, "target msg/s (0: open loop, as fast as the windows allow)")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "measured duration")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "warm-up before measuring")
	fs.DurationVar(&o.Drain, "drain", 15*time.Second, "after sending stops, how long to wait for acknowledged messages without seeing a delivery (at most 20 times this in all)")
	fs.DurationVar(&o.CeilingDuration, "ceiling-duration", 10*time.Second, "measured duration of the ceiling phase")
	fs.Float64Var(&o.CeilingRate, "ceiling-rate", 0, "msg/s of the ceiling phase (0: open loop, its maximum); a rate compares latency at the same load")
	fs.BoolVar(&o.CeilingOnly, "ceiling", false, "run only the ceiling phase")
	fs.BoolVar(&o.NoCeiling, "no-ceiling", false, "skip the ceiling phase")
	fs.StringVar(&o.Out, "out", "bench-out", "output directory")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "bench log level: debug, info, warn or error")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the load generator's own CPU profile to this file (to see what the bench costs the box)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.BridgeArgs = extra
	gap, err := bridgeArgDuration(extra, "xmpp-ping-gap")
	if err != nil {
		return o, err
	}
	o.XMPPPingGap = gap
	if (o.AddrSMPP == "") != (o.AddrSIP == "") {
		return o, fmt.Errorf("--addr-smpp and --addr-sip go together")
	}
	if o.Binds < 1 || o.Window < 1 || o.SIPWindow < 1 || o.XMPPWindow < 1 || o.Users < 0 || o.XMPPUsers < 0 ||
		o.Online < 0 || o.Online > 1 || o.Numbers < 1 {
		return o, fmt.Errorf("--binds, --window, --sip-window, --xmpp-window, --sms-numbers must be ≥ 1, --users and --xmpp-users ≥ 0, and --online within 0..1")
	}
	if o.Groups < 1 || o.GroupSize < 2 {
		return o, fmt.Errorf("--groups must be ≥ 1 and --group-size ≥ 2")
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Drain < 0 || o.CeilingDuration <= 0 || o.Rate < 0 || o.CeilingRate < 0 {
		return o, fmt.Errorf("durations and --rate must not be negative")
	}
	if o.Nodes < 1 || o.Nodes > 1 && o.AddrSMPP != "" {
		return o, fmt.Errorf("--nodes must be ≥ 1, and a cluster is spawned: not with --addr-smpp")
	}
	if o.KillNode < 0 || o.KillNode > o.Nodes || o.KillNode > 0 && o.AddrSMPP != "" || o.KillAt < 0 || o.RestartAfter < 0 {
		return o, fmt.Errorf("--kill-node must name one of the spawned --nodes (1..%d), and --kill-at and --restart-after must not be negative", o.Nodes)
	}
	if o.CeilingOnly && o.NoCeiling {
		return o, fmt.Errorf("--ceiling and --no-ceiling exclude each other")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return o, fmt.Errorf("--log-level: %w", err)
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := ParseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.LogLevel)) // validated by ParseFlags
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench: --cpuprofile:", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	rep, err := Run(ctx, o, stderr, log)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	rep.Summary(stdout)
	fmt.Fprintf(stdout, "wrote %s/report.json, timeseries.csv, chart.svg\n", o.Out)
	if rep.Lost > 0 {
		return 3
	}
	return 0
}

// bridgeArgDuration is the value of the bridge flag name among args
// (--name=D, -name=D, or --name D; the last wins, as for the bridge), 0
// if absent.
func bridgeArgDuration(args []string, name string) (time.Duration, error) {
	var d time.Duration
	for i, a := range args {
		flag, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if flag != name || !strings.HasPrefix(a, "-") {
			continue
		}
		if !ok {
			if i+1 == len(args) {
				return 0, fmt.Errorf("--bridge-arg=%s: no value", a)
			}
			val = args[i+1]
		}
		v, err := time.ParseDuration(val)
		if err != nil {
			return 0, fmt.Errorf("--bridge-arg %s: %w", name, err)
		}
		d = v
	}
	return d, nil
}
