package codec

import (
	"fmt"
	"strings"
)

// Residual escapes: inside bodies and literal values, Fetion URIs, 32-hex
// ids and long decimal numbers are replaced by an escape byte and binary,
// so the LZ coder sees fewer, denser bytes. Escape bytes occurring in the text
// are themselves escaped, so any byte string survives.
const (
	escURI      = 0x01 // num N, num P: sip:N@fetion.com.cn;p=P
	escHexLower = 0x02 // 16 bytes
	escHexUpper = 0x03 // 16 bytes
	escNumber   = 0x04 // num: a run of minDigitRun..19 digits, no leading zero
	escLiteral  = 0x05 // next byte is a literal 0x01..0x05

	minDigitRun = 9
)

// residualDict is presetDict in escaped form: URIs there have no number,
// so the escape byte stands for "sip:...;p=" as it will in real residuals.
var residualDict = []byte(strings.ReplaceAll(presetDict, `"sip:@fetion.com.cn;p="`, "\"\x01\""))

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// appendEscaped appends the escaped form of b and reports whether it
// differs from b.
func appendEscaped(dst, b []byte) ([]byte, bool) {
	changed := false
	lit := 0 // start of the pending unescaped run
	for i := 0; i < len(b); {
		c := b[i]
		var n int // bytes consumed by an escape starting at i
		switch {
		case c >= escURI && c <= escLiteral:
			dst = append(dst, b[lit:i]...)
			dst = append(dst, escLiteral, c)
			n = 1
		case c == 's' && i+len(sipPrefix) < len(b) && string(b[i:i+len(sipPrefix)]) == sipPrefix:
			j := i + len(sipPrefix)
			k := j
			for k < len(b) && isDigit(b[k]) {
				k++
			}
			if k-j == 0 || k+len(fetionHost) >= len(b) || string(b[k:k+len(fetionHost)]) != fetionHost {
				break
			}
			nv, ok := parseUint(b[j:k])
			if !ok {
				break
			}
			m := k + len(fetionHost)
			q := m
			for q < len(b) && isDigit(b[q]) {
				q++
			}
			pv, ok := parseUint(b[m:q])
			if !ok {
				break
			}
			dst = append(dst, b[lit:i]...)
			dst = append(dst, escURI)
			dst = appendNum(dst, nv)
			dst = appendNum(dst, pv)
			n = q - i
		case isHex(c) && (i == 0 || !isHex(b[i-1])) && i+32 <= len(b) && (i+32 == len(b) || !isHex(b[i+32])):
			hc := hexCase(b[i : i+32])
			if hc == 0 {
				break
			}
			// All digits is better as a number only when short; 32 digits are not.
			dst = append(dst, b[lit:i]...)
			dst = append(dst, byte(escHexLower+hc-1))
			dst = appendHexBytes(dst, b[i:i+32])
			n = 32
		case c >= '1' && c <= '9' && (i == 0 || !isDigit(b[i-1])):
			k := i
			for k < len(b) && isDigit(b[k]) {
				k++
			}
			if k-i < minDigitRun || k-i > 19 {
				break
			}
			v, _ := parseUint(b[i:k])
			dst = append(dst, b[lit:i]...)
			dst = append(dst, escNumber)
			dst = appendNum(dst, v)
			n = k - i
		}
		if n == 0 {
			i++
			continue
		}
		changed = true
		i += n
		lit = i
	}
	return append(dst, b[lit:]...), changed
}

// appendUnescaped appends the original form of the escaped bytes e.
func appendUnescaped(dst, e []byte) ([]byte, error) {
	lit := 0
	for i := 0; i < len(e); {
		c := e[i]
		if c < escURI || c > escLiteral {
			i++
			continue
		}
		dst = append(dst, e[lit:i]...)
		i++
		switch c {
		case escLiteral:
			if i >= len(e) || e[i] < escURI || e[i] > escLiteral {
				return dst, fmt.Errorf("codec: bad literal escape: %w", ErrCorrupt)
			}
			dst = append(dst, e[i])
			i++
		case escURI:
			nv, k := readNum(e[i:])
			if k <= 0 {
				return dst, fmt.Errorf("codec: bad URI escape: %w", ErrCorrupt)
			}
			pv, k2 := readNum(e[i+k:])
			if k2 <= 0 {
				return dst, fmt.Errorf("codec: bad URI escape: %w", ErrCorrupt)
			}
			dst = appendFetionURI(dst, nv, pv)
			i += k + k2
		case escHexLower, escHexUpper:
			if len(e)-i < 16 {
				return dst, fmt.Errorf("codec: bad hex escape: %w", ErrCorrupt)
			}
			dst = appendHex(dst, e[i:i+16], c == escHexUpper)
			i += 16
		case escNumber:
			v, k := readNum(e[i:])
			if k <= 0 {
				return dst, fmt.Errorf("codec: bad number escape: %w", ErrCorrupt)
			}
			dst = appendUint(dst, v)
			i += k
		}
		lit = i
	}
	return append(dst, e[lit:]...), nil
}
