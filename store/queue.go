package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smstext"
)

// State is where a message is in its life.
type State uint8

const (
	Accepted  State = iota + 1 // durably stored, not yet routed
	Routed                     // a route (IM or SMS) was chosen
	InFlight                   // handed to the next hop, awaiting its answer
	Delivered                  // final: the next hop took it (or a receipt said delivered)
	Failed                     // final: given up
	Expired                    // final: validity ran out
)

func (s State) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Routed:
		return "routed"
	case InFlight:
		return "inflight"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether no further transition is allowed.
func (s State) Final() bool { return s == Delivered || s == Failed || s == Expired }

func (s State) valid() bool { return s >= Accepted && s <= Expired }

// Event is one step of a message's history.
type Event struct {
	State  State
	At     time.Time
	Detail string // e.g. "im sip:alice@example.com", "sms smsc", "480 Temporarily Unavailable"
}

// Record is a message with its state and history.
type Record struct {
	Msg         msg.Message
	State       State
	Events      []Event // oldest first; capped at 64 (the first and the latest are kept)
	Attempts    int
	NextAttempt time.Time // zero = not scheduled

	// The duplicate-suppression key the message was accepted under
	// (StageDedup) and until when (unix seconds) it suppresses copies.
	dedup      string
	dedupUntil int64
}

func (r *Record) addEvent(ev Event) {
	if len(r.Events) >= maxEvents {
		// New slice: the caller may restore the old header on failure.
		evs := make([]Event, 0, maxEvents)
		evs = append(evs, r.Events[0])
		evs = append(evs, r.Events[len(r.Events)-maxEvents+2:]...)
		r.Events = evs
	}
	r.Events = append(r.Events, ev)
}

func (r *Record) clone() Record {
	c := *r
	c.Events = slices.Clone(r.Events)
	return c
}

// cache holds records with writes in flight (so a read-modify-write never
// reads a stale disk copy) plus recently used unfinished records, so that a
// Transition on the hot path is an in-memory update plus one blind write.
// It is bounded: entries whose writes are committed are evicted when a shard
// is full, and are then read back from disk (memtable, usually) on demand.
type cache struct {
	seed     maphash.Seed
	perShard int
	shards   [64]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]*centry
}

type centry struct {
	rec Record
	seq uint64 // batch of the last write queued for this record
	at  int    // index of that write (the record's put) in its batch
	acc *batch // batch of the record's first write: its acceptance
}

func (c *cache) init(capacity int) {
	c.seed = maphash.MakeSeed()
	c.perShard = max(capacity/len(c.shards), 4)
	for i := range c.shards {
		c.shards[i].m = make(map[string]*centry)
	}
}

func (c *cache) shard(id string) *shard {
	return &c.shards[maphash.String(c.seed, id)%uint64(len(c.shards))]
}

// putLocked inserts e, first evicting a few committed entries if full.
func (c *cache) putLocked(sh *shard, id string, e *centry, committed uint64) {
	if len(sh.m) >= c.perShard {
		scanned := 0
		for k, o := range sh.m {
			if o.seq <= committed {
				delete(sh.m, k)
				if len(sh.m) < c.perShard {
					break
				}
			}
			if scanned++; scanned >= 64 { // bound the work; over capacity briefly is fine
				break
			}
		}
	}
	sh.m[id] = e
}

func (c *cache) dropIfSeq(id string, seq uint64) {
	sh := c.shard(id)
	sh.mu.Lock()
	if e := sh.m[id]; e != nil && e.seq == seq {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// recordOps encodes r into buf and returns the ops writing it. An unfinished
// record lives under "_/u/<id>", which is also the index start-up recovery
// walks; a final one moves to "m/<id>" with the retention TTL, and its
// "_/u/" key is deleted. A message thus costs one key at acceptance and two
// at the end (the layout before kept the record under "m/" from the start
// plus an empty index key: one write more per message, and badger's writes
// are the bridge's largest cost).
func (db *DB) recordOps(r *Record, buf *[]byte) ([2]op, int, error) {
	id := r.Msg.ID
	b := append(*buf, prefixUnfinshed...)
	b = append(b, id...)
	u := len(b)
	if r.State.Final() {
		b = append(b, prefixMsg...)
		b = append(b, id...)
	}
	k := len(b)
	if r.State.Final() && !db.opts.KeepText {
		if t := smstext.ReceiptText(r.Msg.Text); len(t) < len(r.Msg.Text) {
			fin := *r
			fin.Msg.Text = t
			r = &fin
		}
	}
	b = appendRecord(b, r)
	v := len(b)
	*buf = b
	if v-k > maxRecordBytes {
		return [2]op{}, 0, fmt.Errorf("%w: message %s encodes to %d bytes (max %d)", ErrTooLarge, id, v-k, maxRecordBytes)
	}
	var ops [2]op
	if !r.State.Final() {
		ops[0] = op{key: b[:u:u], val: b[k:v:v], id: id}
		return ops, 1, nil
	}
	ops[0] = op{key: b[u:k:k], val: b[k:v:v], id: id, final: true,
		expiresAt: uint64(time.Now().Add(db.opts.Retention).Unix())}
	ops[1] = op{key: b[:u:u], del: true}
	return ops, 2, nil
}

// Accept assigns m.ID and m.Accepted, and durably stores the message in state
// Accepted. It returns nil only once the record is fsynced: only then may the
// sender be acknowledged. Errors wrap msg.ErrNotStored.
func (db *DB) Accept(ctx context.Context, m *msg.Message) error {
	p, err := db.Stage(ctx, m)
	if err != nil {
		return err
	}
	return p.Settle(ctx, m)
}

// Pending is an acceptance queued in a group commit. The message may be
// worked on at once (its ID is set); its sender may be acknowledged only
// after Wait returns nil.
type Pending struct {
	db *DB
	b  *batch // nil: already written (SyncEach)
	id string
}

// Wait blocks until the acceptance is durable, or returns why it is not
// (wrapping msg.ErrNotStored). An error from ctx says nothing about the
// write: it may still become durable.
func (p Pending) Wait(ctx context.Context) error {
	if p.db == nil {
		return nil
	}
	if err := p.db.wait(ctx, p.b); err != nil {
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

// Settle is Wait for a caller that acknowledges m: on failure nobody may
// refer to the message, so its ID is cleared. Its cached record stays: a
// failed commit drops it (commit), and after ctx gave up the commit may
// still succeed and the message's later updates need it.
func (p Pending) Settle(ctx context.Context, m *msg.Message) error {
	err := p.Wait(ctx)
	if err != nil {
		m.ID = ""
	}
	return err
}

// Stage assigns m.ID and m.Accepted and queues the record into the next
// group commit without waiting for it: delivery can overlap the fsync
// while the acknowledgement still waits for it (Pending.Wait). If the
// commit fails the message was never acknowledged, so a delivery that
// already happened is at worst repeated when the sender resubmits.
func (db *DB) Stage(ctx context.Context, m *msg.Message) (Pending, error) {
	if m == nil {
		return Pending{}, fmt.Errorf("store: accept: nil message: %w", msg.ErrNotStored)
	}
	return db.stage(ctx, m, time.Now(), "", 0)
}

// stage creates m's record (with its dedup key, if any), queues it and
// caches it.
func (db *DB) stage(ctx context.Context, m *msg.Message, now time.Time, dedup string, dedupUntil int64) (Pending, error) {
	if err := db.acceptPrep(ctx); err != nil {
		return Pending{}, err
	}
	buf := db.getBuf()
	e, ops, n, err := db.newRecord(m, now, buf, dedup, dedupUntil)
	if err != nil {
		db.putBuf(buf)
		return Pending{}, fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	b, _, err := db.submitRecord(e, ops[:n], buf, true)
	if err != nil {
		m.ID = ""
		return Pending{}, fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	db.cacheNew(e)
	return Pending{db: db, b: b, id: e.rec.Msg.ID}, nil
}

// AcceptBatch is Accept for several messages, committed together: nil means
// all are durable; an error means none may be acknowledged.
func (db *DB) AcceptBatch(ctx context.Context, ms []*msg.Message) error {
	if len(ms) == 0 {
		return nil
	}
	if slices.Contains(ms, nil) {
		return fmt.Errorf("store: accept batch: nil message: %w", msg.ErrNotStored)
	}
	if err := db.acceptPrep(ctx); err != nil {
		return err
	}
	now := time.Now()
	ops := make([]op, 0, 2*len(ms))
	es := make([]*centry, len(ms))
	bufs := make([]*[]byte, len(ms))
	for i, m := range ms {
		bufs[i] = db.getBuf()
		e, o, n, err := db.newRecord(m, now, bufs[i], "", 0)
		if err != nil {
			for _, b := range bufs[:i+1] {
				db.putBuf(b)
			}
			return fmt.Errorf("store: accept batch: %w: %w", msg.ErrNotStored, err)
		}
		es[i] = e
		ops = append(ops, o[:n]...)
	}
	b, start, _, err := db.enqueue(ops, bufs, nil)
	if err != nil {
		return fmt.Errorf("store: accept batch: %w: %w", msg.ErrNotStored, err)
	}
	for i, e := range es { // one op each: unfinished records
		if b != nil {
			e.seq, e.at, e.acc = b.seq, start+i, b
		}
		db.cacheNew(e)
	}
	if err := db.wait(ctx, b); err != nil {
		for _, e := range es {
			db.cache.dropIfSeq(e.rec.Msg.ID, e.seq)
		}
		return fmt.Errorf("store: accept batch: %w: %w", msg.ErrNotStored, err)
	}
	return nil
}

func (db *DB) acceptPrep(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: accept: %w: %w", msg.ErrNotStored, err)
	}
	if err := db.waitRoom(); err != nil {
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
	e := &centry{rec: Record{Msg: *m, State: Accepted, Events: make([]Event, 1, 2), dedup: dedup, dedupUntil: dedupUntil}}
	e.rec.Events[0] = Event{State: Accepted, At: now}
	ops, n, err := db.recordOps(&e.rec, buf)
	return e, ops, n, err
}

// cacheNew caches a record after its write was queued: until then nobody
// knows its ID, and a Transition that sees no cache entry reads the disk.
func (db *DB) cacheNew(e *centry) {
	sh := db.cache.shard(e.rec.Msg.ID)
	sh.mu.Lock()
	db.cache.putLocked(sh, e.rec.Msg.ID, e, db.committed.Load())
	sh.mu.Unlock()
}

// submitRecord queues the ops writing e's record: ops[0] is its put and, for
// a final record, ops[1] deletes its "_/u/" key. If e's previous put is
// still in the open batch, it is superseded there and never written; if that
// batch also holds the record's first write, the key never reaches disk, so
// the delete goes too. A message whose delivery ends before its acceptance
// is committed (delivery overlaps the commit, see Stage) is thus written
// once, already final: two badger entries fewer.
//
// A later write never goes into a batch after the acceptance's while that
// one is still being committed: if it failed, the record was refused, and
// a later batch must not make it exist after all. The caller gets the
// acceptance's batch as wait instead, and nothing is queued (buf is still
// the caller's).
func (db *DB) submitRecord(e *centry, ops []op, buf *[]byte, fresh bool) (b, wait *batch, err error) {
	bufs := [1]*[]byte{buf}
	sup := e
	if fresh {
		sup = nil
	}
	b, start, wait, err := db.enqueue(ops, bufs[:], sup)
	if err == nil && b != nil {
		e.seq, e.at = b.seq, start
		if fresh {
			e.acc = b
		}
	}
	return b, wait, err
}

// enqueue queues ops (whose key/val live in bufs, returned to the pool after
// commit) into the current batch and returns it with the index of ops[0] in
// it. With sup, sup's earlier put in the open batch is superseded, and if
// sup is now final and was born in that batch, its delete is dropped (see
// submitRecord). If sup's acceptance is being committed, nothing is queued
// and that batch is returned as wait. In SyncEach mode it writes the ops
// itself, synchronously, and returns a nil batch.
func (db *DB) enqueue(ops []op, bufs []*[]byte, sup *centry) (b *batch, start int, wait *batch, err error) {
	if db.opts.SyncEach {
		err := ErrClosed
		if !db.isClosed() {
			err = db.writeOps(ops)
			db.writes.Add(uint64(len(ops)))
			db.batches.Add(1)
			db.noteResult(err)
		}
		for _, buf := range bufs {
			db.putBuf(buf)
		}
		return nil, 0, nil, err
	}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		for _, buf := range bufs {
			db.putBuf(buf)
		}
		return nil, 0, nil, ErrClosed
	}
	b = db.cur
	if sup != nil && sup.acc != nil && sup.acc != b && db.committed.Load() < sup.acc.seq {
		db.mu.Unlock()
		return nil, 0, sup.acc, nil
	}
	if sup != nil && sup.seq == b.seq {
		b.ops[sup.at].dead = true
		b.dead++
		if sup.rec.State.Final() && sup.acc == b && len(ops) == 2 && ops[1].del {
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
	db.pending.Store(int64(len(b.ops)))
	db.mu.Unlock()
	db.signal()
	return b, start, nil, nil
}

// Transition appends ev to the message's history and sets its state. With
// durable=true it returns after the group commit; with false it returns once
// queued (it is written with the next batch; a failure shows in Healthy).
// A final state starts the record's retention TTL. A message already final
// returns ErrFinal.
func (db *DB) Transition(ctx context.Context, id string, ev Event, durable bool) error {
	if !ev.State.valid() {
		return fmt.Errorf("store: transition %s: %w %d", id, ErrBadState, ev.State)
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, err := db.update(ctx, id, func(r *Record) {
		r.State = ev.State
		r.addEvent(ev)
	})
	if err != nil {
		return fmt.Errorf("store: transition %s to %s: %w", id, ev.State, err)
	}
	if !durable {
		return nil
	}
	if err := db.wait(ctx, b); err != nil {
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
	b, err := db.update(ctx, id, func(r *Record) {
		r.Attempts, r.NextAttempt = attempts, next
		r.addEvent(Event{State: r.State, At: now, Detail: detail})
	})
	if err == nil {
		err = db.wait(ctx, b)
	}
	if err != nil {
		return fmt.Errorf("store: reschedule %s: %w", id, err)
	}
	return nil
}

// update applies fn to the record (from the cache, else from disk) and queues
// the rewrite. The shard lock is held from read to enqueue, so writes of one
// record reach the batches in the order they were applied.
func (db *DB) update(ctx context.Context, id string, fn func(*Record)) (*batch, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := db.waitRoom(); err != nil {
			return nil, err
		}
		b, acc, err := db.updateOnce(id, fn)
		if acc == nil {
			return b, err
		}
		// The acceptance is being committed: write after it, or not at
		// all if it failed (the message was refused).
		if err := db.wait(ctx, acc); err != nil {
			return nil, fmt.Errorf("%w: its acceptance was not stored: %w", msg.ErrNotStored, err)
		}
	}
}

// updateOnce is update's attempt; acc != nil means nothing was queued
// because the record's acceptance (acc) is still being committed.
func (db *DB) updateOnce(id string, fn func(*Record)) (b, acc *batch, err error) {
	sh := db.cache.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[id]
	if e == nil {
		rec, err := db.loadRecord(id)
		if err != nil {
			return nil, nil, err
		}
		if rec.State.Final() {
			return nil, nil, ErrFinal
		}
		e = &centry{rec: rec}
		db.cache.putLocked(sh, id, e, db.committed.Load())
	}
	if e.rec.State.Final() {
		return nil, nil, ErrFinal
	}
	saved := e.rec
	fn(&e.rec)
	buf := db.getBuf()
	ops, n, err := db.recordOps(&e.rec, buf)
	if err != nil {
		e.rec = saved
		db.putBuf(buf)
		return nil, nil, err
	}
	b, acc, err = db.submitRecord(e, ops[:n], buf, false)
	if err != nil || acc != nil {
		e.rec = saved
		if acc != nil {
			db.putBuf(buf)
		}
		return nil, acc, err
	}
	if b == nil && e.rec.State.Final() { // SyncEach: already committed
		delete(sh.m, id)
	}
	return b, nil, nil
}

func (db *DB) loadRecord(id string) (Record, error) {
	if v, ok := db.deferredRecord(id); ok {
		return decodeRecord(id, v)
	}
	v, err := db.get([]byte(prefixUnfinshed + id))
	if err == nil && len(v) > 0 {
		return decodeRecord(id, v)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Record{}, err
	}
	// Final, or written by the older layout (empty index value).
	v, err = db.get([]byte(prefixMsg + id))
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
	sh := db.cache.shard(id)
	sh.mu.Lock()
	if e := sh.m[id]; e != nil {
		r := e.rec.clone()
		sh.mu.Unlock()
		return r, nil
	}
	sh.mu.Unlock()
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
	if err := db.flushDeferred(); err != nil {
		return err
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte(prefixUnfinshed)
		it := txn.NewIterator(io)
		defer it.Close()
		key := make([]byte, 0, len(prefixMsg)+idLen)
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefixUnfinshed):])
			rec, ok, err := db.unfinishedRecord(txn, it.Item(), id, key)
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

func (db *DB) unfinishedRecord(txn *badger.Txn, index *badger.Item, id string, key []byte) (Record, bool, error) {
	sh := db.cache.shard(id)
	sh.mu.Lock()
	if e := sh.m[id]; e != nil {
		r := e.rec.clone()
		sh.mu.Unlock()
		return r, !r.State.Final(), nil
	}
	sh.mu.Unlock()
	item := index
	if index.ValueSize() == 0 { // older layout: the record is under "m/"
		var err error
		item, err = txn.Get(append(append(key[:0], prefixMsg...), id...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			db.log.Warn("unfinished index names a missing record", "id", id)
			return Record{}, false, nil
		}
		if err != nil {
			return Record{}, false, fmt.Errorf("store: unfinished %s: %w", id, err)
		}
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

// prefixDedup held a key of its own per message in older versions; Open
// still reads what is left of them (loadDedup).
const prefixDedup = "_/d/"

// AcceptDedup is Accept with duplicate suppression: if a message with the
// same dedup key was accepted within window, nothing is stored and its id is
// returned as dup. Otherwise m is accepted with the key inside its record,
// so a crash can never leave a message acknowledged without its key or a
// key without its message. Copies are recognised across a restart when the
// store is opened with Options.DedupWindow at least window. Callers
// serialise concurrent calls with the same key.
func (db *DB) AcceptDedup(ctx context.Context, m *msg.Message, key []byte, window time.Duration) (dup string, err error) {
	dup, p, err := db.StageDedup(ctx, m, key, window)
	if err != nil || dup != "" {
		return dup, err
	}
	return "", p.Settle(ctx, m)
}

// StageDedup is AcceptDedup without the wait, as Stage is to Accept. The
// caller keeps other copies with the same key out until Wait returns.
func (db *DB) StageDedup(ctx context.Context, m *msg.Message, key []byte, window time.Duration) (dup string, p Pending, err error) {
	if m == nil {
		return "", Pending{}, fmt.Errorf("store: accept: nil message: %w", msg.ErrNotStored)
	}
	if len(key) == 0 {
		return "", Pending{}, fmt.Errorf("store: accept: empty dedup key: %w", msg.ErrNotStored)
	}
	now := time.Now()
	if id, ok := db.dedup.get(key, now); ok {
		// The index is only as good as the record it names: one whose
		// commit failed was never acknowledged, and one under another key
		// is a hash collision; neither is a duplicate (the new message
		// takes the key over below). A record without a key was written
		// before keys moved into records and was found by its "_/d/" key.
		r, err := db.Message(id)
		if err == nil && (r.dedup == string(key) || r.dedup == "") {
			return id, Pending{}, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", Pending{}, fmt.Errorf("store: accept: dedup lookup: %w: %w", msg.ErrNotStored, err)
		}
	}
	until := now.Add(window).Unix()
	if p, err = db.stage(ctx, m, now, string(key), until); err != nil {
		return "", p, err
	}
	db.dedup.put(key, m.ID, until, now, window)
	return "", p, nil
}
