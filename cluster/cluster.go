package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Config configures a Node. Exactly one of URL (an external NATS) and
// Listen (the embedded server) is set.
type Config struct {
	Name string // this node's name, unique in the cluster; "" = the host name

	URL string // external NATS, e.g. nats://10.0.0.1:4222 (comma-separated for several)

	Listen        string // embedded server's client address, host:port
	ClusterListen string // embedded server's route address; "" = a server of its own
	// ClusterAdvertise is the route address told to the other servers,
	// which they dial when they learn of this one through a third; "" =
	// ClusterListen.
	ClusterAdvertise string
	Routes           []string // the other nodes' route URLs, nats://host:port
	ClusterName      string   // "" = "bridge"
	DataDir          string   // JetStream's store goes in DataDir/nats; "" = a temporary directory

	// Replicas of the presence bucket; 0 = min(3, nodes): this one and its
	// Routes for the embedded server, 1 with URL. It is fixed by whichever
	// node creates the bucket.
	Replicas int
	Bucket   string        // "" = "presence"
	MaxAge   time.Duration // how long an unrefreshed key outlives its last write; 0 = 24h

	// DeliverTimeout bounds a delivery asked of another node, from the
	// request to its owner's reply (the router's IM timeout); 0 = 8s.
	DeliverTimeout time.Duration
	// MaxInFlight bounds the delivery requests to one other node at a
	// time; 0 = 256. MaxServing bounds those this node serves; 0 = 1024.
	MaxInFlight, MaxServing int

	Presence *presence.Store // required
	Logger   *slog.Logger
}

// Defaults of Config.
const (
	DefaultClusterName = "bridge"
	DefaultBucket      = "presence"
	DefaultMaxAge      = 24 * time.Hour
)

// Node is this bridge's member of the cluster.
type Node struct {
	cfg  Config
	name string
	log  *slog.Logger
	pres *presence.Store

	srv    *server.Server // nil with an external NATS
	nc     *nats.Conn
	conn   atomic.Pointer[nats.Conn] // nc for SendIM, which the router calls from its own goroutines
	sub    *nats.Subscription        // deliveries asked of this node
	psub   *nats.Subscription        // other nodes' presence announcements
	rsub   *nats.Subscription        // receipts other nodes offer
	tmpDir string

	senders map[string]IMSender // this node's edges by Via, for deliveries asked of it
	serving chan struct{}       // deliveries served now, up to MaxServing
	outMu   sync.Mutex
	out     map[string]chan struct{} // requests in flight per other node

	rep *Replicated // nil unless acknowledgements wait for a replicated write

	esmeDeliver  ESMEDeliverer                 // this node's binds, for other nodes (esme.go)
	matchReceipt ReceiptMatcher                // this node's sent messages, for other nodes' SMSC receipts (receipt.go)
	runCtx       context.Context               // Start's, ended by Shutdown (under mu)
	esmes        map[string]*nats.Subscription // accounts with a receiving bind here; nil: not subscribed yet (under mu)

	Stats Stats

	ready  chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
	queue   map[string]pkey // keys whose local state is to be published
	wake    chan struct{}

	revs map[string]uint64 // last revision applied per key; the watcher's own

	// watchCheck is how often the watcher is checked against the bucket.
	watchCheck time.Duration
	// faultStall is a fault the tests inject: the watcher in use delivers
	// nothing more and announcements are lost, until the watcher is
	// replaced.
	faultStall atomic.Bool
}

// pkey is what a bucket key stands for.
type pkey struct {
	aor     msg.Address
	contact string
}

// New checks cfg and hooks the node to the presence store: changes made
// from now on are published once Start has joined the cluster.
func New(cfg Config) (*Node, error) {
	if cfg.Presence == nil {
		return nil, errors.New("cluster: a presence store is required")
	}
	if (cfg.URL == "") == (cfg.Listen == "") {
		return nil, errors.New("cluster: set either a NATS URL or an embedded server's listen address")
	}
	if cfg.URL != "" && (cfg.ClusterListen != "" || len(cfg.Routes) > 0) {
		return nil, errors.New("cluster: routes are for the embedded server, not with an external NATS")
	}
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("cluster: %d replicas: want 0 (automatic) to 5", cfg.Replicas)
	}
	name := cfg.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster: node name: %w", err)
		}
		name = h
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = autoReplicas(cfg)
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = DefaultDeliverTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxServing <= 0 {
		cfg.MaxServing = DefaultMaxServing
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, name: name, log: log, pres: cfg.Presence, ready: make(chan struct{}),
		queue: make(map[string]pkey), wake: make(chan struct{}, 1), revs: make(map[string]uint64),
		senders: make(map[string]IMSender), serving: make(chan struct{}, cfg.MaxServing), out: make(map[string]chan struct{}),
		esmes: make(map[string]*nats.Subscription), watchCheck: defaultWatchCheck}
	cfg.Presence.OnChange(n.changed)
	return n, nil
}

// autoReplicas is min(3, nodes): a route to this node's own cluster address
// (listened on or advertised) is not another node.
func autoReplicas(cfg Config) int {
	if cfg.URL != "" {
		return 1
	}
	nodes := 1
	for _, r := range cfg.Routes {
		if u := server.RoutesFromStr(r); len(u) == 1 && (u[0].Host == cfg.ClusterListen || u[0].Host == cfg.ClusterAdvertise) {
			continue
		}
		nodes++
	}
	return min(3, nodes)
}

// Name is this node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Ready is closed once the node has joined the bucket and applied the
// bindings already in it.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// ClientURL is the embedded server's client URL; "" with an external NATS.
func (n *Node) ClientURL() string {
	if n.srv == nil {
		return ""
	}
	return n.srv.ClientURL()
}

// Start starts the embedded server (if any) and connects to NATS, then
// returns; joining the bucket and keeping it in step with the presence
// store go on in the background until ctx ends or Shutdown (Ready tells
// when joined). Errors are the ones that retrying cannot fix.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.started || n.stopped {
		n.mu.Unlock()
		return errors.New("cluster: Start called twice or after Shutdown")
	}
	n.started = true
	n.mu.Unlock()

	url := n.cfg.URL
	opts := []nats.Option{nats.Name("bridge " + n.name),
		// NATS may be down or still forming: keep trying, as presence waits.
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn("cluster: disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { n.log.Info("cluster: reconnected to NATS", "url", c.ConnectedUrlRedacted()) })}
	if n.cfg.Listen != "" {
		dir := n.cfg.DataDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "bridge-nats-")
			if err != nil {
				return fmt.Errorf("cluster: store directory: %w", err)
			}
			n.tmpDir, dir = tmp, tmp
		} else {
			dir = filepath.Join(dir, "nats")
		}
		srv, err := n.startServer(dir)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		n.srv = srv
		url = srv.ClientURL()
		// Through a pipe in memory, not the loopback socket: a message to
		// another node then costs no system call until the route.
		opts = append(opts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("cluster: connect %s: %w", url, err)
	}
	n.mu.Lock()
	n.nc = nc // under mu: HoldESME reads it
	n.mu.Unlock()
	// An acknowledgement that waits on a replicated write must not wait for
	// ever when the stream's leader dies with the write: it fails, the sender
	// is told "not stored" and sends again, to the next leader.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(3*time.Second))
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	n.cancel = cancel
	n.mu.Lock()
	n.runCtx = rctx
	n.mu.Unlock()
	sub, err := nc.QueueSubscribe(deliverSubject(n.name), deliverQueue, n.serve)
	if err != nil {
		return fmt.Errorf("cluster: subscribe to deliveries: %w", err)
	}
	psub, err := nc.Subscribe(presencePrefix+">", func(m *nats.Msg) { n.heard(rctx, m.Data) })
	if err != nil {
		return fmt.Errorf("cluster: subscribe to presence announcements: %w", err)
	}
	var rsub *nats.Subscription
	if n.matchReceipt != nil {
		if rsub, err = nc.Subscribe(receiptSubject, n.serveReceipt); err != nil {
			return fmt.Errorf("cluster: subscribe to receipt offers: %w", err)
		}
	}
	n.mu.Lock()
	n.sub, n.psub, n.rsub = sub, psub, rsub
	n.mu.Unlock()
	n.conn.Store(nc)
	n.subscribeHeldESMEs()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.run(rctx, js)
	}()
	n.log.Info("cluster node started", "node", n.name, "nats", url, "bucket", n.cfg.Bucket, "replicas", n.cfg.Replicas)
	return nil
}

// Shutdown stops keeping the bucket in step, closes the connection and
// stops the embedded server. This node's keys stay in the bucket: its
// users' bindings expire there as anywhere, or are re-published at the next
// start. It may be called more than once, and without Start.
func (n *Node) Shutdown() {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	sub, psub, rsub := n.sub, n.psub, n.rsub
	n.mu.Unlock()
	for _, s := range []*nats.Subscription{psub, rsub} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
	if sub != nil {
		// Requesters get "no responders" at once rather than a timeout.
		if err := sub.Unsubscribe(); err != nil {
			n.log.Debug("cluster: unsubscribe from deliveries", "err", err)
		}
	}
	if n.cancel != nil {
		n.cancel() // deliveries being served end with it
	}
	n.wg.Wait()
	n.conn.Store(nil)
	if n.nc != nil {
		n.nc.Close()
	}
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	if n.tmpDir != "" {
		os.RemoveAll(n.tmpDir)
	}
}

// run joins the bucket, then applies its changes and publishes the local
// ones until ctx ends; in the replicated acknowledgement mode it also opens
// the accepted-messages bucket and takes back what this node lost.
func (n *Node) run(ctx context.Context, js jetstream.JetStream) {
	storage := jetstream.FileStorage
	if n.cfg.Listen != "" && n.cfg.DataDir == "" {
		storage = jetstream.MemoryStorage // a bridge that keeps nothing on disk
	}
	if n.rep != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.rep.open(ctx, js, storage)
		}()
	}
	kv, err := openBucket(ctx, n, js, jetstream.KeyValueConfig{
		Bucket: n.cfg.Bucket, Description: "presence bindings of the bridge's nodes",
		History: 1, TTL: n.cfg.MaxAge, Replicas: n.cfg.Replicas, Storage: storage,
	})
	if err != nil {
		return // ctx ended
	}
	n.watch(ctx, kv)
}
