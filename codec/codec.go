package codec

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// Frame header, byte 0. Stateless: magic nibble 0xB, format version
// modulo 4 in bits 3-2 (00: version 4), then (versions 3 and 4) the
// profile in bits 1-0, (version 2) the mode and residual flags. Stateful:
// 2 mark bits (01 version 2, 11 version 3, 00 version 4; 10 is the
// stateless magic's) and 14 bits of the 16-bit state check over bytes 0-1.
const (
	magic       = 0xB0
	magicMask   = 0xF0
	versionMask = 0x0C

	formatVersion = 4 // what the Encoder writes
	formatV3      = 3
	headerV4      = magic | formatVersion&3<<2
	headerV3      = magic | formatV3<<2
	profileMask   = 0x03

	// Version 2 (decoded only).
	formatV2     = 2
	flagStateful = 0x02
	flagCoded    = 0x01
	headerByte   = magic | formatV2<<2

	statefulMask   = 0xC0
	statefulMark   = 0x40 // version 2
	statefulMarkV3 = 0xC0
	statefulMarkV4 = 0x00
	statelessMark  = 0x80 // the top bits of the magic
	checkHighMask  = 0x3F
	statefulHeader = 2
	checkBits      = 16
	checkRCBits    = 2 // the check's last bits open the range-coder run
	checkMask      = 1<<checkBits - 1

	// MaxMessageSize bounds a decoded message (and an encoded one).
	MaxMessageSize = 1 << 20
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

// stateCheck is 16 bits of a CRC-32C of the message whose initial value
// is derived from the frame sequence number (a CRC is linear, so frames
// with equal messages but different sequence numbers differ by a nonzero
// term), without a scratch buffer that would escape to the heap.
func stateCheck(seq uint32, msg []byte) uint32 {
	return crc32.Update(seq*0x9E3779B1+0x7F4A7C15, castagnoli, msg) & checkMask
}

// Encoder turns messages into MCP frames (format version 4). A stateful
// Encoder belongs to one direction of one connection; it is not safe for
// concurrent use.
type Encoder struct {
	stateful bool
	seq      uint32
	c        coder3
	rc       rcEncoder
}

// NewEncoder returns an encoder in stateless or stateful mode.
func NewEncoder(stateful bool) *Encoder {
	e := &Encoder{stateful: stateful}
	e.c.init(true, stateful)
	return e
}

// Reset returns a stateful encoder to the state of a new connection.
func (e *Encoder) Reset() {
	e.seq = 0
	e.c.reset()
}

// Encode appends the MCP frame of msg to dst.
func (e *Encoder) Encode(dst, msg []byte) ([]byte, error) {
	if len(msg) > MaxMessageSize {
		return dst, fmt.Errorf("codec: encode %d bytes: %w", len(msg), ErrTooLarge)
	}
	if !e.stateful {
		prof := pickProfile(msg)
		dst = append(dst, headerV4|byte(prof))
		e.c.beginFrame(prof, true)
		e.rc.init(dst)
		e.c.encodeMessage(&e.rc, msg)
		return e.rc.finish(), nil
	}
	// The check covers the sequence number and the message: a lost,
	// repeated or mis-decoded frame fails it.
	crc := stateCheck(e.seq, msg)
	first := e.seq == 0
	e.seq++
	hi := crc >> checkRCBits
	dst = append(dst, statefulMarkV4|byte(hi>>8)&checkHighMask, byte(hi))
	e.rc.init(dst)
	e.rc.direct(crc, checkRCBits)
	if first {
		// The first frame names the profile the session is primed with.
		prof := pickProfile(msg)
		e.rc.direct(uint32(prof), profileBits)
		e.c.beginSession(prof, true)
	}
	e.c.encodeMessage(&e.rc, msg)
	return e.rc.finish(), nil
}

// Decoder turns MCP frames back into messages: format version 4 and, for
// links whose other end is older, versions 3 and 2. A stateful Decoder
// belongs to one direction of one connection; it is not safe for
// concurrent use.
type Decoder struct {
	stateful bool
	seq      uint32
	version  int // stateful: the session's format version (0 before its first frame)
	broken   error
	c        coder3
	rc       rcDecoder
	v2       *decV2 // made when the first version 2 frame arrives
}

// NewDecoder returns a decoder in stateless or stateful mode.
func NewDecoder(stateful bool) *Decoder {
	d := &Decoder{stateful: stateful}
	d.c.init(false, stateful)
	return d
}

// Reset returns a stateful decoder to the state of a new connection.
func (d *Decoder) Reset() {
	d.seq, d.version, d.broken = 0, 0, nil
	d.c.reset()
	if d.v2 != nil {
		d.v2.reset()
	}
}

// Decode appends the message carried by frame to dst. A stateful decoder
// that returns an error stays failed (every later call returns an error
// wrapping ErrStateMismatch) until Reset: its state can no longer be trusted.
func (d *Decoder) Decode(dst, frame []byte) ([]byte, error) {
	if d.broken != nil {
		return dst, fmt.Errorf("codec: decoder failed earlier (%v): %w", d.broken, ErrStateMismatch)
	}
	out, err := d.decode(dst, frame)
	if err != nil {
		if d.stateful {
			d.broken = err
			if !errors.Is(err, ErrStateMismatch) {
				err = fmt.Errorf("%w (%w)", err, ErrStateMismatch)
			}
		}
		return dst, err
	}
	return out, nil
}

func (d *Decoder) decode(dst, frame []byte) ([]byte, error) {
	if len(frame) == 0 {
		return nil, ErrNotFrame
	}
	h := frame[0]
	mark := h & statefulMask
	isStateful := mark != statelessMark
	if !isStateful && h&magicMask != magic {
		return nil, ErrNotFrame
	}
	if isStateful != d.stateful {
		return nil, ErrMode
	}
	if !d.stateful {
		switch v := int(h&versionMask) >> 2; v {
		case formatVersion & 3, formatV3:
			prof := int(h & profileMask)
			if prof >= nProfiles {
				return nil, fmt.Errorf("codec: profile %d: %w", prof, ErrCorrupt)
			}
			d.c.beginFrame(prof, v != formatV3)
			d.rc.init(frame[1:])
			out, err := d.c.decodeMessage(&d.rc, dst)
			if err != nil {
				return nil, err
			}
			if !d.rc.done() {
				return nil, fmt.Errorf("codec: bytes after the message: %w", ErrCorrupt)
			}
			return out, nil
		case formatV2:
			return d.legacy().decode(dst, frame)
		}
		return nil, fmt.Errorf("codec: frame version %d: %w", h&versionMask>>2, ErrVersion)
	}
	v := formatVersion
	switch mark {
	case statefulMark:
		v = formatV2
	case statefulMarkV3:
		v = formatV3
	}
	if d.version == 0 {
		d.version = v
	} else if d.version != v {
		return nil, fmt.Errorf("codec: version %d frame in a version %d session: %w", v, d.version, ErrStateMismatch)
	}
	if v == 2 {
		return d.legacy().decode(dst, frame)
	}
	if len(frame) < statefulHeader {
		return nil, fmt.Errorf("codec: short stateful frame: %w", ErrCorrupt)
	}
	d.rc.init(frame[statefulHeader:])
	crc := (uint32(h&checkHighMask)<<8|uint32(frame[1]))<<checkRCBits | d.rc.direct(checkRCBits)
	if d.seq == 0 {
		prof := int(d.rc.direct(profileBits))
		if prof >= nProfiles {
			return nil, fmt.Errorf("codec: profile %d: %w", prof, ErrStateMismatch)
		}
		d.c.beginSession(prof, v == formatVersion)
	}
	start := len(dst)
	out, err := d.c.decodeMessage(&d.rc, dst)
	if err != nil {
		return nil, err
	}
	if !d.rc.done() {
		return nil, fmt.Errorf("codec: bytes after the message: %w", ErrStateMismatch)
	}
	got := stateCheck(d.seq, out[start:])
	d.seq++
	if got != crc {
		return nil, fmt.Errorf("codec: check %04x, want %04x: %w", got, crc, ErrStateMismatch)
	}
	return out, nil
}

func (d *Decoder) legacy() *decV2 {
	if d.v2 == nil {
		d.v2 = newDecV2(d.stateful)
	}
	return d.v2
}
