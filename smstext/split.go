package smstext

import (
	"errors"
	"fmt"
)

// ErrTooLong is returned by Split when a text needs more than 255 parts.
var ErrTooLong = errors.New("smstext: text needs more than 255 SMS parts")

// Part is one SMS segment: UDH (empty for a single-part message) and body.
// On the wire the short_message is UDH followed by body, with esm_class
// 0x40 set when UDH is not empty.
type Part struct {
	UDH, Body []byte
}

// Capacity of one SMS (140 octets of user data) in the units of each
// alphabet: septets, octets, UTF-16 code units.
const (
	singleGSM7   = 160
	singleOctets = 140
	singleUCS2   = 70
)

// Split encodes text per pref and cuts it into SMS parts.
//
// A text that fits one SMS (160 GSM septets, 140 Latin-1 octets, 70 UTF-16
// units) is one Part without UDH. Otherwise each part carries a concatenation
// UDH: with ref16 false "05 00 03 ref tot seq" (8-bit reference: the low byte
// of ref) and 153 septets / 134 octets / 67 units per part; with ref16 true
// "06 08 04 refHi refLo tot seq" and 152 / 133 / 66. A GSM escape sequence or
// a UTF-16 surrogate pair is never cut, so every part decodes on its own;
// such a part is one unit shorter. More than 255 parts is ErrTooLong.
func Split(text string, pref Preference, ref uint16, ref16 bool) (dcs byte, parts []Part, err error) {
	dcs, body, err := Encode(text, pref)
	if err != nil {
		return 0, nil, fmt.Errorf("split: %w", err)
	}
	unit, single := 1, singleOctets // octets per unit, units per single SMS
	switch dcs {
	case DCSDefault:
		single = singleGSM7
	case DCSUCS2:
		unit, single = 2, singleUCS2
	}
	if len(body)/unit <= single {
		return dcs, []Part{{Body: body}}, nil
	}
	udhLen := 6
	if ref16 {
		udhLen = 7
	}
	// Units left per part once the UDH takes its octets. For GSM 7-bit
	// the UDH is padded to a septet boundary: 6 octets = 7 septets
	// (153 left), 7 octets = 8 septets (152 left).
	per := (singleOctets - udhLen) / unit
	if dcs == DCSDefault {
		per = singleGSM7 - (udhLen*8+6)/7
	}
	var cuts []int // end offset (octets) of each part
	for start := 0; start < len(body); {
		end := start + per*unit
		if end >= len(body) {
			end = len(body)
		} else if splitsUnit(dcs, body, start, end) {
			end -= unit
		}
		cuts = append(cuts, end)
		start = end
	}
	if len(cuts) > 255 {
		return 0, nil, fmt.Errorf("split: %d parts: %w", len(cuts), ErrTooLong)
	}
	parts = make([]Part, len(cuts))
	start := 0
	for i, end := range cuts {
		var udh []byte
		if ref16 {
			udh = []byte{0x06, 0x08, 0x04, byte(ref >> 8), byte(ref), byte(len(cuts)), byte(i + 1)}
		} else {
			udh = []byte{0x05, 0x00, 0x03, byte(ref), byte(len(cuts)), byte(i + 1)}
		}
		parts[i] = Part{UDH: udh, Body: body[start:end:end]}
		start = end
	}
	return dcs, parts, nil
}

// splitsUnit reports whether cutting body at end would separate a GSM escape
// from its character or the halves of a surrogate pair.
func splitsUnit(dcs byte, body []byte, start, end int) bool {
	switch dcs {
	case DCSDefault:
		// Septets before end since the part start: an escape is always
		// followed by its character in Encode's output, so count escapes
		// as pairs from the part start to see whether body[end-1] opens one.
		for i := start; i < end; i++ {
			if body[i] == esc {
				if i == end-1 {
					return true
				}
				i++
			}
		}
	case DCSUCS2:
		hi := body[end-2]
		return hi >= 0xD8 && hi <= 0xDB
	}
	return false
}
