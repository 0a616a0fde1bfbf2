package smstext

import (
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// SMPP 3.4 §5.2.19 data_coding values this package produces or names.
const (
	DCSDefault byte = 0x00 // SMSC default alphabet, taken as GSM 03.38 unpacked
	DCSIA5     byte = 0x01 // IA5 (CCITT T.50) / ASCII
	DCSBinary2 byte = 0x02 // octet unspecified (8-bit binary)
	DCSLatin1  byte = 0x03 // ISO-8859-1
	DCSBinary  byte = 0x04 // octet unspecified (8-bit binary)
	DCSCyrilic byte = 0x06 // ISO-8859-5
	DCSHebrew  byte = 0x07 // ISO-8859-8
	DCSUCS2    byte = 0x08 // UCS-2, read as UTF-16BE
)

var (
	// ErrInvalid marks input that is not valid in its alphabet.
	ErrInvalid = errors.New("smstext: invalid encoded text")
	// ErrUnsupported marks a data_coding this package cannot decode
	// (compressed text, JIS, KS C 5601, pictograms, reserved groups).
	ErrUnsupported = errors.New("smstext: unsupported data_coding")
)

func errSeptet(i int, c byte) error {
	return fmt.Errorf("%w: octet %#02x at %d is not a GSM 7-bit septet", ErrInvalid, c, i)
}

// alphabet is what a data_coding value means for the text body.
type alphabet uint8

const (
	alphaGSM7 alphabet = iota
	alphaASCII
	alphaLatin1
	alphaCyrillic
	alphaHebrew
	alpha8bit
	alphaUCS2
	alphaUnsupported
)

// alphabetOf resolves dcs. Values 0x00-0x0F are SMPP's own table (SMPP 3.4
// §5.2.19), which differs from GSM 03.38 there; above that the GSM 03.38 §4
// coding groups apply.
func alphabetOf(dcs byte) alphabet {
	switch dcs {
	case 0x00:
		return alphaGSM7
	case 0x01:
		return alphaASCII
	case 0x02, 0x04:
		return alpha8bit
	case 0x03:
		return alphaLatin1
	case 0x06:
		return alphaCyrillic
	case 0x07:
		return alphaHebrew
	case 0x08:
		return alphaUCS2
	}
	switch {
	case dcs < 0x10:
		// 5 JIS, 9 pictogram, 10 ISO-2022-JP, 13 extended kanji,
		// 14 KS C 5601, and reserved values.
		return alphaUnsupported
	case dcs < 0x80:
		// 00xx xxxx general data coding and 01xx xxxx automatic deletion
		// group: bit 5 = compressed, bits 3-2 = alphabet.
		if dcs&0x20 != 0 {
			return alphaUnsupported
		}
		switch dcs & 0x0C {
		case 0x00:
			return alphaGSM7
		case 0x04:
			return alpha8bit
		case 0x08:
			return alphaUCS2
		}
		return alphaUnsupported
	case dcs < 0xC0:
		return alphaUnsupported // 1000-1011 reserved groups
	case dcs < 0xE0:
		return alphaGSM7 // message waiting indication, discard/store, GSM7
	case dcs < 0xF0:
		return alphaUCS2 // message waiting indication, store, UCS2
	default:
		// 1111 xxxx data coding/message class: bit 2 = 8-bit data.
		if dcs&0x04 != 0 {
			return alpha8bit
		}
		return alphaGSM7
	}
}

// Decode turns an SMPP short_message body (without UDH) in data_coding dcs
// into UTF-8.
//
//   - 0 and the GSM 7-bit coding groups: GSM 03.38 default alphabet,
//     unpacked (one septet per octet, as SMPP carries it), with the 0x1B
//     extension table. An octet above 0x7F is an error.
//   - 1: IA5/ASCII; an octet above 0x7F is an error.
//   - 3: Latin-1. 6: ISO-8859-5. 7: ISO-8859-8.
//   - 8 and the UCS-2 coding groups: UTF-16BE, so surrogate pairs (emoji)
//     decode. Odd length and a high surrogate at the very end are errors;
//     other unpaired surrogates decode to U+FFFD.
//   - 2, 4 and the 8-bit coding groups: binary. The bytes are returned
//     unchanged as the string (not UTF-8 text); the caller keeps them.
//
// Other values (compressed text, JIS, KS C 5601, reserved groups) return an
// error wrapping ErrUnsupported. Decode never panics.
func Decode(dcs byte, b []byte) (string, error) {
	switch alphabetOf(dcs) {
	case alphaGSM7:
		s, err := decodeGSM7(b)
		if err != nil {
			return "", fmt.Errorf("decode dcs %#02x: %w", dcs, err)
		}
		return s, nil
	case alphaASCII:
		for i, c := range b {
			if c > 0x7F {
				return "", fmt.Errorf("decode dcs %#02x: %w: octet %#02x at %d is not ASCII", dcs, ErrInvalid, c, i)
			}
		}
		return string(b), nil
	case alphaLatin1:
		return decodeTable(b, func(c byte) rune { return rune(c) }), nil
	case alphaCyrillic:
		return decodeTable(b, iso8859_5), nil
	case alphaHebrew:
		for i, c := range b {
			if iso8859_8(c) == utf8.RuneError {
				return "", fmt.Errorf("decode dcs %#02x: %w: octet %#02x at %d is not in ISO-8859-8", dcs, ErrInvalid, c, i)
			}
		}
		return decodeTable(b, iso8859_8), nil
	case alphaUCS2:
		s, err := decodeUCS2(b)
		if err != nil {
			return "", fmt.Errorf("decode dcs %#02x: %w", dcs, err)
		}
		return s, nil
	case alpha8bit:
		return string(b), nil
	}
	return "", fmt.Errorf("decode dcs %#02x: %w", dcs, ErrUnsupported)
}

func decodeTable(b []byte, f func(byte) rune) string {
	out := make([]byte, 0, len(b)+len(b)/2)
	for _, c := range b {
		out = utf8.AppendRune(out, f(c))
	}
	return string(out)
}

// iso8859_5 maps ISO-8859-5 (Cyrillic) to Unicode.
func iso8859_5(c byte) rune {
	switch {
	case c < 0xA1, c == 0xAD:
		return rune(c)
	case c == 0xF0:
		return '№'
	case c == 0xFD:
		return '§'
	}
	return rune(c) + 0x360
}

// iso8859_8 maps ISO-8859-8 (Hebrew) to Unicode; RuneError for holes.
func iso8859_8(c byte) rune {
	switch {
	case c < 0xA1, c >= 0xA2 && c <= 0xA9, c >= 0xAB && c <= 0xB9, c >= 0xBB && c <= 0xBE:
		return rune(c)
	case c == 0xAA:
		return '×'
	case c == 0xBA:
		return '÷'
	case c == 0xDF:
		return '‗'
	case c >= 0xE0 && c <= 0xFA:
		return rune(c) - 0xE0 + 0x05D0
	case c == 0xFD:
		return 0x200E
	case c == 0xFE:
		return 0x200F
	}
	return utf8.RuneError
}

func decodeUCS2(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%w: UCS-2 body has odd length %d", ErrInvalid, len(b))
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	for i := 0; i < len(b); i += 2 {
		u := rune(b[i])<<8 | rune(b[i+1])
		switch {
		case utf16.IsSurrogate(u) && u < 0xDC00: // high surrogate
			if i+2 >= len(b) {
				return "", fmt.Errorf("%w: UCS-2 body ends in a high surrogate %#04x", ErrInvalid, u)
			}
			lo := rune(b[i+2])<<8 | rune(b[i+3])
			if r := utf16.DecodeRune(u, lo); r != utf8.RuneError {
				out = utf8.AppendRune(out, r)
				i += 2
				continue
			}
			out = utf8.AppendRune(out, utf8.RuneError)
		case utf16.IsSurrogate(u): // lone low surrogate
			out = utf8.AppendRune(out, utf8.RuneError)
		default:
			out = utf8.AppendRune(out, u)
		}
	}
	return string(out), nil
}

// Preference chooses the alphabet Encode and Split use.
type Preference uint8

const (
	// Auto uses GSM 7-bit if every rune is in the GSM 03.38 default
	// alphabet or its extension table, else UCS-2.
	Auto Preference = iota
	// ForceUCS2 always uses UCS-2 (UTF-16BE).
	ForceUCS2
	// ForceLatin1 uses Latin-1 (dcs 3) if every rune is below U+0100, else
	// UCS-2.
	ForceLatin1
)

func (p Preference) String() string {
	switch p {
	case Auto:
		return "auto"
	case ForceUCS2:
		return "ucs2"
	case ForceLatin1:
		return "latin1"
	}
	return fmt.Sprintf("Preference(%d)", uint8(p))
}

// Encode picks the alphabet per pref and returns the data_coding and the body:
// GSM 7-bit as unpacked septets (one per byte, escape sequences as two),
// Latin-1 as octets, UCS-2 as UTF-16BE with surrogate pairs. Text that is not
// valid UTF-8 is an error: the gateway must not send mojibake silently.
func Encode(text string, pref Preference) (dcs byte, body []byte, err error) {
	if !utf8.ValidString(text) {
		return 0, nil, fmt.Errorf("encode: %w: text is not valid UTF-8", ErrInvalid)
	}
	switch pref {
	case Auto:
		if b, ok := encodeGSM7(make([]byte, 0, len(text)+8), text); ok {
			return DCSDefault, b, nil
		}
	case ForceLatin1:
		if b, ok := encodeLatin1(text); ok {
			return DCSLatin1, b, nil
		}
	case ForceUCS2:
	default:
		return 0, nil, fmt.Errorf("encode: unknown preference %d", pref)
	}
	return DCSUCS2, encodeUCS2(text), nil
}

func encodeLatin1(text string) ([]byte, bool) {
	b := make([]byte, 0, len(text))
	for _, r := range text {
		if r > 0xFF {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

func encodeUCS2(text string) []byte {
	b := make([]byte, 0, 2*len(text))
	for _, r := range text {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			b = append(b, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
			continue
		}
		b = append(b, byte(r>>8), byte(r))
	}
	return b
}
