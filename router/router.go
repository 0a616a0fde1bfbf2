package router

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/internal/dueheap"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/store"
)

// Queue is the durable message store (store.DB).
type Queue interface {
	// Stage queues m's acceptance into the next group commit and returns
	// at once; Pending says when it is durable. With a dedup key it finds
	// an earlier copy instead (dup).
	Stage(ctx context.Context, m *msg.Message, d store.Dedup) (dup string, p store.Pending, err error)
	Transition(ctx context.Context, id string, ev store.Event, durable bool) error
	// RecordReceipt sets a message's final state from the network's
	// receipt, also over a final one (see store.DB.RecordReceipt).
	RecordReceipt(ctx context.Context, id string, ev store.Event) error
	Reschedule(ctx context.Context, id string, attempts int, next time.Time, detail string) error
	// Amend durably rewrites a message's text, schedule, validity and
	// priority (store.DB.Amend).
	Amend(ctx context.Context, m *msg.Message, detail string) error
	Unfinished(fn func(store.Record) error) error
	Message(id string) (store.Record, error)
	Healthy() error
}

// Presence answers who is online (presence.Store) and tells the router
// when someone registers, so their parked messages go out. Remote and
// OnRemote are other cluster nodes' bindings.
type Presence interface {
	Lookup(aor msg.Address) (presence.Binding, bool)
	Bindings(aor msg.Address) []presence.Binding
	Remote(aor msg.Address) []presence.Binding
	OnRegister(fn func(presence.Binding))
	OnRemote(fn func(presence.Binding))
}

// ViaCluster is the IMSender, registered with AddIM, that delivers to other
// nodes' bindings (Binding.Node set) by asking their node; without it they
// are not delivered to. Each binding's own Via is what its node uses.
const ViaCluster = "cluster"

// People tells who an address belongs to (the identity directory): a
// message for any of a person's addresses goes to wherever that person is
// online, and their SMS leave from their number.
type People interface {
	Resolve(addr msg.Address) (msg.Person, bool)
	// OfflineSMS tells whether messages for the person go to their number
	// as SMS while they are online nowhere, instead of waiting for them.
	OfflineSMS(name string) bool
}

// IMSender delivers to an IM binding and returns nil on the client's 2xx.
// It bounds each attempt itself (sip and mcp give up after --im-timeout, the
// transaction timer they run anyway), so the router needs no timer of its
// own per delivery.
type IMSender interface {
	SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error
}

// SMSSender hands a message to the SMS network and returns nil once the
// SMSC (or the designated receiver bind) accepted it. The router passes no
// deadline: SendSMS bounds its own wait.
type SMSSender interface {
	SendSMS(ctx context.Context, m *msg.Message) error
}

// TrackingSender is an SMSSender that also tells whether the SMS network
// will send a receipt for a message it took (the receipt then settles it
// through Receipt); without it every hand-off is taken to be tracked.
type TrackingSender interface {
	SendSMSTracked(ctx context.Context, m *msg.Message) (tracked bool, err error)
}

// Apps is the table of HTTP applications of service numbers (moapp.Table):
// the one, if any, that takes a message instead of IM or SMS.
type Apps interface {
	AppFor(m *msg.Message) (app string, ok bool)
}

// AppSender delivers a message to the application app and returns nil once
// it took the message (its 2xx). It bounds each attempt itself; the router
// retries a failure until the message expires.
type AppSender interface {
	SendApp(ctx context.Context, m *msg.Message, app string) error
}

// Reporter tells an originator how its message ended: an SMPP delivery
// receipt to an ESME, an IMDN to an IM user. It must not block for long;
// it owns its own retries.
type Reporter interface {
	Report(ctx context.Context, m *msg.Message, o msg.Outcome)
}

// SMSCanceller is an SMSSender that can withdraw a message it handed to
// the SMS network while that network's receipt is still awaited (cancel_sm
// to the SMSC); an error says why not, the SMSC's refusal included.
type SMSCanceller interface {
	CancelSMS(ctx context.Context, m *msg.Message) error
}

// HandOffReporter is a Reporter that also hears when a message was handed
// to the SMS network and its receipt is awaited (an HTTP sender's ENROUTE
// report). Reporters without it hear only the final outcome.
type HandOffReporter interface {
	Reporter
	HandedOff(ctx context.Context, m *msg.Message, at time.Time)
}

// Final is told of every message that reached a final state (o.Via: the
// network that delivered it, or that it was meant for). It must not block.
type Final func(m *msg.Message, o msg.Outcome)

// Config tunes the router.
type Config struct {
	// Workers is how many delivery goroutines always run (default 512).
	// A delivery holds its worker until answered, an XMPP one until its
	// client's ping comes back, so at a given rate rate × that hold are
	// busy (Little's law). While all are busy and messages wait, more
	// start, up to MaxWorkers; each of those stops when it finds none
	// waiting, so a slow edge gets the workers it needs without an idle
	// pool that size.
	Workers int
	// MaxWorkers bounds concurrent deliveries (default 8192, at least
	// Workers). It also bounds what a crash sends twice: copies in flight
	// whose outcome was not yet on disk go again after a restart.
	MaxWorkers      int
	QueueDepth      int           // accepted-but-unfinished messages before Stage throttles (default 100000)
	DefaultValidity time.Duration // when a message carries no expiry (default 48h)
	RetryMin        time.Duration // first retry delay (default 2s)
	RetryMax        time.Duration // cap on retry delay (default 10m)
	Logger          *slog.Logger
	OnFinal         Final
	// People resolves addresses to persons; nil routes by address alone.
	People People
	// Apps routes messages for service numbers to their applications
	// (delivered by the edge SetApp registers); nil: there are none.
	Apps Apps
	// DedupWindow: a message with the same origin account, sender,
	// recipient and text within this window is acknowledged with the first
	// one's id and not delivered again (an ESME resubmitting after a lost
	// response). 0 turns suppression off: identical texts are separate
	// messages.
	DedupWindow time.Duration
	// ClientKeyWindow: how long a message's IdempotencyKey makes copies
	// from the same origin account the first message (default 24h).
	ClientKeyWindow time.Duration
	// CheckSMS tells whether a message for a number could go as SMS at all
	// (its text fits the SMS network's limits); Stage refuses one that
	// could not with msg.ErrTooLong. nil checks nothing.
	CheckSMS func(m *msg.Message) error
	// DrainRate: messages per second delivered to a user coming online
	// with messages waiting (default 20).
	DrainRate int
	Now       func() time.Time
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 512
	}
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = 8192
	}
	c.MaxWorkers = max(c.MaxWorkers, c.Workers)
	if c.QueueDepth <= 0 {
		c.QueueDepth = 100000
	}
	if c.DefaultValidity <= 0 {
		c.DefaultValidity = 48 * time.Hour
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 2 * time.Second
	}
	if c.ClientKeyWindow <= 0 {
		c.ClientKeyWindow = 24 * time.Hour
	}
	if c.DrainRate <= 0 {
		c.DrainRate = 20
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Counters of every outcome; read with Stats.
type Counters struct {
	Accepted, Throttled, NotStored, NoRoute        atomic.Uint64
	IMDelivered, IMFailed, SMSDelivered, SMSFailed atomic.Uint64
	Fallbacks, Retries, Parked, Unparked, Expired  atomic.Uint64
	Recovered, Duplicates                          atomic.Uint64
	Scheduled, Cancelled, Replaced                 atomic.Uint64
	AppDelivered, AppFailed                        atomic.Uint64
}

// Router routes and delivers. Construct with New, register the edges that
// deliver (AddIM, SetSMS, AddReporter), then start with Run.
type Router struct {
	cfg       Config
	q         Queue
	pres      Presence
	im        map[string]IMSender // by presence.Binding.Via
	sms       SMSSender
	app       AppSender
	reporters map[msg.Kind]Reporter // by origin: who tells the originator the outcome
	started   atomic.Bool           // edges are registered before Run, read without locks after
	log       *slog.Logger
	work      chan *job
	urgent    chan *job // ready messages of priority above 0, taken before work's
	poke      *job      // put in work for each urgent job, so that a worker waiting there looks
	wake      chan struct{}
	count     Counters

	pending atomic.Int64   // accepted, not final
	workers atomic.Int32   // delivery goroutines running
	busy    atomic.Int32   // of them, those delivering
	grow    chan struct{}  // to grower: every worker is busy
	wg      sync.WaitGroup // Run's goroutines, workers included
	// scanned is closed once Run has listed the store's unfinished
	// messages; Stage waits for it so a new message is never also picked
	// up as "recovered" and delivered twice.
	scanned chan struct{}

	runCtx   context.Context        // Run's context, for drains started by Online
	draining map[msg.Address][]*job // woken messages per person (parkKey), in order

	dedupMu   sync.Mutex
	dedupBusy map[[16]byte]chan struct{} // keys being stored right now; the channel, made once a copy waits, closes when stored

	mu      sync.Mutex
	later   dueheap.Heap[*job]                // retries, parked and scheduled messages, by due time
	offline map[msg.Address]map[*job]struct{} // parked for an offline person (parkKey), woken on register
	// cancels holds the messages their senders cancelled while a worker
	// had them; the worker ends them (ncancel > 0 while any, so the
	// delivery path reads no map when there are none).
	cancels map[string]chan struct{}
	ncancel atomic.Int32
}

// job is one message on its way. It is also the msg.Ack of the message's
// acceptance (Done, Settle), so staging allocates nothing more.
type job struct {
	m        msg.Message
	accept   store.Pending // the acceptance's commit (done once Wait returns nil)
	acked    chan struct{} // closed when the acceptance is settled (nil: nobody to report to, or recovered)
	attempts int
	due      time.Time
	index    int // in heap; -1 when not scheduled
	parked   bool
	forUser  bool        // scheduled for its person coming online, not after a failed attempt
	key      msg.Address // where a parked job waits in offline (parkKey at parking); "" for a scheduled one

	// The settling side (Settle), the staging adapter's alone.
	r      *Router
	sender *msg.Message // the adapter's message: its ID is cleared if the commit fails
	held   dedupHold
}

// New builds a router over its store and presence. It delivers nothing
// until edges are registered; an SMS route is optional (SMS then waits,
// retried, until expiry).
func New(cfg Config, q Queue, p Presence) *Router {
	cfg.defaults()
	r := &Router{
		cfg: cfg, q: q, pres: p, log: cfg.Logger,
		im:        make(map[string]IMSender),
		reporters: make(map[msg.Kind]Reporter),
		work:      make(chan *job, cfg.QueueDepth+cfg.MaxWorkers),
		urgent:    make(chan *job, cfg.QueueDepth),
		poke:      &job{index: -1},
		cancels:   make(map[string]chan struct{}),
		wake:      make(chan struct{}, 1),
		grow:      make(chan struct{}, 1),
		offline:   make(map[msg.Address]map[*job]struct{}),
		scanned:   make(chan struct{}),

		dedupBusy: make(map[[16]byte]chan struct{}),
		runCtx:    context.Background(),
		draining:  make(map[msg.Address][]*job),
	}
	p.OnRegister(func(b presence.Binding) { r.Online(b.AOR) })
	// A user coming online at another node wakes their messages here too;
	// the edges are read only once Run has started.
	p.OnRemote(func(b presence.Binding) {
		if r.started.Load() && r.im[ViaCluster] != nil {
			r.Online(b.AOR)
		}
	})
	return r
}

// AddIM registers the edge that delivers to bindings whose Via is via
// ("sip", "mcp", ...). Edges are registered before Run.
func (r *Router) AddIM(via string, s IMSender) {
	r.mustNotRun("AddIM")
	r.im[via] = s
}

// SetSMS registers the edge that hands messages to the SMS network.
func (r *Router) SetSMS(s SMSSender) {
	r.mustNotRun("SetSMS")
	r.sms = s
}

// SetApp registers the edge that delivers to the applications of Config.Apps.
func (r *Router) SetApp(s AppSender) {
	r.mustNotRun("SetApp")
	r.app = s
}

// AddReporter registers who tells originators of kind how their messages
// ended: an SMPP delivery receipt to an ESME, an IMDN to an IM user.
func (r *Router) AddReporter(kind msg.Kind, rep Reporter) {
	r.mustNotRun("AddReporter")
	r.reporters[kind] = rep
}

func (r *Router) mustNotRun(what string) {
	if r.started.Load() {
		panic("router: " + what + " after Run") // the maps are read without locks
	}
}

// Stats exposes the outcome counters.
func (r *Router) Stats() *Counters { return &r.count }

// Pending is the number of accepted messages not yet final.
func (r *Router) Pending() int64 { return r.pending.Load() }

// Waiting counts the accepted messages that are not final by where they
// wait. The counts are read one after the other while messages move, so
// they add up to Pending only roughly.
type Waiting struct {
	Pending  int64 // accepted, not final
	Ready    int   // due, queued for a worker
	Draining int   // woken by their person coming online, delivered at DrainRate
	// Scheduled after a failed attempt, and held for a person offline in
	// IM, by the network each message is meant for.
	Retry, Held map[msg.Network]int
	Scheduled   int // held until the time their senders chose
}

// Waiting reads the queues; it walks the scheduled messages, so it costs
// one pass over them under the lock the scheduler takes.
func (r *Router) Waiting() Waiting {
	w := Waiting{Pending: r.pending.Load(), Ready: len(r.work) + len(r.urgent), Retry: map[msg.Network]int{}, Held: map[msg.Network]int{}}
	r.mu.Lock()
	for _, j := range r.later {
		if j.key == "" {
			w.Scheduled++
		} else if j.forUser {
			w.Held[r.intended(&j.m)]++
		} else {
			w.Retry[r.intended(&j.m)]++
		}
	}
	for _, q := range r.draining {
		w.Draining += len(q)
	}
	r.mu.Unlock()
	return w
}

// Stage validates m, assigns its ID and queues its acceptance into the
// next group commit (msg.Stager); the message is on its way to delivery at
// once, and its sender may be acknowledged once the Ack settles. It waits
// only for the recovery scan at start, for room in the store's batch and
// for an earlier copy of m being stored. A message with a NotBefore in the
// future is held until then. It refuses with msg.ErrNoRoute,
// msg.ErrTooLong, msg.ErrBadSchedule, msg.ErrOverloaded or msg.ErrNotStored.
func (r *Router) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	now := r.cfg.Now()
	if m.Expires.IsZero() {
		// The default validity runs from when the message may first go.
		m.Expires = now.Add(r.cfg.DefaultValidity)
		if m.NotBefore.After(now) {
			m.Expires = m.NotBefore.Add(r.cfg.DefaultValidity)
		}
	}
	if m.NotBefore.After(m.Expires) {
		r.count.NoRoute.Add(1)
		return nil, fmt.Errorf("%w: sent at %s, expires at %s", msg.ErrBadSchedule, m.NotBefore.Format(time.RFC3339), m.Expires.Format(time.RFC3339))
	}
	if m.To == "" || (!m.To.IsMSISDN() && len(m.To) < 5) || strings.HasPrefix(string(m.To), "alpha:") ||
		msg.CheckRoute(m.Route, m.To) != nil {
		r.count.NoRoute.Add(1)
		return nil, fmt.Errorf("%w: %q", msg.ErrNoRoute, m.To)
	}
	if r.cfg.CheckSMS != nil && m.To.IsMSISDN() && m.Route != "im" && !r.toApp(m) {
		if err := r.cfg.CheckSMS(m); err != nil {
			r.count.NoRoute.Add(1)
			return nil, err
		}
	}
	if r.pending.Add(1) > int64(r.cfg.QueueDepth) {
		r.pending.Add(-1)
		r.count.Throttled.Add(1)
		return nil, msg.ErrOverloaded
	}
	if err := r.q.Healthy(); err != nil {
		r.pending.Add(-1)
		r.count.NotStored.Add(1)
		return nil, fmt.Errorf("%w: store unhealthy: %v", msg.ErrNotStored, err)
	}
	select {
	case <-r.scanned:
	case <-ctx.Done():
		r.pending.Add(-1)
		r.count.NotStored.Add(1)
		return nil, fmt.Errorf("%w: router not started: %v", msg.ErrNotStored, ctx.Err())
	}
	dup, p, held, err := r.stage(ctx, m)
	if err != nil {
		r.pending.Add(-1)
		r.count.NotStored.Add(1)
		return nil, fmt.Errorf("%w: %v", msg.ErrNotStored, err)
	}
	if dup != "" {
		r.pending.Add(-1)
		r.count.Duplicates.Add(1)
		m.ID = dup
		r.log.Debug("duplicate suppressed", "id", dup, "from", m.From, "to", m.To, "origin", m.Origin.Kind)
		return msg.Settled{}, nil
	}
	// Delivery starts while the group commit is in flight, so the fsync is
	// not in the message's delivery latency; the sender's acknowledgement
	// still waits for it. From here the job owns the pending slot.
	j := &job{m: *m, index: -1, accept: p, r: r, sender: m, held: held}
	if r.reporters[m.Origin.Kind] != nil { // only a report waits for it
		j.acked = make(chan struct{})
	}
	if m.NotBefore.After(now) {
		r.count.Scheduled.Add(1)
		r.hold(context.WithoutCancel(ctx), j)
		return j, nil
	}
	r.ready(j)
	return j, nil
}

// Done is closed when the acceptance's commit has ended, ok or not.
func (j *job) Done() <-chan struct{} { return j.accept.Done() }

// Settle waits for the acceptance's commit (msg.Ack). It releases the
// message's dedup key, and lets its outcome be reported.
func (j *job) Settle(ctx context.Context) error {
	r := j.r
	err := j.accept.Wait(ctx)
	if err != nil {
		j.sender.ID = ""
	}
	r.release(j.held)
	if j.acked != nil {
		close(j.acked)
	}
	if err != nil {
		r.count.NotStored.Add(1)
		return err
	}
	r.count.Accepted.Add(1)
	return nil
}

// stage queues m's acceptance, or finds the earlier copy of it: under its
// client's idempotency key, or else with the same content within the dedup
// window. A staged copy holds its dedup key until release is called with
// held, once the acceptance is settled.
func (r *Router) stage(ctx context.Context, m *msg.Message) (dup string, p store.Pending, held dedupHold, err error) {
	if m.IdempotencyKey == "" && r.cfg.DedupWindow <= 0 {
		_, p, err := r.q.Stage(ctx, m, store.Dedup{})
		return "", p, dedupHold{}, err
	}
	// The key hashes each field followed by a zero byte (the same bytes,
	// so the same keys, as when they were written to a hash one by one).
	// A client's key replaces the content: its copies are one message
	// whatever they say.
	var buf [384]byte
	b := buf[:0]
	d := store.Dedup{Window: r.cfg.DedupWindow}
	fields := [...]string{m.Origin.Kind.String(), m.Origin.Account, string(m.From), string(m.To), m.Text}
	if m.IdempotencyKey != "" {
		d = store.Dedup{Window: r.cfg.ClientKeyWindow, Client: true}
		fields = [...]string{m.Origin.Kind.String(), m.Origin.Account, m.IdempotencyKey, "", ""}
	}
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	sum := sha256.Sum256(b)
	key := sum[:16]
	d.Key = key
	// A second copy arriving while the first is being stored waits for it
	// and then finds it committed; different messages never wait on each
	// other. The first copy's entry gets a channel only when a second one
	// comes to wait on it.
	var k [16]byte
	copy(k[:], key)
	for {
		r.dedupMu.Lock()
		busy, ok := r.dedupBusy[k]
		if !ok {
			r.dedupBusy[k] = nil
		} else if busy == nil {
			busy = make(chan struct{})
			r.dedupBusy[k] = busy
		}
		r.dedupMu.Unlock()
		if !ok {
			break
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return "", store.Pending{}, dedupHold{}, ctx.Err()
		}
	}
	dup, p, err = r.q.Stage(ctx, m, d)
	hold := dedupHold{k, true}
	if err != nil || dup != "" {
		r.release(hold)
		return dup, p, dedupHold{}, err
	}
	return "", p, hold, nil
}

// dedupHold is a dedup key held by a staged message (none when !held).
type dedupHold struct {
	key  [16]byte
	held bool
}

// release lets other copies of a staged message in (see stage).
func (r *Router) release(h dedupHold) {
	if !h.held {
		return
	}
	r.dedupMu.Lock()
	if busy := r.dedupBusy[h.key]; busy != nil {
		close(busy)
	}
	delete(r.dedupBusy, h.key)
	r.dedupMu.Unlock()
}

// Run resumes unfinished messages from the store, then delivers until ctx
// ends. In-flight deliveries finish or are left unfinished in the store, to
// be resumed by the next start.
func (r *Router) Run(ctx context.Context) error {
	r.started.Store(true)
	r.mu.Lock()
	r.runCtx = ctx
	r.mu.Unlock()
	for range r.cfg.Workers {
		r.startWorker(ctx, false)
	}
	go r.stopWorkers(ctx)
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.scheduler(ctx)
	}()
	go func() {
		defer r.wg.Done()
		r.grower(ctx)
	}()
	err := r.recover(ctx)
	r.wg.Wait()
	return err
}

// Workers is how many delivery goroutines run, and how many of them are
// delivering.
func (r *Router) Workers() (running, busy int) {
	return int(r.workers.Load()), int(r.busy.Load())
}

// more asks grower for an extra worker when every one is busy, so that a
// message just queued does not wait behind slow deliveries. It is called
// by whoever queues, so it starts none itself: only Run's goroutines may
// add to r.wg, which Run waits on.
func (r *Router) more() {
	if n := r.workers.Load(); r.busy.Load() < n || n >= int32(r.cfg.MaxWorkers) {
		return
	}
	select {
	case r.grow <- struct{}{}:
	default:
	}
}

// grower starts extra workers, while every worker is busy and messages
// wait, until ctx ends.
func (r *Router) grower(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.grow:
		}
		// A worker just started is not busy yet: one at a time, each
		// starting the next from its first job if still needed.
		if r.busy.Load() >= r.workers.Load() && len(r.work) > 0 {
			r.startWorker(ctx, true)
		}
	}
}

// startWorker starts a worker; an extra one stops when it finds no
// message waiting. It starts none past MaxWorkers. Run, its workers and
// grower call it, so r.wg's count is above 0 or Run has not waited yet.
func (r *Router) startWorker(ctx context.Context, extra bool) {
	if r.workers.Add(1) > int32(r.cfg.MaxWorkers) {
		r.workers.Add(-1)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.workers.Add(-1)
		r.worker(ctx, extra)
	}()
}

func (r *Router) recover(ctx context.Context) error {
	var jobs []*job
	err := r.q.Unfinished(func(rec store.Record) error {
		jobs = append(jobs, &job{m: rec.Msg, attempts: rec.Attempts, index: -1})
		return nil
	})
	close(r.scanned)
	if err != nil {
		return fmt.Errorf("router: recover: %w", err)
	}
	if len(jobs) > 0 {
		r.log.Info("resuming unfinished messages", "count", len(jobs))
	}
	for _, j := range jobs {
		r.pending.Add(1)
		r.count.Recovered.Add(1)
		if !r.readyCtx(ctx, j) {
			return nil
		}
	}
	return nil
}

// ready queues j for a worker: a message of priority above 0 in urgent,
// which workers look at first, with a poke in work for a worker waiting
// there. Normal messages pay one look at an empty channel, which takes no
// lock.
func (r *Router) ready(j *job) {
	if j.m.Priority > 0 {
		r.urgent <- j
		j = r.poke
	}
	r.work <- j
	r.more()
}

// readyCtx is ready that gives up when ctx ends (false).
func (r *Router) readyCtx(ctx context.Context, j *job) bool {
	if j.m.Priority > 0 {
		select {
		case r.urgent <- j:
		case <-ctx.Done():
			return false
		}
		j = r.poke
	}
	select {
	case r.work <- j:
		r.more()
		return true
	case <-ctx.Done():
		return false
	}
}

// worker delivers until ctx ends, or an extra one until nothing waits.
// It blocks on r.work alone: a select with ctx.Done would take the locks
// of two channels, one of them shared by every worker, for each message;
// the look at r.urgent before it does not block, and an empty channel's
// takes no lock. stopWorkers wakes the idle ones; a job taken after the
// end stays unfinished in the store, as do those left in the channel, and
// is resumed at the next start.
func (r *Router) worker(ctx context.Context, extra bool) {
	for {
		var j *job
		select {
		case j = <-r.urgent:
		default:
			if extra {
				select {
				case j = <-r.work:
				default:
					return
				}
			} else {
				j = <-r.work
			}
			if j == r.poke {
				select {
				case j = <-r.urgent:
				default:
					if ctx.Err() != nil { // a poke is a job for stopWorkers' count
						return
					}
					continue // another worker took it first
				}
			}
		}
		if j == nil || ctx.Err() != nil {
			return
		}
		// Every worker busy and messages still waiting: one more, so that
		// a backlog behind slow deliveries grows the pool a worker a job.
		if n := r.workers.Load(); r.busy.Add(1) >= n && n < int32(r.cfg.MaxWorkers) && len(r.work) > 0 {
			r.startWorker(ctx, true)
		}
		r.deliver(ctx, j)
		r.busy.Add(-1)
	}
}

// stopWorkers wakes every worker once ctx has ended, with a nil job each.
// A send that finds the channel full stops: then every worker has a job
// to take, after which it sees ctx ended. r.work has room for MaxWorkers
// more than the queue depth, so producers never block on the stoppers'
// nils.
func (r *Router) stopWorkers(ctx context.Context) {
	<-ctx.Done()
	for range r.cfg.MaxWorkers {
		select {
		case r.work <- nil:
		default:
			return
		}
	}
}

// appFor is the application that takes m, if any: a message whose sender
// named no route, to a number of an application's, that is not itself an
// application's reply (two applications answering each other would loop).
func (r *Router) appFor(m *msg.Message) (string, bool) {
	if r.cfg.Apps == nil || m.Route != "" || m.Origin.Kind == msg.FromApp || !m.To.IsMSISDN() {
		return "", false
	}
	return r.cfg.Apps.AppFor(m)
}

func (r *Router) toApp(m *msg.Message) bool {
	_, ok := r.appFor(m)
	return ok
}

// route is what the router decided for one attempt.
type route int

const (
	routeIM route = iota
	routeSMS
	routePark
)

func (r *Router) decide(m *msg.Message) (route, presence.Binding) {
	if !m.ForcesSMS() {
		if b, ok := r.online(m.To); ok {
			return routeIM, b
		}
	}
	if m.To.IsMSISDN() && m.Route != "im" || m.Route == "" && r.offlineNumber(m.To) != "" {
		return routeSMS, presence.Binding{}
	}
	return routePark, presence.Binding{}
}

// online finds where the person to belongs to is online in IM: the best
// binding (presence.Binding.Better) of any of their endpoints that an edge
// delivers to at this node, else the best at another node.
func (r *Router) online(to msg.Address) (presence.Binding, bool) {
	if r.cfg.People != nil {
		if p, ok := r.cfg.People.Resolve(to); ok {
			var best presence.Binding
			found := false
			for _, ep := range p.Endpoints {
				if b, ok := r.pres.Lookup(ep); ok && r.im[b.Via] != nil && (!found || b.Better(best)) {
					best, found = b, true
				}
			}
			if found {
				return best, true
			}
			return r.bestRemote(p.Endpoints, nil)
		}
	}
	if b, ok := r.pres.Lookup(to); ok && r.im[b.Via] != nil {
		return b, true
	}
	return r.bestRemote([]msg.Address{to}, nil)
}

// bestRemote is the best binding of eps held by another node and not in
// tried, when there is a cluster to deliver through. Local bindings come
// first: a remote one adds a hop and depends on its node being up.
func (r *Router) bestRemote(eps []msg.Address, tried []presence.Binding) (presence.Binding, bool) {
	if r.im[ViaCluster] == nil {
		return presence.Binding{}, false
	}
	var best presence.Binding
	found := false
	for _, ep := range eps {
		for _, b := range r.pres.Remote(ep) {
			if b.Node == "" || triedAlready(tried, b) {
				continue
			}
			if !found || b.Better(best) {
				best, found = b, true
			}
		}
	}
	return best, found
}

func triedAlready(tried []presence.Binding, b presence.Binding) bool {
	return slices.ContainsFunc(tried, func(t presence.Binding) bool {
		return t.Node == b.Node && t.Via == b.Via && t.Contact == b.Contact
	})
}

// sender is the edge that delivers to b: another node's binding goes
// through the cluster, which asks that node to use its own edge b.Via.
func (r *Router) sender(b presence.Binding) IMSender {
	if b.Node != "" {
		return r.im[ViaCluster]
	}
	return r.im[b.Via]
}

// maxIMAttempts bounds the endpoints one delivery tries before SMS or a
// retry: each attempt may take the edge's whole timeout.
const maxIMAttempts = 4

// nextBinding is where to try after the bindings in tried failed: the best
// other binding of to's person (or of to), this node's before other nodes',
// if any. Only failed deliveries
// come here, so it may allocate.
func (r *Router) nextBinding(to msg.Address, tried []presence.Binding) (presence.Binding, bool) {
	if len(tried) >= maxIMAttempts {
		return presence.Binding{}, false
	}
	eps := []msg.Address{to}
	if r.cfg.People != nil {
		if p, ok := r.cfg.People.Resolve(to); ok {
			eps = p.Endpoints
		}
	}
	var best presence.Binding
	found := false
	for _, ep := range eps {
		for _, b := range r.pres.Bindings(ep) {
			if r.im[b.Via] == nil || triedAlready(tried, b) {
				continue
			}
			if !found || b.Better(best) {
				best, found = b, true
			}
		}
	}
	if found {
		return best, true
	}
	return r.bestRemote(eps, tried)
}

// parkKey is what parked messages for to wait under: its person, so that
// any of their endpoints coming online wakes them.
func (r *Router) parkKey(to msg.Address) msg.Address {
	if r.cfg.People != nil {
		if p, ok := r.cfg.People.Resolve(to); ok {
			return msg.Address("person:" + p.Name)
		}
	}
	return to
}

// offlineNumber is where a message for the IM address to goes as SMS
// while its person is online nowhere: their number, if they chose so.
func (r *Router) offlineNumber(to msg.Address) msg.Address {
	if r.cfg.People == nil {
		return ""
	}
	p, ok := r.cfg.People.Resolve(to)
	if !ok || p.Number == "" || !r.cfg.People.OfflineSMS(p.Name) {
		return ""
	}
	return p.Number
}

// smsOf is m as it leaves as SMS: an IM user's message carries their
// number as its source, so the reply comes back to them; a message for an
// IM address goes to its person's number.
func (r *Router) smsOf(m *msg.Message) *msg.Message {
	if r.cfg.People == nil || m.From.IsMSISDN() && m.To.IsMSISDN() {
		return m
	}
	c := *m
	if !m.From.IsMSISDN() {
		if p, ok := r.cfg.People.Resolve(m.From); ok && p.Number != "" {
			c.From = p.Number
		}
	}
	if !m.To.IsMSISDN() {
		c.To = r.offlineNumber(m.To)
	}
	return &c
}

func (r *Router) deliver(ctx context.Context, j *job) {
	m := &j.m
	now := r.cfg.Now()
	if r.ncancel.Load() > 0 && r.marked(m.ID) {
		r.cancelNow(ctx, j)
		return
	}
	if !m.NotBefore.IsZero() {
		// Long settled by now, except for a schedule replaced while it
		// waited in the ready queue, or one recovered at a start.
		if !r.stored(ctx, j) {
			return
		}
		if m.NotBefore.After(now) {
			r.hold(ctx, j)
			return
		}
	}
	if !m.Expires.IsZero() && now.After(m.Expires) {
		r.count.Expired.Add(1)
		r.finish(ctx, j, msg.Outcome{State: msg.Expired, Detail: "validity period ended", Via: r.intended(m)}, "")
		return
	}
	if app, ok := r.appFor(m); ok {
		r.deliverApp(ctx, j, app)
		return
	}
	rt, b := r.decide(m)
	debug := r.log.Enabled(ctx, slog.LevelDebug)
	if rt == routeIM {
		if debug {
			r.log.Debug("route", "id", m.ID, "from", m.From, "to", m.To, "decision", "im", "via", b.Via, "contact", b.Contact, "node", b.Node)
		}
		var tried []presence.Binding
		var err error
		for {
			err = r.sender(b).SendIM(ctx, m, b)
			if err == nil {
				r.count.IMDelivered.Add(1)
				o := msg.Outcome{Delivered: true, State: msg.Delivered, Detail: "im", Via: msg.ViaIM}
				if r.finish(ctx, j, o, imDetail(b)) {
					r.reportJob(ctx, j, o)
				}
				return
			}
			if ctx.Err() != nil {
				return // shutting down: stays unfinished in the store
			}
			r.count.IMFailed.Add(1)
			r.log.Info("im delivery failed", "id", m.ID, "to", m.To, "via", b.Via, "contact", b.Contact, "node", b.Node, "err", err)
			tried = append(tried, b)
			next, ok := r.nextBinding(m.To, tried)
			if !ok {
				break
			}
			b = next
		}
		if !m.To.IsMSISDN() || m.Route == "im" {
			r.retry(ctx, j, "im: "+err.Error())
			return
		}
		r.count.Fallbacks.Add(1)
		rt = routeSMS
	}
	if rt == routePark {
		if debug {
			r.log.Debug("route", "id", m.ID, "from", m.From, "to", m.To, "decision", "offline")
		}
		r.park(ctx, j)
		return
	}
	if debug {
		r.log.Debug("route", "id", m.ID, "from", m.From, "to", m.To, "decision", "sms")
	}
	if r.sms == nil {
		r.retry(ctx, j, "sms: no SMS route configured")
		return
	}
	// No timeout context per attempt (a timer per message): the SMS side
	// bounds it, smppgw's SMPP sessions by their response timeout for
	// window room and for each response, and its client by its bind wait.
	tracked := true
	var err error
	if ts, ok := r.sms.(TrackingSender); ok {
		tracked, err = ts.SendSMSTracked(ctx, r.smsOf(m))
	} else {
		err = r.sms.SendSMS(ctx, r.smsOf(m))
	}
	if err == nil {
		r.count.SMSDelivered.Add(1)
		o := msg.Outcome{Delivered: true, State: msg.Delivered, Detail: "sms", Via: msg.ViaSMS}
		if r.finish(ctx, j, o, "") {
			r.handedOff(ctx, j, o, tracked)
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	r.count.SMSFailed.Add(1)
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		r.finish(ctx, j, msg.Outcome{State: msg.Failed, Detail: "sms: " + err.Error(), Via: msg.ViaSMS}, "")
		return
	}
	r.retry(ctx, j, "sms: "+err.Error())
}

// deliverApp makes one attempt at handing j to its application; a failure
// is retried with backoff, as SMS are, until the message expires.
func (r *Router) deliverApp(ctx context.Context, j *job, app string) {
	m := &j.m
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("route", "id", m.ID, "from", m.From, "to", m.To, "decision", "app", "app", app)
	}
	if r.app == nil {
		r.retry(ctx, j, "app: no application edge")
		return
	}
	err := r.app.SendApp(ctx, m, app)
	if err == nil {
		r.count.AppDelivered.Add(1)
		o := msg.Outcome{Delivered: true, State: msg.Delivered, Detail: "app", Via: msg.ViaApp}
		if r.finish(ctx, j, o, "app "+app) {
			r.reportJob(ctx, j, o)
		}
		return
	}
	if ctx.Err() != nil {
		return // shutting down: stays unfinished in the store
	}
	r.count.AppFailed.Add(1)
	r.log.Info("application delivery failed", "id", m.ID, "to", m.To, "app", app, "err", err)
	r.retry(ctx, j, "app "+app+": "+err.Error())
}

// stored waits until j's acceptance is durable: delivery may run ahead of
// the group commit, but recording an outcome, a retry or parking must not.
// false ends the job: the router is stopping (the record, if committed, is
// resumed at the next start), or the commit failed, in which case the sender
// was refused and will resubmit, so the job must not go on.
func (r *Router) stored(ctx context.Context, j *job) bool {
	err := j.accept.Wait(ctx)
	if err == nil {
		return true
	}
	if ctx.Err() == nil {
		r.pending.Add(-1)
		r.log.Warn("acceptance not stored: dropping the message, its sender was refused", "id", j.m.ID, "err", err)
	}
	return false
}

// intended is the network a message was meant for, for the outcome of one
// that never got there.
func (r *Router) intended(m *msg.Message) msg.Network {
	if r.toApp(m) {
		return msg.ViaApp
	}
	if m.To.IsMSISDN() {
		return msg.ViaSMS
	}
	return msg.ViaIM
}

// finish records o's final state, with detail in the message's history if
// it says more than o.Detail; false: the job ended without one (see stored).
// Failures are reported here, deliveries by the caller.
func (r *Router) finish(ctx context.Context, j *job, o msg.Outcome, detail string) bool {
	if detail == "" {
		detail = o.Detail
	}
	st := o.State
	// Queued without waiting for the acceptance's commit: while that batch
	// is open, the store writes the message once, already final (while it
	// is being committed, the store waits for it and writes nothing if it
	// failed). The final state reaches the disk with the same batch whether
	// this worker waits or not, and if a crash comes first the message is
	// sent once more after the restart (at-least-once, never lost). So the
	// commit is waited for only before a report, which must not tell the
	// originator of an outcome that may be undone: failures, and deliveries
	// whose originator asked for a receipt. Its batch is the acceptance's
	// or a later one, so stored does not block after it. Not waiting frees
	// the worker at once: one goroutine park and wake-up fewer per message.
	durable := st != msg.Delivered || j.m.Receipt
	// The outcome happened: a shutdown begun meanwhile must not leave it
	// unrecorded, or the message goes out again after the restart.
	err := r.q.Transition(context.WithoutCancel(ctx), j.m.ID, store.Event{State: st, At: r.cfg.Now(), Detail: detail}, durable)
	if r.ncancel.Load() > 0 {
		r.unmark(j.m.ID)
	}
	if !r.stored(ctx, j) {
		return false
	}
	if err != nil {
		r.log.Warn("recording final state failed", "id", j.m.ID, "state", st, "err", err)
	}
	r.pending.Add(-1)
	if r.cfg.OnFinal != nil {
		r.cfg.OnFinal(&j.m, o)
	}
	if st != msg.Delivered {
		r.reportJob(ctx, j, o)
	}
	return true
}

// reportJob reports j's outcome once its acceptance has settled. The final
// state can commit in the acceptance's own batch, and a receipt should not
// overtake the acknowledgement: the adapter sends that as soon as Settle
// returns, while a reporter builds and queues the receipt after this. That
// narrows the window to the adapter's moment between Settle returning and
// queueing its response; it does not close it.
func (r *Router) reportJob(ctx context.Context, j *job, o msg.Outcome) {
	if j.acked != nil {
		select {
		case <-j.acked:
		case <-ctx.Done():
			return
		}
	}
	r.report(ctx, &j.m, o)
}

// handedOff tells a reporter that wants to know (HandOffReporter) that j
// went to the SMS network, once its acceptance has settled. A tracked
// message's final word comes with the SMSC's receipt (Receipt); for an
// untracked one (an ESME route) the hand-off, o, is all there will be.
func (r *Router) handedOff(ctx context.Context, j *job, o msg.Outcome, tracked bool) {
	rep, ok := r.reporters[j.m.Origin.Kind].(HandOffReporter)
	if !ok {
		return
	}
	if !tracked {
		r.reportJob(ctx, j, o)
		return
	}
	if j.acked != nil {
		select {
		case <-j.acked:
		case <-ctx.Done():
			return
		}
	}
	rep.HandedOff(ctx, &j.m, r.cfg.Now())
}

// report hands an outcome to the originator's reporter. SMS hand-offs are
// not reported here: the SMSC's receipt comes back through Receipt.
func (r *Router) report(ctx context.Context, m *msg.Message, o msg.Outcome) {
	rep := r.reporters[m.Origin.Kind]
	if rep == nil {
		return
	}
	if o.At.IsZero() {
		o.At = r.cfg.Now()
	}
	rep.Report(ctx, m, o)
}

// Receipt records the network's final word on a message the bridge sent as
// SMS (an SMSC delivery receipt, all parts accounted for) as its state,
// replacing the "delivered" that meant the SMSC took it, and reports it to
// the originator. The originator hears it even if recording it failed.
func (r *Router) Receipt(ctx context.Context, id string, o msg.Outcome) error {
	if o.Via == "" {
		o.Via = msg.ViaSMS
	}
	if o.State == 0 {
		o.State = msg.Failed
		if o.Delivered {
			o.State = msg.Delivered
		}
	}
	if o.At.IsZero() {
		o.At = r.cfg.Now()
	}
	r.log.Debug("receipt", "id", id, "delivered", o.Delivered, "state", o.State, "detail", o.Detail)
	var errs []error
	if err := r.q.RecordReceipt(ctx, id, store.Event{State: o.State, At: o.At, Detail: o.Detail}); err != nil {
		errs = append(errs, fmt.Errorf("router: recording the receipt for %s: %w", id, err))
	}
	rec, err := r.q.Message(id)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("router: receipt for %s: %w", id, err))...)
	}
	r.report(ctx, &rec.Msg, o)
	return errors.Join(errs...)
}

// backoff is exponential with ±20% jitter so retries to one peer spread out.
func (r *Router) backoff(attempts int) time.Duration {
	d := r.cfg.RetryMin
	for i := 1; i < attempts && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.RetryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (r *Router) retry(ctx context.Context, j *job, detail string) {
	if !r.stored(ctx, j) {
		return
	}
	j.attempts++
	due := r.cfg.Now().Add(r.backoff(j.attempts))
	if due.After(j.m.Expires) {
		due = j.m.Expires.Add(time.Millisecond)
	}
	r.count.Retries.Add(1)
	if err := r.q.Reschedule(ctx, j.m.ID, j.attempts, due, detail); err != nil {
		r.log.Warn("recording retry failed", "id", j.m.ID, "err", err)
	}
	// Also woken by a registration of its person: an IM edge that was down
	// (its server restarting) is back when its users are.
	j.key = r.parkKey(j.m.To)
	if !r.schedule(j, due, false) {
		r.cancelNow(ctx, j)
	}
}

// park holds a message for an IM-only user until they register or it expires.
func (r *Router) park(ctx context.Context, j *job) {
	if !r.stored(ctx, j) {
		return
	}
	r.count.Parked.Add(1)
	j.key = r.parkKey(j.m.To)
	if !r.schedule(j, j.m.Expires.Add(time.Millisecond), true) {
		r.cancelNow(ctx, j)
		return
	}
	// The person may have registered since decide found them offline, and
	// that registration's Online found nothing parked yet: look again now
	// that the job is in r.offline, or it waits for the next one (or expiry).
	if _, ok := r.online(j.m.To); ok {
		r.Online(j.key)
	}
}

// schedule puts j in the heap until due, and, unless j.key is "", among
// its person's messages that a registration wakes early; held: it waits
// for that registration, not for a retry. false: its sender cancelled it
// meanwhile, and the caller ends it (cancelNow).
func (r *Router) schedule(j *job, due time.Time, held bool) bool {
	r.mu.Lock()
	if r.ncancel.Load() > 0 {
		if _, ok := r.cancels[j.m.ID]; ok {
			r.mu.Unlock()
			return false
		}
	}
	j.due, j.parked, j.forUser = due, true, held
	heap.Push(&r.later, j)
	if j.key != "" {
		set := r.offline[j.key]
		if set == nil {
			set = make(map[*job]struct{})
			r.offline[j.key] = set
		}
		set[j] = struct{}{}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// hold keeps j until its NotBefore, whoever comes online meanwhile.
func (r *Router) hold(ctx context.Context, j *job) {
	j.key = ""
	if !r.schedule(j, j.m.NotBefore, false) {
		r.cancelNow(ctx, j)
	}
}

// Online hands the messages parked or waiting for a retry for the person
// aor belongs to (and any for aor itself before it was theirs) to a drain
// that delivers them in the order they were accepted, at most DrainRate per
// second, so a user coming back after a week does not get (or cause) a
// storm. New wires it to presence's registrations.
func (r *Router) Online(aor msg.Address) {
	key := r.parkKey(aor)
	r.mu.Lock()
	var jobs []*job
	for _, k := range []msg.Address{key, aor} {
		for j := range r.offline[k] {
			if j.index >= 0 {
				heap.Remove(&r.later, j.index)
			}
			j.parked = false
			jobs = append(jobs, j)
		}
		delete(r.offline, k)
	}
	if len(jobs) == 0 {
		r.mu.Unlock()
		return
	}
	slices.SortFunc(jobs, func(a, b *job) int {
		if c := a.m.Accepted.Compare(b.m.Accepted); c != 0 {
			return c
		}
		return strings.Compare(a.m.ID, b.m.ID)
	})
	q, running := r.draining[key]
	r.draining[key] = append(q, jobs...)
	ctx := r.runCtx
	r.mu.Unlock()
	r.count.Unparked.Add(uint64(len(jobs)))
	if !running {
		go r.drain(ctx, key)
	}
}

// drain delivers the woken messages of a person (parkKey) one after the
// other.
func (r *Router) drain(ctx context.Context, key msg.Address) {
	gap := time.Second / time.Duration(r.cfg.DrainRate)
	for {
		r.mu.Lock()
		q := r.draining[key]
		if len(q) == 0 || ctx.Err() != nil {
			delete(r.draining, key)
			r.mu.Unlock()
			return
		}
		j := q[0]
		r.draining[key] = q[1:]
		r.mu.Unlock()
		r.deliver(ctx, j)
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
	}
}

func (r *Router) scheduler(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		now := r.cfg.Now()
		var due []*job
		for r.later.Len() > 0 && !r.later[0].due.After(now) {
			j := heap.Pop(&r.later).(*job)
			if j.parked && j.key != "" {
				if set := r.offline[j.key]; set != nil {
					delete(set, j)
					if len(set) == 0 {
						delete(r.offline, j.key)
					}
				}
			}
			due = append(due, j)
		}
		wait := time.Hour
		if r.later.Len() > 0 {
			wait = r.later[0].due.Sub(now)
		}
		r.mu.Unlock()
		for _, j := range due {
			if !r.readyCtx(ctx, j) {
				return
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			t.Stop() // Go ≥1.23 timers: Stop leaves no stale tick to drain
		case <-t.C:
		}
	}
}

// Due and SetIndex place a job in the heap of retries and parked messages
// (dueheap.Item).
func (j *job) Due() time.Time { return j.due }
func (j *job) SetIndex(i int) { j.index = i }

// SMSSenderFunc adapts a function to SMSSender.
type SMSSenderFunc func(ctx context.Context, m *msg.Message) error

func (f SMSSenderFunc) SendSMS(ctx context.Context, m *msg.Message) error { return f(ctx, m) }

// imDetail is a delivery's line in the message's history.
func imDetail(b presence.Binding) string {
	if b.Node != "" {
		return "im " + b.Via + " " + b.Contact + " at node " + b.Node
	}
	return "im " + b.Via + " " + b.Contact
}
