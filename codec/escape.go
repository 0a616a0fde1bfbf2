package codec

import (
	"fmt"
	"strings"
)

// Residual escapes of format version 2: inside bodies and literal values,
// Fetion URIs, 32-hex ids and long decimal numbers were replaced by an
// escape byte and binary; escape bytes occurring in the text were escaped
// themselves. Only the v2 decoder still reads them.
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
