package codec

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// The LZ coder of format version 3 codes the text of a message (literal
// header values, bodies) span by span, each span right where the message
// needs it. It is the version 2 coder (lz.go) plus items: a run of 5..19
// decimal digits, or of 8..263 hexadecimal digits of one case, may be
// coded as a number (digit count, then the value in binary) or as nibbles,
// close to their entropy, instead of byte by byte. The history holds the
// text itself, so a repeated id is still one match.

const (
	lz3Window  = 16 << 10
	lz3HistCap = lz3Window + 4<<10
	lit3Ctx    = 4 // span part (header value or body) × top bit of the previous byte

	minDigitItem = 5
	maxDigitItem = 19
	minHexItem   = 8
	maxHexItem   = minHexItem + 255

	q3IsMatch = 0
	q3IsRep   = q3IsMatch + nStates
	q3IsRep0  = q3IsRep + nStates
	q3IsItem  = q3IsRep0 + nStates
	q3ItemHex = q3IsItem + nStates // by part
	q3HexCase = q3ItemHex + 2
	q3NumHit  = q3HexCase + 2  // by part: the number is a recent one
	q3NumIdx  = q3NumHit + 2   // 7-bit tree: its index
	q3Digits  = q3NumIdx + 128 // 5-bit tree: digit count
	q3HexLen  = q3Digits + 32  // 8-bit tree: length - minHexItem
	q3Lit     = q3HexLen + 256
	q3LenM    = q3Lit + lit3Ctx*litSize
	q3LenR    = q3LenM + lenSize
	q3Slot    = q3LenR + lenSize
	q3Foot    = q3Slot + 4*nSlots
	q3Align   = q3Foot + endSlot*32
	n3Probs   = q4End + 1 // and lz4.go's

	goodLen   = 48 // a match this long ends the search
	lazyBelow = 16 // a shorter match may give way to a longer one a byte later
	skipAfter = 4  // after this many positions without a match, search every fourth one

	matchHead = 16 // positions indexed at the start of a match (stateful)

	partValue = 0 // a CRLF-ended literal
	partBody  = 1 // a body, or a dictionary

	litReserve = 1 << 10
)

// pow10 are the powers of ten below 2^64.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < 20; i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// lzRun is the small mutable part of the LZ model: state and repeat
// distances.
type lzRun struct {
	state uint8
	rep   [2]uint32
}

// hist3 is the history of one end and, on the encoding end, its match
// indexes (2-byte positions; a stale entry is harmless, every candidate
// is verified).
type hist3 struct {
	b    []byte
	base uint32
	hash *matchIndex
	loc  *localIndex // stateless: the frame's positions
	dict *dictIndex  // stateless: the primed history's, read-only (hash is unused then)
}

// dictIndex finds the positions of the primed history by their exact
// first 4 bytes, most recent first: a stateless frame searches the whole
// dictionary with one probe and no false candidates. Built once per
// profile. A slot is 8 bytes (key, where its positions start in pos,
// how many): the table is small enough to stay in a core's cache.
type dictIndex struct {
	t    []uint64 // key | first position<<32 | count<<48; 0: empty
	pos  []uint16
	mask uint32
	has  [1 << (dictHasBits - 6)]uint64 // by a hash of the key: whether any slot may hold it
}

const (
	dictWays    = 8  // positions kept of one key
	dictHasBits = 17 // most text a frame searches is not in the dictionary: a small bit set says so without a probe
)

func dictHas(k uint32) uint32 { return k * 0x9E3779B1 >> (32 - dictHasBits) }

func newDictIndex(h []byte, base uint32) *dictIndex {
	// Most recent first: the last dictWays positions of each key.
	byKey := map[uint32][]uint16{}
	var keys []uint32
	for i := len(h) - 4; i >= 0; i-- {
		k := binary.LittleEndian.Uint32(h[i:])
		ps, seen := byKey[k]
		if !seen {
			keys = append(keys, k)
		}
		if len(ps) < dictWays {
			byKey[k] = append(ps, uint16(base+uint32(i)))
		}
	}
	size := 1
	for size < 2*len(keys) {
		size <<= 1
	}
	d := &dictIndex{t: make([]uint64, size), mask: uint32(size - 1)}
	for _, k := range keys {
		s := d.slot(k)
		d.t[s] = uint64(k) | uint64(len(d.pos))<<32 | uint64(len(byKey[k]))<<48
		d.pos = append(d.pos, byKey[k]...)
		d.has[dictHas(k)>>6] |= 1 << (dictHas(k) & 63)
	}
	return d
}

// slot is the index of k's slot, or of the empty one where it would go.
func (d *dictIndex) slot(k uint32) uint32 {
	for s := k * 2654435761 >> 7 & d.mask; ; s = (s + 1) & d.mask {
		if e := d.t[s]; e == 0 || uint32(e) == k {
			return s
		}
	}
}

// positions returns the positions of key k, most recent first.
func (d *dictIndex) positions(k uint32) []uint16 {
	e := d.t[d.slot(k)]
	first, n := int(e>>32&0xFFFF), int(e>>48)
	return d.pos[first : first+n]
}

// localIndex indexes the positions of one stateless frame; its counts
// are cleared when a frame begins (a bucket holds min(n, locWays)
// positions).
type localIndex struct {
	t [1 << locBits][locWays]uint16
	n [1 << locBits]uint8
}

const (
	locBits = 9
	locWays = 8
)

// matchIndex finds match candidates: recent positions by the hash of
// their first 3 bytes, and, for the long matches that 3-byte buckets lose
// among frequent prefixes (XML tags, "sip:"), by their first 6 bytes.
type matchIndex struct {
	t3 [1 << t3Bits][t3Ways]uint16 // rings: next[i] is the slot written next
	n3 [1 << t3Bits]uint8
	t6 [1 << long6Bits][long6Ways]uint16
	n6 [1 << long6Bits]uint8
}

const (
	t3Bits    = 9
	t3Ways    = 16
	long6Bits = 8
	long6Ways = 4
)

// hash3x is the t3 bucket of the 3 bytes at b[i:] (hash3 with t3Bits).
func hash3x(b []byte, i int) uint32 {
	var v uint32
	if i+4 <= len(b) { // one load where it fits
		v = binary.LittleEndian.Uint32(b[i:]) & 0xFFFFFF
	} else {
		v = uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16
	}
	return v * 2654435761 >> (32 - t3Bits)
}

// hash6 is the t6 bucket of the 6 bytes at b[i:].
func hash6(b []byte, i int) uint32 {
	var v uint64
	if i+8 <= len(b) {
		v = binary.LittleEndian.Uint64(b[i:]) & (1<<48 - 1)
	} else {
		v = uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 | uint64(b[i+4])<<32 | uint64(b[i+5])<<40
	}
	return uint32(v * 0x9E3779B97F4A7C15 >> (64 - long6Bits))
}

func (h *hist3) insert(i int) {
	if i+3 > len(h.b) {
		return
	}
	pos := uint16(h.base + uint32(i))
	if l := h.loc; l != nil {
		x := hash3x(h.b, i) >> (t3Bits - locBits)
		k := l.n[x]
		l.t[x][k%locWays] = pos
		l.n[x] = k + 1
		return
	}
	m := h.hash
	if i+8 <= len(h.b) { // both hashes from one load
		v := binary.LittleEndian.Uint64(h.b[i:])
		x := uint32(v&0xFFFFFF) * 2654435761 >> (32 - t3Bits)
		y := uint32(v & (1<<48 - 1) * 0x9E3779B97F4A7C15 >> (64 - long6Bits))
		m.t3[x][m.n3[x]%t3Ways] = pos
		m.n3[x]++
		m.t6[y][m.n6[y]%long6Ways] = pos
		m.n6[y]++
		return
	}
	x := hash3x(h.b, i)
	m.t3[x][m.n3[x]%t3Ways] = pos
	m.n3[x]++
	if i+6 <= len(h.b) {
		y := hash6(h.b, i)
		m.t6[y][m.n6[y]%long6Ways] = pos
		m.n6[y]++
	}
}

// slide makes room for n more bytes within lz3HistCap by dropping the
// oldest history, keeping at most lz3Window. It depends on lengths only,
// never on capacities, which grow differently on the two ends.
func (h *hist3) slide(n int) {
	if len(h.b)+n <= lz3HistCap {
		return
	}
	keep := min(max(lz3HistCap-n, 0), lz3Window, len(h.b))
	drop := len(h.b) - keep
	if cap(h.b) > 2*lz3HistCap { // after a huge message: back to the normal size
		nb := make([]byte, keep, lz3HistCap)
		copy(nb, h.b[drop:])
		h.b = nb
	} else {
		copy(h.b, h.b[drop:])
		h.b = h.b[:keep]
	}
	h.base += uint32(drop)
}

func lit3Probs(p *[n3Probs]uint16, part int, prev byte) []uint16 {
	return p[q3Lit+(part<<1|int(prev>>7))*litSize:][:litSize]
}

// Character classes of items: one table load per byte.
const (
	clDigit    = 1
	clLowerHex = 2 // a-f
	clUpperHex = 4 // A-F
)

var charClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clDigit
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = clLowerHex
		t[c-'a'+'A'] = clUpperHex
	}
	return t
}()

// item reports an item starting at b[i] (of the span b[start:end]): its
// length, and whether it is hexadecimal (upper case: upper). A run of
// lower-case hex digits (with digits), one of upper-case ones or one of
// digits starts where its class starts; one scan finds where each ends.
func item(b []byte, i, start, end int) (n int, hex, upper bool) {
	c := charClass[b[i]]
	if c == 0 {
		return 0, false, false
	}
	var p uint8 // the class of the byte before
	if i > start {
		p = charClass[b[i-1]]
	}
	lowerOK := c&(clDigit|clLowerHex) != 0 && p&(clDigit|clLowerHex) == 0
	upperOK := c&(clDigit|clUpperHex) != 0 && p&(clDigit|clUpperHex) == 0
	digitOK := c == clDigit && p != clDigit
	if !lowerOK && !upperOK && !digitOK {
		return 0, false, false
	}
	// The first lower-case and upper-case letter, and the end of the hex
	// digits, within maxHexItem bytes.
	lim := min(end, i+maxHexItem)
	fl, fu, k := lim, lim, i
	for ; k < lim; k++ {
		x := charClass[b[k]]
		if x == 0 || fl < k && fu < k {
			break
		}
		if x == clLowerHex {
			fl = min(fl, k)
		}
		if x == clUpperHex {
			fu = min(fu, k)
		}
	}
	fl, fu = min(fl, k), min(fu, k)
	if lowerOK {
		if e := min(fu, k); fl < e && e-i >= minHexItem {
			return e - i, true, false
		}
	}
	if upperOK {
		if e := min(fl, k); fu < e && e-i >= minHexItem {
			return e - i, true, true
		}
	}
	if digitOK {
		if n := min(fl, fu, k) - i; n >= minDigitItem && n <= maxDigitItem {
			return n, false, false
		}
	}
	return 0, false, false
}

// encodeSpan appends span to the history and codes it. A literal value
// (partValue) is span and a CRLF: it makes room for litReserve bytes
// (its decoder cannot know its length), anything else for its length.
func (c *coder3) encodeSpan(rc *rcEncoder, span []byte, part int) {
	p, run, h := &c.st.lz, &c.sc.run, &c.h
	var start int
	if part == partValue {
		h.slide(litReserve)
		start = len(h.b)
		h.b = append(append(h.b, span...), '\r', '\n')
	} else {
		h.slide(len(span))
		start = len(h.b)
		h.b = append(h.b, span...)
	}
	b, end := h.b, len(h.b)
	misses := 0 // positions since the last match: in random text, search every other one
	// The lazy step's search at i+1 is the next position's search when
	// the literal at i wins: nothing it depends on changes in between.
	nextAt, nextLen, nextRep := -1, 0, 0
	var nextDist uint32
	var ts tokScan
	// Where random tokens are items, what remains is mostly matches of
	// the primed text: a longer match a byte later is not worth a search.
	lazy := lazyBelow
	if c.tok {
		lazy = 0
	}
	for i := start; i < end; {
		var n, kind int
		var upper bool
		if c.tok {
			n, kind, upper = item4(b, i, start, end, &ts)
		} else {
			var hex bool
			if n, hex, upper = item(b, i, start, end); hex {
				kind = itemHex
			} else if n > 0 {
				kind = itemNum
			}
		}
		var bestLen, rep int
		var bestDist uint32
		if i == nextAt {
			bestLen, bestDist, rep = nextLen, nextDist, nextRep
		} else if kind >= itemTok && h.loc != nil {
			// A stateless frame's random token is neither in the primed
			// text nor, in practice, twice in one message: no search.
		} else if misses < skipAfter || misses&3 == 0 {
			bestLen, bestDist, rep = h.find(run, i, end)
		}
		if bestLen == 0 {
			misses++
		} else {
			misses = 0
		}
		if end-i >= 3 {
			h.insert(i)
		}
		if n > bestLen || (kind == itemNum && bestLen < n+24 && c.cachedNumber(b[i:i+n])) {
			s := run.state
			rc.bit(&p[q3IsMatch+int(s)], 0)
			rc.bit(&p[q3IsItem+int(s)], 1)
			c.encItem(rc, b[i:i+n], part, kind, upper, h.base+uint32(i+n))
			if c.tok && part == partValue {
				// Whether the value ends with the item: its CRLF implied.
				last := i+n == end-2
				c.encValueEnd(rc, last)
				if last {
					n += 2
				}
			}
			run.state = stateAfterLit(s)
			// Its start is indexed. A later match may start inside a
			// number or hex run of a stateful session (an id that follows
			// the same prefix), not inside a token or within one message.
			if h.loc == nil && kind < itemTok {
				for k := i + 1; k < i+n; k++ {
					h.insert(k)
				}
			}
			i += n
			continue
		}
		// Lazy step: a clearly better match one byte later wins.
		if bestLen > 0 && bestLen < lazy && i+1 < end {
			l2, d2, rep2 := h.find(run, i+1, end)
			if l2 > bestLen+1 || (l2 > bestLen && rep2 >= 0 && rep < 0) {
				bestLen = 0
				nextAt, nextLen, nextDist, nextRep = i+1, l2, d2, rep2
			}
		}
		s := run.state
		if bestLen == 0 {
			var prev byte
			if i > 0 {
				prev = b[i-1]
			}
			probs := lit3Probs(p, part, prev)
			if matched := s >= 7 && int(run.rep[0]) <= i && run.rep[0] > 0; rc.frozen && !matched {
				rc.frozenLiteral(p[q3IsMatch+int(s)], p[q3IsItem+int(s)], probs, b[i])
			} else {
				rc.bit(&p[q3IsMatch+int(s)], 0)
				rc.bit(&p[q3IsItem+int(s)], 0)
				if matched {
					encMatchedLit(rc, probs, b[i], b[i-int(run.rep[0])])
				} else {
					rc.tree(probs, uint32(b[i]), 8)
				}
			}
			run.state = stateAfterLit(s)
			i++
			continue
		}
		rc.bit(&p[q3IsMatch+int(s)], 1)
		if rep >= 0 {
			rc.bit(&p[q3IsRep+int(s)], 1)
			rc.bit(&p[q3IsRep0+int(s)], uint32(rep))
			if rep == 1 {
				run.rep[0], run.rep[1] = run.rep[1], run.rep[0]
			}
			encLen(rc, p[q3LenR:][:lenSize], bestLen-lzMinLen)
			run.state = stateAfterRep(s)
		} else {
			rc.bit(&p[q3IsRep+int(s)], 0)
			encLen(rc, p[q3LenM:][:lenSize], bestLen-lzMinLen)
			encDist3(rc, p, bestDist-1, bestLen-lzMinLen, c.tok)
			run.rep[1], run.rep[0] = run.rep[0], bestDist
			run.state = stateAfterMatch(s)
		}
		// Inside a long match, index its head and tail only (a stateful
		// session). A stateless frame's matches mostly copy the primed
		// text, which its dictionary index finds anyway: none.
		if h.loc == nil {
			head := min(i+bestLen, i+matchHead)
			for k := i + 1; k < head; k++ {
				h.insert(k)
			}
			for k := max(head, i+bestLen-4); k < i+bestLen; k++ {
				h.insert(k)
			}
		}
		i += bestLen
	}
}

// find returns the best match at i ending by end: a repeat distance (rep
// 0 or 1) or a new distance from the index (rep -1); length 0 for none.
func (h *hist3) find(run *lzRun, i, end int) (bestLen int, bestDist uint32, rep int) {
	b := h.b
	maxLen := min(lzMaxLen, end-i)
	rep = -1
	for r := range 2 {
		if d := int(run.rep[r]); d >= 1 && d <= i && d <= lz3Window {
			if l := matchLen(b, i, i-d, maxLen); l >= lzMinLen && l > bestLen {
				bestLen, bestDist, rep = l, run.rep[r], r
			}
		}
	}
	// A new distance costs more than a repeat: it must be longer by two.
	need := max(bestLen+2, 3)
	if need > maxLen || bestLen >= goodLen {
		return bestLen, bestDist, rep
	}
	cur := uint16(h.base + uint32(i))
	maxD := min(lz3Window, i)
	// Candidates most recent first: this frame's positions (stateless),
	// then by 3-byte hash, then by 6-byte hash. Each is checked at its
	// first byte and at the byte it must match to be better.
	if l := h.loc; l != nil {
		// A frame's buckets hold few positions: each is tested in turn.
		x := hash3x(b, i) >> (t3Bits - locBits)
		bk, n := &l.t[x], int(l.n[x])
		for k := n - 1; k >= max(n-locWays, 0); k-- {
			d := int(cur - bk[k%locWays])
			if d == 0 || d > maxD || b[i-d] != b[i] || b[i-d+need-1] != b[i+need-1] {
				continue
			}
			if m := matchLen(b, i, i-d, maxLen); m >= need {
				bestLen, bestDist, rep, need = m, uint32(d), -1, m+2
				if need > maxLen || m >= goodLen {
					return bestLen, bestDist, rep
				}
			}
		}
	}
	if dx := h.dict; dx != nil {
		if maxLen >= 4 {
			k := binary.LittleEndian.Uint32(b[i:])
			if hk := dictHas(k); dx.has[hk>>6]&(1<<(hk&63)) == 0 {
				return bestLen, bestDist, rep
			}
			if ps := dx.positions(k); len(ps) > 0 {
				for _, c := range ps {
					d := int(uint16(cur - c))
					if d == 0 || d > maxD || b[i-d+need-1] != b[i+need-1] {
						continue
					}
					if m := matchLen(b, i, i-d, maxLen); m >= need {
						bestLen, bestDist, rep, need = m, uint32(d), -1, m+2
						if need > maxLen || m >= goodLen {
							break
						}
					}
				}
			}
		}
		return bestLen, bestDist, rep
	}
	x := hash3x(b, i)
	bk, n := &h.hash.t3[x], h.hash.n3[x]
	var ds [t3Ways]uint16
	for hits := h.firstByteHits(i, maxD, bk[:], n, &ds); hits != 0; hits &= hits - 1 {
		d := int(ds[bits.TrailingZeros32(hits)])
		if b[i-d+need-1] != b[i+need-1] {
			continue
		}
		if m := matchLen(b, i, i-d, maxLen); m >= need {
			bestLen, bestDist, rep, need = m, uint32(d), -1, m+2
			if need > maxLen || m >= goodLen {
				return bestLen, bestDist, rep
			}
		}
	}
	if maxLen >= 6 {
		y := hash6(b, i)
		bk, n := &h.hash.t6[y], h.hash.n6[y]
		var ds [t3Ways]uint16
		for hits := h.firstByteHits(i, maxD, bk[:], n, &ds); hits != 0; hits &= hits - 1 {
			d := int(ds[bits.TrailingZeros32(hits)])
			if b[i-d+need-1] != b[i+need-1] {
				continue
			}
			if m := matchLen(b, i, i-d, maxLen); m >= need {
				bestLen, bestDist, rep, need = m, uint32(d), -1, m+2
				if need > maxLen || m >= goodLen {
					break
				}
			}
		}
	}
	return bestLen, bestDist, rep
}

// firstByteHits returns the distances of a bucket's positions, most
// recent first (n: positions ever written to the ring bk), and a bit per
// position within maxD whose byte is b[i]: most candidates fail there,
// and testing them all without a branch each costs less than guessing.
func (h *hist3) firstByteHits(i, maxD int, bk []uint16, n uint8, ds *[t3Ways]uint16) uint32 {
	b := h.b
	c0 := b[i]
	cur := uint16(h.base + uint32(i))
	ways := min(len(bk), t3Ways) // a power of two
	top, lim := int(n)-1, maxD-1
	var hits uint32
	for k := range ways {
		d := cur - bk[(top-k)&(ways-1)]
		ds[k] = d
		x := int(d) - 1
		ok := ^((x | (lim - x)) >> 63) // all ones when 1 <= d <= maxD (<= i)
		var hit uint32
		if b[i-int(d)&ok] == c0 {
			hit = 1
		}
		hits |= hit & uint32(ok) << (uint(k) & 31)
	}
	return hits
}

func digitBits(n int) int { return bits.Len64(pow10[n] - 1) }

// encItem codes a number (one of the recent ones, or its digit count and
// value), a hex run (case, length, nibbles) or, in version 4, a token or
// UUID (lz4.go).
func (c *coder3) encItem(rc *rcEncoder, t []byte, part, kind int, upper bool, after uint32) {
	p := &c.st.lz
	if kind == itemNum {
		rc.bit(&p[q3ItemHex+part], 0)
		v, _ := parseDigits(t)
		c.anchor(c.encNumber(rc, v, len(t), part, after), after)
		return
	}
	rc.bit(&p[q3ItemHex+part], 1)
	if c.tok && c.encToken4(rc, t, part, kind, upper) {
		return
	}
	cs := uint32(0)
	if upper {
		cs = 1
	}
	rc.bit(&p[q3HexCase+part], cs)
	rc.tree(p[q3HexLen:][:256], uint32(len(t)-minHexItem), 8)
	for i := 0; i < len(t); i += 4 {
		var w uint32
		k := min(4, len(t)-i)
		for _, ch := range t[i : i+k] {
			w = w<<4 | uint32(unhex(ch))
		}
		rc.uniform(w, 4*k)
	}
}

// encNumber codes a number of d digits (leading zeros counted): the index
// of an equal recent number, or the digit count and the value. after is
// the history position after it; it returns the position after its last
// occurrence (0: none).
func (c *coder3) encNumber(rc *rcEncoder, v uint64, d, part int, after uint32) uint32 {
	p, nc := &c.st.lz, &c.st.nc
	if k := nc.find(v, d); k >= 0 {
		rc.bit(&p[q3NumHit+part], 1)
		rc.tree(p[q3NumIdx:][:nCache], uint32(k), nCacheBits)
		prev := nc.pos[k]
		if !c.frozen {
			nc.use(k)
			nc.pos[0] = after
		}
		return prev
	}
	rc.bit(&p[q3NumHit+part], 0)
	rc.tree(p[q3Digits:][:32], uint32(d), 5)
	directBits(rc, v, digitBits(d))
	if !c.frozen {
		nc.insert(v, d, after)
	}
	return 0
}

func (c *coder3) decNumber(rc *rcDecoder, part int, at uint32) (v uint64, d int, prev uint32, ok bool) {
	p, nc := &c.st.lz, &c.st.nc
	if rc.bit(&p[q3NumHit+part]) == 1 {
		k := int(rc.tree(p[q3NumIdx:][:nCache], nCacheBits))
		if k >= nc.n {
			return 0, 0, 0, false
		}
		v, d, prev = nc.v[k], int(nc.d[k]), nc.pos[k]
		if !c.frozen {
			nc.use(k)
			nc.pos[0] = at + uint32(d)
		}
		return v, d, prev, true
	}
	d = int(rc.tree(p[q3Digits:][:32], 5))
	if d < 1 || d > maxDigitItem {
		return 0, 0, 0, false
	}
	if v = readDirectBits(rc, digitBits(d)); v >= pow10[d] {
		return 0, 0, 0, false
	}
	if !c.frozen {
		nc.insert(v, d, at+uint32(d))
	}
	return v, d, 0, true
}

// cachedNumber reports whether the digits t are a recent number.
func (c *coder3) cachedNumber(t []byte) bool {
	v, _ := parseDigits(t)
	return c.st.nc.find(v, len(t)) >= 0
}

// anchor points the first repeat distance, after a recent number, at
// what followed that number last time: an entity's number tends to be
// followed by the same text as before.
func (c *coder3) anchor(prev, after uint32) {
	if prev == 0 || prev < c.h.base || prev >= after || after-prev > lz3Window {
		return
	}
	if d := after - prev; d != c.sc.run.rep[0] {
		c.sc.run.rep[1], c.sc.run.rep[0] = c.sc.run.rep[0], d
	}
}

// parseDigits is the value of a run of decimal digits (leading zeros allowed).
func parseDigits(t []byte) (uint64, bool) {
	var v uint64
	for _, c := range t {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// directBits codes the low n (<= 64) bits of v at p = 1/2, in chunks of
// up to 16 bits, most significant first.
func directBits(rc *rcEncoder, v uint64, n int) {
	for n > 0 {
		k := min(n, 16)
		n -= k
		rc.uniform(uint32(v>>uint(n)), k)
	}
}

func readDirectBits(rc *rcDecoder, n int) uint64 {
	var v uint64
	for n > 0 {
		k := min(n, 16)
		n -= k
		v = v<<uint(k) | uint64(rc.uniform(k))
	}
	return v
}

// encDist3 codes a distance: its slot, then the bits below its top two,
// the low 4 of a far one by an adaptive tree, unless tok (version 4
// items; their frames' far distances point into the primed text, whose
// low bits are as good as random): then all in one step.
func encDist3(rc *rcEncoder, p *[n3Probs]uint16, d uint32, l int, tok bool) {
	slot := distSlot(d)
	rc.tree(p[q3Slot+min(l, 3)*nSlots:][:nSlots], slot, 5)
	if slot < 4 {
		return
	}
	nd := int(slot>>1) - 1
	rem := d - (2|slot&1)<<uint(nd)
	if slot < endSlot {
		rc.tree(p[q3Foot+int(slot)*32:][:32], rem, nd)
		return
	}
	if tok {
		rc.uniform(rem, nd)
		return
	}
	rc.uniform(rem>>4, nd-4)
	rc.tree(p[q3Align:][:16], rem&15, 4)
}

func decDist3(rc *rcDecoder, p *[n3Probs]uint16, l int, tok bool) uint32 {
	slot := rc.tree(p[q3Slot+min(l, 3)*nSlots:][:nSlots], 5)
	if slot < 4 {
		return slot
	}
	nd := int(slot>>1) - 1
	base := (2 | slot&1) << uint(nd)
	if slot < endSlot {
		return base + rc.tree(p[q3Foot+int(slot)*32:][:32], nd)
	}
	if tok {
		return base + rc.uniform(nd)
	}
	hi := rc.uniform(nd - 4)
	return base + hi<<4 + rc.tree(p[q3Align:][:16], 4)
}

const hexLower, hexUpper = "0123456789abcdef", "0123456789ABCDEF"

// decodeSpan decodes n bytes into the history and returns them; n < 0:
// up to and including the first CRLF (encLiteral).
func (c *coder3) decodeSpan(rc *rcDecoder, n, part int) ([]byte, error) {
	p, run, h := &c.st.lz, &c.sc.run, &c.h
	toCRLF := n < 0
	if toCRLF {
		n = MaxMessageSize
	}
	if toCRLF {
		h.slide(litReserve)
	} else {
		h.slide(n)
	}
	start := len(h.b)
	b := h.b
	end := start + n
	for len(b) < end {
		if toCRLF && len(b)-start >= 2 && b[len(b)-2] == '\r' && b[len(b)-1] == '\n' {
			break
		}
		if rc.pos > len(rc.in)+rcMaxTrim {
			h.b = b[:start]
			return nil, errOverrun
		}
		i := len(b)
		s := run.state
		kind := litMatch
		if rc.frozen {
			var prev byte
			if i > 0 {
				prev = b[i-1]
			}
			mb := -1
			if s >= 7 && int(run.rep[0]) <= i && run.rep[0] > 0 {
				mb = int(b[i-int(run.rep[0])])
			}
			var ch byte
			switch kind, ch = rc.frozenLiteral(p[q3IsMatch+int(s)], p[q3IsItem+int(s)], lit3Probs(p, part, prev), mb); kind {
			case litByte:
				b = append(b, ch)
				run.state = stateAfterLit(s)
				continue
			case litItem:
				var ok bool
				if b, ok = c.decItem(rc, b, part, end); !ok {
					h.b = b[:start]
					return nil, errBadItem
				}
				if c.tok && part == partValue && c.decValueEnd(rc) {
					b = append(b, '\r', '\n')
				}
				run.state = stateAfterLit(s)
				continue
			}
		} else if rc.bit(&p[q3IsMatch+int(s)]) == 0 {
			if rc.bit(&p[q3IsItem+int(s)]) == 1 {
				var ok bool
				if b, ok = c.decItem(rc, b, part, end); !ok {
					h.b = b[:start]
					return nil, errBadItem
				}
				if c.tok && part == partValue && c.decValueEnd(rc) {
					b = append(b, '\r', '\n')
				}
				run.state = stateAfterLit(s)
				continue
			}
			var prev byte
			if i > 0 {
				prev = b[i-1]
			}
			probs := lit3Probs(p, part, prev)
			var c byte
			if s >= 7 && int(run.rep[0]) <= i && run.rep[0] > 0 {
				c = decMatchedLit(rc, probs, b[i-int(run.rep[0])])
			} else {
				c = byte(rc.tree(probs, 8))
			}
			b = append(b, c)
			run.state = stateAfterLit(s)
			continue
		}
		var l int
		if rc.bit(&p[q3IsRep+int(s)]) == 1 {
			if rc.bit(&p[q3IsRep0+int(s)]) == 1 {
				run.rep[0], run.rep[1] = run.rep[1], run.rep[0]
			}
			l = decLen(rc, p[q3LenR:][:lenSize])
			run.state = stateAfterRep(s)
		} else {
			l = decLen(rc, p[q3LenM:][:lenSize])
			d := decDist3(rc, p, l, c.tok) + 1
			run.rep[1], run.rep[0] = run.rep[0], d
			run.state = stateAfterMatch(s)
		}
		l += lzMinLen
		d := int(run.rep[0])
		if d > i || d > lz3Window || l > end-i {
			h.b = b[:start]
			return nil, errBadMatch
		}
		if d >= l {
			b = append(b, b[i-d:i-d+l]...)
		} else {
			for k := range l { // overlapping: each byte may be one just copied
				b = append(b, b[i-d+k])
			}
		}
		if toCRLF {
			// A CRLF may only end the text: the last byte of a match or
			// the one after it.
			if at := bytes.Index(b[max(i-1, start):len(b)-1], crlfcrlf[:2]); at >= 0 && max(i-1, start)+at+2 < len(b) {
				h.b = b[:start]
				return nil, errBadMatch
			}
		}
	}
	if toCRLF && (len(b)-start < 2 || b[len(b)-2] != '\r' || b[len(b)-1] != '\n') {
		h.b = b[:start]
		return nil, errTooLarge
	}
	h.b = b
	return b[start:], nil
}

func (c *coder3) decItem(rc *rcDecoder, b []byte, part, end int) ([]byte, bool) {
	p := &c.st.lz
	if rc.bit(&p[q3ItemHex+part]) == 0 {
		at := c.h.base + uint32(len(b))
		v, n, prev, ok := c.decNumber(rc, part, at)
		if !ok || n < minDigitItem || len(b)+n > end {
			return b, false
		}
		b = appendDigits(b, v, n)
		c.anchor(prev, at+uint32(n))
		return b, true
	}
	if c.tok {
		var hex, ok bool
		if b, hex, ok = c.decToken4(rc, b, part, end); !hex {
			return b, ok
		}
	}
	digits := hexLower
	if rc.bit(&p[q3HexCase+part]) == 1 {
		digits = hexUpper
	}
	n := int(rc.tree(p[q3HexLen:][:256], 8)) + minHexItem
	if len(b)+n > end {
		return b, false
	}
	for i := 0; i < n; i += 4 {
		k := min(4, n-i)
		w := rc.uniform(4 * k)
		for s := 4 * (k - 1); s >= 0; s -= 4 {
			b = append(b, digits[w>>uint(s)&15])
		}
	}
	return b, true
}

// appendDigits appends v as exactly n decimal digits (leading zeros),
// dividing by the constant 10 (a multiplication) rather than by powers
// of ten from a table.
func appendDigits(b []byte, v uint64, n int) []byte {
	var buf [maxDigitItem]byte
	for k := n - 1; k >= 0; k-- {
		buf[k] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:n]...)
}

// numCache holds recent numbers (value and digit count), most recent
// first; both ends insert exactly the numbers coded in full.
type numCache struct {
	v   [nCache]uint64
	d   [nCache]uint8
	pos [nCache]uint32 // history position after its last occurrence; 0: none
	n   int
}

const (
	nCacheBits = 7
	nCache     = 1 << nCacheBits
)

func (c *numCache) find(v uint64, d int) int {
	for i := 0; i < c.n; i++ {
		if c.v[i] == v && int(c.d[i]) == d {
			return i
		}
	}
	return -1
}

func (c *numCache) use(i int) {
	v, d, p := c.v[i], c.d[i], c.pos[i]
	copy(c.v[1:i+1], c.v[:i])
	copy(c.d[1:i+1], c.d[:i])
	copy(c.pos[1:i+1], c.pos[:i])
	c.v[0], c.d[0], c.pos[0] = v, d, p
}

func (c *numCache) insert(v uint64, d int, pos uint32) {
	if c.n < nCache {
		c.n++
	}
	copy(c.v[1:c.n], c.v[:c.n-1])
	copy(c.d[1:c.n], c.d[:c.n-1])
	copy(c.pos[1:c.n], c.pos[:c.n-1])
	c.v[0], c.d[0], c.pos[0] = v, uint8(d), pos
}
