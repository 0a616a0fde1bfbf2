package store

import (
	"fmt"
	"time"
)

// The committer's logged path: a batch is durable once the commit log
// (wal.go) holds it; badger gets it unsynced, except the unfinished
// records, which wait in deferred until the next checkpoint syncs badger
// and starts the log over.

// openLog opens the commit log and replays it into badger: the batches
// committed since the last checkpoint, which badger may have lost with its
// unsynced writes. Then it checkpoints, so the log starts empty.
func (c *committer) openLog(dir string, size int64) error {
	w, err := openWAL(dir, size)
	if err != nil {
		return err
	}
	c.wal = w
	n, err := w.replay(func(ops []op) error { return writeOps(c.bdb, ops) })
	if err == nil {
		err = c.checkpoint()
	}
	if err != nil {
		c.closeLog()
		return fmt.Errorf("store: replay commit log: %w", err)
	}
	if n > 0 {
		c.log.Info("commit log replayed", "batches", n)
	}
	return nil
}

func (c *committer) closeLog() {
	if c.wal != nil {
		c.wal.close()
		c.wal = nil
	}
}

// commitLogged makes ops durable in the commit log, then hands them to
// badger unsynced, except the unfinished records, which wait in deferred.
// A batch whose log write fails reached neither badger nor (as far as
// replay goes) the log; one badger refuses after it is logged is replayed
// at the next Open (unapplied).
func (c *committer) commitLogged(ops []op) error {
	// A few stats per group commit, next to its fsync: no batch is
	// acknowledged from a log that no restart can read.
	c.fs.check()
	if err := c.fs.failed(); err != nil {
		return err
	}
	n, err := c.wal.append(ops)
	if f := c.syncFault; err == nil && f != nil {
		if err = f(); err != nil {
			err = fmt.Errorf("store: fsync: %w", err)
		}
	}
	if err != nil {
		return err
	}
	c.wal.advance(n)
	direct := c.deferred.take(ops, c.direct[:0])
	if f := c.applyFault; f != nil {
		err = f()
	}
	if err == nil {
		err = writeOps(c.bdb, direct)
	}
	clear(direct)
	c.direct = direct[:0]
	if err != nil {
		// Logged, so durable: the next Open replays it. Until then badger
		// misses these writes, so say so (Healthy) rather than serve them,
		// and keep the log.
		if !c.unapplied {
			c.log.Error("store: badger refused logged writes; the commit log is kept until the next start replays it", "err", err)
		}
		c.unapplied = true
		return fmt.Errorf("store: logged but not applied: %w", err)
	}
	return nil
}

// maybeCheckpoint checkpoints when the interval has passed or the log is
// half full.
func (c *committer) maybeCheckpoint() {
	if c.wal == nil {
		return
	}
	if time.Since(c.lastCkpt) < c.ckptEvery && (c.unapplied || c.wal.used() < c.wal.size/2) {
		return
	}
	if err := c.checkpoint(); err != nil {
		c.noteResult(err)
	}
}

// checkpoint moves the deferred records into badger, syncs badger and
// starts the log over. Only run (or Open before it, or Close after it)
// calls it.
func (c *committer) checkpoint() error {
	if err := c.flushDeferred(); err != nil {
		return err
	}
	if err := c.bdb.Sync(); err != nil {
		return fmt.Errorf("store: checkpoint: sync badger: %w", err)
	}
	if !c.unapplied { // else the log grows until the next Open replays it
		if err := c.wal.restart(); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
	}
	c.lastCkpt = time.Now()
	return nil
}

// flushDeferred writes the deferred records to badger (checkpoints, and
// Unfinished, which walks badger).
func (c *committer) flushDeferred() error { return c.deferred.flush(c.bdb) }

// deferredRecord returns the deferred record of id, if any: it is newer
// than any in badger.
func (c *committer) deferredRecord(id string) ([]byte, bool) { return c.deferred.get(id) }
