package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors returned by the store.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrClosed      = errors.New("store: closed")
	ErrReservedKey = errors.New(`store: key is empty or under a reserved prefix ("m/", "_/")`)
	ErrBadID       = errors.New("store: malformed message id")
	ErrFinal       = errors.New("store: message already in a final state")
	ErrBadState    = errors.New("store: invalid state")
	ErrTooLarge    = errors.New("store: record too large")
)

// Options configures Open. Zero values pick defaults sized for a small VM.
type Options struct {
	Dir            string        // "" = in-memory badger (tests, labs): nothing survives Close
	Logger         *slog.Logger  // nil = discard
	MaxBatch       int           // soft cap on writes per group commit; writers wait when it is reached (default 1024)
	MemTableSize   int64         // default 32 MiB
	BlockCacheSize int64         // default 32 MiB
	IndexCacheSize int64         // default 32 MiB (bounded, unlike badger's unbounded 0)
	GCInterval     time.Duration // value-log GC period (default 5m)
	SweepInterval  time.Duration // how often final records past their retention are deleted (default 10s)
	SyncEach       bool          // fsync every write on its own (badger SyncWrites): only for benchmark comparison
	BadgerSync     bool          // group commit by badger Sync instead of the commit log (the design before it): only for benchmark comparison
	// KeepText keeps a final record's whole text. By default it keeps what
	// a delivery receipt quotes (smstext.ReceiptText): nothing else reads a finished
	// message's text, and every byte of the records kept for the retention
	// period is written, flushed and compacted by badger.
	KeepText       bool
	Retention      time.Duration // how long final message records stay queryable (default 24h)
	CacheRecords   int           // in-memory cache of unfinished records (default 32768)
	ProbeInterval  time.Duration // while unhealthy, how often a probe write checks for recovery (default 1s)
	CommitInterval time.Duration // least time between the starts of two group commits while the batch is under MaxBatch/2 (0 = commit as soon as the last one ends)
	DedupWindow    time.Duration // longest window given to AcceptDedup: Open reloads the keys of messages accepted that recently (0 = only unfinished ones)
	// LogSize is the commit log's initial allocation (default 64 MiB; it
	// grows if one checkpoint interval's batches need more).
	LogSize int64
	// CheckpointInterval is how often badger is synced and the commit log
	// started over (default 1s; also when the log is half full). Unfinished
	// records wait in memory until then (wal.go).
	CheckpointInterval time.Duration
	// SyncFault, for fault-injection tests, runs after each group commit's
	// fsync: a non-nil error fails that commit as a full or broken disk
	// would. Always nil outside tests.
	SyncFault func() error
	// ApplyFault, for fault-injection tests, runs before a logged batch is
	// handed to badger: a non-nil error fails that step as badger refusing
	// the write would. Always nil outside tests.
	ApplyFault func() error
}

// valueThreshold: values this long or longer live in badger's value log.
const valueThreshold = 64

const (
	prefixMsg       = "m/"
	prefixInternal  = "_/"
	keyEpoch        = "_/epoch"
	keyProbe        = "_/probe"
	prefixUnfinshed = "_/u/"
)

// DB is the store. All methods are safe for concurrent use.
type DB struct {
	bdb  *badger.DB
	opts Options
	log  *slog.Logger

	// group commit state, guarded by mu
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

	ids   idGen
	cache cache
	dedup dedupIndex // duplicate-suppression keys (dedup.go)
	// wal is the commit log (wal.go); nil in memory and in SyncEach mode.
	wal      *wal
	lastCkpt time.Time // committer's: when the last checkpoint ended
	// unapplied (committer's): badger refused writes that the log holds;
	// only a replay at the next Open puts them back, so the log is no
	// longer started over.
	unapplied bool
	direct    []op // committer's scratch: the ops of a batch badger gets now
	// deferred holds the newest "_/u/" record of messages whose record is
	// in the commit log but not yet in badger: a message finished before
	// the next checkpoint never costs badger its unfinished record or that
	// record's delete. The committer fills it; flushDeferred (checkpoints,
	// Unfinished) empties it into badger; readers look here before badger
	// (loadRecord).
	defMu    sync.Mutex
	deferred map[string]deferredRec

	// Where passes of sweepExpired (retention.go) start: the live frontier
	// the last pass stopped at, and the oldest live final record the last
	// pass from the back met.
	sweepMu               sync.Mutex
	sweepFront, sweepBack []byte
	sweepPasses           int

	stop      context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type errBox struct{ err error }

type deferredRec struct {
	val      []byte
	inBadger bool // badger holds an older version: a delete must reach it
}

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

// Stats is a snapshot of the committer's counters.
type Stats struct {
	Commits   uint64  // key writes committed (including failed batches' writes: see Failed)
	Batches   uint64  // group commits (one fsync each)
	AvgBatch  float64 // Commits / Batches
	Failed    uint64  // batches whose write or fsync failed
	Pending   int     // writes queued for the next batch
	Cached    int     // records in the in-memory cache
	LastError error   // nil when healthy
}

// Open opens (or creates) the store.
func Open(opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = 32 << 20
	}
	if opts.BlockCacheSize <= 0 {
		opts.BlockCacheSize = 32 << 20
	}
	if opts.IndexCacheSize <= 0 {
		opts.IndexCacheSize = 32 << 20
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 5 * time.Minute
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.CacheRecords <= 0 {
		opts.CacheRecords = 32768
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.LogSize <= 0 {
		opts.LogSize = 64 << 20
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Second
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.Dir == "").
		WithLogger(badgerLogger{opts.Logger}).
		WithSyncWrites(opts.SyncEach).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithMetricsEnabled(false). // badger metrics are process-global expvars
		WithDetectConflicts(false) // all writes are blind sets from one committer
	if opts.Dir != "" {
		// Values (message records) go to badger's value log and only keys
		// and value pointers through its LSM tree: the final records kept
		// for the retention period are then written once, not rewritten by
		// every compaction. Alternated runs against records in the tree:
		// SMS→IM 50 s open loop 21.9 / 20.3k → 24.8 / 22.8k msg/s (the last
		// 25 s 21.8 / 17.2k → 26.6 / 22.2k), SMS→SMS 30 s 30.7 / 28.5k →
		// 32.8 / 30.3k at 9–13% less bridge CPU per message.
		bo = bo.WithValueThreshold(valueThreshold)
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open badger at %q: %w", opts.Dir, err)
	}
	db := &DB{
		bdb:  bdb,
		opts: opts,
		log:  opts.Logger,
		kick: make(chan struct{}, 1),
	}
	db.room = sync.NewCond(&db.mu)
	db.cur = db.newBatch(1)
	db.cache.init(opts.CacheRecords)
	db.deferred = make(map[string]deferredRec)
	if opts.Dir != "" && !opts.SyncEach && !opts.BadgerSync {
		if err := db.openLog(); err != nil {
			bdb.Close()
			return nil, err
		}
	}
	if err := db.ids.init(bdb); err != nil {
		db.closeLog()
		bdb.Close()
		return nil, err
	}
	db.dedup.init()
	if n, err := db.loadDedup(time.Now()); err != nil {
		db.closeLog()
		bdb.Close()
		return nil, fmt.Errorf("store: load duplicate-suppression keys: %w", err)
	} else if n > 0 {
		db.log.Info("duplicate-suppression keys loaded", "keys", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.stop = cancel
	db.bg.Add(1)
	go db.committer()
	if opts.Dir != "" {
		db.bg.Add(1)
		go db.maintain(ctx)
	}
	return db, nil
}

// Close flushes pending writes, stops the committer and closes badger.
// Writes after Close return ErrClosed. Close is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.closedA.Store(true)
		db.room.Broadcast()
		db.mu.Unlock()
		db.signal()
		db.stop()
		db.bg.Wait()
		if db.wal != nil {
			// A last checkpoint, so the next Open has nothing to replay;
			// if it fails the log still holds everything.
			if err := db.checkpoint(); err != nil {
				db.log.Warn("store: checkpoint at close failed; the commit log will be replayed", "err", err)
			}
		}
		db.closeLog()
		if err := db.bdb.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close badger: %w", err)
		}
	})
	return db.closeErr
}

func (db *DB) newBatch(seq uint64) *batch {
	b := &batch{seq: seq, done: make(chan struct{})}
	if p, ok := db.opsBuf.Get().(*[]op); ok {
		b.ops = (*p)[:0]
	} else {
		b.ops = make([]op, 0, db.opts.MaxBatch)
	}
	return b
}

func (db *DB) signal() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}

// waitRoom applies back-pressure before a writer takes any other lock: the
// enqueue itself never blocks, so the committer can never wait on a writer.
func (db *DB) waitRoom() error {
	if db.pending.Load() < int64(db.opts.MaxBatch) || db.opts.SyncEach {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	for len(db.cur.ops) >= db.opts.MaxBatch && !db.closed {
		db.room.Wait()
	}
	if db.closed {
		return ErrClosed
	}
	return nil
}

// submit is enqueue for ops whose key/val live in one buffer (nil: none).
func (db *DB) submit(ops []op, buf *[]byte) (*batch, error) {
	bufs := [1]*[]byte{buf}
	b, _, _, err := db.enqueue(ops, bufs[:], nil)
	return b, err
}

func (db *DB) isClosed() bool { return db.closedA.Load() }

// wait blocks until b is committed and synced. A ctx error means the write
// may or may not become durable: the caller must not acknowledge.
func (db *DB) wait(ctx context.Context, b *batch) error {
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

func (db *DB) committer() {
	defer db.bg.Done()
	var last time.Time // start of the last commit
	for range db.kick {
		for {
			db.pace(last)
			db.mu.Lock()
			b := db.cur
			if len(b.ops) == 0 {
				closed := db.closed
				db.mu.Unlock()
				if closed {
					return
				}
				break
			}
			last = time.Now()
			db.cur = db.newBatch(b.seq + 1)
			db.pending.Store(0)
			db.room.Broadcast()
			db.mu.Unlock()
			db.commit(b)
			db.maybeCheckpoint()
		}
	}
}

// pace waits until CommitInterval has passed since the last commit started,
// unless the batch is empty or already half full. Measured on the bench (bridge and
// load generator sharing 2 cores), 1 ms between fsyncs took SMS→SMS from
// 46.7 to 42.1 µs of bridge CPU per message and SMS→IM at 10,500 msg/s from
// 97% to 86% of a core, when each commit was a badger Sync (an msync of the
// whole memtable log); a commit's fdatasync of the commit log (wal.go) is
// cheaper, but still costs CPU however few messages it covers.
func (db *DB) pace(last time.Time) {
	iv := db.opts.CommitInterval
	if n := db.pending.Load(); iv <= 0 || n == 0 || n >= int64(db.opts.MaxBatch)/2 {
		return // nothing to wait for (the next write kicks), or enough to commit now
	}
	if d := iv - time.Since(last); d > 0 {
		time.Sleep(d)
	}
}

func (db *DB) commit(b *batch) {
	var err error
	if db.wal != nil {
		err = db.commitLogged(b.ops)
	} else {
		err = db.writeOps(b.ops)
		if err == nil {
			err = db.bdb.Sync()
			if f := db.opts.SyncFault; err == nil && f != nil {
				err = f()
			}
			if err != nil {
				err = fmt.Errorf("store: fsync: %w", err)
			}
		}
		if err != nil {
			db.undoBorn(b.ops)
		}
	}
	db.writes.Add(uint64(len(b.ops) - b.dead))
	db.batches.Add(1)
	db.noteResult(err)
	b.err = err
	db.committed.Store(b.seq)
	// Cache upkeep: a committed final record is served from disk from now on;
	// after a failure, disk is the truth, so cached records of this batch go.
	for i := range b.ops {
		o := &b.ops[i]
		if o.id != "" && (o.final || err != nil) {
			db.cache.dropIfSeq(o.id, b.seq)
		}
	}
	for _, buf := range b.bufs {
		db.putBuf(buf)
	}
	clear(b.ops)
	ops := b.ops[:0]
	b.ops, b.bufs = nil, nil
	db.opsBuf.Put(&ops)
	close(b.done)
}

func (db *DB) noteResult(err error) {
	if err != nil {
		db.failed.Add(1)
		if db.lastErr.Load() == nil {
			db.log.Error("store write failed: acknowledgements must stop", "err", err)
		}
		db.lastErr.Store(&errBox{err})
		return
	}
	if db.lastErr.Load() != nil {
		db.log.Info("store writes succeed again")
		db.lastErr.Store(nil)
	}
}

// commitLogged makes ops durable in the commit log, then hands them to
// badger unsynced, except the unfinished records, which wait in deferred.
// A batch whose log write fails reached neither badger nor (as far as
// replay goes) the log; one badger refuses after it is logged is replayed
// at the next Open (unapplied).
func (db *DB) commitLogged(ops []op) error {
	n, err := db.wal.append(ops)
	if f := db.opts.SyncFault; err == nil && f != nil {
		if err = f(); err != nil {
			err = fmt.Errorf("store: fsync: %w", err)
		}
	}
	if err != nil {
		return err
	}
	db.wal.advance(n)
	direct := db.direct[:0]
	db.defMu.Lock()
	for i := range ops {
		o := &ops[i]
		if o.dead {
			continue
		}
		if len(o.key) <= len(prefixUnfinshed) || string(o.key[:len(prefixUnfinshed)]) != prefixUnfinshed {
			direct = append(direct, *o)
			continue
		}
		id := o.id // record puts carry it; the delete only its key
		if id == "" {
			id = string(o.key[len(prefixUnfinshed):])
		}
		d, ok := db.deferred[id]
		if o.del {
			delete(db.deferred, id)
			if !ok || d.inBadger {
				direct = append(direct, *o)
			}
			continue
		}
		// Not in the map: a record accepted in this batch is new to
		// badger; any other was put there by an earlier checkpoint.
		d.inBadger = (ok && d.inBadger) || (!ok && !o.born)
		d.val = append(d.val[:0:0], o.val...)
		db.deferred[id] = d
	}
	db.defMu.Unlock()
	if f := db.opts.ApplyFault; f != nil {
		err = f()
	}
	if err == nil {
		err = db.writeOps(direct)
	}
	clear(direct)
	db.direct = direct[:0]
	if err != nil {
		// Logged, so durable: the next Open replays it. Until then badger
		// misses these writes, so say so (Healthy) rather than serve them,
		// and keep the log.
		if !db.unapplied {
			db.log.Error("store: badger refused logged writes; the commit log is kept until the next start replays it", "err", err)
		}
		db.unapplied = true
		return fmt.Errorf("store: logged but not applied: %w", err)
	}
	return nil
}

// maybeCheckpoint checkpoints when the interval has passed or the log is
// half full.
func (db *DB) maybeCheckpoint() {
	if db.wal == nil {
		return
	}
	if time.Since(db.lastCkpt) < db.opts.CheckpointInterval && (db.unapplied || db.wal.used() < db.wal.size/2) {
		return
	}
	if err := db.checkpoint(); err != nil {
		db.noteResult(err)
	}
}

// checkpoint moves the deferred records into badger, syncs badger and
// starts the log over. Only the committer (or Close, after it) calls it.
func (db *DB) checkpoint() error {
	if err := db.flushDeferred(); err != nil {
		return err
	}
	if err := db.bdb.Sync(); err != nil {
		return fmt.Errorf("store: checkpoint: sync badger: %w", err)
	}
	if !db.unapplied { // else the log grows until the next Open replays it
		if err := db.wal.restart(); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
	}
	db.lastCkpt = time.Now()
	return nil
}

// flushDeferred writes the deferred records to badger. The lock is held
// through the write: a reader finds each record in one place or the other,
// and the committer cannot decide about a record's delete meanwhile.
func (db *DB) flushDeferred() error {
	db.defMu.Lock()
	defer db.defMu.Unlock()
	if len(db.deferred) == 0 {
		return nil
	}
	ops := make([]op, 0, len(db.deferred))
	for id, d := range db.deferred {
		ops = append(ops, op{key: []byte(prefixUnfinshed + id), val: d.val})
	}
	if err := db.writeOps(ops); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	clear(db.deferred)
	return nil
}

// deferredRecord returns the deferred record of id, if any.
func (db *DB) deferredRecord(id string) ([]byte, bool) {
	db.defMu.Lock()
	d, ok := db.deferred[id]
	db.defMu.Unlock()
	return d.val, ok
}

// openLog opens the commit log and replays it into badger: the batches
// committed since the last checkpoint, which badger may have lost with its
// unsynced writes. Then it checkpoints, so the log starts empty.
func (db *DB) openLog() error {
	w, err := openWAL(db.opts.Dir, db.opts.LogSize)
	if err != nil {
		return err
	}
	db.wal = w
	n, err := w.replay(db.writeOps)
	if err == nil {
		err = db.checkpoint()
	}
	if err != nil {
		db.closeLog()
		return fmt.Errorf("store: replay commit log: %w", err)
	}
	if n > 0 {
		db.log.Info("commit log replayed", "batches", n)
	}
	return nil
}

func (db *DB) closeLog() {
	if db.wal != nil {
		db.wal.close()
		db.wal = nil
	}
}

// undoBorn deletes, best effort, what a failed batch wrote for messages
// accepted in it: a failed fsync leaves badger's write readable, and a
// refused message must not be (its dedup key would answer the sender's
// resubmission with an ID nobody delivers until the next start). If the
// record still reaches the disk without its delete, it is delivered after
// a restart: at least once, never lost. Updates of earlier messages stay:
// their durable state is older, which again errs towards delivering twice.
func (db *DB) undoBorn(ops []op) {
	var dels []op
	for i := range ops {
		if o := &ops[i]; o.born && !o.dead && !o.del {
			dels = append(dels, op{key: o.key, del: true})
		}
	}
	if len(dels) == 0 {
		return
	}
	if err := db.writeOps(dels); err != nil {
		db.log.Warn("refused messages may stay readable until restart", "count", len(dels), "err", err)
	}
}

// writeOps writes ops in as few badger transactions as badger's size limit allows.
func (db *DB) writeOps(ops []op) error {
	if db.bdb.IsClosed() {
		// badger blocks forever in NewTransaction once closed.
		return badger.ErrDBClosed
	}
	txn := db.bdb.NewTransaction(true)
	defer func() { txn.Discard() }()
	for i := 0; i < len(ops); i++ {
		o := &ops[i]
		if o.dead {
			continue
		}
		var err error
		if o.del {
			err = txn.Delete(o.key)
		} else {
			e := badger.NewEntry(o.key, o.val)
			e.ExpiresAt = o.expiresAt
			err = txn.SetEntry(e)
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return fmt.Errorf("store: commit: %w", err)
			}
			txn = db.bdb.NewTransaction(true)
			i--
			continue
		}
		if err != nil {
			return fmt.Errorf("store: write %q: %w", o.key, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func (db *DB) getBuf() *[]byte {
	if p, ok := db.bufs.Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 512)
	return &b
}

func (db *DB) putBuf(p *[]byte) {
	if p == nil || cap(*p) > 64<<10 { // don't pin rare huge buffers
		return
	}
	db.bufs.Put(p)
}

// maintain deletes expired final records and runs value-log GC on timers
// and, while unhealthy, probe writes
// so that Healthy recovers once the disk does (callers stop writing then).
func (db *DB) maintain(ctx context.Context) {
	defer db.bg.Done()
	gc := time.NewTicker(db.opts.GCInterval)
	defer gc.Stop()
	sweep := time.NewTicker(db.opts.SweepInterval)
	defer sweep.Stop()
	probe := time.NewTicker(db.opts.ProbeInterval)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			if d, err := db.sweepExpired(ctx, time.Now()); err != nil {
				db.log.Warn("deleting expired records failed", "err", err)
			} else if d > 0 {
				db.log.Debug("expired records deleted", "count", d, "retention", db.opts.Retention)
			}
		case <-gc.C:
			n := 0
			for ctx.Err() == nil && db.bdb.RunValueLogGC(0.5) == nil {
				n++
			}
			if n > 0 {
				db.log.Debug("value log GC", "rewritten_files", n)
			}
		case <-probe.C:
			if db.Healthy() != nil {
				_ = db.put(ctx, []byte(keyProbe), []byte{1})
			}
		}
	}
}

// Healthy returns nil, or the error of the last failed write or fsync while
// no write has succeeded since. While it is non-nil callers must stop
// acknowledging messages.
func (db *DB) Healthy() error {
	if db.isClosed() {
		return ErrClosed
	}
	if e := db.lastErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// Stats returns the committer's counters.
func (db *DB) Stats() Stats {
	s := Stats{
		Commits: db.writes.Load(),
		Batches: db.batches.Load(),
		Failed:  db.failed.Load(),
		Pending: int(db.pending.Load()),
		Cached:  db.cache.len(),
	}
	if s.Batches > 0 {
		s.AvgBatch = float64(s.Commits) / float64(s.Batches)
	}
	if e := db.lastErr.Load(); e != nil {
		s.LastError = e.err
	}
	return s
}

func reserved(key []byte) bool {
	return len(key) == 0 || bytes.HasPrefix(key, []byte(prefixMsg)) || bytes.HasPrefix(key, []byte(prefixInternal))
}

// Put durably stores val under key: when it returns nil the write is on disk.
// Keys under "m/" and "_/" are reserved.
func (db *DB) Put(ctx context.Context, key, val []byte) error {
	if reserved(key) {
		return fmt.Errorf("put %q: %w", key, ErrReservedKey)
	}
	return db.put(ctx, key, val)
}

func (db *DB) put(ctx context.Context, key, val []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.waitRoom(); err != nil {
		return err
	}
	// Copy: if ctx ends first the batch still holds the bytes after we return.
	buf := db.getBuf()
	*buf = append(append(*buf, key...), val...)
	ops := [1]op{{key: (*buf)[:len(key):len(key)], val: (*buf)[len(key):]}}
	b, err := db.submit(ops[:], buf)
	if err != nil {
		return err
	}
	return db.wait(ctx, b)
}

// Delete durably removes key.
func (db *DB) Delete(ctx context.Context, key []byte) error {
	if reserved(key) {
		return fmt.Errorf("delete %q: %w", key, ErrReservedKey)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.waitRoom(); err != nil {
		return err
	}
	buf := db.getBuf()
	*buf = append(*buf, key...)
	ops := [1]op{{key: *buf, del: true}}
	b, err := db.submit(ops[:], buf)
	if err != nil {
		return err
	}
	return db.wait(ctx, b)
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	if reserved(key) {
		return nil, fmt.Errorf("get %q: %w", key, ErrReservedKey)
	}
	return db.get(key)
}

func (db *DB) get(key []byte) ([]byte, error) {
	if db.bdb.IsClosed() {
		return nil, ErrClosed
	}
	var val []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err = it.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, ErrNotFound
	case errors.Is(err, badger.ErrDBClosed):
		return nil, ErrClosed
	case err != nil:
		return nil, fmt.Errorf("store: get %q: %w", key, err)
	}
	return val, nil
}

// Iterate calls fn for every key with prefix, in key order, over a consistent
// snapshot. key and val are valid only during the call. Reserved keys are
// never visited. An error from fn stops the iteration and is returned.
func (db *DB) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = prefix
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			k := item.Key()
			if reserved(k) {
				continue
			}
			if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return ErrClosed
	}
	return err
}

// badgerLogger routes badger's logs to slog; badger's Info is chatty, so it
// goes to Debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.logf(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.logf(slog.LevelWarn, f, a)
}
func (b badgerLogger) Infof(f string, a ...any)  { b.logf(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any) { b.logf(slog.LevelDebug-4, f, a) }

func (b badgerLogger) logf(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) { // badger calls Debugf on every write: don't format
		return
	}
	b.l.Log(ctx, level, string(bytes.TrimSpace(fmt.Appendf(nil, f, a...))), "component", "badger")
}
