package codec

// Token stream of format version 2 (decoded only).
const (
	opEnd     = 0x00 // end of headers; the body is the rest of the residual
	opLitLine = 0x01 // whole line literal: uvarint length
	opDynBase = 0x02 // stateful: repeat of recent line (opDynBase + slot)
	dynSize   = 0x40 - opDynBase
	opTyped   = 0x40 // opTyped + nameIndex*8 + kind
)

// Value kinds of version 2 (3 bits).
const (
	kLit     = iota // uvarint length, bytes in the residual
	kInt            // num (num.go); negative numbers stay literal
	kIntSp          // num, value followed by one space
	kURI            // sip:N@fetion.com.cn;p=P: num N, num P
	kCSeq           // "N METHOD": num N, method index
	kTok            // token table index
	kImplied        // Content-Length equal to the body length: nothing
	kExt            // sub-kind byte follows
)

// Extended value sub-kinds of version 2.
const (
	xHexLower  = iota // 32 lower-case hex digits: 16 bytes
	xHexUpper         // 32 upper-case hex digits: 16 bytes
	xDate             // RFC 1123 GMT date: 4 bytes big-endian Unix seconds
	xTel              // tel:N: uvarint N
	xSipNum           // sip:N@fetion.com.cn: num N
	xDateDelta        // stateful: num seconds after the previous date of the session
)

// Start line layout byte of version 2: bits 0-1 kind, bits 2-3 version,
// bit 4 default reason, bit 5 escaped residual.
const (
	startLiteralAll  = 0
	startRequest     = 1
	startResponse    = 2
	startLiteralLine = 3
	layoutDefReason  = 0x10
	layoutEscaped    = 0x20
)
