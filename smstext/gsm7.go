package smstext

import "strings"

// GSM 03.38 / 3GPP TS 23.038 §6.2.1 default alphabet and its extension table.

// esc is the escape to the extension table (§6.2.1.1).
const esc = 0x1B

// gsmBasic maps a septet of the default alphabet to its character. 0x1B is
// the escape; a receiver without the extension table shows it as a space.
var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExt maps the septet after an escape to its character; 0 = not defined.
var gsmExt = [128]rune{
	0x0A: '\f',
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

// gsmEnc is the reverse table: rune -> septet code. Codes >= 0x100 are
// escape sequences (0x1B00|ext). Built once from the two tables above; it is
// never written after init, so it is not mutable state.
var gsmEnc = func() map[rune]uint16 {
	m := make(map[rune]uint16, 128+10)
	for i, r := range gsmBasic {
		if i == esc {
			continue
		}
		m[r] = uint16(i)
	}
	for i, r := range gsmExt {
		if r != 0 {
			m[r] = esc<<8 | uint16(i)
		}
	}
	return m
}()

// gsmLatin is the fast path of gsmEnc for runes below 0x100: value+1, 0 = none.
var gsmLatin = func() [256]uint16 {
	var t [256]uint16
	for r, c := range gsmEnc {
		if r < 256 {
			t[r] = c + 1
		}
	}
	return t
}()

// gsmCode returns the septet code of r (0x1Bxx for an escape sequence).
func gsmCode(r rune) (uint16, bool) {
	if r >= 0 && r < 256 {
		c := gsmLatin[r]
		return c - 1, c != 0
	}
	c, ok := gsmEnc[r]
	return c, ok
}

// encodeGSM7 appends the unpacked septets of text to dst. ok is false if a
// rune is not in the default alphabet or the extension table.
func encodeGSM7(dst []byte, text string) ([]byte, bool) {
	for _, r := range text {
		c, ok := gsmCode(r)
		if !ok {
			return dst, false
		}
		if c > 0xFF {
			dst = append(dst, esc, byte(c))
		} else {
			dst = append(dst, byte(c))
		}
	}
	return dst, true
}

// decodeGSM7 decodes unpacked septets. A septet > 0x7F is an error (it
// cannot be a septet); the caller wraps the error with context.
func decodeGSM7(b []byte) (string, error) {
	// Straight to UTF-8: most septets are ASCII, so len(b) bytes nearly
	// always suffice, and the Builder's String does not copy (a []rune
	// buffer would take four bytes a character plus the string's copy).
	var out strings.Builder
	out.Grow(len(b) + len(b)/8)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c > 0x7F {
			return "", errSeptet(i, c)
		}
		if c != esc {
			out.WriteRune(gsmBasic[c])
			continue
		}
		if i+1 >= len(b) {
			// A trailing escape has nothing to extend: §6.2.1 says show
			// it as a space.
			out.WriteByte(' ')
			continue
		}
		n := b[i+1]
		switch {
		case n > 0x7F:
			return "", errSeptet(i+1, n)
		case n == esc:
			// 0x1B1B is reserved for a further extension table we do not
			// have: the first escape shows as a space, the second is
			// looked at again with what follows it.
			out.WriteByte(' ')
		case gsmExt[n] != 0:
			out.WriteRune(gsmExt[n])
			i++
		default:
			// §6.2.1.1: an undefined extension shows the default
			// alphabet character instead.
			out.WriteRune(gsmBasic[n])
			i++
		}
	}
	return out.String(), nil
}

// Pack7 packs GSM 7-bit septets (one per byte, high bit ignored) into octets,
// least significant bit first, as 3GPP TS 23.038 §6.1.2.1 describes. The
// result has ceil(7*len/8) octets; when the last octet has 7 spare bits the
// receiver needs the septet count to know there is no eighth septet.
func Pack7(septets []byte) []byte {
	out := make([]byte, (len(septets)*7+7)/8)
	bit := 0
	for _, s := range septets {
		v := uint16(s&0x7F) << (bit % 8)
		out[bit/8] |= byte(v)
		if bit%8 > 1 {
			out[bit/8+1] |= byte(v >> 8)
		}
		bit += 7
	}
	return out
}

// Unpack7 extracts n septets from packed octets (the inverse of Pack7). If
// packed holds fewer than n septets, only those present are returned.
func Unpack7(packed []byte, n int) []byte {
	if max := len(packed) * 8 / 7; n > max {
		n = max
	}
	if n < 0 {
		n = 0
	}
	out := make([]byte, n)
	for i := range out {
		bit := i * 7
		v := uint16(packed[bit/8])
		if bit/8+1 < len(packed) {
			v |= uint16(packed[bit/8+1]) << 8
		}
		out[i] = byte(v>>(bit%8)) & 0x7F
	}
	return out
}
