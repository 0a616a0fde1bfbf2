package store

import (
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// deferredRecs holds the newest "_/u/" record of messages whose record is
// in the commit log but not yet in badger: a message finished before the
// next checkpoint never costs badger its unfinished record or that
// record's delete. The committer fills it (take); checkpoints and
// Unfinished empty it into badger (flush); readers look here before badger
// (get).
type deferredRecs struct {
	mu sync.Mutex
	m  map[string]deferredRec
}

type deferredRec struct {
	val      []byte
	inBadger bool // badger holds an older version: a delete must reach it
}

func (d *deferredRecs) init() { d.m = make(map[string]deferredRec) }

// take keeps the unfinished records that ops (a logged batch) write, and
// appends to direct, and returns, the ops badger must get now: all others,
// and the deletes of records badger holds.
func (d *deferredRecs) take(ops, direct []op) []op {
	d.mu.Lock()
	for i := range ops {
		o := &ops[i]
		if o.dead {
			continue
		}
		if len(o.key) <= len(prefixUnfinished) || string(o.key[:len(prefixUnfinished)]) != prefixUnfinished {
			direct = append(direct, *o)
			continue
		}
		id := o.id // record puts carry it; the delete only its key
		if id == "" {
			id = string(o.key[len(prefixUnfinished):])
		}
		r, ok := d.m[id]
		if o.del {
			delete(d.m, id)
			if !ok || r.inBadger {
				direct = append(direct, *o)
			}
			continue
		}
		// Not in the map: a record accepted in this batch is new to
		// badger; any other was put there by an earlier checkpoint.
		r.inBadger = (ok && r.inBadger) || (!ok && !o.born)
		r.val = append(r.val[:0:0], o.val...)
		d.m[id] = r
	}
	d.mu.Unlock()
	return direct
}

// get returns the deferred record of id, if any.
func (d *deferredRecs) get(id string) ([]byte, bool) {
	d.mu.Lock()
	r, ok := d.m[id]
	d.mu.Unlock()
	return r.val, ok
}

// flush writes the deferred records to bdb and forgets them. The lock is
// held through the write: a reader finds each record in one place or the
// other, and take cannot decide about a record's delete meanwhile.
func (d *deferredRecs) flush(bdb *badger.DB) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.m) == 0 {
		return nil
	}
	ops := make([]op, 0, len(d.m))
	for id, r := range d.m {
		ops = append(ops, op{key: []byte(prefixUnfinished + id), val: r.val})
	}
	if err := writeOps(bdb, ops); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	clear(d.m)
	return nil
}
