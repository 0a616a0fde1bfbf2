// Package codec converts one SIP-C/2.0 (Fetion) or RFC 3261 SIP message
// to a compact binary MCP frame and back, byte-exact for any input.
//
// A message is tokenized: the start line and every header line become a
// one-byte opcode (header name from a static table, value kind) followed by
// a typed value — varints for numbers and call ids, two integers for
// sip:N@fetion.com.cn;p=P, 16 raw bytes for 32-hex ids, 4 bytes for RFC 1123
// dates, nothing at all for a Content-Length that equals the body length.
// Whatever does not re-render to exactly the original bytes stays literal.
// Literals and the body form the residual, which is compressed with DEFLATE:
//
//   - stateless mode: a static preset dictionary of Fetion XML and SIP text,
//     each frame standing alone (the dictionary version is in the frame);
//   - stateful mode: one Encoder and one Decoder per connection direction
//     keep a table of recent header lines (repeats cost one byte) and a
//     DEFLATE stream whose history is the session's previous residuals.
//     Each stateful frame carries a 13-bit CRC-32C of (frame sequence,
//     decoded message), so a lost, repeated or mis-decoded frame is
//     reported as ErrStateMismatch, never delivered silently; Reset both
//     ends on reconnect.
//
// Stateless frame: byte 0 = magic 0xB in the high nibble, format version in
// bits 3-2, bit 0 residual deflated; then the token stream; then the
// residual. Stateful frame: 2 bytes (01, deflated bit, 13 check bits), then
// either raw tokens or this frame's part of the session DEFLATE stream.
//
// AppendFrame and ReadFrame add a varint length prefix for stream links.
package codec
