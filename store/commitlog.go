package store

import (
	"fmt"
	"time"
)

// The committer's logged path: a batch is durable once the commit log
// (wal.go) holds it; badger gets it unsynced, except the unfinished
// records, which wait in deferred until the next checkpoint syncs badger.
//
// The log is a pair of files, so that a checkpoint does not stop the
// commits: it moves the deferred records into badger, switches the
// appends to the other file (a new generation starting at the next batch)
// and syncs badger in the background, while batches go on into the new
// file. Once that sync has returned, the old file holds nothing badger
// lacks and is free for the next switch; until then no switch happens.
// Replay reads both: the older file first when its batches run up to the
// newer file's first one, since replaying any run of batches that ends at
// the last one is idempotent.

// openLog opens the commit log pair and replays it into badger: the
// batches committed since the last checkpoint, which badger may have lost
// with its unsynced writes. Then it checkpoints, so the log starts empty.
func (c *committer) openLog(dir string, size int64) error {
	a, err := openWALFile(dir, walFile, size)
	if err != nil {
		return err
	}
	b, err := openWALFile(dir, walFileB, size)
	if err != nil {
		a.close()
		return err
	}
	newer, older := a, b
	if b.gen > a.gen {
		newer, older = b, a
	}
	c.wal, c.spare = newer, older
	n, err := c.replayPair()
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

// replayPair replays the older file (c.spare) if its batches lead into
// the newer one's (c.wal), or are the last ones (the newer file has none:
// a switch that failed after its header was written), then the newer.
func (c *committer) replayPair() (int, error) {
	apply := func(ops []op) error { return writeOps(c.bdb, ops) }
	o, w := c.spare, c.wal
	olderRecs, err := o.replay(func([]op) error { return nil })
	if err != nil {
		return 0, err
	}
	end := o.next
	o.rewind()
	newerRecs, err := w.replay(func([]op) error { return nil })
	if err != nil {
		return 0, err
	}
	w.rewind()
	n := 0
	if olderRecs > 0 && (end == w.start || (newerRecs == 0 && end > w.start && o.start < w.start)) {
		if n, err = o.replay(apply); err != nil {
			return n, err
		}
	}
	m, err := w.replay(apply)
	n += m
	if err != nil {
		return n, err
	}
	if o.next > w.next { // the older file held the last batches
		w.next = o.next
	}
	return n, nil
}

func (c *committer) closeLog() {
	for _, w := range []*wal{c.wal, c.spare} {
		if w != nil {
			w.close()
		}
	}
	c.wal, c.spare = nil, nil
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

// maybeCheckpoint collects a background sync that has returned, and
// starts a checkpoint when the interval has passed or the log is half
// full and none is running.
func (c *committer) maybeCheckpoint() {
	if c.wal == nil {
		return
	}
	if c.syncing != nil {
		select {
		case err := <-c.syncing:
			c.syncing = nil
			c.endCheckpoint(err)
		default:
			return
		}
	}
	if time.Since(c.lastCkpt) < c.ckptEvery && (c.unapplied || c.wal.used() < c.wal.size/2) {
		return
	}
	if err := c.flushDeferred(); err != nil {
		c.noteResult(err)
		return
	}
	// Badger refused logged writes (unapplied): the log is kept whole
	// until the next Open replays it, so nothing is switched or freed.
	if c.spareFree && !c.unapplied {
		if err := c.spare.restartAt(c.wal.gen+1, c.wal.next); err != nil {
			// Appends stay in the current file; replay still finds them
			// (replayPair), and the switch is tried at the next checkpoint.
			c.noteResult(fmt.Errorf("store: checkpoint: switch commit log: %w", err))
			return
		}
		c.wal, c.spare = c.spare, c.wal
		c.spareFree = false
	}
	c.syncStart = time.Now()
	ch := make(chan error, 1)
	c.syncing = ch
	hook := c.ckptSync
	go func() {
		if hook != nil {
			hook()
		}
		ch <- c.bdb.Sync()
	}()
}

// endCheckpoint takes the result of a background badger sync: on success
// the file appended to before it started is free.
func (c *committer) endCheckpoint(err error) {
	if c.onCkpt != nil {
		c.onCkpt(time.Since(c.syncStart))
	}
	if err != nil {
		c.noteResult(fmt.Errorf("store: checkpoint: sync badger: %w", err))
		return
	}
	c.spareFree = !c.unapplied
	c.lastCkpt = time.Now()
}

// checkpoint moves the deferred records into badger, syncs badger and
// starts the log over, in the caller's goroutine: Open before run starts
// and finish after it has ended call it, when no commit waits.
func (c *committer) checkpoint() error {
	if c.syncing != nil {
		c.endCheckpoint(<-c.syncing)
		c.syncing = nil
	}
	if err := c.flushDeferred(); err != nil {
		return err
	}
	if err := c.bdb.Sync(); err != nil {
		return fmt.Errorf("store: checkpoint: sync badger: %w", err)
	}
	if !c.unapplied { // else the log grows until the next Open replays it
		if err := c.wal.restartAt(max(c.wal.gen, c.spare.gen)+1, c.wal.next); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
		c.spareFree = true
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
