package codec

import "time"

// Typed value parsers. Each accepts only the canonical text that its
// renderer reproduces byte for byte; anything else stays literal.

// parseUint accepts 1..19 decimal digits without a leading zero.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

const (
	sipPrefix  = "sip:"
	fetionHost = "@fetion.com.cn;p="
	telPrefix  = "tel:"
)

// parseFetionURI accepts sip:N@fetion.com.cn;p=P.
func parseFetionURI(b []byte) (n, p uint64, ok bool) {
	if len(b) < len(sipPrefix)+len(fetionHost)+2 || string(b[:len(sipPrefix)]) != sipPrefix {
		return 0, 0, false
	}
	b = b[len(sipPrefix):]
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if n, ok = parseUint(b[:i]); !ok {
		return 0, 0, false
	}
	b = b[i:]
	if len(b) <= len(fetionHost) || string(b[:len(fetionHost)]) != fetionHost {
		return 0, 0, false
	}
	p, ok = parseUint(b[len(fetionHost):])
	return n, p, ok
}

func appendFetionURI(dst []byte, n, p uint64) []byte {
	dst = append(dst, sipPrefix...)
	dst = appendUint(dst, n)
	dst = append(dst, fetionHost...)
	return appendUint(dst, p)
}

// parseCSeq accepts "N METHOD" with METHOD from the method table.
func parseCSeq(b []byte) (n uint64, m uint8, ok bool) {
	if len(b) == 0 || !isDigit(b[0]) { // most values are not: no scan
		return 0, 0, false
	}
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if i == len(b) {
		return 0, 0, false
	}
	if n, ok = parseUint(b[:i]); !ok {
		return 0, 0, false
	}
	m, ok = methodIndex.get(b[i+1:])
	return n, m, ok
}

// hexCase reports whether b is 32 hex digits all lower (1) or all upper (2) case.
func hexCase(b []byte) int {
	if len(b) != 32 {
		return 0
	}
	lower, upper := false, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'f':
			lower = true
		case c >= 'A' && c <= 'F':
			upper = true
		default:
			return 0
		}
	}
	switch {
	case lower && upper:
		return 0
	case upper:
		return 2
	}
	return 1
}

// unhex is the value of a hex digit, by a table: the digits of an id are
// random, and a branch on their kind would be mispredicted.
func unhex(c byte) byte { return hexValue[c] }

var hexValue = func() (t [256]byte) {
	for i := range 16 {
		t[hexLower[i]], t[hexUpper[i]] = byte(i), byte(i)
	}
	return t
}()

func appendHex(dst, raw []byte, upper bool) []byte {
	digits := "0123456789abcdef"
	if upper {
		digits = "0123456789ABCDEF"
	}
	for _, c := range raw {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

var (
	dayNames   = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseDate accepts an RFC 1123 date in GMT ("Thu, 16 Apr 2009 14:38:02 GMT")
// between 1970 and 2106 whose re-rendering is identical (weekday included).
func parseDate(b []byte) (uint32, bool) {
	if len(b) != 29 || b[3] != ',' || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' ||
		b[16] != ' ' || b[19] != ':' || b[22] != ':' || b[25] != ' ' || string(b[26:]) != "GMT" {
		return 0, false
	}
	num := func(s []byte) int {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	day, year, hh, mm, ss := num(b[5:7]), num(b[12:16]), num(b[17:19]), num(b[20:22]), num(b[23:25])
	mon := -1
	for i, m := range monthNames {
		if string(b[8:11]) == m {
			mon = i
		}
	}
	if day < 1 || day > 31 || year < 1970 || year > 2105 || hh > 23 || mm > 59 || ss > 59 || mon < 0 {
		return 0, false
	}
	t := time.Date(year, time.Month(mon+1), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day { // 31 Feb and the like normalize away
		return 0, false
	}
	u := t.Unix()
	if u < 0 || u > 0xFFFFFFFF {
		return 0, false
	}
	var tmp [29]byte
	if string(appendDate(tmp[:0], uint32(u))) != string(b) {
		return 0, false
	}
	return uint32(u), true
}

func appendDate(dst []byte, u uint32) []byte {
	t := time.Unix(int64(u), 0).UTC()
	two := func(d []byte, v int) []byte { return append(d, byte('0'+v/10), byte('0'+v%10)) }
	dst = append(dst, dayNames[t.Weekday()]...)
	dst = append(dst, ',', ' ')
	dst = two(dst, t.Day())
	dst = append(dst, ' ')
	dst = append(dst, monthNames[t.Month()-1]...)
	dst = append(dst, ' ')
	dst = two(dst, t.Year()/100)
	dst = two(dst, t.Year()%100)
	dst = append(dst, ' ')
	dst = two(dst, t.Hour())
	dst = append(dst, ':')
	dst = two(dst, t.Minute())
	dst = append(dst, ':')
	dst = two(dst, t.Second())
	return append(dst, " GMT"...)
}
