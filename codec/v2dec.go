package codec

import (
	"encoding/binary"
	"fmt"
)

// dynTable holds recent header lines (version 2), identical on both ends
// of a stateful link because both insert exactly the lines sent in full.
type dynTable struct {
	lines [dynSize][]byte
	n     int
	next  int
}

const maxDynLine = 512 // longer lines never enter the dynamic table

func (t *dynTable) insert(line []byte) {
	if len(line) > maxDynLine {
		return
	}
	t.lines[t.next] = append(t.lines[t.next][:0], line...)
	t.next = (t.next + 1) % dynSize
	if t.n < dynSize {
		t.n++
	}
}

func (t *dynTable) reset() { t.n, t.next = 0, 0 }

// decV2 decodes frames of format version 2 (the v2 encoder is gone; its
// frames stay decodable). Its state exists only once a v2 frame arrives.
type decV2 struct {
	stateful bool
	lz       lzDec
	rc       rcDecoder
	body     []byte
	dyn      dynTable
	seq      uint32
	lastDate uint32 // stateful: the previous date decoded
	hasDate  bool
}

func newDecV2(stateful bool) *decV2 {
	d := &decV2{stateful: stateful}
	d.lz.hist = make([]byte, 0, lzHistCap)
	d.lz.restart()
	return d
}

func (d *decV2) reset() {
	d.dyn.reset()
	d.lastDate, d.hasDate = 0, false
	d.seq = 0
	d.lz.restart()
}

func (d *decV2) decode(dst, frame []byte) ([]byte, error) {
	if len(frame) == 0 {
		return nil, ErrNotFrame
	}
	h := frame[0]
	isStateful := h&statefulMask == statefulMark
	if !isStateful && h&magicMask != magic {
		return nil, ErrNotFrame
	}
	if isStateful != d.stateful {
		return nil, ErrMode
	}
	var tok, res []byte
	var crc uint32
	if d.stateful {
		if len(frame) < statefulHeader {
			return nil, fmt.Errorf("codec: short stateful frame: %w", ErrCorrupt)
		}
		d.rc.init(frame[statefulHeader:])
		crc = (uint32(h&checkHighMask)<<8|uint32(frame[1]))<<checkRCBits | d.rc.direct(checkRCBits)
		nt, ok1 := decPayLen(&d.rc, &d.lz.m, 0)
		nr, ok2 := decPayLen(&d.rc, &d.lz.m, 1)
		if !ok1 || !ok2 || nt == 0 || nt > 2*MaxMessageSize || nr > MaxMessageSize {
			return nil, fmt.Errorf("codec: stateful payload lengths: %w", ErrStateMismatch)
		}
		p, err := d.lz.decode(&d.rc, int(nt+nr), int(nt))
		if err != nil {
			return nil, err
		}
		if !d.rc.done() {
			return nil, fmt.Errorf("codec: bytes after the coded payload: %w", ErrStateMismatch)
		}
		tok, res = p[:nt], p[nt:]
	} else {
		if h&versionMask != formatV2<<2 {
			return nil, fmt.Errorf("codec: frame version %d: %w", h&versionMask>>2, ErrVersion)
		}
		if h&flagStateful != 0 {
			return nil, fmt.Errorf("codec: stateful bit in a stateless frame: %w", ErrCorrupt)
		}
		tok = frame[1:]
	}
	// Pass 1: validate the token stream, find its end and the literal total.
	r := reader{tok: tok}
	r.run(d)
	if r.err != nil {
		return nil, r.err
	}
	if d.stateful {
		if r.pos != len(tok) {
			return nil, fmt.Errorf("codec: token stream of %d bytes, coded %d: %w", r.pos, len(tok), ErrCorrupt)
		}
	} else {
		tok, res = tok[:r.pos], tok[r.pos:]
		if h&flagCoded != 0 {
			var err error
			if res, err = d.decodeResidual(res); err != nil {
				return nil, err
			}
		}
	}
	if r.lit > len(res) {
		return nil, fmt.Errorf("codec: residual %d bytes, literals need %d: %w", len(res), r.lit, ErrCorrupt)
	}
	body := res[r.lit:]
	if r.esc {
		var err error
		if d.body, err = appendUnescaped(d.body[:0], body); err != nil {
			return nil, err
		}
		body = d.body
	}
	// Pass 2: render.
	start := len(dst)
	r = reader{tok: tok, res: res[:r.lit], body: body, emit: true, dst: dst}
	r.run(d)
	if r.err != nil {
		return nil, r.err
	}
	out := r.dst
	if len(out)-start > MaxMessageSize {
		return nil, ErrTooLarge
	}
	if d.stateful {
		got := stateCheck(d.seq, out[start:])
		d.seq++
		if got != crc {
			return nil, fmt.Errorf("codec: check %04x, want %04x: %w", got, crc, ErrStateMismatch)
		}
	}
	return out, nil
}

// decodeResidual decodes a stateless frame's range-coded residual from
// the primed state.
func (d *decV2) decodeResidual(z []byte) ([]byte, error) {
	d.lz.rewind()
	d.rc.init(z)
	n, ok := decPayLen(&d.rc, &d.lz.m, 1)
	if !ok || n > MaxMessageSize {
		return nil, fmt.Errorf("codec: residual length: %w", ErrCorrupt)
	}
	res, err := d.lz.decode(&d.rc, int(n), 0)
	if err != nil {
		return nil, err
	}
	if !d.rc.done() {
		return nil, fmt.Errorf("codec: bytes after the residual: %w", ErrCorrupt)
	}
	return res, nil
}

// reader walks a token stream. With emit false it only validates and
// measures (pass 1); with emit true it renders into dst (pass 2).
type reader struct {
	tok   []byte
	pos   int
	res   []byte
	rpos  int
	lit   int
	emit  bool
	esc   bool
	dst   []byte
	body  []byte
	err   error
	noDyn bool // the value just read never repeats: keep its line out of dyn
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("codec: bad %s at token byte %d: %w", what, r.pos, ErrCorrupt)
	}
}

func (r *reader) byte() byte {
	if r.pos >= len(r.tok) {
		r.fail("end of tokens")
		return 0
	}
	c := r.tok[r.pos]
	r.pos++
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.tok[min(r.pos, len(r.tok)):])
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.pos += n
	return v
}

func (r *reader) num() uint64 {
	v, n := readNum(r.tok[min(r.pos, len(r.tok)):])
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.pos += n
	return v
}

func (r *reader) raw(n int) []byte {
	if len(r.tok)-r.pos < n {
		r.fail("raw bytes")
		return nil
	}
	b := r.tok[r.pos : r.pos+n]
	r.pos += n
	return b
}

func (r *reader) put(s string) {
	if r.emit {
		r.dst = append(r.dst, s...)
	}
}

// literal copies a residual literal whose length is in the token stream.
func (r *reader) literal() {
	n := r.uvarint()
	if n > MaxMessageSize {
		r.fail("literal length")
		return
	}
	r.lit += int(n)
	if r.lit > MaxMessageSize {
		r.fail("literal total")
		return
	}
	if !r.emit {
		return
	}
	if len(r.res)-r.rpos < int(n) {
		r.fail("literal")
		return
	}
	piece := r.res[r.rpos : r.rpos+int(n)]
	r.rpos += int(n)
	if !r.esc {
		r.dst = append(r.dst, piece...)
		return
	}
	var err error
	if r.dst, err = appendUnescaped(r.dst, piece); err != nil && r.err == nil {
		r.err = err
	}
}

func (r *reader) run(d *decV2) {
	layout := r.byte()
	r.esc = layout&layoutEscaped != 0
	layout &^= layoutEscaped
	switch layout & 3 {
	case startLiteralAll:
		if layout != startLiteralAll {
			r.fail("layout")
		}
		r.putBody()
		return
	case startLiteralLine:
		if layout != startLiteralLine {
			r.fail("layout")
		}
		r.literal()
	case startRequest:
		if layout&^0x0F != 0 || int(layout>>2&3) >= len(versions) {
			r.fail("layout")
			return
		}
		if m := r.byte(); m == 0xFF {
			r.literal()
		} else if int(m) < len(methods) {
			r.put(methods[m])
		} else {
			r.fail("method")
		}
		r.put(" ")
		k := r.byte()
		if k == kImplied {
			r.fail("request URI kind")
		}
		r.value(d, k, false)
		r.put(" ")
		r.put(versions[layout>>2&3])
	case startResponse:
		if layout&^0x1F != 0 || int(layout>>2&3) >= len(versions) {
			r.fail("layout")
			return
		}
		r.put(versions[layout>>2&3])
		r.put(" ")
		code := uint64(r.byte()) + 100
		if code == 0xFF+100 {
			if code = r.uvarint(); code >= 1<<20 {
				r.fail("status code")
			}
		}
		if r.emit {
			r.dst = appendUint(r.dst, code)
		}
		r.put(" ")
		if layout&layoutDefReason != 0 {
			reason, ok := reasons[int(code)]
			if !ok {
				r.fail("reason")
			}
			r.put(reason)
		} else {
			r.literal()
		}
	}
	for r.err == nil {
		op := r.byte()
		if op == opEnd {
			break
		}
		r.put("\r\n")
		start := len(r.dst)
		r.noDyn = false // per line, as the encoder's header() does
		switch {
		case op == opLitLine:
			r.literal()
		case op < opTyped:
			if r.emit {
				slot := int(op - opDynBase)
				if d == nil || !d.stateful || slot >= d.dyn.n {
					r.fail("dynamic line reference")
					return
				}
				r.dst = append(r.dst, d.dyn.lines[slot]...)
			} else if d == nil || !d.stateful {
				r.fail("dynamic line reference in stateless frame")
			}
			continue
		default:
			ni, kind := (op-opTyped)>>3, (op-opTyped)&7
			lengthName := false
			switch {
			case ni < nameExt:
				r.put(names[ni])
				lengthName = isLengthName([]byte(names[ni]))
			case ni == nameExt:
				if x := r.byte(); x == 0xFF {
					r.literal() // never a length name: those are all in the tables
				} else if int(x) < len(extNames) {
					r.put(extNames[x])
					lengthName = isLengthName([]byte(extNames[x]))
				} else {
					r.fail("extended header name")
				}
			default:
				r.fail("header name")
			}
			r.put(": ")
			if kind == kImplied && !lengthName {
				r.fail("implied value")
			}
			r.value(d, kind, true)
		}
		if r.emit && d != nil && d.stateful && r.err == nil && !r.noDyn {
			d.dyn.insert(r.dst[start:])
		}
	}
	if r.err == nil {
		r.put("\r\n\r\n")
		r.putBody()
	}
}

func (r *reader) putBody() {
	if r.emit {
		r.dst = append(r.dst, r.body...)
	}
}

func (r *reader) value(d *decV2, kind byte, header bool) {
	switch kind {
	case kLit:
		r.literal()
	case kInt, kIntSp:
		v := r.num()
		if r.emit {
			r.dst = appendUint(r.dst, v)
			if kind == kIntSp {
				r.dst = append(r.dst, ' ')
			}
		}
	case kURI:
		n, p := r.num(), r.num()
		if r.emit {
			r.dst = appendFetionURI(r.dst, n, p)
		}
	case kCSeq:
		n, m := r.num(), r.byte()
		if int(m) >= len(methods) {
			r.fail("cseq method")
			return
		}
		if r.emit {
			r.dst = appendUint(r.dst, n)
			r.dst = append(r.dst, ' ')
			r.dst = append(r.dst, methods[m]...)
		}
	case kTok:
		t := r.byte()
		if int(t) >= len(tokens) {
			r.fail("token")
			return
		}
		r.put(tokens[t])
	case kImplied:
		if !header {
			r.fail("implied value")
		}
		if r.emit {
			r.dst = appendUint(r.dst, uint64(len(r.body)))
		}
	case kExt:
		switch sub := r.byte(); sub {
		case xHexLower, xHexUpper:
			r.noDyn = true
			b := r.raw(16)
			if r.emit && b != nil {
				r.dst = appendHex(r.dst, b, sub == xHexUpper)
			}
		case xDate:
			r.noDyn = true
			b := r.raw(4)
			if r.emit && b != nil {
				u := binary.BigEndian.Uint32(b)
				r.dst = appendDate(r.dst, u)
				if d != nil && d.stateful {
					d.lastDate, d.hasDate = u, true
				}
			}
		case xDateDelta:
			r.noDyn = true
			delta := r.num()
			if d == nil || !d.stateful {
				r.fail("date delta in stateless frame")
				return
			}
			if r.emit && r.err == nil {
				if !d.hasDate || delta > 0xFFFFFFFF-uint64(d.lastDate) {
					r.fail("date delta")
					return
				}
				d.lastDate += uint32(delta)
				r.dst = appendDate(r.dst, d.lastDate)
			}
		case xTel:
			n := r.uvarint()
			r.put(telPrefix)
			if r.emit {
				r.dst = appendUint(r.dst, n)
			}
		case xSipNum:
			n := r.num()
			r.put(sipPrefix)
			if r.emit {
				r.dst = appendUint(r.dst, n)
			}
			r.put("@fetion.com.cn")
		default:
			r.fail("value sub-kind")
		}
	}
}
