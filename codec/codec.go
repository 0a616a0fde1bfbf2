package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Frame header byte: magic nibble, format version, mode and residual flags.
const (
	magic         = 0xB0
	magicMask     = 0xF0
	formatVersion = 2 // frames of any other version are refused (ErrVersion)
	versionMask   = 0x0C
	flagStateful  = 0x02
	flagCoded     = 0x01 // residual range-coded (else raw)
	headerByte    = magic | formatVersion<<2

	// Stateful frames start with 01 instead of the magic nibble (the
	// session fixes the version), then 14 bits of the 16-bit state check;
	// its last checkRCBits bits are the first thing range-coded (a whole
	// third header byte would cost 8 bits for 2).
	statefulMark   = 0x40
	statefulMask   = 0xC0
	checkHighMask  = 0x3F
	statefulHeader = 2
	checkBits      = 16
	checkRCBits    = 2
	checkMask      = 1<<checkBits - 1

	// MaxMessageSize bounds a decoded message (and an encoded one).
	MaxMessageSize = 1 << 20
)

// Token stream opcodes for header lines.
const (
	opEnd     = 0x00 // end of headers; the body is the rest of the residual
	opLitLine = 0x01 // whole line literal: uvarint length
	opDynBase = 0x02 // stateful: repeat of recent line (opDynBase + slot)
	dynSize   = 0x40 - opDynBase
	opTyped   = 0x40 // opTyped + nameIndex*8 + kind

	maxDynLine = 512 // longer lines never enter the dynamic table
)

// Value kinds (3 bits).
const (
	kLit     = iota // uvarint length, bytes in the residual
	kInt            // num (num.go); negative numbers stay literal
	kIntSp          // num, value followed by one space
	kURI            // sip:N@fetion.com.cn;p=P: num N, num P
	kCSeq           // "N METHOD": num N, method index
	kTok            // token table index
	kImplied        // Content-Length equal to the body length: nothing
	kExt            // sub-kind byte follows
)

// Extended value sub-kinds.
const (
	xHexLower  = iota // 32 lower-case hex digits: 16 bytes
	xHexUpper         // 32 upper-case hex digits: 16 bytes
	xDate             // RFC 1123 GMT date: 4 bytes big-endian Unix seconds
	xTel              // tel:N: uvarint N
	xSipNum           // sip:N@fetion.com.cn: num N
	xDateDelta        // stateful: num seconds after the previous date of the session
)

// Start line layout byte: bits 0-1 kind, bits 2-3 version, bit 4 default reason.
const (
	startLiteralAll  = 0 // no header/body separator: the whole message is residual
	startRequest     = 1
	startResponse    = 2
	startLiteralLine = 3
	layoutDefReason  = 0x10
	layoutEscaped    = 0x20 // residual pieces are escaped (see escape.go)
)

// Errors returned by Decode. Stateful decoders report ErrStateMismatch for
// any frame that does not fit their state and stay unusable until Reset.
var (
	ErrNotFrame      = errors.New("codec: not an MCP frame")
	ErrVersion       = errors.New("codec: unsupported MCP frame version")
	ErrMode          = errors.New("codec: frame mode does not match the decoder")
	ErrCorrupt       = errors.New("codec: corrupt MCP frame")
	ErrStateMismatch = errors.New("codec: stateful MCP state mismatch")
	ErrTooLarge      = errors.New("codec: message too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var crlfcrlf = []byte("\r\n\r\n")

// dynTable holds recent header lines, identical on both ends of a stateful
// link because both insert exactly the lines sent in full, in order.
type dynTable struct {
	lines [dynSize][]byte
	n     int
	next  int
}

func (t *dynTable) find(line []byte) int {
	for i := 0; i < t.n; i++ {
		if bytes.Equal(t.lines[i], line) {
			return i
		}
	}
	return -1
}

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

// Encoder turns messages into MCP frames. A stateful Encoder belongs to one
// direction of one connection; it is not safe for concurrent use.
type Encoder struct {
	stateful bool
	tok, res []byte
	lz       lzEnc
	rc       rcEncoder
	dyn      dynTable
	seq      uint32
	escaped  bool
	noDyn    bool   // the last value never repeats (id, date): keep it out of dyn
	lastDate uint32 // stateful: the previous date sent
	hasDate  bool
}

// NewEncoder returns an encoder in stateless or stateful mode.
func NewEncoder(stateful bool) *Encoder {
	e := &Encoder{stateful: stateful, tok: make([]byte, 0, 256), res: make([]byte, 0, 2048)}
	e.lz.hist = make([]byte, 0, lzHistCap)
	e.lz.restart()
	return e
}

// Reset returns a stateful encoder to the state of a new connection.
func (e *Encoder) Reset() {
	e.dyn.reset()
	e.lastDate, e.hasDate = 0, false
	e.seq = 0
	e.lz.restart()
}

// Stateless residuals shorter than this are sent raw without coding.
const minCodedResidual = 4

// Encode appends the MCP frame of msg to dst.
func (e *Encoder) Encode(dst, msg []byte) ([]byte, error) {
	if len(msg) > MaxMessageSize {
		return dst, fmt.Errorf("codec: encode %d bytes: %w", len(msg), ErrTooLarge)
	}
	e.tokenize(msg)
	if !e.stateful {
		// Tokens raw (they are dense already); the residual range-coded
		// from the primed model, or raw when that is not smaller.
		h := byte(headerByte)
		n := len(dst)
		if len(e.res) >= minCodedResidual {
			dst = append(dst, h|flagCoded)
			dst = append(dst, e.tok...)
			m := len(dst)
			e.lz.rewind()
			e.rc.init(dst)
			encPayLen(&e.rc, &e.lz.m, 1, uint32(len(e.res)))
			e.lz.encode(&e.rc, nil, e.res)
			dst = e.rc.finish()
			if len(dst)-m < len(e.res) {
				return dst, nil
			}
			dst = dst[:n]
		}
		dst = append(dst, h)
		dst = append(dst, e.tok...)
		return append(dst, e.res...), nil
	}
	// Stateful: tokens and residual go through the session's LZ history
	// and adaptive models, so a repeated message shape costs a few bits.
	// The check covers the sequence number and the message: a lost,
	// repeated or mis-decoded frame fails it.
	crc := stateCheck(e.seq, msg)
	e.seq++
	hi := crc >> checkRCBits
	dst = append(dst, statefulMark|byte(hi>>8)&checkHighMask, byte(hi))
	e.rc.init(dst)
	e.rc.direct(crc, checkRCBits)
	encPayLen(&e.rc, &e.lz.m, 0, uint32(len(e.tok)))
	encPayLen(&e.rc, &e.lz.m, 1, uint32(len(e.res)))
	e.lz.encode(&e.rc, e.tok, e.res)
	return e.rc.finish(), nil
}

// stateCheck is 16 bits of a CRC-32C of the message whose initial value
// is derived from the frame sequence number (a CRC is linear, so frames
// with equal messages but different sequence numbers differ by a nonzero
// term), without a scratch buffer that would escape to the heap.
func stateCheck(seq uint32, msg []byte) uint32 {
	return crc32.Update(seq*0x9E3779B1+0x7F4A7C15, castagnoli, msg) & checkMask
}

func (e *Encoder) uvarint(v uint64) { e.tok = binary.AppendUvarint(e.tok, v) }

func (e *Encoder) num(v uint64) { e.tok = appendNum(e.tok, v) }

// literal sends b through the residual, escaped; its length is a token.
func (e *Encoder) literal(b []byte) {
	n := len(e.res)
	var changed bool
	e.res, changed = appendEscaped(e.res, b)
	e.escaped = e.escaped || changed
	e.uvarint(uint64(len(e.res) - n))
}

func (e *Encoder) body(b []byte) {
	var changed bool
	e.res, changed = appendEscaped(e.res, b)
	e.escaped = e.escaped || changed
	if e.escaped {
		e.tok[0] |= layoutEscaped
	}
}

// tokenize fills e.tok and e.res for msg.
func (e *Encoder) tokenize(msg []byte) {
	e.tok, e.res, e.escaped = e.tok[:0], e.res[:0], false
	sep := bytes.Index(msg, crlfcrlf)
	if sep < 0 {
		e.tok = append(e.tok, startLiteralAll)
		e.body(msg)
		return
	}
	head, body := msg[:sep], msg[sep+4:]
	line, rest, more := bytes.Cut(head, crlfcrlf[:2])
	e.startLine(line)
	for more {
		line, rest, more = bytes.Cut(rest, crlfcrlf[:2])
		e.header(line, len(body))
	}
	e.tok = append(e.tok, opEnd)
	e.body(body)
}

func (e *Encoder) startLine(line []byte) {
	// Response: VERSION SP CODE SP REASON.
	if v, rest, ok := bytes.Cut(line, []byte{' '}); ok {
		if vi, ok := versionIndex[string(v)]; ok {
			if c, reason, ok := bytes.Cut(rest, []byte{' '}); ok {
				if code, ok := parseUint(c); ok && code < 1<<20 {
					layout := byte(startResponse) | vi<<2
					def := reasons[int(code)] == string(reason) && len(reason) > 0
					if def {
						layout |= layoutDefReason
					}
					e.tok = append(e.tok, layout)
					if code >= 100 && code < 355 {
						e.tok = append(e.tok, byte(code-100))
					} else {
						e.tok = append(e.tok, 0xFF)
						e.uvarint(code)
					}
					if !def {
						e.literal(reason)
					}
					return
				}
			}
		}
	}
	// Request: METHOD SP URI SP VERSION.
	if i, j := bytes.IndexByte(line, ' '), bytes.LastIndexByte(line, ' '); i > 0 && j > i {
		if vi, ok := versionIndex[string(line[j+1:])]; ok {
			e.tok = append(e.tok, byte(startRequest)|vi<<2)
			if mi, ok := methodIndex[string(line[:i])]; ok {
				e.tok = append(e.tok, mi)
			} else {
				e.tok = append(e.tok, 0xFF)
				e.literal(line[:i])
			}
			pos := len(e.tok)
			e.tok = append(e.tok, 0)
			e.tok[pos] = e.value(line[i+1:j], -1)
			return
		}
	}
	e.tok = append(e.tok, startLiteralLine)
	e.literal(line)
}

func (e *Encoder) header(line []byte, bodyLen int) {
	if e.stateful {
		if i := e.dyn.find(line); i >= 0 {
			e.tok = append(e.tok, byte(opDynBase+i))
			return
		}
	}
	e.noDyn = false
	e.typedLine(line, bodyLen)
	if e.stateful && !e.noDyn {
		e.dyn.insert(line)
	}
}

func (e *Encoder) typedLine(line []byte, bodyLen int) {
	c := bytes.Index(line, []byte(": "))
	if c <= 0 {
		e.tok = append(e.tok, opLitLine)
		e.literal(line)
		return
	}
	name, val := line[:c], line[c+2:]
	pos := len(e.tok)
	e.tok = append(e.tok, 0)
	ni, ok := nameIndex[string(name)]
	if !ok {
		ni = nameExt
		if xi, ok := extNameIndex[string(name)]; ok {
			e.tok = append(e.tok, xi)
		} else {
			e.tok = append(e.tok, 0xFF)
			e.literal(name)
		}
	}
	if !isLengthName(name) {
		bodyLen = -1
	}
	e.tok[pos] = opTyped + ni*8 + e.value(val, bodyLen)
}

// value appends the typed encoding of v (for kExt the sub-kind byte first)
// and returns its kind. bodyLen >= 0 allows kImplied.
func (e *Encoder) value(v []byte, bodyLen int) byte {
	if bodyLen >= 0 {
		if n, ok := parseUint(v); ok && n == uint64(bodyLen) {
			return kImplied
		}
	}
	if t, ok := tokenIndex[string(v)]; ok {
		e.tok = append(e.tok, t)
		return kTok
	}
	if n, ok := parseUint(v); ok {
		e.num(n)
		return kInt
	}
	if l := len(v); l > 1 && v[l-1] == ' ' {
		if n, ok := parseUint(v[:l-1]); ok {
			e.num(n)
			return kIntSp
		}
	}
	if n, p, ok := parseFetionURI(v); ok {
		e.num(n)
		e.num(p)
		return kURI
	}
	if n, m, ok := parseCSeq(v); ok {
		e.num(n)
		e.tok = append(e.tok, m)
		return kCSeq
	}
	if hc := hexCase(v); hc != 0 {
		e.noDyn = true
		e.tok = append(e.tok, byte(xHexLower+hc-1))
		e.tok = appendHexBytes(e.tok, v)
		return kExt
	}
	if d, ok := parseDate(v); ok {
		e.noDyn = true
		if e.stateful {
			prev, had := e.lastDate, e.hasDate
			e.lastDate, e.hasDate = d, true
			if had && d >= prev {
				e.tok = append(e.tok, xDateDelta)
				e.num(uint64(d - prev))
				return kExt
			}
		}
		e.tok = append(e.tok, xDate)
		e.tok = appendU32(e.tok, d)
		return kExt
	}
	if len(v) > len(telPrefix) && string(v[:len(telPrefix)]) == telPrefix {
		if n, ok := parseUint(v[len(telPrefix):]); ok {
			e.tok = append(e.tok, xTel)
			e.uvarint(n)
			return kExt
		}
	}
	if l := len(v) - len("@fetion.com.cn"); l > len(sipPrefix) && string(v[:len(sipPrefix)]) == sipPrefix &&
		string(v[l:]) == "@fetion.com.cn" {
		if n, ok := parseUint(v[len(sipPrefix):l]); ok {
			e.tok = append(e.tok, xSipNum)
			e.num(n)
			return kExt
		}
	}
	e.literal(v)
	return kLit
}
