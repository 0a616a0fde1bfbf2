package codec

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The LZ coder of format version 2, kept to decode its frames (lz3.go is
// version 3's): LZ77 over a 16 KiB history with every symbol range-coded
// by adaptive models (a small LZMA): literals by part (tokens or residual),
// the top bits of the previous byte and, right after a match, the byte the
// match would have continued with; two repeat distances; lengths and
// distances by slot. The history starts as the preset dictionary and the
// models as they are after coding it ("primed"), on both ends. The
// encoding half (lzEnc) only builds that primed state now, and its
// helpers (lengths, distance slots, matched literals) serve version 3.

const (
	lzWindow  = 16 << 10            // maximum match distance
	lzHistCap = lzWindow + 4<<10    // history buffer; slides back to lzWindow when full
	lzMinLen  = 2                   // shortest coded length (3 for a new distance)
	lzMaxLen  = lzMinLen + 16 + 255 // longest coded length
	hashBits  = 9
	hashWays  = 8

	nStates   = 12
	lcBits    = 2 // literal context: top bits of the previous byte
	nLitCtx   = 2 << lcBits
	litSize   = 0x300
	lenSize   = 2 + 8 + 8 + 256
	nSlots    = 32
	endSlot   = 14 // slots from here on: direct bits + 4 align bits
	nPaySlots = 22 // payload lengths below 2^21

	pIsMatch = 0
	pIsRep   = pIsMatch + nStates
	pIsRep0  = pIsRep + nStates
	pLit     = pIsRep0 + nStates
	pLenM    = pLit + nLitCtx*litSize
	pLenR    = pLenM + lenSize
	pSlot    = pLenR + lenSize // [4 length states][nSlots]
	pFoot    = pSlot + 4*nSlots
	pAlign   = pFoot + endSlot*32
	pPayLen  = pAlign + 16 // [2][nSlots + nPaySlots*16]
	payLenSz = nSlots + nPaySlots*16
	nProbs   = pPayLen + 2*payLenSz
)

// lzModel is the adaptive state shared (by symmetry) by both ends.
type lzModel struct {
	p     [nProbs]uint16
	state uint8
	rep   [2]uint32
}

func (m *lzModel) init() {
	for i := range m.p {
		m.p[i] = probInit
	}
	m.state, m.rep = 0, [2]uint32{1, 1}
}

func stateAfterLit(s uint8) uint8 {
	switch {
	case s < 4:
		return 0
	case s < 10:
		return s - 3
	}
	return s - 6
}

func stateAfterMatch(s uint8) uint8 {
	if s < 7 {
		return 7
	}
	return 10
}

func stateAfterRep(s uint8) uint8 {
	if s < 7 {
		return 8
	}
	return 11
}

func litCtx(part int, prev byte) int { return (part<<lcBits | int(prev>>(8-lcBits))) * litSize }

// litProbs is the literal model for position i of history h, whose current
// message starts at start: its first tokLen bytes (the typed tokens) and the
// rest have separate contexts, each by the previous byte.
func (m *lzModel) litProbs(h []byte, i, start, tokLen int) []uint16 {
	part := 1
	if i-start < tokLen {
		part = 0
	}
	var prev byte
	if i > 0 {
		prev = h[i-1]
	}
	return m.p[pLit+litCtx(part, prev):][:litSize]
}

func distSlot(d uint32) uint32 {
	if d < 4 {
		return d
	}
	nb := uint32(bits.Len32(d))
	return 2*(nb-1) | d>>(nb-2)&1
}

// lzEnc is the encoding end: model, history and a match index of
// 2-way buckets holding the low 16 bits of absolute positions (a stale
// entry is harmless: every candidate is verified).
type lzEnc struct {
	m    lzModel
	hist []byte
	base uint32 // absolute position of hist[0]
	hash [1 << hashBits][hashWays]uint16
}

func hash3(b []byte) uint32 {
	return (uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16) * 2654435761 >> (32 - hashBits)
}

func (z *lzEnc) insert(i int) {
	if i+3 > len(z.hist) {
		return
	}
	b := &z.hash[hash3(z.hist[i:])]
	copy(b[1:], b[:hashWays-1])
	b[0] = uint16(z.base + uint32(i))
}

// slide keeps the last lzWindow bytes of history when n more would not fit.
func (z *lzEnc) slide(n int) { z.hist, z.base = slideHist(z.hist, z.base, n) }

func slideHist(h []byte, base uint32, n int) ([]byte, uint32) {
	if len(h)+n <= cap(h) || len(h) <= lzWindow {
		return h, base
	}
	drop := len(h) - lzWindow
	if cap(h) > 2*lzHistCap { // after a huge message: back to the normal size
		nh := make([]byte, lzWindow, lzHistCap)
		copy(nh, h[drop:])
		return nh, base + uint32(drop)
	}
	copy(h, h[drop:])
	return h[:lzWindow], base + uint32(drop)
}

// matchLen is the length of the common prefix of h[i:] and h[j:], at most max.
func matchLen(h []byte, i, j, max int) int {
	n := 0
	for n+8 <= max {
		if x := binary.LittleEndian.Uint64(h[i+n:]) ^ binary.LittleEndian.Uint64(h[j+n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < max && h[i+n] == h[j+n] {
		n++
	}
	return n
}

// encode appends tok and res to the history and codes them; token bytes
// have their own literal contexts.
func (z *lzEnc) encode(rc *rcEncoder, tok, res []byte) {
	z.slide(len(tok) + len(res))
	start, tokLen := len(z.hist), len(tok)
	z.hist = append(append(z.hist, tok...), res...)
	h, m := z.hist, &z.m
	for i := start; i < len(h); {
		bestLen, bestDist, rep := z.find(i)
		if len(h)-i >= 3 {
			z.insert(i)
		}
		// Lazy step: a clearly better match one byte later wins.
		if bestLen > 0 && bestLen < 64 && i+1 < len(h) {
			if l2, _, rep2 := z.find(i + 1); l2 > bestLen+1 || (l2 > bestLen && rep2 >= 0 && rep < 0) {
				bestLen = 0
			}
		}
		s := m.state
		if bestLen == 0 {
			rc.bit(&m.p[pIsMatch+int(s)], 0)
			probs := m.litProbs(h, i, start, tokLen)
			if s >= 7 && int(m.rep[0]) <= i {
				encMatchedLit(rc, probs, h[i], h[i-int(m.rep[0])])
			} else {
				rc.tree(probs, uint32(h[i]), 8)
			}
			m.state = stateAfterLit(s)
			i++
			continue
		}
		rc.bit(&m.p[pIsMatch+int(s)], 1)
		if rep >= 0 {
			rc.bit(&m.p[pIsRep+int(s)], 1)
			rc.bit(&m.p[pIsRep0+int(s)], uint32(rep))
			if rep == 1 {
				m.rep[0], m.rep[1] = m.rep[1], m.rep[0]
			}
			encLen(rc, m.p[pLenR:][:lenSize], bestLen-lzMinLen)
			m.state = stateAfterRep(s)
		} else {
			rc.bit(&m.p[pIsRep+int(s)], 0)
			encLen(rc, m.p[pLenM:][:lenSize], bestLen-lzMinLen)
			encDist(rc, m, bestDist-1, bestLen-lzMinLen)
			m.rep[1], m.rep[0] = m.rep[0], bestDist
			m.state = stateAfterMatch(s)
		}
		for k := i + 1; k < i+bestLen; k++ {
			z.insert(k)
		}
		i += bestLen
	}
}

// find returns the best match at i: a repeat distance (rep 0 or 1) or a
// new distance from the index (rep -1); length 0 for none.
func (z *lzEnc) find(i int) (bestLen int, bestDist uint32, rep int) {
	h, m := z.hist, &z.m
	maxLen := min(lzMaxLen, len(h)-i)
	rep = -1
	for r := range 2 {
		if d := int(m.rep[r]); d <= i {
			if l := matchLen(h, i, i-d, maxLen); l >= lzMinLen && l > bestLen {
				bestLen, bestDist, rep = l, m.rep[r], r
			}
		}
	}
	if maxLen < 3 {
		return bestLen, bestDist, rep
	}
	cur := uint16(z.base + uint32(i))
	for _, c := range z.hash[hash3(h[i:])] {
		d := int(uint16(cur - c))
		if d == 0 || d > lzWindow || d > i {
			continue
		}
		// A new distance costs more than a repeat: it must be longer.
		if l := matchLen(h, i, i-d, maxLen); l >= 3 && l > bestLen+1 {
			bestLen, bestDist, rep = l, uint32(d), -1
		}
	}
	return bestLen, bestDist, rep
}

func encMatchedLit(rc *rcEncoder, p []uint16, c, mb byte) {
	if rc.frozen {
		rc.matchedFrozen(p, c, mb)
		return
	}
	offs, sym, mbb := uint32(0x100), uint32(1), uint32(mb)
	for i := 7; i >= 0; i-- {
		mbb <<= 1
		mbit := mbb & offs
		b := uint32(c) >> uint(i) & 1
		rc.bit(&p[offs+mbit+sym], b)
		sym = sym<<1 | b
		if offs != 0 && (mbit != 0) != (b != 0) {
			offs = 0
		}
	}
}

func decMatchedLit(rc *rcDecoder, p []uint16, mb byte) byte {
	if rc.frozen {
		return rc.matchedFrozen(p, mb)
	}
	offs, sym, mbb := uint32(0x100), uint32(1), uint32(mb)
	for range 8 {
		mbb <<= 1
		mbit := mbb & offs
		b := rc.bit(&p[offs+mbit+sym])
		sym = sym<<1 | b
		if offs != 0 && (mbit != 0) != (b != 0) {
			offs = 0
		}
	}
	return byte(sym)
}

func encLen(rc *rcEncoder, p []uint16, l int) {
	switch {
	case l < 8:
		rc.bit(&p[0], 0)
		rc.tree(p[2:10], uint32(l), 3)
	case l < 16:
		rc.bit(&p[0], 1)
		rc.bit(&p[1], 0)
		rc.tree(p[10:18], uint32(l-8), 3)
	default:
		rc.bit(&p[0], 1)
		rc.bit(&p[1], 1)
		rc.tree(p[18:274], uint32(l-16), 8)
	}
}

func decLen(rc *rcDecoder, p []uint16) int {
	if rc.bit(&p[0]) == 0 {
		return int(rc.tree(p[2:10], 3))
	}
	if rc.bit(&p[1]) == 0 {
		return 8 + int(rc.tree(p[10:18], 3))
	}
	return 16 + int(rc.tree(p[18:274], 8))
}

func encDist(rc *rcEncoder, m *lzModel, d uint32, l int) {
	slot := distSlot(d)
	rc.tree(m.p[pSlot+min(l, 3)*nSlots:][:nSlots], slot, 5)
	if slot < 4 {
		return
	}
	nd := int(slot>>1) - 1
	rem := d - (2|slot&1)<<uint(nd)
	if slot < endSlot {
		rc.tree(m.p[pFoot+int(slot)*32:][:32], rem, nd)
		return
	}
	rc.direct(rem>>4, nd-4)
	rc.tree(m.p[pAlign:][:16], rem&15, 4)
}

func decDist(rc *rcDecoder, m *lzModel, l int) uint32 {
	slot := rc.tree(m.p[pSlot+min(l, 3)*nSlots:][:nSlots], 5)
	if slot < 4 {
		return slot
	}
	nd := int(slot>>1) - 1
	base := (2 | slot&1) << uint(nd)
	if slot < endSlot {
		return base + rc.tree(m.p[pFoot+int(slot)*32:][:32], nd)
	}
	hi := rc.direct(nd - 4)
	return base + hi<<4 + rc.tree(m.p[pAlign:][:16], 4)
}

// Payload lengths (which = 0 tokens, 1 residual): bit length by an
// adaptive tree, then up to 4 adaptive bits below the leading one, the
// rest direct.
func decPayLen(rc *rcDecoder, m *lzModel, which int) (uint32, bool) {
	p := m.p[pPayLen+which*payLenSz:][:payLenSz]
	nb := int(rc.tree(p[:nSlots], 5))
	if nb <= 1 {
		return uint32(nb), true
	}
	if nb > nPaySlots {
		return 0, false
	}
	n := nb - 1
	hi := min(n, 4)
	top := rc.tree(p[nSlots+(nb-2)*16:][:16], hi)
	low := rc.direct(n - hi)
	return 1<<uint(n) | top<<uint(n-hi) | low, true
}

// lzDec is the decoding end.
type lzDec struct {
	m    lzModel
	hist []byte
	base uint32
}

// decode appends n decoded bytes (tokLen of them token bytes) to the
// history and returns them.
func (z *lzDec) decode(rc *rcDecoder, n, tokLen int) ([]byte, error) {
	z.hist, z.base = slideHist(z.hist, z.base, n)
	start := len(z.hist)
	h, m := z.hist, &z.m
	end := start + n
	for len(h) < end {
		if rc.pos > len(rc.in)+rcMaxTrim {
			return nil, fmt.Errorf("codec: coded payload overruns its frame: %w", ErrCorrupt)
		}
		i := len(h)
		s := m.state
		if rc.bit(&m.p[pIsMatch+int(s)]) == 0 {
			probs := m.litProbs(h, i, start, tokLen)
			var c byte
			if s >= 7 && int(m.rep[0]) <= i {
				c = decMatchedLit(rc, probs, h[i-int(m.rep[0])])
			} else {
				c = byte(rc.tree(probs, 8))
			}
			h = append(h, c)
			m.state = stateAfterLit(s)
			continue
		}
		var l int
		if rc.bit(&m.p[pIsRep+int(s)]) == 1 {
			if rc.bit(&m.p[pIsRep0+int(s)]) == 1 {
				m.rep[0], m.rep[1] = m.rep[1], m.rep[0]
			}
			l = decLen(rc, m.p[pLenR:][:lenSize])
			m.state = stateAfterRep(s)
		} else {
			l = decLen(rc, m.p[pLenM:][:lenSize])
			d := decDist(rc, m, l) + 1
			m.rep[1], m.rep[0] = m.rep[0], d
			m.state = stateAfterMatch(s)
		}
		l += lzMinLen
		d := int(m.rep[0])
		if d > i || d > lzWindow || l > end-i {
			z.hist = h[:start]
			return nil, fmt.Errorf("codec: match (distance %d, length %d) outside the history: %w", d, l, ErrCorrupt)
		}
		for k := range l {
			h = append(h, h[i-d+k])
		}
	}
	z.hist = h
	return h[start:], nil
}

// primedState is the state of both ends before the first frame: the
// dictionary as history, its match index, and the models after coding it.
// Built once at package initialization, read-only afterwards.
type primedState struct {
	m    lzModel
	hist []byte
	hash [1 << hashBits][hashWays]uint16
}

var primed = buildPrimed()

func buildPrimed() *primedState {
	z := &lzEnc{hist: make([]byte, 0, len(residualDict))}
	z.m.init()
	var rc rcEncoder
	rc.init(nil)
	z.encode(&rc, nil, residualDict)
	return &primedState{m: z.m, hist: z.hist, hash: z.hash}
}

// restart puts the decoding end in the primed state.
func (z *lzDec) restart() {
	z.m, z.base = primed.m, 0
	if cap(z.hist) > 2*lzHistCap {
		z.hist = make([]byte, 0, lzHistCap)
	}
	z.hist = append(z.hist[:0], primed.hist...)
}

// rewind is restart for stateless frames: the history still starts with
// the dictionary (a stateless end never slides, base stays 0), so only the
// models are copied.
func (z *lzDec) rewind() {
	if z.base != 0 || len(z.hist) < len(primed.hist) || cap(z.hist) > 2*lzHistCap {
		z.restart()
		return
	}
	z.m, z.hist = primed.m, z.hist[:len(primed.hist)]
}

// rcMaxTrim is how many trailing zero bytes an encoder may drop; a
// decoder reading further than that past the frame has garbage.
const rcMaxTrim = 8
