package store

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// failStop notices a store that can never make a write durable again: its
// data directory removed or no longer writable (the commit log, an open but
// unlinked file, would keep taking writes that no restart could read), or
// badger failing its memtable flushes (it retries them every second, forever,
// and blocks its Close on them). Once failed the store stays failed: every
// commit fails with the reason, Healthy returns it, Failed is closed, and
// Close gives badger closeAbandon to finish before leaving it.
type failStop struct {
	dir  string
	info os.FileInfo // the directory as opened
	wal  bool        // it holds a commit log
	log  *slog.Logger

	lastPaths time.Time // of checkLog's last check by name; the committer's only

	flushErrs atomic.Int32
	err       atomic.Pointer[errBox]
	once      sync.Once
	ch        chan struct{}
}

// flushErrLimit: badger flush failures (one a second) before the store
// fails; a passing fault gets a retry or two.
const flushErrLimit = 3

// closeAbandon bounds Close on a failed store, so a process stops on
// SIGTERM instead of waiting on badger's retries.
const closeAbandon = 3 * time.Second

func newFailStop(dir string, log *slog.Logger) *failStop {
	return &failStop{dir: dir, log: log, ch: make(chan struct{})}
}

// arm notes the directory badger opened and whether it has a commit log,
// which check compares with.
func (f *failStop) arm() error {
	if f.dir == "" {
		return nil
	}
	info, err := os.Stat(f.dir)
	if err != nil {
		return fmt.Errorf("store: data directory: %w", err)
	}
	f.info = info
	_, err = os.Stat(filepath.Join(f.dir, walFile))
	f.wal = err == nil
	return nil
}

// failed returns the reason the store failed for good, or nil.
func (f *failStop) failed() error {
	if e := f.err.Load(); e != nil {
		return e.err
	}
	return nil
}

// fail records err as the store's end, once, and logs it.
func (f *failStop) fail(err error) {
	f.once.Do(func() {
		f.err.Store(&errBox{err})
		f.log.Error("store failed for good: nothing can be made durable any more; the bridge must stop", "err", err)
		close(f.ch)
	})
}

// pathsEvery bounds how long the committer goes without check (the
// lookups by name): a directory renamed away or made read-only is noticed
// within it. Removal, the case that loses acknowledged messages, is
// noticed at the next batch.
const pathsEvery = 20 * time.Millisecond

// checkLog runs before each commit batch: one fstat of the open commit log
// instead of three lookups by name (two stats and an access, a share of the
// committer's CPU worth having back at thousands of batches a second). A
// log with no link left is in a removed directory, or was removed itself,
// and no restart could read what it takes.
func (f *failStop) checkLog(log *os.File, now time.Time) {
	if f.info == nil || f.failed() != nil {
		return
	}
	if log != nil {
		var st syscall.Stat_t
		err := syscall.Fstat(int(log.Fd()), &st)
		switch {
		case err != nil:
			f.fail(fmt.Errorf("store: commit log: %w", err))
			return
		case st.Nlink == 0:
			f.fail(fmt.Errorf("store: commit log %s was removed while open", log.Name()))
			return
		}
	}
	if now.Sub(f.lastPaths) >= pathsEvery {
		f.lastPaths = now
		f.check()
	}
}

// check fails the store when its directory is gone, replaced or not writable.
func (f *failStop) check() {
	if f.info == nil || f.failed() != nil {
		return
	}
	now, err := os.Stat(f.dir)
	switch {
	case err != nil:
		f.fail(fmt.Errorf("store: data directory %s: %w", f.dir, err))
	case !os.SameFile(now, f.info):
		f.fail(fmt.Errorf("store: data directory %s was replaced while open", f.dir))
	default:
		if err := syscall.Access(f.dir, 2 /* W_OK */); err != nil {
			f.fail(fmt.Errorf("store: data directory %s not writable: %w", f.dir, err))
			return
		}
		if _, err := os.Stat(filepath.Join(f.dir, walFile)); f.wal && err != nil {
			f.fail(fmt.Errorf("store: commit log: %w", err))
		}
	}
}

// badgerError sees each error badger logs; a run of failed memtable
// flushes fails the store.
func (f *failStop) badgerError(msg string) {
	if f == nil || !strings.Contains(msg, "flushing memtable") {
		return
	}
	if f.flushErrs.Add(1) >= flushErrLimit {
		f.fail(fmt.Errorf("store: badger cannot flush its memtable: %s", msg))
	}
}

// Failed is closed once the store has failed for good (see Healthy for
// why): the process should stop, since nothing can be acknowledged.
func (db *DB) Failed() <-chan struct{} { return db.fs.ch }
