// Command bridge is the SMS–IM bridging gateway: one binary that binds
// carriers over SMPP, IM users over SIP and handsets over MCP, and routes
// every short message by presence.
//
//	bridge [serve] [flags]     run the gateway (the default)
//	bridge version             print the version
//	bridge config print        print the effective configuration, secrets masked
//	bridge codec ...           SIP-C ⇄ MCP codec tools
//	bridge sso verify ...      open and check a single sign-on ticket
//	bridge users import F.csv  provision users from a CSV file (bridge stopped)
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	sipgosip "github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/sip"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := config.Load("bridge serve", args, os.Getenv, stderr)
		if err != nil {
			return usageError(stderr, err)
		}
		log := newLogger(cfg, stderr)
		// sipgo logs some warnings through its package default, not the
		// loggers we hand it: route those through ours too (level, format,
		// no message bodies).
		sipgosip.SetDefaultLogger(sip.LibraryLogger(log))
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		reload := func() (*config.Config, error) { return config.Load("bridge serve", args, os.Getenv, io.Discard) }
		if err := serve(ctx, cfg, log, nil, reload); err != nil {
			log.Error("bridge stopped", "err", err)
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "bridge", version)
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
	case "codec":
		return runCodec(args, stdin, stdout, stderr)
	case "sso":
		return runSSO(args, stdin, stdout, stderr)
	case "users":
		return runUsers(args, stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: bridge [serve|version|config print|codec|sso verify|users import] [flags]; bridge serve --help lists the flags")
		return 0
	}
	fmt.Fprintf(stderr, "bridge: unknown command %q (serve, version, config, codec, sso, users)\n", cmd)
	return 2
}

func usageError(w io.Writer, err error) int {
	if err.Error() == "flag: help requested" {
		return 0
	}
	fmt.Fprintln(w, "bridge:", err)
	return 2
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
