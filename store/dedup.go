package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// dedupIndex maps duplicate-suppression keys to the message accepted under
// each, in memory. The key itself is stored inside that message's record
// (so a crash can never separate the two, and the key costs no badger
// write of its own), and Open rebuilds the index from the records of the
// last window (load).
//
// Two generations, rotated every window: a key is kept for at least one
// window and at most two, and an entry past its own deadline is ignored, so
// the window is exact. Entries hold no pointers, so the garbage collector
// never scans the index, however many millions of keys a window holds. A
// map slot is 32 bytes: the key's first 64 bits, the ID as two numbers,
// the deadline in 32 bits.
type dedupIndex struct {
	seed      [2]maphash.Seed
	mu        sync.Mutex
	rotated   time.Time
	cur, prev map[uint64]dedupEntry
	// A Bloom filter per generation answers most lookups of a new key (the
	// common case) from a few MB that stay in cache, instead of a random
	// read of a map of millions of entries.
	curF, prevF bloom
	// maxKeys bounds cur and prev together: cur rotates early at half of
	// it (shortened counts those rotations).
	maxKeys   int
	shortened uint64
}

// bloom is a blocked Bloom filter: each key sets 4 bits in one 64-byte
// block, so a lookup touches one cache line. The keys are already hashes.
type bloom []uint64

const (
	bloomWords = 1 << 19 // 4 MiB per generation
	bloomBlock = 8       // words per block (64 bytes)
)

func newBloom() bloom { return make(bloom, bloomWords) }

func bloomBits(k *dedupKey) (block uint64, b [4]uint16) {
	h := binary.LittleEndian.Uint64(k[:8])
	g := binary.LittleEndian.Uint64(k[8:])
	block = (h % (bloomWords / bloomBlock)) * bloomBlock
	for i := range b {
		b[i] = uint16(g>>(9*i)) & 511 // bit within the block's 512
	}
	return block, b
}

func (f bloom) add(k *dedupKey) {
	block, b := bloomBits(k)
	for _, bit := range b {
		f[block+uint64(bit>>6)] |= 1 << (bit & 63)
	}
}

func (f bloom) has(k *dedupKey) bool {
	if f == nil {
		return false
	}
	block, b := bloomBits(k)
	for _, bit := range b {
		if f[block+uint64(bit>>6)]&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}

// dedupKey is the caller's key when it is 16 bytes (the router's digest),
// else a 128-bit hash of it. The map is keyed by its first 64 bits and the
// Bloom filter uses all 128. A hit is checked against the key stored in the
// record, so a collision can cost a lookup, never a lost message; two keys
// of one window sharing 64 bits (odds ~1e-6 with 5M keys) make the first
// one's resubmission look new, i.e. delivered again, never lost.
type dedupKey [16]byte

func (k *dedupKey) mapKey() uint64 { return binary.LittleEndian.Uint64(k[:8]) }

type dedupEntry struct {
	id    packedID
	until uint32 // unix seconds
}

// packedID is a message ID as the two numbers putB32 wrote it from: its
// prefix (epoch and random part, 60 bits) and its counter (40 bits).
type packedID struct{ prefix, counter uint64 }

const idPrefixLen = epochChars + randChars

func packID(id string) (p packedID, ok bool) {
	if len(id) != idLen {
		return p, false
	}
	var ok2 bool
	p.prefix, ok = getB32(id[:idPrefixLen])
	p.counter, ok2 = getB32(id[idPrefixLen:])
	return p, ok && ok2
}

func (p packedID) String() string {
	var b [idLen]byte
	putB32(b[:idPrefixLen], p.prefix)
	putB32(b[idPrefixLen:], p.counter)
	return string(b[:])
}

func (x *dedupIndex) init(maxKeys int) {
	x.maxKeys = max(maxKeys, 2)
	x.seed = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	x.cur = make(map[uint64]dedupEntry)
	x.curF = newBloom()
}

func (x *dedupIndex) key(key []byte) dedupKey {
	var k dedupKey
	if len(key) == len(k) {
		copy(k[:], key)
		return k
	}
	binary.LittleEndian.PutUint64(k[:8], maphash.Bytes(x.seed[0], key))
	binary.LittleEndian.PutUint64(k[8:], maphash.Bytes(x.seed[1], key))
	return k
}

// get returns the message accepted under key within its window.
func (x *dedupIndex) get(key []byte, now time.Time) (string, bool) {
	k := x.key(key)
	mk := k.mapKey()
	x.mu.Lock()
	defer x.mu.Unlock()
	var e dedupEntry
	ok := false
	if x.curF.has(&k) {
		e, ok = x.cur[mk]
	}
	if !ok && x.prevF.has(&k) {
		e, ok = x.prev[mk]
	}
	if !ok || int64(e.until) <= now.Unix() {
		return "", false
	}
	return e.id.String(), true
}

// put remembers key → id until the unix second until; window is how long
// keys must be remembered (the rotation period).
func (x *dedupIndex) put(key []byte, id string, until int64, now time.Time, window time.Duration) {
	p, ok := packID(id)
	if !ok || until <= 0 || until > math.MaxUint32 {
		return // not one of our IDs, or a deadline past 2106: nothing to point at
	}
	e := dedupEntry{id: p, until: uint32(until)}
	k := x.key(key)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rotated.IsZero() {
		x.rotated = now
	} else if now.Sub(x.rotated) >= max(window, time.Second) {
		x.rotate(now)
	} else if len(x.cur) >= x.maxKeys/2 {
		x.rotate(now) // bounded memory: the oldest generation goes early
		x.shortened++
	}
	x.cur[k.mapKey()] = e
	x.curF.add(&k)
}

// rotate makes cur the previous generation and drops the one before; x.mu
// is held.
func (x *dedupIndex) rotate(now time.Time) {
	x.prev, x.cur = x.cur, make(map[uint64]dedupEntry, len(x.cur))
	x.prevF, x.curF = x.curF, newBloom()
	x.rotated = now
}

// full reports whether loading more keys would rotate some out.
func (x *dedupIndex) full() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.cur) >= x.maxKeys/2
}

// stats is the keys held and the early rotations so far.
func (x *dedupIndex) stats() (keys int, shortened uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.cur) + len(x.prev), x.shortened
}

// clientMark starts the key a record keeps for a client's own key (Dedup
// Client), so that Open puts it back in the clients' index.
const clientMark = "c\x00"

// recordKey is the dedup key as d's record keeps it.
func (d Dedup) recordKey() string {
	if d.Client {
		return clientMark + string(d.Key)
	}
	return string(d.Key)
}

// loadDedup fills the indexes at Open from bdb's unfinished records and the
// final records accepted within the last window (walked newest first: IDs
// sort in acceptance order): content keys into content, clients' own keys
// into clients.
func loadDedup(bdb *badger.DB, fl *finalLog, now time.Time, window time.Duration, content, clients *dedupIndex) (int, error) {
	n := 0
	add := func(key []byte, id string, until int64) {
		if until > now.Unix() {
			x := content
			if k, ok := bytes.CutPrefix(key, []byte(clientMark)); ok {
				x, key = clients, k
			}
			if x.full() {
				return // the newest records come first: older keys stay out
			}
			x.put(key, id, until, now, time.Hour) // one generation: now does not move
			n++
		}
	}
	fromRecords := func(txn *badger.Txn, prefix string, reverse bool, stop time.Time) error {
		io := badger.DefaultIteratorOptions
		io.Prefix, io.Reverse = []byte(prefix), reverse
		it := txn.NewIterator(io)
		defer it.Close()
		if reverse {
			it.Seek(append([]byte(prefix), 0xff))
		} else {
			it.Rewind()
		}
		for ; it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			var rec Record
			err := it.Item().Value(func(v []byte) (err error) {
				rec, err = decodeRecord(id, v)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s%s: %w", prefix, id, err)
			}
			if rec.dedup != "" {
				add([]byte(rec.dedup), id, rec.dedupUntil)
			}
			if reverse && rec.Msg.Accepted.Before(stop) {
				return nil
			}
		}
		return nil
	}
	err := bdb.View(func(txn *badger.Txn) error {
		if err := fromRecords(txn, prefixUnfinished, false, time.Time{}); err != nil {
			return err
		}
		if w := window; w > 0 && fl != nil {
			err := fl.recent(now.Add(-w-time.Second), func(id string, v []byte) error {
				rec, err := decodeRecord(id, v)
				if err != nil {
					return fmt.Errorf("final record %s: %w", id, err)
				}
				if rec.dedup != "" {
					add([]byte(rec.dedup), id, rec.dedupUntil)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if w := window; w > 0 {
			// A second of slack for acceptance times taken out of ID order.
			for _, p := range []string{prefixMsg, prefixOldMsg} {
				if err := fromRecords(txn, p, true, now.Add(-w-time.Second)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return n, ErrClosed
	}
	return n, err
}
