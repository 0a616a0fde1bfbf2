package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// valueThreshold: values this long or longer live in badger's value log.
const valueThreshold = 64

// valueLogEntries: records per value-log file (badger's default is a
// million). The file being written stays in memory until badger finishes
// it (pageout_linux.go), so this bounds that part of the resident set: at
// about 200 bytes a record, some 50 MB.
const valueLogEntries = 250_000

// badgerOptions configures badger for opts; syncWrites makes badger fsync
// every write itself.
func badgerOptions(opts Options, syncWrites bool, fs *failStop) badger.Options {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.Dir == "").
		WithLogger(badgerLogger{opts.Logger, fs}).
		WithSyncWrites(syncWrites).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(2).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(opts.IndexCacheSize).
		WithMetricsEnabled(opts.Metrics). // process-global expvars
		WithDetectConflicts(false).       // all writes are blind sets from one committer
		// Tables hold keys and value pointers (values live in the value
		// log), which compress little; Snappy on every memtable flush and
		// compaction was CPU taken from the acknowledgements on a busy box.
		WithCompression(options.None)
	if opts.Dir != "" {
		// Values (message records) go to badger's value log and only keys
		// and value pointers through its LSM tree: the final records kept
		// for the retention period are then written once, not rewritten by
		// every compaction.
		bo = bo.WithValueThreshold(valueThreshold).WithValueLogMaxEntries(valueLogEntries)
	}
	return bo
}

// writeOps writes ops to bdb, unsynced, in as few transactions as badger's
// size limit allows. Superseded ops (op.dead) are skipped.
func writeOps(bdb *badger.DB, ops []op) error {
	if bdb.IsClosed() {
		// badger blocks forever in NewTransaction once closed.
		return badger.ErrDBClosed
	}
	txn := bdb.NewTransaction(true)
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
			txn = bdb.NewTransaction(true)
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

// badgerLogger routes badger's logs to slog; badger's Info is chatty, so it
// goes to Debug. Its errors also go to fs: badger has no other way to tell
// that a flush failed.
type badgerLogger struct {
	l  *slog.Logger
	fs *failStop
}

func (b badgerLogger) Errorf(f string, a ...any) {
	b.fs.badgerError(fmt.Sprintf(f, a...))
	b.logf(slog.LevelError, f, a)
}
func (b badgerLogger) Warningf(f string, a ...any) { b.logf(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.logf(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.logf(slog.LevelDebug-4, f, a) }

func (b badgerLogger) logf(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) { // badger calls Debugf on every write: don't format
		return
	}
	b.l.Log(ctx, level, string(bytes.TrimSpace(fmt.Appendf(nil, f, a...))), "component", "badger")
}
