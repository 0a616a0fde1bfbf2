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
// commits: the committer switches the appends to the other file (a new
// generation starting at the next batch) and queues the checkpoint to the
// applier, which, once every batch before it is in badger, moves the
// deferred records into badger and syncs it, while batches go on into the
// new file. Once that sync has returned, the old file holds nothing badger
// lacks and is free for the next switch; until then no switch happens.
// Replay reads both: the older file first when its batches run up to the
// newer file's first one, since replaying any run of batches that ends at
// the last one is idempotent.

// openLog opens the commit log pair and replays it into badger: the
// batches committed since the last checkpoint, which badger may have lost
// with its unsynced writes. Then it checkpoints, so the log starts empty.
func (c *committer) openLog(dir string, size int64) error {
	if err := c.openPair(dir, size); err != nil {
		return err
	}
	n, err := c.replayPair(c.apply)
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

// openPair opens both files of the log: the one of the newer generation
// becomes c.wal, the other c.spare.
func (c *committer) openPair(dir string, size int64) error {
	a, err := openWALFile(dir, walFile, size)
	if err != nil {
		return err
	}
	b, err := openWALFile(dir, walFileB, size)
	if err != nil {
		a.close()
		return err
	}
	c.wal, c.spare = a, b
	if b.gen > a.gen {
		c.wal, c.spare = b, a
	}
	return nil
}

// replayPair hands apply the older file's batches (c.spare) if they lead
// into the newer one's (c.wal), or are the last ones (the newer file has
// none: a switch that failed after its header was written), then the
// newer file's, and returns how many it handed over.
func (c *committer) replayPair(apply func([]op) error) (int, error) {
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
	c.finals.closeFiles()
}

// apply writes a logged batch's ops (replayed or from the applier): the
// final records to finals, the rest to badger.
func (c *committer) apply(ops []op) error {
	if c.finals == nil {
		return writeOps(c.bdb, ops)
	}
	fin, rest := c.applyFin[:0], c.applyRest[:0]
	for i := range ops {
		if o := &ops[i]; o.dead {
			continue
		} else if !o.del && len(o.key) > len(prefixMsg) && string(o.key[:len(prefixMsg)]) == prefixMsg {
			fin = append(fin, *o)
		} else {
			rest = append(rest, *o)
		}
	}
	err := c.finals.append(fin)
	if err == nil {
		err = writeOps(c.bdb, rest) // also with none: it notices a closed badger
	}
	clear(fin)
	clear(rest)
	c.applyFin, c.applyRest = fin[:0], rest[:0]
	return err
}

// commitLogged makes ops durable in the commit log and returns the ops
// badger must get (the applier writes them): all but the unfinished
// records, which wait in deferred. A batch whose log write fails reached
// neither badger nor (as far as replay goes) the log.
func (c *committer) commitLogged(ops []op) ([]op, error) {
	// An fstat per group commit, next to its fsync: no batch is
	// acknowledged from a log that no restart can read.
	c.fs.checkLog(c.wal.f, time.Now())
	if err := c.fs.failed(); err != nil {
		return nil, err
	}
	n, err := c.wal.append(ops)
	if f := c.syncFault; err == nil && f != nil {
		if err = f(); err != nil {
			err = fmt.Errorf("store: fsync: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	c.wal.advance(n)
	var direct []op
	if p, ok := c.directBuf.Get().(*[]op); ok {
		direct = (*p)[:0]
	}
	return c.deferred.take(ops, direct), nil
}

// applyDepth bounds the batches logged and acknowledged but not yet in
// badger; past it the committer waits for the applier.
const applyDepth = 64

// applyJob is one committed batch on its way to badger.
type applyJob struct {
	seq    uint64
	ops    []op // the batch's ops, for cache upkeep
	bufs   []*[]byte
	direct []op   // what badger gets
	b      *batch // released by the applier, not at once (applyFailing)
	ckpt   bool   // a checkpoint, not a batch (applyCheckpoint)
}

// commitPiped commits b to the log and hands it to the applier. Its
// writers are released at once, durable in the log, unless badger is
// refusing writes: then they wait for badger and hear its answer, as a
// store whose backing database fails must refuse work.
func (c *committer) commitPiped(b *batch) {
	direct, err := c.commitLogged(b.ops)
	c.writes.Add(uint64(len(b.ops) - b.dead))
	c.batches.Add(1)
	if err != nil {
		c.noteResult(err)
		// Disk is the truth for a failed batch, so its records leave the
		// cache, once badger has every batch before it.
		c.waitSeq(b.seq - 1)
		b.err = err
		c.committed.Store(b.seq)
		for i := range b.ops {
			if o := &b.ops[i]; o.id != "" {
				c.cache.dropIfSeq(o.id, b.seq)
			}
		}
		c.recycle(b.ops, b.bufs)
		b.ops, b.bufs = nil, nil
		c.setApplied(b.seq) // the applier is idle: nothing after b was queued
		close(b.done)
		return
	}
	c.committed.Store(b.seq)
	j := applyJob{seq: b.seq, ops: b.ops, bufs: b.bufs, direct: direct}
	b.ops, b.bufs = nil, nil
	if c.applyFailing.Load() {
		j.b = b
	} else {
		close(b.done)
	}
	c.applyQ <- j
}

// applier writes committed batches to badger in order until applyQ is
// closed. Badger can take a long time over one write (a full memtable
// makes it allocate and zero the next one's arena), and the commits go on
// meanwhile: readers of what it has not applied yet wait (waitApplied),
// and cached records stay cached until their batch is in badger.
func (c *committer) applier(done chan<- struct{}) {
	defer func() {
		c.applyMu.Lock()
		c.applyStopped = true
		c.applyCond.Broadcast()
		c.applyMu.Unlock()
		close(done)
	}()
	for j := range c.applyQ {
		if j.ckpt {
			c.applyCheckpoint()
			continue
		}
		var err error
		if f := c.applyFault; f != nil {
			err = f()
		}
		if err == nil {
			err = c.apply(j.direct)
		}
		if err != nil {
			// Logged, so durable: the next Open replays it. Until then
			// badger misses these writes, so say so (Healthy), keep the
			// log, and keep this batch's records cached.
			err = fmt.Errorf("store: logged but not applied: %w", err)
			if !c.unapplied.Swap(true) {
				c.log.Error("store: badger refused logged writes; the commit log is kept until the next start replays it", "err", err)
			}
			c.applyFailing.Store(true)
			c.noteResult(err)
		} else {
			c.applyFailing.Store(false)
			c.noteResult(nil)
			// A final record is served from badger from now on.
			for i := range j.ops {
				if o := &j.ops[i]; o.id != "" && o.final {
					c.cache.dropIfSeq(o.id, j.seq)
				}
			}
		}
		c.recycle(j.ops, j.bufs)
		clear(j.direct)
		direct := j.direct[:0]
		c.directBuf.Put(&direct)
		if j.b != nil {
			j.b.err = err
			close(j.b.done)
		}
		c.setApplied(j.seq)
	}
}

// recycle returns a finished batch's buffers and ops slice to their pools.
func (c *committer) recycle(ops []op, bufs []*[]byte) {
	for _, buf := range bufs {
		c.putBuf(buf)
	}
	clear(ops)
	ops = ops[:0]
	c.opsBuf.Put(&ops)
}

// setApplied records that badger has every batch up to seq.
func (c *committer) setApplied(seq uint64) {
	c.applyMu.Lock()
	c.applied.Store(seq)
	c.applyCond.Broadcast()
	c.applyMu.Unlock()
}

// waitApplied returns once badger has every batch committed before the
// call: a read after an acknowledged write sees it.
func (c *committer) waitApplied() { c.waitSeq(c.committed.Load()) }

// waitSeq returns once badger has every batch up to target (or the
// applier has stopped).
func (c *committer) waitSeq(target uint64) {
	if c.applied.Load() >= target || c.applyQ == nil {
		return
	}
	c.applyMu.Lock()
	for c.applied.Load() < target && !c.applyStopped {
		c.applyCond.Wait()
	}
	c.applyMu.Unlock()
}

// maybeCheckpoint starts a checkpoint when the interval has passed or the
// log is half full and none is queued: the switch to the other file, if it
// is free, and a checkpoint job for the applier (applyCheckpoint).
func (c *committer) maybeCheckpoint() {
	if c.wal == nil || c.ckptPending.Load() {
		return
	}
	if time.Since(c.lastCkpt) < c.ckptEvery && (c.unapplied.Load() || c.wal.used() < c.wal.size/2) {
		return
	}
	c.lastCkpt = time.Now()
	// Badger refused logged writes (unapplied): the log is kept whole
	// until the next Open replays it, so nothing is switched or freed. A
	// spare not yet free (its checkpoint's sync failed) is synced again
	// by this checkpoint, without a switch.
	if c.spareFree.Load() && !c.unapplied.Load() {
		if err := c.spare.restartAt(c.wal.gen+1, c.wal.next); err != nil {
			// Appends stay in the current file; replay still finds them
			// (replayPair), and the switch is tried at the next checkpoint.
			c.noteResult(fmt.Errorf("store: checkpoint: switch commit log: %w", err))
			return
		}
		c.wal, c.spare = c.spare, c.wal
		c.spareFree.Store(false)
	}
	c.ckptPending.Store(true)
	c.applyQ <- applyJob{ckpt: true}
}

// applyCheckpoint runs a queued checkpoint on the applier, after every
// batch before it: the deferred records into badger, badger synced; then
// the file appended to before the switch is free. Acknowledgements do not
// wait for it, reads of later batches do.
func (c *committer) applyCheckpoint() {
	defer c.ckptPending.Store(false)
	start := time.Now()
	if h := c.ckptSync; h != nil {
		h()
	}
	err := c.flushDeferred()
	if err == nil {
		err = c.syncAll()
	}
	if c.onCkpt != nil {
		c.onCkpt(time.Since(start))
	}
	if err != nil {
		c.noteResult(err)
		return
	}
	if !c.unapplied.Load() {
		c.spareFree.Store(true)
	}
}

// checkpoint moves the deferred records into badger, syncs badger and
// starts the log over, in the caller's goroutine: Open before run starts
// and finish after it has ended call it, when no commit waits.
func (c *committer) checkpoint() error {
	if err := c.flushDeferred(); err != nil {
		return err
	}
	if err := c.syncAll(); err != nil {
		return err
	}
	if !c.unapplied.Load() { // else the log grows until the next Open replays it
		if err := c.wal.restartAt(max(c.wal.gen, c.spare.gen)+1, c.wal.next); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
		c.spareFree.Store(true)
	}
	c.lastCkpt = time.Now()
	return nil
}

// syncAll syncs badger and the final records: a checkpoint's part before
// the log behind it is freed.
func (c *committer) syncAll() error {
	if err := c.bdb.Sync(); err != nil {
		return fmt.Errorf("store: checkpoint: sync badger: %w", err)
	}
	if c.finals != nil {
		if err := c.finals.checkpoint(time.Now()); err != nil {
			return fmt.Errorf("store: checkpoint: %w", err)
		}
	}
	return nil
}

// flushDeferred writes the deferred records to badger (checkpoints, and
// Unfinished, which walks badger).
func (c *committer) flushDeferred() error { return c.deferred.flush(c.bdb) }

// deferredRecord returns the deferred record of id, if any: it is newer
// than any in badger.
func (c *committer) deferredRecord(id string) ([]byte, bool) { return c.deferred.get(id) }
