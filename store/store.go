package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors returned by the store.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrClosed      = errors.New("store: closed")
	ErrReservedKey = errors.New(`store: key is empty or under a reserved prefix ("!m/", "m/", "_/")`)
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
	// KeepText keeps a final record's whole text. By default it keeps what
	// a delivery receipt quotes (smstext.ReceiptText): nothing else reads a finished
	// message's text, and every byte of the records kept for the retention
	// period is written, flushed and compacted by badger.
	KeepText       bool
	Retention      time.Duration // how long final message records stay queryable (default 24h)
	CacheRecords   int           // in-memory cache of unfinished records (default 32768)
	ProbeInterval  time.Duration // while unhealthy, how often a probe write checks for recovery (default 1s)
	CommitInterval time.Duration // least time between the starts of two group commits while the batch is under MaxBatch/2 (0 = commit as soon as the last one ends)
	DedupWindow    time.Duration // longest window given to Stage's Dedup: Open reloads the keys of messages accepted that recently (0 = only unfinished ones)
	// ClientKeyWindow is the same for clients' own keys (Dedup.Client).
	// Open reads every record accepted within the longer of the two.
	ClientKeyWindow time.Duration
	// DedupMaxKeys bounds each of the two in-memory key indexes (about 57
	// bytes a key; default 4,000,000). Past half of it a window's keys
	// rotate early: the window shrinks, so a late resubmission may be
	// delivered again, never lost.
	DedupMaxKeys int
	// LogSize is the commit log's initial allocation (default 64 MiB; it
	// grows if one checkpoint interval's batches need more).
	LogSize int64
	// CheckpointInterval is how often badger and the open segment of final
	// records are synced and the commit log started over (default 1s; also
	// when the log is half full). Unfinished records wait in memory until
	// then (deferred.go).
	CheckpointInterval time.Duration
	// PageOutInterval is how often the files badger is done with
	// (finished value-log files, tables unchanged for a minute) are paged
	// out of the process's memory (default 10s; negative: never). Badger
	// keeps every file mapped, and without this the resident set grows with
	// the records of the retention period until the kernel runs short of
	// memory (pageout_linux.go).
	PageOutInterval time.Duration
	// Metrics turns on badger's expvar counters (compactions in progress,
	// bytes written per level; process-global), which the admin listener
	// serves at /debug/vars: they show when a compaction is what slows
	// acknowledgements.
	Metrics bool
	// OnCommit and OnCheckpoint, if set, get the wall time of each group
	// commit (log write and fsync, which its writers wait for, and the
	// hand-off to the applier) and each checkpoint (on the applier, which
	// reads of later writes wait for). Called on those goroutines: they
	// must not block.
	OnCommit, OnCheckpoint func(time.Duration)
}

const (
	// prefixMsg holds final records. It sorts below every other key, so a
	// table badger builds from a memtable (final records of the newest IDs
	// among "_/u/" records and other packages' keys) spans no older final
	// record, and compacting it rewrites recent records only, not those of
	// the whole retention period.
	prefixMsg = "!m/"
	// prefixOldMsg holds final records of the layout that kept them among
	// the other keys: still read and swept as they expire, never written.
	prefixOldMsg     = "m/"
	prefixInternal   = "_/"
	keyEpoch         = "_/epoch"
	keyProbe         = "_/probe"
	prefixUnfinished = "_/u/"
)

// DB is the store. All methods are safe for concurrent use. It composes
// the parts below; each keeps its own state and locks.
type DB struct {
	bdb  *badger.DB
	opts Options
	log  *slog.Logger
	fs   *failStop // the store's end, once it cannot go on (failstop.go)

	committer  committer  // group commit, commit log, checkpoints (commit.go)
	cache      cache      // records with writes in flight, recent unfinished ones (cache.go)
	dedup      dedupIndex // duplicate-suppression keys (dedup.go)
	clientKeys dedupIndex // clients' own keys (Dedup.Client)
	sweeper    sweeper    // deletes expired final records (retention.go)
	oldSweeper sweeper    // the same under prefixOldMsg
	ids        idGen      // message IDs (id.go)

	stop      context.CancelFunc
	bg        sync.WaitGroup // the committer and maintain goroutines
	closeOnce sync.Once
	closeErr  error
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
	// DedupKeys is how many keys the two duplicate indexes hold, and
	// DedupShortened how often one rotated early at DedupMaxKeys.
	DedupKeys      int
	DedupShortened uint64
	// FinalSegments is how many segment files hold final records (0: they
	// are in badger, as in memory).
	FinalSegments int
}

// DefaultDedupMaxKeys is Options.DedupMaxKeys's default.
const DefaultDedupMaxKeys = 4_000_000

// Open opens (or creates) the store.
func Open(opts Options) (*DB, error) { return open(opts, knobs{}) }

func open(opts Options, k knobs) (*DB, error) {
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
	if opts.DedupMaxKeys <= 0 {
		opts.DedupMaxKeys = DefaultDedupMaxKeys
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
	if opts.PageOutInterval == 0 {
		opts.PageOutInterval = 10 * time.Second
	}
	fs := newFailStop(opts.Dir, opts.Logger)
	bo := badgerOptions(opts, k.syncEach, fs)
	if k.vlogMaxEntries > 0 {
		bo = bo.WithValueLogMaxEntries(k.vlogMaxEntries)
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open badger at %q: %w", opts.Dir, err)
	}
	db := &DB{
		bdb:        bdb,
		opts:       opts,
		log:        opts.Logger,
		fs:         fs,
		sweeper:    sweeper{bdb: bdb, prefix: []byte(prefixMsg)},
		oldSweeper: sweeper{bdb: bdb, prefix: []byte(prefixOldMsg)},
	}
	db.cache.init(opts.CacheRecords)
	if err := db.committer.init(bdb, opts, k, &db.cache, fs); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := fs.arm(); err != nil {
		db.committer.closeLog()
		bdb.Close()
		return nil, err
	}
	if err := db.ids.init(bdb); err != nil {
		db.committer.closeLog()
		bdb.Close()
		return nil, err
	}
	db.dedup.init(opts.DedupMaxKeys)
	db.clientKeys.init(opts.DedupMaxKeys)
	if n, err := loadDedup(bdb, db.committer.finals, time.Now(), max(opts.DedupWindow, opts.ClientKeyWindow), &db.dedup, &db.clientKeys); err != nil {
		db.committer.closeLog()
		bdb.Close()
		return nil, fmt.Errorf("store: load duplicate-suppression keys: %w", err)
	} else if n > 0 {
		db.log.Info("duplicate-suppression keys loaded", "keys", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.stop = cancel
	db.bg.Go(db.committer.run)
	if opts.Dir != "" {
		db.bg.Go(func() { db.maintain(ctx) })
	}
	return db, nil
}

// Close flushes pending writes, stops the committer and closes badger.
// Writes after Close return ErrClosed. Close is idempotent.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.fs.check() // a directory removed a moment ago: badger's Close would retry its flush forever
		done := make(chan error, 1)
		go func() {
			db.committer.shut()
			db.stop()
			db.bg.Wait()
			db.committer.finish()
			done <- db.bdb.Close()
		}()
		// On a failed store (now or while closing) badger gets closeAbandon,
		// then is left behind: its flush retries never end.
		var err error
		select {
		case err = <-done:
		case <-db.fs.ch:
			select {
			case err = <-done:
			case <-time.After(closeAbandon):
				err = errors.New("badger did not close; left behind")
			}
		}
		switch failed := db.fs.failed(); {
		case failed != nil && err != nil:
			db.closeErr = fmt.Errorf("store: closed after failing: %w (badger: %v)", failed, err)
		case failed != nil:
			db.closeErr = fmt.Errorf("store: closed after failing: %w", failed)
		case err != nil:
			db.closeErr = fmt.Errorf("store: close badger: %w", err)
		}
	})
	return db.closeErr
}

// maintain deletes expired final records and runs value-log GC on timers
// and, while unhealthy, probe writes so that Healthy recovers once the
// disk does (callers stop writing then).
func (db *DB) maintain(ctx context.Context) {
	gc := time.NewTicker(db.opts.GCInterval)
	defer gc.Stop()
	sweep := time.NewTicker(db.opts.SweepInterval)
	defer sweep.Stop()
	probe := time.NewTicker(db.opts.ProbeInterval)
	defer probe.Stop()
	var pageOut <-chan time.Time
	vlogDir, err := filepath.Abs(db.opts.Dir)
	if err == nil {
		// /proc/self/maps names files by their resolved path.
		vlogDir, err = filepath.EvalSymlinks(vlogDir)
	}
	if db.opts.PageOutInterval > 0 && err == nil {
		t := time.NewTicker(db.opts.PageOutInterval)
		defer t.Stop()
		pageOut = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			db.committer.signal() // a checkpoint seals an idle store's segment when due
			if fl := db.committer.finals; fl != nil {
				if n, err := fl.dropExpired(time.Now()); err != nil {
					db.log.Warn("deleting expired records failed", "err", err)
				} else if n > 0 {
					db.log.Debug("expired segments of final records deleted", "count", n, "retention", db.opts.Retention)
				}
			}
			for _, s := range []*sweeper{&db.sweeper, &db.oldSweeper} {
				if d, err := s.expired(ctx, time.Now()); err != nil {
					db.log.Warn("deleting expired records failed", "err", err)
				} else if d > 0 {
					db.log.Debug("expired records deleted", "count", d, "retention", db.opts.Retention)
				}
			}
		case <-gc.C:
			n := 0
			for ctx.Err() == nil && db.bdb.RunValueLogGC(0.5) == nil {
				n++
			}
			if n > 0 {
				db.log.Debug("value log GC", "rewritten_files", n)
			}
		case <-pageOut:
			err := pageOutCold(vlogDir, time.Now())
			if errors.Is(err, errNoPageOut) {
				db.log.Info("badger's finished files stay in memory until the kernel needs it", "reason", err)
				pageOut = nil
			} else if err != nil {
				db.log.Warn("paging out badger's finished files failed", "err", err)
			}
		case <-probe.C:
			db.fs.check()
			if db.Healthy() != nil && db.fs.failed() == nil {
				_ = db.put(ctx, []byte(keyProbe), []byte{1})
			}
		}
	}
}

// Healthy returns nil, or the error of the last failed write or fsync while
// no write has succeeded since. While it is non-nil callers must stop
// acknowledging messages.
func (db *DB) Healthy() error { return db.committer.healthy() }

// Stats returns the committer's counters.
func (db *DB) Stats() Stats {
	s := db.committer.stats()
	s.Cached = db.cache.len()
	if fl := db.committer.finals; fl != nil {
		s.FinalSegments = fl.segments()
	}
	for _, x := range []*dedupIndex{&db.dedup, &db.clientKeys} {
		n, short := x.stats()
		s.DedupKeys += n
		s.DedupShortened += short
	}
	return s
}
