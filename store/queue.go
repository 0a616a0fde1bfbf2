package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/smsbridge/bridge/msg"
)

// Pending is an acceptance queued in a group commit (msg.Ack). The message
// may be worked on at once (its ID is set); its sender may be acknowledged
// only after Settle returns nil.
type Pending struct {
	c  *committer
	b  *batch // nil: nothing to wait for
	m  *msg.Message
	id string // m.ID at staging: Settle may clear m.ID while another goroutine waits
}

// Wait blocks until the acceptance is durable, or returns why it is not
// (wrapping msg.ErrNotStored). An error from ctx says nothing about the
// write: it may still become durable.
func (p Pending) Wait(ctx context.Context) error {
	if p.c == nil {
		return nil
	}
	if err := p.c.wait(ctx, p.b); err != nil {
		return fmt.Errorf("store: accept %s: %w: %w", p.id, msg.ErrNotStored, err)
	}
	return nil
}

// Done is closed when the commit holding the acceptance has ended, ok or
// not (Wait then returns at once); nil when there is nothing to wait for.
func (p Pending) Done() <-chan struct{} {
	if p.b == nil {
		return nil
	}
	return p.b.done
}

// Settle is Wait for the caller that acknowledges the message: on failure
// nobody may refer to it, so its ID is cleared. Its cached record stays: a
// failed commit drops it (commit), and after ctx gave up the commit may
// still succeed and the message's later updates need it.
func (p Pending) Settle(ctx context.Context) error {
	err := p.Wait(ctx)
	if err != nil {
		p.m.ID = ""
	}
	return err
}

// Dedup asks Stage to suppress copies: a message staged with the same Key
// within Window is not stored again. The zero value suppresses nothing.
type Dedup struct {
	Key    []byte
	Window time.Duration
	// Client marks a key the client chose (an HTTP Idempotency-Key): such
	// keys are honoured for a long window and are few, content keys for a
	// short one and are many, so each kind has an index of its own, rotated
	// by its own window.
	Client bool
}

// Stage assigns m.ID and m.Accepted and queues m's record into the next
// group commit without waiting for it: delivery can overlap the fsync while
// the acknowledgement waits for it (Pending). If the commit fails the
// message was never acknowledged, so a delivery that already happened is at
// worst repeated when the sender resubmits.
//
// With d.Key, a message staged under that key within d.Window is a
// duplicate: nothing is stored and its ID is returned as dup. Otherwise the
// key is kept inside m's record, so a crash can never leave a message
// acknowledged without its key or a key without its message; copies are
// recognised across a restart when the store is opened with
// Options.DedupWindow at least d.Window (a client's key: ClientKeyWindow). Callers keep concurrent copies with
// one key out until the first one settles.
func (db *DB) Stage(ctx context.Context, m *msg.Message, d Dedup) (dup string, p Pending, err error) {
	if m == nil {
		return "", Pending{}, fmt.Errorf("store: accept: nil message: %w", msg.ErrNotStored)
	}
	now := time.Now()
	if d.Key == nil {
		p, err = db.stage(ctx, m, now, "", 0)
		return "", p, err
	}
	if len(d.Key) == 0 {
		return "", Pending{}, fmt.Errorf("store: accept: empty dedup key: %w", msg.ErrNotStored)
	}
	x := &db.dedup
	if d.Client {
		x = &db.clientKeys
	}
	if id, ok := x.get(d.Key, now); ok {
		// The index is only as good as the record it names: one whose
		// commit failed was never acknowledged, and one under another key
		// is a hash collision; neither is a duplicate (the new message
		// takes the key over below).
		r, err := db.Message(id)
		if err == nil && r.dedup == d.recordKey() {
			return id, Pending{}, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", Pending{}, fmt.Errorf("store: accept: dedup lookup: %w: %w", msg.ErrNotStored, err)
		}
	}
	until := now.Add(d.Window).Unix()
	if p, err = db.stage(ctx, m, now, d.recordKey(), until); err != nil {
		return "", p, err
	}
	x.put(d.Key, m.ID, until, now, d.Window)
	return "", p, nil
}

// stage creates m's record (with its dedup key, if any), queues it and
// caches it.
func (db *DB) stage(ctx context.Context, m *msg.Message, now time.Time, dedup string, dedupUntil int64) (Pending, error) {
	if err := db.acceptPrep(ctx); err != nil {
		return Pending{}, err
	}
	buf := db.committer.getBuf()
	e, ops, n, err := db.newRecord(m, now, buf, dedup, dedupUntil)
	if err != nil {
		db.committer.putBuf(buf)
		return Pending{}, fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	b, err := db.committer.queueNew(&e.writePos, ops[:n], buf)
	if err != nil {
		m.ID = ""
		return Pending{}, fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	// Cached only now: until its write was queued nobody knew its ID, and
	// a Transition that finds no cache entry reads the disk.
	db.cache.add(e, db.committer.appliedSeq())
	return Pending{c: &db.committer, b: b, m: m, id: m.ID}, nil
}

func (db *DB) acceptPrep(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	if err := db.committer.waitRoom(); err != nil {
		return fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	return nil
}

func (db *DB) newRecord(m *msg.Message, now time.Time, buf *[]byte, dedup string, dedupUntil int64) (*centry, [2]op, int, error) {
	id, err := db.ids.next()
	if err != nil {
		return nil, [2]op{}, 0, err
	}
	m.ID, m.Accepted = id, now
	e := &centry{rec: Record{Msg: *m, State: msg.Accepted, Events: make([]Event, 1, 2), dedup: dedup, dedupUntil: dedupUntil}}
	e.rec.Events[0] = Event{State: msg.Accepted, At: now}
	ops, n, err := db.recordOps(&e.rec, buf)
	return e, ops, n, err
}

// Transition appends ev to the message's history and sets its state. With
// durable=true it returns after the group commit; with false it returns once
// queued (it is written with the next batch; a failure shows in Healthy).
// A final state starts the record's retention TTL. A message already final
// returns ErrFinal.
func (db *DB) Transition(ctx context.Context, id string, ev Event, durable bool) error {
	if !ev.State.Valid() {
		return fmt.Errorf("store: transition %s: %w %d", id, ErrBadState, ev.State)
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, err := db.update(ctx, id, false, func(r *Record) bool {
		r.State = ev.State
		r.addEvent(ev)
		return true
	})
	if err != nil {
		return fmt.Errorf("store: transition %s to %s: %w", id, ev.State, err)
	}
	if !durable {
		return nil
	}
	if err := db.committer.wait(ctx, b); err != nil {
		return fmt.Errorf("store: transition %s to %s: %w", id, ev.State, err)
	}
	return nil
}

// Reschedule records a failed attempt for a retry with back-off: it sets
// Attempts and NextAttempt and appends an event (current state, detail). The
// state itself is unchanged. It is durable when it returns nil.
func (db *DB) Reschedule(ctx context.Context, id string, attempts int, next time.Time, detail string) error {
	if attempts < 0 {
		return fmt.Errorf("store: reschedule %s: negative attempts %d", id, attempts)
	}
	now := time.Now()
	b, err := db.update(ctx, id, false, func(r *Record) bool {
		r.Attempts, r.NextAttempt = attempts, next
		r.addEvent(Event{State: r.State, At: now, Detail: detail})
		return true
	})
	if err == nil {
		err = db.committer.wait(ctx, b)
	}
	if err != nil {
		return fmt.Errorf("store: reschedule %s: %w", id, err)
	}
	return nil
}

// Amend rewrites what a sender may replace in a message not yet final:
// its text, schedule, validity and priority (from m, by m.ID), and appends
// detail to its history. It is durable when it returns nil; a final
// message returns ErrFinal.
func (db *DB) Amend(ctx context.Context, m *msg.Message, detail string) error {
	now := time.Now()
	b, err := db.update(ctx, m.ID, false, func(r *Record) bool {
		r.Msg.Text, r.Msg.NotBefore, r.Msg.Expires, r.Msg.Priority = m.Text, m.NotBefore, m.Expires, m.Priority
		r.addEvent(Event{State: r.State, At: now, Detail: detail})
		return true
	})
	if err == nil {
		err = db.committer.wait(ctx, b)
	}
	if err != nil {
		return fmt.Errorf("store: amend %s: %w", m.ID, err)
	}
	return nil
}

// RecordReceipt records the network's final word on a message, usually one
// already final: an SMSC delivery receipt for a message handed over as SMS,
// whose Delivered meant "the SMSC took it". It sets the state to ev.State
// (a final one) and appends ev, durably, also to a final record (whose
// retention starts again). The same state and detail as the latest event
// are a receipt heard twice: nothing is written.
func (db *DB) RecordReceipt(ctx context.Context, id string, ev Event) error {
	if !ev.State.Final() {
		return fmt.Errorf("store: receipt for %s: %w %s (want a final state)", id, ErrBadState, ev.State)
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, err := db.update(ctx, id, true, func(r *Record) bool {
		if n := len(r.Events); r.State == ev.State && n > 0 && r.Events[n-1].State == ev.State && r.Events[n-1].Detail == ev.Detail {
			return false
		}
		r.State = ev.State
		r.addEvent(ev)
		return true
	})
	if err == nil {
		err = db.committer.wait(ctx, b)
	}
	if err != nil {
		return fmt.Errorf("store: receipt for %s as %s: %w", id, ev.State, err)
	}
	return nil
}

// update applies fn to the record (from the cache, else from disk) and queues
// the rewrite unless fn reports no change. A final record is refused
// (ErrFinal) unless settle (RecordReceipt). The shard lock is held from read to enqueue, so
// writes of one record reach the batches in the order they were applied.
func (db *DB) update(ctx context.Context, id string, settle bool, fn func(*Record) bool) (*batch, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := db.committer.waitRoom(); err != nil {
			return nil, err
		}
		b, acc, err := db.updateOnce(id, settle, fn)
		if acc == nil {
			return b, err
		}
		// The acceptance is being committed: write after it, or not at
		// all if it failed (the message was refused).
		if err := db.committer.wait(ctx, acc); err != nil {
			return nil, fmt.Errorf("%w: its acceptance was not stored: %w", msg.ErrNotStored, err)
		}
	}
}

// updateOnce is update's attempt; acc != nil means nothing was queued
// because the record's acceptance (acc) is still being committed.
func (db *DB) updateOnce(id string, settle bool, fn func(*Record) bool) (b, acc *batch, err error) {
	sh := db.cache.lock(id)
	defer sh.unlock()
	e := sh.get(id)
	if e == nil {
		rec, err := db.loadRecord(id)
		if err != nil {
			return nil, nil, err
		}
		if rec.State.Final() && !settle {
			return nil, nil, ErrFinal
		}
		e = &centry{rec: rec}
		db.cache.putLocked(sh, id, e, db.committer.appliedSeq())
	}
	if e.rec.State.Final() && !settle {
		return nil, nil, ErrFinal
	}
	saved := e.rec
	if !fn(&e.rec) {
		return nil, nil, nil
	}
	buf := db.committer.getBuf()
	ops, n, err := db.recordOps(&e.rec, buf)
	if err != nil {
		e.rec = saved
		db.committer.putBuf(buf)
		return nil, nil, err
	}
	b, acc, err = db.committer.queueUpdate(&e.writePos, e.rec.State.Final(), ops[:n], buf)
	if err != nil || acc != nil {
		e.rec = saved
		if acc != nil {
			db.committer.putBuf(buf)
		}
		return nil, acc, err
	}
	if b == nil && e.rec.State.Final() { // syncEach knob: already committed
		sh.remove(id)
	}
	return b, nil, nil
}

// loadRecord reads id's record from the deferred set or badger without
// waiting for the applier: a record with a write badger lacks is still
// cached (evicted only once applied, dropped by the applier after), and
// callers hold a cache shard lock the applier may need.
func (db *DB) loadRecord(id string) (Record, error) {
	if v, ok := db.committer.deferredRecord(id); ok {
		return decodeRecord(id, v)
	}
	v, err := db.get([]byte(prefixUnfinished + id))
	if err == nil {
		return decodeRecord(id, v)
	}
	if !errors.Is(err, ErrNotFound) {
		return Record{}, err
	}
	if fl := db.committer.finals; fl != nil {
		v, err = fl.get(id, time.Now())
		if !errors.Is(err, ErrNotFound) {
			if err != nil {
				return Record{}, err
			}
			return decodeRecord(id, v)
		}
	}
	v, err = db.get([]byte(prefixMsg + id)) // final, written before the segments
	if errors.Is(err, ErrNotFound) {
		v, err = db.get([]byte(prefixOldMsg + id))
	}
	if err != nil {
		return Record{}, err
	}
	return decodeRecord(id, v)
}

// Message returns the record of a message: its state and history.
func (db *DB) Message(id string) (Record, error) {
	if !validID(id) {
		return Record{}, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if r, ok := db.cache.record(id); ok {
		return r, nil
	}
	r, err := db.loadRecord(id)
	if err != nil {
		return Record{}, fmt.Errorf("store: message %s: %w", id, err)
	}
	return r, nil
}

// Unfinished calls fn for every committed record not in a final state, in
// acceptance order (used at start-up to resume work). An error from fn stops
// the walk and is returned.
func (db *DB) Unfinished(fn func(Record) error) error {
	db.committer.waitApplied()
	if err := db.committer.flushDeferred(); err != nil {
		return err
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte(prefixUnfinished)
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefixUnfinished):])
			rec, ok, err := db.unfinishedRecord(it.Item(), id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := fn(rec); err != nil {
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

func (db *DB) unfinishedRecord(item *badger.Item, id string) (Record, bool, error) {
	if r, ok := db.cache.record(id); ok {
		return r, !r.State.Final(), nil
	}
	var rec Record
	if err := item.Value(func(v []byte) (err error) {
		rec, err = decodeRecord(id, v)
		return err
	}); err != nil {
		return Record{}, false, fmt.Errorf("store: unfinished %s: %w", id, err)
	}
	return rec, !rec.State.Final(), nil
}
