// Command partnersite runs the reference partner website server for the
// bridge's delegated login (package login/partnersite):
//
//	partnersite --listen :9090 --site shop --server-id bridge-1 \
//	    --server-secret s3cret --user alice:wonderland:Alice
//	partnersite --listen :9090 --config site.json
//
// Flags add to (and override) what the JSON file says.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/smsbridge/bridge/login/partnersite"
)

type userFlags []partnersite.User

func (u *userFlags) String() string { return fmt.Sprint(len(*u), " users") }
func (u *userFlags) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) < 2 || parts[0] == "" {
		return errors.New("want NAME:PASSWORD[:DISPLAY]")
	}
	x := partnersite.User{Name: parts[0], Password: parts[1]}
	if len(parts) == 3 {
		x.Display = parts[2]
	}
	*u = append(*u, x)
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("partnersite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "listen address")
	file := fs.String("config", "", "JSON config file (site_id, server_id, server_secret, realm, users, posts)")
	siteID := fs.String("site", "", "site id (the \"site\" of alice#site)")
	serverID := fs.String("server-id", "", "the bridge server id this site authorizes")
	secret := fs.String("server-secret", "", "secret shared with that bridge")
	realm := fs.String("realm", "", "required SIP digest realm (\"\" = any)")
	var users userFlags
	fs.Var(&users, "user", "user NAME:PASSWORD[:DISPLAY] (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var cfg partnersite.Config
	if *file != "" {
		c, err := partnersite.LoadFile(*file)
		if err != nil {
			log.Error("config", "err", err)
			return 1
		}
		cfg = c
	}
	for _, kv := range []struct {
		dst *string
		v   string
	}{{&cfg.SiteID, *siteID}, {&cfg.ServerID, *serverID}, {&cfg.ServerSecret, *secret}, {&cfg.Realm, *realm}} {
		if kv.v != "" {
			*kv.dst = kv.v
		}
	}
	cfg.Users = append(cfg.Users, users...)
	cfg.Logger = log
	h, err := partnersite.NewHandler(cfg)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("partner site listening", "addr", *listen, "site", cfg.SiteID, "users", len(cfg.Users))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
