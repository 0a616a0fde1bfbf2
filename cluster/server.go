package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serverReadyWait bounds how long the embedded server may take to accept
// clients; JetStream's cluster forms later, in the background.
const serverReadyWait = 10 * time.Second

// startServer starts the embedded NATS server with JetStream, storing under
// storeDir and routing to the other nodes when a cluster address is set.
func (n *Node) startServer(storeDir string) (*server.Server, error) {
	host, port, err := hostPort(n.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen %q: %w", n.cfg.Listen, err)
	}
	opts := &server.Options{
		ServerName: n.name, Host: host, Port: port,
		JetStream: true, StoreDir: storeDir,
		// The bridge owns the process's signals and its log.
		NoSigs: true,
	}
	if n.cfg.ClusterListen != "" {
		ch, cp, err := hostPort(n.cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("nats cluster listen %q: %w", n.cfg.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: n.cfg.ClusterName, Host: ch, Port: cp, Advertise: n.cfg.ClusterAdvertise}
		opts.Routes = server.RoutesFromStr(strings.Join(n.cfg.Routes, ","))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{n.log.With("part", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(serverReadyWait) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on %s: not accepting clients after %v", n.cfg.Listen, serverReadyWait)
	}
	return srv, nil
}

// hostPort splits host:port; port 0 asks nats-server for a free port (its
// -1), since its 0 means the default port.
func hostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0-65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return h, port, nil
}

// natsLogger puts the embedded server's log into the bridge's: its notices
// (a banner at start, routes coming and going) at debug.
type natsLogger struct{ l *slog.Logger }

func (g natsLogger) Noticef(f string, v ...any) { g.l.Debug(fmt.Sprintf(f, v...)) }
func (g natsLogger) Warnf(f string, v ...any)   { g.l.Warn(fmt.Sprintf(f, v...)) }
func (g natsLogger) Fatalf(f string, v ...any)  { g.l.Error(fmt.Sprintf(f, v...)) }
func (g natsLogger) Errorf(f string, v ...any)  { g.l.Error(fmt.Sprintf(f, v...)) }
func (g natsLogger) Debugf(f string, v ...any)  { g.l.Debug(fmt.Sprintf(f, v...)) }
func (g natsLogger) Tracef(f string, v ...any)  { g.l.Debug(fmt.Sprintf(f, v...)) }
