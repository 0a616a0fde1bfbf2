package store

import (
	"hash/maphash"
	"sync"
)

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
	writePos
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

// lock locks and returns id's shard, for a caller that reads a record,
// changes it and queues its write under one lock (so the writes of one
// record reach the batches in the order they were applied).
func (c *cache) lock(id string) *shard {
	sh := c.shard(id)
	sh.mu.Lock()
	return sh
}

func (sh *shard) unlock()               { sh.mu.Unlock() }
func (sh *shard) get(id string) *centry { return sh.m[id] }
func (sh *shard) remove(id string)      { delete(sh.m, id) }

// putLocked inserts e into its locked shard sh, first evicting a few
// entries whose writes are all committed (seq <= committed) if it is full.
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

// add caches a new record.
func (c *cache) add(e *centry, committed uint64) {
	id := e.rec.Msg.ID
	sh := c.lock(id)
	c.putLocked(sh, id, e, committed)
	sh.unlock()
}

// record returns a copy of id's cached record, if any.
func (c *cache) record(id string) (Record, bool) {
	sh := c.lock(id)
	if e := sh.m[id]; e != nil {
		r := e.rec.clone()
		sh.unlock()
		return r, true
	}
	sh.unlock()
	return Record{}, false
}

// dropIfSeq uncaches id if its last write is in batch seq.
func (c *cache) dropIfSeq(id string, seq uint64) {
	sh := c.lock(id)
	if e := sh.m[id]; e != nil && e.seq == seq {
		delete(sh.m, id)
	}
	sh.unlock()
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
