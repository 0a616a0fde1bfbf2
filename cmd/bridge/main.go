// Command bridge is the SMS–IM bridging gateway: one binary that binds
// carriers over SMPP, IM users over SIP and handsets over MCP, and routes
// every short message by presence.
//
//	bridge [serve] [flags]     run the gateway (the default)
//	bridge version             print the version, commit and Go version (also --version)
//	bridge config print        print the effective configuration, secrets masked
//	bridge codec ...           SIP-C ⇄ MCP codec tools
//	bridge sso verify ...      open and check a single sign-on ticket
//	bridge users import F.csv  provision users from a CSV file (bridge stopped)
//	bridge admin COMMAND       operate a running bridge through its API: binds, smsc,
//	                           queues, accounts, routes, log-level, message
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/sip"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// procs is how many threads run Go code at once: configured if set, else
// what the GOMAXPROCS environment variable asked for (already applied by the
// runtime), else the available CPUs + 2. The extra two are for badger's two
// compactors, which are CPU-bound for hundreds of milliseconds at a time:
// with only as many Ps as cores they can hold both cores of a 2-core box
// while SMPP and SIP goroutines wait behind them; with more Ps the kernel
// shares the cores and runs a thread woken by the network promptly (the
// p99 this buys is in PERFORMANCE.md). Setting it stops the runtime from
// following later changes of a container's CPU limit: the count is fixed at
// start-up.
func procs(configured int, env string, avail int) int {
	switch {
	case configured > 0:
		return configured
	case env != "":
		return avail
	default:
		return avail + 2
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "--version" || args[0] == "-version"):
		cmd, args = "version", args[1:]
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := config.Load("bridge serve", args, os.Getenv, stderr)
		if err != nil {
			return usageError(stderr, err)
		}
		log, level := newLogger(cfg, stderr)
		if n := procs(cfg.Procs, os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n != runtime.GOMAXPROCS(0) {
			runtime.GOMAXPROCS(n)
			log.Info("scheduler threads", "procs", n, "cpus", runtime.NumCPU())
		}
		// sipgo logs some warnings through its package default, not the
		// loggers we hand it: route those through ours too (level, format,
		// no message bodies).
		sipgosip.SetDefaultLogger(sip.LibraryLogger(log))
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		b, err := bridge.New(cfg, log, bridge.WithLogLevel(level))
		if err != nil {
			log.Error("bridge not started", "err", err)
			return 1
		}
		// Caught before Run listens: a SIGHUP once the bridge answers reloads
		// it, where the default action would end the process.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go reloadOnHUP(ctx, b, hup, func() (*config.Config, error) { return config.Load("bridge serve", args, os.Getenv, io.Discard) }, log)
		if err := b.Run(ctx); err != nil {
			log.Error("bridge stopped", "err", err)
			return 1
		}
		return 0
	case "version":
		printVersion(stdout, readBuildInfo())
		return 0
	case "config":
		if len(args) == 0 || args[0] != "print" {
			fmt.Fprintln(stderr, "usage: bridge config print [flags]")
			return 2
		}
		cfg, err := config.Load("bridge config print", args[1:], os.Getenv, stderr)
		if err != nil {
			return usageError(stderr, err)
		}
		_ = cfg.Print(stdout)
		return 0
	case "health":
		return runHealth(args, stdout, stderr)
	case "codec":
		return runCodec(args, stdin, stdout, stderr)
	case "sso":
		return runSSO(args, stdin, stdout, stderr)
	case "users":
		return runUsers(args, stdin, stdout, stderr)
	case "admin":
		return runAdmin(args, stdin, stdout, stderr, os.Getenv)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: bridge [serve|version|config print|health [URL]|codec|sso verify|users import|admin COMMAND] [flags]; bridge --version; bridge serve --help lists the flags")
		return 0
	}
	fmt.Fprintf(stderr, "bridge: unknown command %q (serve, version, config, health, codec, sso, users, admin)\n", cmd)
	return 2
}

func usageError(w io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(w, "bridge:", err)
	return 2
}

// newLogger builds the process's logger; every logger derived from it
// follows level, which the API can change while the bridge runs.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// reloadOnHUP re-reads the configuration on every SIGHUP from hup and
// hands it to the bridge (SMPP accounts and SIP users change without a
// restart); a configuration that does not load keeps the running one.
func reloadOnHUP(ctx context.Context, b *bridge.Bridge, hup <-chan os.Signal, load func() (*config.Config, error), log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := load()
		if err != nil {
			log.Error("reload refused: keeping the running configuration", "err", err)
			continue
		}
		if err := b.Reload(cfg); err != nil {
			log.Error("reload", "err", err)
		}
	}
}
