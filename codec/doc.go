// Package codec converts one SIP-C/2.0 (Fetion) or RFC 3261 SIP message
// to a compact binary MCP frame and back, byte-exact for any input.
//
// A message is tokenized: the start line and every header line become a
// one-byte opcode (header name from a static table, value kind) followed by
// a typed value — varints for numbers and call ids, two integers for
// sip:N@fetion.com.cn;p=P, 16 raw bytes for 32-hex ids, 4 bytes for RFC 1123
// dates, nothing at all for a Content-Length that equals the body length.
// Whatever does not re-render to exactly the original bytes stays literal.
// Literals and the body form the residual.
//
// Compression is a small LZMA-like coder (lz.go, rc.go): LZ77 over a
// 16 KiB history with every symbol coded by an adaptive binary range coder
// (literal contexts, two repeat distances, length and distance slots). Both
// ends start from the same primed state: the preset dictionary of Fetion
// XML and SIP text as history, and the models after coding it.
//
//   - stateless mode: each frame starts from the primed state; tokens are
//     sent raw and the residual range-coded (or raw if that is smaller);
//   - stateful mode: one Encoder and one Decoder per connection direction
//     keep a table of recent header lines (repeats cost one byte), date
//     deltas, and the LZ history and models across frames, through which
//     tokens and residual both go, so a repeated message shape costs a few
//     bits. Each stateful frame carries a 16-bit state check (CRC-32C of the
//     decoded message seeded by the frame sequence number), so a lost,
//     repeated or mis-decoded frame is reported as ErrStateMismatch, never
//     delivered silently; Reset both ends on reconnect.
//
// Stateless frame: byte 0 = magic 0xB in the high nibble, format version
// (2) in bits 3-2, bit 0 residual coded; then the token stream; then the
// residual (coded: its length, then LZ symbols). Stateful frame: 2 bytes
// (01, 14 check bits), then one range-coder run: 2 more check bits, token
// length, residual length, LZ symbols. A range-coder run ends in about one
// byte: trailing zero bytes are not sent.
//
// Memory per stateful Encoder+Decoder pair: history 20 KiB and models
// 15 KiB on each end, an 8 KiB match index on the encoder
// (TestConnectionMemory measures the whole).
//
// AppendFrame and ReadFrame add a varint length prefix for stream links.
package codec
