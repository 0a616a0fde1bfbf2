package codec

// Adaptive binary range coder (the LZMA design): every coded bit has an
// 11-bit probability that adapts as it is used, so a model that lives as
// long as the connection keeps learning, and a frame carries no tables.
//
// Each frame is its own range-coder run (the probabilities persist, the
// coder registers do not). Two changes against LZMA trim the per-frame
// cost to about one byte: the always-zero first byte is not sent, and the
// end chooses the value with the most trailing zero bits inside the final
// interval and drops those zero bytes (the decoder reads zeros past the
// end of the frame).

const (
	probBits  = 11
	probOne   = 1 << probBits
	probInit  = probOne / 2
	moveBits  = 5
	rcTopBits = 1 << 24
)

type rcEncoder struct {
	low       uint64
	rng       uint32
	cache     byte
	cacheSize int
	skip      bool // the first byte of a run is always 0: not sent
	out       []byte
	start     int  // len(out) when the run began
	frozen    bool // code with the probabilities without adapting them (shared primed models)
}

func (e *rcEncoder) init(out []byte) {
	e.low, e.rng, e.cache, e.cacheSize, e.skip = 0, 0xFFFFFFFF, 0, 1, true
	e.out, e.start = out, len(out)
}

func (e *rcEncoder) shiftLow() {
	if uint32(e.low) < 0xFF000000 || e.low>>32 != 0 {
		carry := byte(e.low >> 32)
		temp := e.cache
		for {
			if e.skip {
				e.skip = false
			} else {
				e.out = append(e.out, temp+carry)
			}
			temp = 0xFF
			e.cacheSize--
			if e.cacheSize == 0 {
				break
			}
		}
		e.cache = byte(e.low >> 24)
	}
	e.cacheSize++
	e.low = (e.low & 0x00FFFFFF) << 8
}

func (e *rcEncoder) bit(p *uint16, b uint32) {
	bound := (e.rng >> probBits) * uint32(*p)
	if b == 0 {
		e.rng = bound
		if !e.frozen {
			*p += (probOne - *p) >> moveBits
		}
	} else {
		e.low += uint64(bound)
		e.rng -= bound
		if !e.frozen {
			*p -= *p >> moveBits
		}
	}
	if e.rng < rcTopBits { // one byte is enough (see rcDecoder.tree)
		e.rng <<= 8
		e.shiftLow()
	}
}

// direct codes the low n bits of v, most significant first, at p = 1/2.
func (e *rcEncoder) direct(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		e.rng >>= 1
		if v>>uint(i)&1 != 0 {
			e.low += uint64(e.rng)
		}
		for e.rng < rcTopBits {
			e.rng <<= 8
			e.shiftLow()
		}
	}
}

// uniform codes the low n (<= 18) bits of v at once, each at p = 1/2
// (format version 3; version 2 codes direct bits one by one).
func (e *rcEncoder) uniform(v uint32, n int) {
	e.rng >>= uint(n)
	e.low += uint64(v&(1<<uint(n)-1)) * uint64(e.rng)
	for e.rng < rcTopBits {
		e.rng <<= 8
		e.shiftLow()
	}
}

// tree codes the n-bit symbol v with the bit tree p[1:1<<n].
func (e *rcEncoder) tree(p []uint16, v uint32, n int) {
	if e.frozen {
		e.treeFrozen(p, v, n)
		return
	}
	rng, low := e.rng, e.low
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := v >> uint(i) & 1
		q := &p[m]
		pq := uint32(*q)
		bound := (rng >> probBits) * pq
		r1, l1 := rng-bound, low+uint64(bound)
		q0, q1 := pq+(probOne-pq)>>moveBits, pq-pq>>moveBits
		// As treeFrozen: conditional moves, not branches on the bit.
		rng = bound
		if b != 0 {
			rng = r1
		}
		if b != 0 {
			low = l1
		}
		if b != 0 {
			q0 = q1
		}
		*q = uint16(q0)
		// One byte restores rng >= 2^24 (see rcDecoder.tree).
		if rng < rcTopBits {
			rng <<= 8
			e.low = low
			e.shiftLow()
			low = e.low
		}
		m = m<<1 | b
	}
	e.rng, e.low = rng, low
}

// treeFrozen is tree without adapting p, and without a branch on the
// bit (as rcDecoder.treeFrozen).
func (e *rcEncoder) treeFrozen(p []uint16, v uint32, n int) {
	rng, low := e.rng, e.low
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := v >> uint(i) & 1
		bound := (rng >> probBits) * uint32(p[m])
		r1, l1 := rng-bound, low+uint64(bound)
		// One condition per assignment: the compiler makes them
		// conditional moves.
		rng = bound
		if b != 0 {
			rng = r1
		}
		if b != 0 {
			low = l1
		}
		if rng < rcTopBits {
			rng <<= 8
			e.low = low
			e.shiftLow()
			low = e.low
		}
		m = m<<1 | b
	}
	e.rng, e.low = rng, low
}

// matchedFrozen is encMatchedLit with shared probabilities, without
// branches on the bits (as treeFrozen).
func (e *rcEncoder) matchedFrozen(p []uint16, c, mb byte) {
	rng, low := e.rng, e.low
	offs, sym, mbb := uint32(0x100), uint32(1), uint32(mb)
	for i := 7; i >= 0; i-- {
		mbb <<= 1
		mbit := mbb & offs
		b := uint32(c) >> uint(i) & 1
		bound := (rng >> probBits) * uint32(p[offs+mbit+sym])
		r1, l1 := rng-bound, low+uint64(bound)
		rng = bound
		if b != 0 {
			rng = r1
		}
		if b != 0 {
			low = l1
		}
		if rng < rcTopBits {
			rng <<= 8
			e.low = low
			e.shiftLow()
			low = e.low
		}
		sym = sym<<1 | b
		offs &^= mbit ^ b<<8 // the byte left the match byte's path
	}
	e.rng, e.low = rng, low
}

// frozenLiteral codes, with shared read-only probabilities, "no match"
// (pm), "no item" (pi) and the byte c by probs: one call for what takes
// four on the general path, at every literal of a stateless frame.
func (e *rcEncoder) frozenLiteral(pm, pi uint16, probs []uint16, c byte) {
	for _, q := range [2]uint16{pm, pi} {
		e.rng = (e.rng >> probBits) * uint32(q)
		if e.rng < rcTopBits {
			e.rng <<= 8
			e.shiftLow()
		}
	}
	e.treeFrozen(probs, uint32(c), 8)
}

// finish ends the run and returns the output with this run appended.
func (e *rcEncoder) finish() []byte {
	// Any value in [low, low+rng) decodes the same symbols; take the one
	// with the most trailing zeros (rng >= 2^24, so at least 24).
	for k := uint(32); ; k-- {
		mask := uint64(1)<<k - 1
		if v := (e.low + mask) &^ mask; v < e.low+uint64(e.rng) {
			e.low = v
			break
		}
	}
	for range 5 {
		e.shiftLow()
	}
	for t := 0; t < rcMaxTrim && len(e.out) > e.start && e.out[len(e.out)-1] == 0; t++ {
		e.out = e.out[:len(e.out)-1]
	}
	return e.out
}

type rcDecoder struct {
	rng, code uint32
	in        []byte
	pos       int  // may run past len(in): those bytes read as zero
	frozen    bool // as rcEncoder.frozen
}

func (d *rcDecoder) init(in []byte) {
	d.rng, d.code, d.in, d.pos = 0xFFFFFFFF, 0, in, 0
	for range 4 {
		d.code = d.code<<8 | uint32(d.next())
	}
}

func (d *rcDecoder) next() byte {
	var c byte
	if d.pos < len(d.in) {
		c = d.in[d.pos]
	}
	d.pos++
	return c
}

func (d *rcDecoder) bit(p *uint16) uint32 {
	bound := (d.rng >> probBits) * uint32(*p)
	var b uint32
	if d.code < bound {
		d.rng = bound
		if !d.frozen {
			*p += (probOne - *p) >> moveBits
		}
	} else {
		d.code -= bound
		d.rng -= bound
		if !d.frozen {
			*p -= *p >> moveBits
		}
		b = 1
	}
	if d.rng < rcTopBits { // one byte is enough (see tree)
		d.rng <<= 8
		d.code = d.code<<8 | uint32(d.next())
	}
	return b
}

func (d *rcDecoder) direct(n int) uint32 {
	var v uint32
	for range n {
		d.rng >>= 1
		var b uint32
		if d.code >= d.rng {
			d.code -= d.rng
			b = 1
		}
		v = v<<1 | b
		for d.rng < rcTopBits {
			d.rng <<= 8
			d.code = d.code<<8 | uint32(d.next())
		}
	}
	return v
}

func (d *rcDecoder) uniform(n int) uint32 {
	d.rng >>= uint(n)
	v := d.code / d.rng
	if v >= 1<<uint(n) { // only a damaged frame gets here
		v = 1<<uint(n) - 1
	}
	d.code -= v * d.rng
	for d.rng < rcTopBits {
		d.rng <<= 8
		d.code = d.code<<8 | uint32(d.next())
	}
	return v
}

// tree decodes an n-bit symbol (bit with the registers in locals: the
// hot loop of every decoder).
func (d *rcDecoder) tree(p []uint16, n int) uint32 {
	if d.frozen {
		return d.treeFrozen(p, n)
	}
	rng, code := d.rng, d.code
	m := uint32(1)
	for range n {
		q := &p[m]
		bound := (rng >> probBits) * uint32(*q)
		if code < bound {
			rng = bound
			*q += (probOne - *q) >> moveBits
			m <<= 1
		} else {
			code -= bound
			rng -= bound
			*q -= *q >> moveBits
			m = m<<1 | 1
		}
		// One byte always restores rng >= 2^24: a probability is at least
		// 31/2048 of the range, and so is its complement.
		if rng < rcTopBits {
			rng <<= 8
			var c byte
			if d.pos < len(d.in) {
				c = d.in[d.pos]
			}
			d.pos++
			code = code<<8 | uint32(c)
		}
	}
	d.rng, d.code = rng, code
	return m - 1<<uint(n)
}

// treeFrozen is tree without adapting p, which a stateless frame shares.
// Frozen models leave more uncertain bits to guess than adapted ones: no
// branch on the bit, whose mispredictions would cost more than the
// arithmetic; and both children's probabilities are loaded while the
// bit is decoded, so the next step need not wait for a load.
func (d *rcDecoder) treeFrozen(p []uint16, n int) uint32 {
	rng, code := d.rng, d.code
	m := uint32(1)
	q := uint32(p[1])
	for k := range n {
		var q0, q1 uint32
		if k < n-1 {
			q0, q1 = uint32(p[2*m]), uint32(p[2*m+1])
		}
		bound := (rng >> probBits) * q
		r1, c1 := rng-bound, code-bound
		// One condition per assignment: the compiler makes them
		// conditional moves.
		one := code >= bound
		rng, q = bound, q0
		if one {
			rng = r1
		}
		if one {
			code = c1
		}
		if one {
			q = q1
		}
		var b uint32
		if one {
			b = 1
		}
		m = m<<1 | b
		if rng < rcTopBits {
			rng <<= 8
			var c byte
			if d.pos < len(d.in) {
				c = d.in[d.pos]
			}
			d.pos++
			code = code<<8 | uint32(c)
		}
	}
	d.rng, d.code = rng, code
	return m - 1<<uint(n)
}

// matchedFrozen is decMatchedLit with shared probabilities (as
// treeFrozen: both children loaded ahead).
func (d *rcDecoder) matchedFrozen(p []uint16, mb byte) byte {
	rng, code := d.rng, d.code
	offs, sym, mbb := uint32(0x100), uint32(1), uint32(mb)<<1
	q := uint32(p[offs+mbb&offs+sym])
	for k := range 8 {
		mbit := mbb & offs
		mbb <<= 1
		// The next index after a 0 and after a 1.
		o0, o1 := offs&^mbit, offs&^(mbit^0x100)
		var q0, q1 uint32
		if k < 7 {
			q0, q1 = uint32(p[o0+mbb&o0+sym<<1]), uint32(p[o1+mbb&o1+sym<<1|1])
		}
		bound := (rng >> probBits) * q
		r1, c1 := rng-bound, code-bound
		one := code >= bound
		rng, q = bound, q0
		if one {
			rng = r1
		}
		if one {
			code = c1
		}
		if one {
			q = q1
		}
		var b uint32
		if one {
			b = 1
		}
		offs = o0 ^ (o0^o1)&-b
		sym = sym<<1 | b
		if rng < rcTopBits {
			rng <<= 8
			var c byte
			if d.pos < len(d.in) {
				c = d.in[d.pos]
			}
			d.pos++
			code = code<<8 | uint32(c)
		}
	}
	d.rng, d.code = rng, code
	return byte(sym)
}

// Outcomes of rcDecoder.frozenLiteral.
const (
	litByte  = iota // a literal byte
	litMatch        // a match follows
	litItem         // an item follows
)

// frozenLiteral decodes, with shared read-only probabilities, whether a
// match follows (pm), else whether an item follows (pi), else a byte by
// probs, matched against mb when mb >= 0: one call for what takes four
// on the general path, at every literal of a stateless frame.
func (d *rcDecoder) frozenLiteral(pm, pi uint16, probs []uint16, mb int) (kind int, c byte) {
	for k, q := range [2]uint16{pm, pi} {
		bound := (d.rng >> probBits) * uint32(q)
		one := d.code >= bound
		if one {
			d.code -= bound
			d.rng -= bound
		} else {
			d.rng = bound
		}
		if d.rng < rcTopBits {
			d.rng <<= 8
			d.code = d.code<<8 | uint32(d.next())
		}
		if one {
			return litMatch + k, 0
		}
	}
	if mb >= 0 {
		return litByte, d.matchedFrozen(probs, byte(mb))
	}
	return litByte, byte(d.treeFrozen(probs, 8))
}

// done reports whether the run read every byte of its input (an encoder
// never leaves bytes its decoder does not read).
func (d *rcDecoder) done() bool { return d.pos >= len(d.in) }
