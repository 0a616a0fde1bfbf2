package codec

import "encoding/binary"

// Numbers of format version 2 use a prefix varint tuned for Fetion: 9-digit user numbers fit in
// 4 bytes (a LEB128 varint needs 5), small call ids and CSeqs in 1.
//
//	0xxxxxxx                    v < 128
//	100xxxxx +1 byte            v < 128 + 2^13
//	101xxxxx +2 bytes           v < 8320 + 2^21
//	11xxxxxx +3 bytes (< 0xFF)  v < 2105472 + 63*2^24
//	0xFF + uvarint(v)           anything else
const (
	num2Base = 128
	num3Base = num2Base + 1<<13
	num4Base = num3Base + 1<<21
	num5Base = num4Base + 63<<24
)

// readNum decodes a number from b; n <= 0 means malformed.
func readNum(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	c := b[0]
	switch {
	case c < 0x80:
		return uint64(c), 1
	case c < 0xA0:
		if len(b) < 2 {
			return 0, 0
		}
		return num2Base + (uint64(c&0x1F)<<8 | uint64(b[1])), 2
	case c < 0xC0:
		if len(b) < 3 {
			return 0, 0
		}
		return num3Base + (uint64(c&0x1F)<<16 | uint64(b[1])<<8 | uint64(b[2])), 3
	case c < 0xFF:
		if len(b) < 4 {
			return 0, 0
		}
		return num4Base + (uint64(c-0xC0)<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])), 4
	}
	v, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return 0, 0
	}
	return v, k + 1
}
