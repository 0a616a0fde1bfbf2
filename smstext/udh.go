package smstext

import (
	"errors"
	"fmt"
)

// ErrUDH marks a malformed user data header.
var ErrUDH = errors.New("smstext: malformed UDH")

// Concat is the concatenation information of one part (3GPP TS 23.040
// §9.2.3.24.1 and .8). Ok is false if the UDH has no usable concatenation IE.
type Concat struct {
	Ref        uint16
	Total, Seq byte
	Ok         bool
}

// ParseUDH splits a short_message that starts with a UDH (esm_class 0x40)
// into the UDH (including its length octet) and the body, and extracts the
// concatenation IE (IEI 0x00, 8-bit reference, or 0x08, 16-bit reference).
//
// A UDH length beyond the message, an IE running past the UDH, or a
// concatenation IE of the wrong length is an error. A concatenation IE with
// total 0, seq 0 or seq > total is ignored as TS 23.040 requires (Ok false),
// so the body is treated as a single message. If there are several, the last
// one wins. The body is returned as is: for GSM 7-bit it is unpacked septets
// (SMPP carries them so), with no fill bits to strip.
func ParseUDH(sm []byte) (udh, body []byte, c Concat, err error) {
	if len(sm) == 0 {
		return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: empty message", ErrUDH)
	}
	n := int(sm[0])
	if 1+n > len(sm) {
		return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: length %d beyond message of %d octets", ErrUDH, n, len(sm))
	}
	udh, body = sm[:1+n:1+n], sm[1+n:]
	for i := 1; i < len(udh); {
		if i+2 > len(udh) {
			return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: truncated IE header at %d", ErrUDH, i)
		}
		iei, iel := udh[i], int(udh[i+1])
		data := udh[i+2:]
		if iel > len(data) {
			return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: IE %#02x length %d beyond UDH", ErrUDH, iei, iel)
		}
		data = data[:iel]
		switch iei {
		case 0x00:
			if iel != 3 {
				return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: concatenation IE length %d, want 3", ErrUDH, iel)
			}
			c = concatOf(uint16(data[0]), data[1], data[2])
		case 0x08:
			if iel != 4 {
				return nil, nil, Concat{}, fmt.Errorf("parse udh: %w: 16-bit concatenation IE length %d, want 4", ErrUDH, iel)
			}
			c = concatOf(uint16(data[0])<<8|uint16(data[1]), data[2], data[3])
		}
		i += 2 + iel
	}
	return udh, body, c, nil
}

func concatOf(ref uint16, total, seq byte) Concat {
	if total == 0 || seq == 0 || seq > total {
		return Concat{}
	}
	return Concat{Ref: ref, Total: total, Seq: seq, Ok: true}
}
