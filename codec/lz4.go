package codec

// Format version 4 is version 3 plus two items for the random tokens of
// SIP (Via branches, tags, Call-IDs, nonces), which version 3 codes byte
// by byte at about ten coder decisions each:
//
//   - a token: a run of 8..71 letters and digits that looks random (it
//     has digits and letters, or several letters of each case), coded as
//     its length and then its characters three at a time, each triple one
//     uniform step of 18 bits (62^3 of 2^18 values used: a loss of 0.14
//     bit a triple, and no division on the encoding end);
//   - a UUID (8-4-4-4-12 hexadecimal digits of one case): its 128 bits in
//     8 uniform 16-bit steps.
//
// An item in a header value (any item) is followed by one bit: whether
// the value ends there, its CRLF implied rather than coded (ids and tags
// end most values).
//
// All of it in SIP frames only (useTokens); doc.go lists the other steps
// version 4 changed. The encoder searches no match inside an item and
// indexes only the start of a token or UUID: a repeated one is still one
// match.

const (
	minTokItem = 8
	maxTokItem = minTokItem + 63
	uuidLen    = 36

	q4Tok     = q3Align + 16  // by part: after "not a number", a hex run (0) or a token (1)
	q4TokKind = q4Tok + 2     // by part: an alphanumeric token (0) or a UUID (1)
	q4TokLen  = q4TokKind + 2 // 6-bit tree: length - minTokItem
	q4End     = q4TokLen + 64 // an item ends its header value

	tri62 = 62 * 62 * 62 // < 1<<18
)

// Item kinds of encodeSpan.
const (
	itemNone = iota
	itemNum
	itemHex
	itemTok
	itemUUID
)

const alnum62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// alnumIdx is 1 + the index of a byte in alnum62, 0 for other bytes.
var alnumIdx = func() (t [256]uint8) {
	for i := range len(alnum62) {
		t[alnum62[i]] = uint8(i + 1)
	}
	return t
}()

// alnumCount is 1 for a digit, 1<<10 for an upper-case letter, 1<<20
// for a lower-case one, 0 for other bytes: a run's sum counts each class
// (a scan stops after 1023 bytes, before a count could overflow).
var alnumCount = func() (t [256]uint32) {
	for i := range len(alnum62) {
		switch c := alnum62[i]; {
		case isDigit(c):
			t[c] = 1
		case c <= 'Z':
			t[c] = 1 << 10
		default:
			t[c] = 1 << 20
		}
	}
	return t
}()

// tokScan remembers the alphanumeric run around the last position asked
// about, so that a run is scanned once however many positions of it the
// encoder visits.
type tokScan struct {
	from, to int  // the run [from, to) of the span, scanned from from
	random   bool // b[from:to] looks random
}

// token returns the length of a token item at b[i] (0: none).
func (s *tokScan) token(b []byte, i, end int) int {
	if alnumIdx[b[i]] == 0 {
		return 0
	}
	if i < s.from || i >= s.to {
		// Counts by class in one sum: no branch on the class of a byte,
		// which is random in a token.
		k := i
		var sum uint32
		for lim := min(end, i+1023); k < lim; k++ {
			x := alnumCount[b[k]]
			if x == 0 {
				break
			}
			sum += x
		}
		digits, upper, lower := sum&0x3FF, sum>>10&0x3FF, sum>>20
		s.from, s.to = i, k
		s.random = digits > 0 && upper+lower > 0 || upper >= 3 && lower >= 3
	}
	if n := s.to - i; s.random && n >= minTokItem {
		return min(n, maxTokItem)
	}
	return 0
}

// uuidGroups are the hex digit groups of a UUID: [from, to) each.
var uuidGroups = [5][2]uint8{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}}

// hexNone is 1 for the class of a byte that is no hex digit.
var hexNone = [8]uint8{1}

// uuidAt reports a UUID at b[i:end] and its case.
func uuidAt(b []byte, i, end int) (ok, upper bool) {
	if end-i < uuidLen || b[i+8] != '-' || b[i+13] != '-' || b[i+18] != '-' || b[i+23] != '-' {
		return false, false
	}
	// The classes met, and whether a byte had none: no branch a byte.
	var cl, none uint8
	for _, g := range uuidGroups {
		for _, ch := range b[i+int(g[0]) : i+int(g[1])] {
			x := charClass[ch]
			cl |= x
			none |= hexNone[x]
		}
	}
	if none != 0 || cl&(clLowerHex|clUpperHex) == clLowerHex|clUpperHex {
		return false, false
	}
	return true, cl&clUpperHex != 0
}

// item4 is item with the items of version 4: a UUID before a hex run (its
// first group is one), a token after a number or hex run.
func item4(b []byte, i, start, end int, s *tokScan) (n, kind int, upper bool) {
	if alnumIdx[b[i]] == 0 {
		return 0, itemNone, false
	}
	if charClass[b[i]] != 0 {
		if ok, up := uuidAt(b, i, end); ok {
			return uuidLen, itemUUID, up
		}
		if n, hex, up := item(b, i, start, end); n > 0 {
			if hex {
				return n, itemHex, up
			}
			return n, itemNum, false
		}
	}
	if n := s.token(b, i, end); n > 0 {
		return n, itemTok, false
	}
	return 0, itemNone, false
}

// encToken4 codes the version 4 part of a non-number item: hex run (the
// caller codes it as version 3 does), token or UUID. It reports whether
// it coded the item.
func (c *coder3) encToken4(rc *rcEncoder, t []byte, part, kind int, upper bool) bool {
	p := &c.st.lz
	if kind == itemHex {
		rc.bit(&p[q4Tok+part], 0)
		return false
	}
	rc.bit(&p[q4Tok+part], 1)
	if kind == itemTok {
		rc.bit(&p[q4TokKind+part], 0)
		rc.tree(p[q4TokLen:][:64], uint32(len(t)-minTokItem), 6)
		i := 0
		for ; i+3 <= len(t); i += 3 {
			v := uint32(alnumIdx[t[i]]-1)*62*62 + uint32(alnumIdx[t[i+1]]-1)*62 + uint32(alnumIdx[t[i+2]]-1)
			rc.uniform(v, 18)
		}
		switch len(t) - i {
		case 1:
			rc.uniform(uint32(alnumIdx[t[i]]-1), 6)
		case 2:
			rc.uniform(uint32(alnumIdx[t[i]]-1)*62+uint32(alnumIdx[t[i+1]]-1), 12)
		}
		return true
	}
	rc.bit(&p[q4TokKind+part], 1)
	cs := uint32(0)
	if upper {
		cs = 1
	}
	rc.bit(&p[q3HexCase+part], cs)
	// 4 digits a step: 2 steps in the first group, 1 in each of the
	// next three, 3 in the last.
	for _, g := range uuidGroups {
		for j := int(g[0]); j < int(g[1]); j += 4 {
			rc.uniform(uint32(unhex(t[j]))<<12|uint32(unhex(t[j+1]))<<8|uint32(unhex(t[j+2]))<<4|uint32(unhex(t[j+3])), 16)
		}
	}
	return true
}

func (c *coder3) encValueEnd(rc *rcEncoder, last bool) {
	v := uint32(0)
	if last {
		v = 1
	}
	rc.bit(&c.st.lz[q4End], v)
}

func (c *coder3) decValueEnd(rc *rcDecoder) bool { return rc.bit(&c.st.lz[q4End]) == 1 }

// decToken4 decodes what encToken4 codes and appends it to b; hex false
// means a hex run follows, which the caller decodes.
func (c *coder3) decToken4(rc *rcDecoder, b []byte, part, end int) (out []byte, hex, ok bool) {
	p := &c.st.lz
	if rc.bit(&p[q4Tok+part]) == 0 {
		return b, true, true
	}
	if rc.bit(&p[q4TokKind+part]) == 0 {
		n := int(rc.tree(p[q4TokLen:][:64], 6)) + minTokItem
		if len(b)+n > end {
			return b, false, false
		}
		i := 0
		for ; i+3 <= n; i += 3 {
			v := rc.uniform(18)
			if v >= tri62 {
				return b, false, false
			}
			b = append(b, alnum62[v/(62*62)], alnum62[v/62%62], alnum62[v%62])
		}
		switch n - i {
		case 1:
			v := rc.uniform(6)
			if v >= 62 {
				return b, false, false
			}
			b = append(b, alnum62[v])
		case 2:
			v := rc.uniform(12)
			if v >= 62*62 {
				return b, false, false
			}
			b = append(b, alnum62[v/62], alnum62[v%62])
		}
		return b, false, true
	}
	digits := hexLower
	if rc.bit(&p[q3HexCase+part]) == 1 {
		digits = hexUpper
	}
	if len(b)+uuidLen > end {
		return b, false, false
	}
	for g := range 8 {
		if g == 2 || g == 3 || g == 4 || g == 5 {
			b = append(b, '-')
		}
		w := rc.uniform(16)
		b = append(b, digits[w>>12], digits[w>>8&15], digits[w>>4&15], digits[w&15])
	}
	return b, false, true
}
