package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// committer group-commits the writes of many goroutines. Writers queue ops
// into the open batch (enqueue) and wait for it (wait); one goroutine (run)
// takes the batch, makes it durable and closes its done channel, so every
// writer queued in a batch shares its one fsync. A batch is durable once it
// is appended to the commit log and fdatasynced (commitlog.go); without a
// log (in memory, or the badgerSync knob) badger is written and synced
// instead (commitDirect).
type committer struct {
	bdb        *badger.DB
	log        *slog.Logger
	cache      *cache // a record whose commit ended is dropped from it (commit)
	maxBatch   int
	interval   time.Duration // Options.CommitInterval
	ckptEvery  time.Duration // Options.CheckpointInterval
	syncEach   bool          // knobs.syncEach: enqueue writes (and badger syncs) by itself
	syncFault  func() error  // knobs.syncFault
	applyFault func() error  // knobs.applyFault
	ckptSync   func()        // knobs.ckptSync
	fs         *failStop     // checked before each logged batch
	onCommit   func(time.Duration)
	onCkpt     func(time.Duration)

	// the open batch, guarded by mu
	mu      sync.Mutex
	room    *sync.Cond // signalled when the committer takes a batch
	cur     *batch
	closed  bool
	closedA atomic.Bool  // closed, readable without mu
	pending atomic.Int64 // len(cur.ops), read without mu on the fast path
	kick    chan struct{}

	committed atomic.Uint64 // seq of the last batch the committer finished (ok or not)
	writes    atomic.Uint64
	batches   atomic.Uint64
	failed    atomic.Uint64
	lastErr   atomic.Pointer[errBox]

	bufs   sync.Pool // *[]byte record/key buffers, returned after commit
	opsBuf sync.Pool // *[]op
	// directBuf: *[]op, the ops a logged batch hands the applier for badger
	directBuf sync.Pool

	// The commit log side (commitlog.go): once Open has returned only run
	// touches these, and Close after run has ended; deferred, which readers
	// and Unfinished use too, has its own lock.
	wal      *wal      // appended to; nil in memory and with the syncEach or badgerSync knob
	spare    *wal      // the other file of the pair
	lastCkpt time.Time // when the last checkpoint ended
	// spareFree: badger holds everything in spare, which the next
	// checkpoint may restart; set by the applier once a checkpoint's sync
	// has returned. ckptPending: a checkpoint is queued to the applier.
	spareFree   atomic.Bool
	ckptPending atomic.Bool
	// unapplied: badger refused writes that the log holds; only a replay at
	// the next Open puts them back, so the log is no longer started over.
	unapplied atomic.Bool
	// finals holds final records instead of badger (finals.go) where
	// there is a commit log; applyFin and applyRest are apply's scratch.
	finals              *finalLog
	applyFin, applyRest []op
	// The applier writes logged batches to badger behind the commits, in
	// order (commitlog.go): applyQ feeds it, applied is the seq of the last
	// batch it finished, and readers wait on applyCond for the batches
	// acknowledged before their read (waitApplied).
	applyQ    chan applyJob
	applied   atomic.Uint64
	applyMu   sync.Mutex
	applyCond *sync.Cond
	// applyStopped: the applier has returned (guarded by applyMu).
	applyStopped bool
	// applyFailing: badger refused the applier's last write; until one
	// succeeds, a batch is acknowledged only once applied.
	applyFailing atomic.Bool
	deferred     deferredRecs
}

type errBox struct{ err error }

// op is one key write inside a batch.
type op struct {
	key, val  []byte
	expiresAt uint64 // unix seconds, 0 = never
	del       bool
	id        string // message id when this op writes a record (cache upkeep)
	final     bool   // record reached a final state: drop it from the cache once committed
	dead      bool   // superseded by a later write of the same record in this batch: skipped
	born      bool   // writes a record accepted in this batch: undone if the batch fails
}

type batch struct {
	seq  uint64
	ops  []op
	dead int // ops superseded within the batch (op.dead): not written
	bufs []*[]byte
	done chan struct{}
	err  error // valid after done is closed
}

// writePos is where a record's writes are in the batches. The record's
// cache entry carries it, under the entry's shard lock: the committer sets
// it as it queues the record's writes, and the cache evicts an entry only
// once seq is committed.
type writePos struct {
	seq uint64 // batch of the last write queued for this record
	at  int    // index of that write (the record's put) in its batch
	acc *batch // batch of the record's first write: its acceptance
}

// init readies c for Open. With a commit log (a store on disk, no knob
// replacing it) the log is opened and replayed into badger first.
func (c *committer) init(bdb *badger.DB, opts Options, k knobs, cache *cache, fs *failStop) error {
	c.bdb, c.log, c.cache, c.fs = bdb, opts.Logger, cache, fs
	c.maxBatch = opts.MaxBatch
	c.interval, c.ckptEvery = opts.CommitInterval, opts.CheckpointInterval
	c.onCommit, c.onCkpt = opts.OnCommit, opts.OnCheckpoint
	c.syncEach, c.syncFault, c.applyFault, c.ckptSync = k.syncEach, k.syncFault, k.applyFault, k.ckptSync
	c.kick = make(chan struct{}, 1)
	c.room = sync.NewCond(&c.mu)
	c.applyCond = sync.NewCond(&c.applyMu)
	c.cur = c.newBatch(1)
	c.deferred.init()
	if opts.Dir != "" && !k.syncEach && !k.badgerSync {
		segBytes := int64(segMaxBytes)
		if k.segBytes > 0 {
			segBytes = k.segBytes
		}
		fl, err := openFinalLog(opts.Dir, segBytes, segMaxAge(opts.Retention))
		if err != nil {
			return err
		}
		fl.sealFault = k.sealFault
		c.finals = fl
		if err := c.openLog(opts.Dir, opts.LogSize); err != nil {
			return err
		}
		c.applyQ = make(chan applyJob, applyDepth)
	}
	return nil
}

// shut refuses writes from now on and wakes whoever waits for room, and
// run, which commits what is queued and returns.
func (c *committer) shut() {
	c.mu.Lock()
	c.closed = true
	c.closedA.Store(true)
	c.room.Broadcast()
	c.mu.Unlock()
	c.signal()
}

// finish, once run has returned, checkpoints a last time, so the next Open
// has nothing to replay (if it fails the log still holds everything), and
// closes the log.
func (c *committer) finish() {
	if c.wal != nil {
		if err := c.checkpoint(); err != nil {
			c.log.Warn("store: checkpoint at close failed; the commit log will be replayed", "err", err)
		}
	}
	c.closeLog()
}

func (c *committer) isClosed() bool { return c.closedA.Load() }

func (c *committer) newBatch(seq uint64) *batch {
	b := &batch{seq: seq, done: make(chan struct{})}
	if p, ok := c.opsBuf.Get().(*[]op); ok {
		b.ops = (*p)[:0]
	} else {
		b.ops = make([]op, 0, c.maxBatch)
	}
	return b
}

func (c *committer) getBuf() *[]byte {
	if p, ok := c.bufs.Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 512)
	return &b
}

func (c *committer) putBuf(p *[]byte) {
	if p == nil || cap(*p) > 64<<10 { // don't pin rare huge buffers
		return
	}
	c.bufs.Put(p)
}

func (c *committer) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// waitRoom applies back-pressure before a writer takes any other lock: the
// enqueue itself never blocks, so the committer can never wait on a writer.
func (c *committer) waitRoom() error {
	if c.pending.Load() < int64(c.maxBatch) || c.syncEach {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.cur.ops) >= c.maxBatch && !c.closed {
		c.room.Wait()
	}
	if c.closed {
		return ErrClosed
	}
	return nil
}

// wait blocks until b is committed and synced. A ctx error means the write
// may or may not become durable: the caller must not acknowledge.
func (c *committer) wait(ctx context.Context, b *batch) error {
	if b == nil {
		return nil
	}
	select {
	case <-b.done: // first: a commit that has ended wins over a ctx that has too
		return b.err
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("store: gave up waiting for commit: %w", ctx.Err())
	}
}

// submit queues ops that write no record, whose key/val live in buf (nil:
// none).
func (c *committer) submit(ops []op, buf *[]byte) (*batch, error) {
	bufs := [1]*[]byte{buf}
	b, _, _, err := c.enqueue(ops, bufs[:], nil, false)
	return b, err
}

// queueNew queues the ops writing a record just accepted (its first write;
// ops[0] is its put) and points w at them.
func (c *committer) queueNew(w *writePos, ops []op, buf *[]byte) (*batch, error) {
	bufs := [1]*[]byte{buf}
	b, start, _, err := c.enqueue(ops, bufs[:], nil, false)
	if err == nil && b != nil {
		w.seq, w.at, w.acc = b.seq, start, b
	}
	return b, err
}

// queueUpdate queues the ops rewriting a record whose earlier writes w
// points at: ops[0] is its put and, for a final record, ops[1] deletes its
// "_/u/" key. If the previous put is still in the open batch, it is
// superseded there and never written; if that batch also holds the
// record's first write, the key never reaches disk, so the delete goes
// too. A message whose delivery ends before its acceptance is committed
// (delivery overlaps the commit, see Stage) is thus written once, already
// final: two badger entries fewer.
//
// A later write never goes into a batch after the acceptance's while that
// one is still being committed: if it failed, the record was refused, and
// a later batch must not make it exist after all. The caller gets the
// acceptance's batch as wait instead, and nothing is queued (buf is still
// the caller's).
func (c *committer) queueUpdate(w *writePos, final bool, ops []op, buf *[]byte) (b, wait *batch, err error) {
	bufs := [1]*[]byte{buf}
	b, start, wait, err := c.enqueue(ops, bufs[:], w, final)
	if err == nil && b != nil {
		w.seq, w.at = b.seq, start
	}
	return b, wait, err
}

// enqueue queues ops (whose key/val live in bufs, returned to the pool after
// commit) into the current batch and returns it with the index of ops[0] in
// it. With sup, the record's earlier put in the open batch is superseded,
// and if the record is now final and was born in that batch, its delete is
// dropped (see queueUpdate). If its acceptance is being committed, nothing
// is queued and that batch is returned as wait. With the syncEach knob it
// writes the ops itself, synchronously, and returns a nil batch.
func (c *committer) enqueue(ops []op, bufs []*[]byte, sup *writePos, final bool) (b *batch, start int, wait *batch, err error) {
	if c.syncEach {
		err := ErrClosed
		if !c.isClosed() {
			err = writeOps(c.bdb, ops)
			c.writes.Add(uint64(len(ops)))
			c.batches.Add(1)
			c.noteResult(err)
		}
		for _, buf := range bufs {
			c.putBuf(buf)
		}
		return nil, 0, nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		for _, buf := range bufs {
			c.putBuf(buf)
		}
		return nil, 0, nil, ErrClosed
	}
	b = c.cur
	if sup != nil && sup.acc != nil && sup.acc != b && c.committed.Load() < sup.acc.seq {
		c.mu.Unlock()
		return nil, 0, sup.acc, nil
	}
	if sup != nil && sup.seq == b.seq {
		b.ops[sup.at].dead = true
		b.dead++
		if final && sup.acc == b && len(ops) == 2 && ops[1].del {
			ops = ops[:1]
		}
	}
	start = len(b.ops)
	b.ops = append(b.ops, ops...)
	if sup == nil || sup.acc == b {
		for i := start; i < len(b.ops); i++ {
			b.ops[i].born = b.ops[i].id != ""
		}
	}
	for _, buf := range bufs {
		if buf != nil {
			b.bufs = append(b.bufs, buf)
		}
	}
	c.pending.Store(int64(len(b.ops)))
	c.mu.Unlock()
	c.signal()
	return b, start, nil, nil
}

// run is the committer goroutine: it commits the open batch whenever there
// is one, until shut and nothing is left.
func (c *committer) run() {
	if c.applyQ != nil {
		done := make(chan struct{})
		go c.applier(done)
		defer func() {
			close(c.applyQ)
			<-done
		}()
	}
	var last time.Time // start of the last commit
	for range c.kick {
		for {
			c.pace(last)
			c.mu.Lock()
			b := c.cur
			if len(b.ops) == 0 {
				closed := c.closed
				c.mu.Unlock()
				if closed {
					return
				}
				if c.finals != nil && c.finals.sealDue(time.Now()) {
					c.maybeCheckpoint() // an idle store's segment is sealed too (DB.maintain kicks)
				}
				break
			}
			last = time.Now()
			c.cur = c.newBatch(b.seq + 1)
			c.pending.Store(0)
			c.room.Broadcast()
			c.mu.Unlock()
			c.commit(b)
			if c.onCommit != nil {
				c.onCommit(time.Since(last))
			}
			c.maybeCheckpoint()
		}
	}
}

// pace waits until CommitInterval has passed since the last commit started,
// unless the batch is empty or already half full: fewer, larger fsyncs,
// since each costs CPU however few writes it covers.
func (c *committer) pace(last time.Time) {
	iv := c.interval
	if n := c.pending.Load(); iv <= 0 || n == 0 || n >= int64(c.maxBatch)/2 {
		return // nothing to wait for (the next write kicks), or enough to commit now
	}
	if d := iv - time.Since(last); d > 0 {
		time.Sleep(d)
	}
}

// commit makes b durable, or fails it, and releases its writers.
func (c *committer) commit(b *batch) {
	var err error
	if c.wal != nil {
		c.commitPiped(b)
		return
	}
	err = c.commitDirect(b.ops)
	c.writes.Add(uint64(len(b.ops) - b.dead))
	c.batches.Add(1)
	c.noteResult(err)
	b.err = err
	c.committed.Store(b.seq)
	c.applied.Store(b.seq)
	// Cache upkeep: a committed final record is served from disk from now on;
	// after a failure, disk is the truth, so cached records of this batch go.
	for i := range b.ops {
		o := &b.ops[i]
		if o.id != "" && (o.final || err != nil) {
			c.cache.dropIfSeq(o.id, b.seq)
		}
	}
	c.recycle(b.ops, b.bufs)
	b.ops, b.bufs = nil, nil
	close(b.done)
}

// commitDirect is a commit without the log: badger is written and synced.
func (c *committer) commitDirect(ops []op) error {
	err := writeOps(c.bdb, ops)
	if err == nil {
		err = c.bdb.Sync()
		if f := c.syncFault; err == nil && f != nil {
			err = f()
		}
		if err != nil {
			err = fmt.Errorf("store: fsync: %w", err)
		}
	}
	if err != nil {
		c.undoBorn(ops)
	}
	return err
}

// undoBorn deletes, best effort, what a failed batch wrote for messages
// accepted in it: a failed fsync leaves badger's write readable, and a
// refused message must not be (its dedup key would answer the sender's
// resubmission with an ID nobody delivers until the next start). If the
// record still reaches the disk without its delete, it is delivered after
// a restart: at least once, never lost. Updates of earlier messages stay:
// their durable state is older, which again errs towards delivering twice.
func (c *committer) undoBorn(ops []op) {
	var dels []op
	for i := range ops {
		if o := &ops[i]; o.born && !o.dead && !o.del {
			dels = append(dels, op{key: o.key, del: true})
		}
	}
	if len(dels) == 0 {
		return
	}
	if err := writeOps(c.bdb, dels); err != nil {
		c.log.Warn("refused messages may stay readable until restart", "count", len(dels), "err", err)
	}
}

func (c *committer) noteResult(err error) {
	if err != nil {
		c.failed.Add(1)
		if c.lastErr.Load() == nil {
			c.log.Error("store write failed: acknowledgements must stop", "err", err)
		}
		c.lastErr.Store(&errBox{err})
		return
	}
	if c.lastErr.Load() != nil {
		c.log.Info("store writes succeed again")
		c.lastErr.Store(nil)
	}
}

// healthy is DB.Healthy.
func (c *committer) healthy() error {
	if err := c.fs.failed(); err != nil {
		return err
	}
	if c.isClosed() {
		return ErrClosed
	}
	if e := c.lastErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// appliedSeq is the seq of the last batch badger has: cached records whose
// writes are all in it or earlier may be evicted.
func (c *committer) appliedSeq() uint64 { return c.applied.Load() }

// stats fills in the committer's part of Stats.
func (c *committer) stats() Stats {
	s := Stats{
		Commits: c.writes.Load(),
		Batches: c.batches.Load(),
		Failed:  c.failed.Load(),
		Pending: int(c.pending.Load()),
	}
	if s.Batches > 0 {
		s.AvgBatch = float64(s.Commits) / float64(s.Batches)
	}
	if e := c.lastErr.Load(); e != nil {
		s.LastError = e.err
	}
	return s
}
