package directory

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/smsbridge/bridge/msg"
)

// index maps every address of every stored user to its record. It is an
// open-addressing hash table (linear probing, Robin Hood order) built for
// the routing hot path, where a lookup at 10 M addresses is a cache and TLB
// miss per dependent memory access:
//
//   - an entry (48 bytes) holds the key's bytes (up to 32 of them, as the
//     four words the hash reads), the record pointer, and in its meta word
//     where the Person's name, endpoints and number lie inside the record.
//     A hit reads that one entry and builds the Person from the record's
//     address and those offsets, without reading the record: one dependent
//     memory access per lookup, where a Go map with string keys takes about
//     five (table, control word, slot, key bytes, value). Records that do
//     not fit that layout (more than two addresses, long ones) are marked
//     slow and read (rec.p);
//   - entries are kept in Robin Hood order (along a run, by distance from
//     their home entry), so a miss stops where the key would have been
//     instead of running to the next empty entry;
//   - readers take no lock. An entry is a seqlock: the writer makes its
//     meta odd, writes, makes it even again; a reader rereads meta after
//     reading the entry and retries if it changed. Inserting and deleting
//     move entries along their run, so they also make the index's epoch odd
//     for their duration: a miss counts only if the epoch did not change
//     meanwhile (a hit is right whenever its entry was consistent). Every
//     field is atomic, so the race detector sees no race. Writers are
//     serialized by the caller (Directory.wmu);
//   - growing builds a new table, published whole (readers still in the old
//     one finish there: nobody writes it any more).
type index struct {
	k0, k1, k2 uint64 // the hash's random keys, per index
	t          atomic.Pointer[table]
	_          [32]byte      // epoch on a line of its own: writers change it
	epoch      atomic.Uint64 // odd while entries move
	_          [56]byte
	n          int // live entries; writer only
}

type entry struct {
	meta atomic.Uint64
	r    atomic.Pointer[rec]
	k    [4]atomic.Uint64
}

type table struct {
	e       []entry
	mask    uint64
	live    int            // writer only
	pending []pendingEntry // entries place could not put back (see place); writer only
}

type pendingEntry struct {
	m uint64
	r *rec
	w [4]uint64
}

// The meta word of an entry; 0 is an empty entry.
const (
	mSeq      = 0xff    // bits 0-7: the seqlock's counter (odd: being written)
	mDist     = 8       // bits 8-15: distance from the home entry
	mKeyShift = 16      // bits 16-23: the key's length, or longKey
	mFast     = 1 << 25 // the Person can be built from the offsets below
	mTwoEnd   = 1 << 26 // two endpoints (else one)
	mNameOff  = 32      // bits 32-39: the name's offset in the record
	mNameLen  = 40      // bits 40-47
	mNumOff   = 48      // bits 48-55: the number's offset in the record (with mNumLen 0: none)
	mNumLen   = 56      // bits 56-63
	longKey   = 33      // keys of more than 32 bytes: compared in full through the record
)

const (
	minEntries     = 1 << 10
	maxLoadPercent = 75
	maxDist        = 0xff
)

func dist(m uint64) uint64 { return m >> mDist & 0xff }

func newIndex() *index {
	seed := maphash.MakeSeed()
	ix := &index{k0: maphash.String(seed, "k0") | 1, k1: maphash.String(seed, "k1") | 1, k2: maphash.String(seed, "k2") | 1}
	ix.t.Store(newTable(minEntries))
	return ix
}

func newTable(n int) *table {
	return &table{e: make([]entry, n), mask: uint64(n - 1)}
}

// keyWords are the words of key an entry keeps and a lookup compares:
// for 8 to 32 bytes the first and last 8 bytes and, past 16, bytes 8..16
// and n-16..n-8 (together every byte); for fewer, the bytes zero-padded;
// for more, those of its first 32 bytes (the record decides).
func keyWords(key msg.Address) (w [4]uint64) {
	n := len(key)
	b := unsafe.Slice(unsafe.StringData(string(key)), n)
	le := binary.LittleEndian
	switch {
	case n < 8:
		var p [8]byte
		copy(p[:], b)
		w[0] = le.Uint64(p[:])
	case n > 32:
		return keyWords(key[:32])
	default:
		w[0], w[1] = le.Uint64(b), le.Uint64(b[n-8:])
		if n > 16 {
			w[2], w[3] = le.Uint64(b[8:]), le.Uint64(b[n-16:])
		}
	}
	return w
}

func keyLenField(n int) uint64 { return uint64(min(n, longKey)) }

// hash is a keyed 64-bit hash of key: wyhash's construction (as the Go
// runtime's non-AES hash) with keys drawn at random per index, so that
// addresses cannot be chosen to collide.
func (ix *index) hash(key msg.Address) uint64 {
	n := len(key)
	if n >= 8 && n <= 32 {
		w := keyWords(key)
		return ix.hash832(n, w[0], w[1], w[2], w[3])
	}
	b := unsafe.Slice(unsafe.StringData(string(key)), n)
	le := binary.LittleEndian
	seed := ix.k0 ^ uint64(n)
	var x, y uint64
	switch {
	case n == 0:
	case n < 4:
		x = uint64(b[0]) | uint64(b[n>>1])<<8 | uint64(b[n-1])<<16
	case n < 8:
		x, y = uint64(le.Uint32(b)), uint64(le.Uint32(b[n-4:]))
	default:
		for len(b) > 16 {
			seed = mix(le.Uint64(b)^ix.k1, le.Uint64(b[8:])^seed)
			b = b[16:]
		}
		b = unsafe.Slice(unsafe.StringData(string(key)), n)[n-16:]
		x, y = le.Uint64(b), le.Uint64(b[8:])
	}
	return mix(hashM5^uint64(n), mix(x^ix.k1, y^seed^ix.k2))
}

// hash832 is hash of a key of 8 to 32 bytes from its keyWords.
func (ix *index) hash832(n int, w0, w1, w2, w3 uint64) uint64 {
	seed, x := ix.k0^uint64(n), w0
	if n > 16 {
		seed, x = mix(w0^ix.k1, w2^seed), w3
	}
	return mix(hashM5^uint64(n), mix(x^ix.k1, w1^seed))
}

const hashM5 = 0x1d8e4e27c47d124f

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// home is the first entry of h's probe (the high bits: the low ones went
// into nothing else, but these spread over any table size).
func (t *table) home(h uint64) uint64 { return (h >> 32) & t.mask }

// find returns the record owning key and the meta word of its entry (for
// personOf), or nil. Safe with a concurrent writer.
//
// This is the routing hot path, written for few instructions, so that the
// CPU overlaps the memory accesses of consecutive lookups: a key of 8 to
// 32 bytes is read once, its words hashed and compared with the entry's;
// other lengths take findSlow.
func (ix *index) find(key msg.Address) (*rec, uint64) {
	n := len(key)
	if n < 8 || n > 32 {
		return ix.findSlow(key)
	}
	kb := unsafe.Slice(unsafe.StringData(string(key)), n)
	le := binary.LittleEndian
	w0, w1 := le.Uint64(kb), le.Uint64(kb[n-8:])
	var w2, w3 uint64
	seed, hx := ix.k0^uint64(n), w0
	if n > 16 {
		w2, w3 = le.Uint64(kb[8:]), le.Uint64(kb[n-16:])
		seed, hx = mix(w0^ix.k1, w2^seed), w3
	}
	h := mix(hashM5^uint64(n), mix(hx^ix.k1, w1^seed))
	ep := ix.epoch.Load()
	t := ix.t.Load()
	kl := uint64(n) << mKeyShift
	for i, d := t.home(h), uint64(0); ; i, d = (i+1)&t.mask, d+1 {
		e := &t.e[i]
		m := e.meta.Load()
		if m&(0xff<<mKeyShift|1) != kl || e.k[0].Load() != w0 || e.k[1].Load() != w1 ||
			e.k[2].Load() != w2 || e.k[3].Load() != w3 {
			if m&1 != 0 {
				return ix.findSlow(key) // being written: wait for it
			}
			if m == 0 || dist(m) < d { // the key would have been here
				if ix.epoch.Load() != ep || ep&1 != 0 {
					return ix.findSlow(key) // entries moved meanwhile
				}
				return nil, 0
			}
			continue
		}
		r := e.r.Load()
		if e.meta.Load() != m {
			return ix.findSlow(key)
		}
		return r, m
	}
}

// findSlow is find for any key, waiting out entries being written or
// moved.
func (ix *index) findSlow(key msg.Address) (*rec, uint64) {
	w := keyWords(key)
	h := ix.hash(key)
	kl := keyLenField(len(key)) << mKeyShift
	for spins := 0; ; spins++ {
		if spins > 0 {
			runtime.Gosched()
		}
		ep := ix.epoch.Load()
		if ep&1 != 0 {
			continue
		}
		r, m, retry := ix.t.Load().probe(h, kl, &w, key)
		if !retry && (r != nil || ix.epoch.Load() == ep) {
			return r, m
		}
	}
}

// probe looks for a key (its hash, length field and words) in t; retry
// says an entry on the way was being written.
func (t *table) probe(h, kl uint64, w *[4]uint64, key msg.Address) (r *rec, m uint64, retry bool) {
	for i, d := t.home(h), uint64(0); ; i, d = (i+1)&t.mask, d+1 {
		e := &t.e[i]
		m = e.meta.Load()
		switch {
		case m&1 != 0:
			return nil, 0, true
		case m == 0 || dist(m) < d:
			return nil, 0, false
		case m&(0xff<<mKeyShift) != kl || e.k[0].Load() != w[0] || e.k[1].Load() != w[1] ||
			e.k[2].Load() != w[2] || e.k[3].Load() != w[3]:
			continue
		}
		r = e.r.Load()
		if e.meta.Load() != m {
			return nil, 0, true
		}
		if kl>>mKeyShift == longKey && !r.has(key) {
			continue // same first 32 bytes, another long key
		}
		return r, m, false
	}
}

// get returns the record owning key, or nil.
func (ix *index) get(key msg.Address) *rec {
	r, _ := ix.find(key)
	return r
}

// slot returns the index of the entry holding key in t, or -1. Writer
// only (no entry is being written).
func (t *table) slot(key msg.Address, h uint64) int {
	w := keyWords(key)
	kl := keyLenField(len(key)) << mKeyShift
	for i, d := t.home(h), uint64(0); ; i, d = (i+1)&t.mask, d+1 {
		e := &t.e[i]
		m := e.meta.Load()
		switch {
		case m == 0 || dist(m) < d:
			return -1
		case m&(0xff<<mKeyShift) != kl || e.k[0].Load() != w[0] || e.k[1].Load() != w[1] ||
			e.k[2].Load() != w[2] || e.k[3].Load() != w[3]:
			continue
		case kl>>mKeyShift == longKey && !e.r.Load().has(key):
			continue
		}
		return int(i)
	}
}

// write sets e to (meta fields, r, key words) under its seqlock; fields
// 0 empties it.
func (e *entry) write(fields uint64, r *rec, w *[4]uint64) {
	seq := e.meta.Load() & mSeq
	e.meta.Store(seq | 1) // odd: readers wait
	e.r.Store(r)
	if w != nil {
		for j := range w {
			e.k[j].Store(w[j])
		}
	}
	if fields == 0 {
		e.meta.Store(0)
		return
	}
	e.meta.Store((seq+2)&mSeq | fields)
}

// read returns e's fields (meta without the counter), record and words.
// Writer only.
func (e *entry) read() (uint64, *rec, [4]uint64) {
	var w [4]uint64
	for j := range w {
		w[j] = e.k[j].Load()
	}
	return e.meta.Load() &^ mSeq, e.r.Load(), w
}

// put makes key point to r (which must have key among its addresses),
// replacing what it pointed to. Writer only.
func (ix *index) put(key msg.Address, r *rec) {
	h := ix.hash(key)
	t := ix.t.Load()
	fields := keyLenField(len(key))<<mKeyShift | r.layout()
	if i := t.slot(key, h); i >= 0 {
		e := &t.e[i]
		e.write(e.meta.Load()&(0xff<<mDist)|fields, r, nil)
		return
	}
	if (t.live+1)*100 > len(t.e)*maxLoadPercent {
		t = ix.rebuild(t, t.live+1)
	}
	w := keyWords(key)
	ix.epoch.Add(1)
	if !t.place(h, fields, r, &w) { // a run longer than maxDist: grow (practically never)
		ix.rebuild(t, 2*t.live)
	}
	ix.epoch.Add(1)
	ix.n++
}

// place inserts an entry in Robin Hood order: going along h's run, it
// takes the place of the first entry nearer its home than it is, which
// goes on in its stead. false if a distance would pass maxDist (the entry
// carried then is put back by the rebuild the caller makes).
func (t *table) place(h, fields uint64, r *rec, w *[4]uint64) bool {
	cur, cr, cw := fields, r, *w
	for i, d := t.home(h), uint64(0); ; i, d = (i+1)&t.mask, d+1 {
		if d > maxDist {
			t.pending = append(t.pending, pendingEntry{cur &^ (0xff << mDist), cr, cw})
			return false
		}
		e := &t.e[i]
		m := e.meta.Load()
		if m == 0 {
			e.write(cur&^(0xff<<mDist)|d<<mDist, cr, &cw)
			t.live++
			return true
		}
		if dist(m) < d {
			om, or, ow := e.read()
			e.write(cur&^(0xff<<mDist)|d<<mDist, cr, &cw)
			cur, cr, cw, d = om, or, ow, dist(om)
		}
	}
}

// del removes key, moving the rest of its run one entry back. Writer only.
func (ix *index) del(key msg.Address) {
	t := ix.t.Load()
	i := t.slot(key, ix.hash(key))
	if i < 0 {
		return
	}
	ix.epoch.Add(1)
	for {
		j := (uint64(i) + 1) & t.mask
		next := &t.e[j]
		m := next.meta.Load()
		if m == 0 || dist(m) == 0 {
			break
		}
		nm, nr, nw := next.read()
		t.e[i].write(nm-1<<mDist, nr, &nw)
		i = int(j)
	}
	t.e[i].write(0, nil, &[4]uint64{})
	ix.epoch.Add(1)
	t.live--
	ix.n--
}

// rebuild copies the live entries of t into a new table sized for want
// entries (at most half full) and publishes it.
func (ix *index) rebuild(t *table, want int) *table {
	size := minEntries
	for size < want*2 {
		size *= 2
	}
	for {
		nt := newTable(size)
		ok := true
		for i := range t.e {
			e := &t.e[i]
			if e.meta.Load() == 0 {
				continue
			}
			m, r, w := e.read()
			if !nt.place(ix.hash(r.addrWithWords(m, &w)), m, r, &w) {
				ok = false
				break
			}
		}
		for _, p := range t.pending {
			if !ok || !nt.place(ix.hash(p.r.addrWithWords(p.m, &p.w)), p.m, p.r, &p.w) {
				ok = false
				break
			}
		}
		if ok {
			ix.t.Store(nt)
			return nt
		}
		size *= 2
	}
}

// each calls fn for every live entry's record, with whether the entry is
// that of the record's own AOR.
func (ix *index) each(fn func(r *rec, own bool)) {
	t := ix.t.Load()
	for i := range t.e {
		e := &t.e[i]
		m := e.meta.Load()
		if m == 0 || m&1 != 0 {
			continue
		}
		r := e.r.Load()
		if r == nil {
			continue
		}
		aor := r.aor()
		w := keyWords(aor)
		own := m>>mKeyShift&0xff == keyLenField(len(aor)) && e.k[0].Load() == w[0] && e.k[1].Load() == w[1] &&
			e.k[2].Load() == w[2] && e.k[3].Load() == w[3]
		fn(r, own)
	}
}

// addrWithWords is the address of r an entry (meta m, words w) is for.
func (r *rec) addrWithWords(m uint64, w *[4]uint64) msg.Address {
	kl := m >> mKeyShift & 0xff
	for _, a := range r.all() {
		if keyLenField(len(a)) == kl && keyWords(a) == *w {
			return a
		}
	}
	panic("directory: index entry matches no address of its record")
}

// personOf is the Person of r, found with meta m: built from r's address
// and the offsets in m when the entry says so (without reading r), else
// read from r.
func personOf(r *rec, m uint64) Person {
	if m&mFast == 0 {
		return r.p
	}
	base := unsafe.Pointer(r)
	var p Person
	// The headers are written out (what unsafe.String and unsafe.Slice
	// would build, without their overflow checks: the offsets lie inside
	// r, layout made sure of it).
	*(*strHeader)(unsafe.Pointer(&p.Name)) = strHeader{unsafe.Add(base, m>>mNameOff&0xff), int(m >> mNameLen & 0xff)}
	nEnd := 1 + int(m>>26&1)
	*(*sliceHeader)(unsafe.Pointer(&p.Endpoints)) = sliceHeader{unsafe.Add(base, unsafe.Offsetof(r.inl)), nEnd, nEnd}
	*(*strHeader)(unsafe.Pointer(&p.Number)) = strHeader{unsafe.Add(base, m>>mNumOff&0xff), int(m >> mNumLen & 0xff)}
	return p
}

// strHeader and sliceHeader are the layouts of a string and a slice.
type strHeader struct {
	data unsafe.Pointer
	len  int
}

type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}
