// Package codec converts one SIP-C/2.0 or SIP-C/4.0 (Fetion) or RFC 3261
// SIP message to a compact binary MCP frame and back, byte-exact for any
// input.
//
// A frame (format version 4) is one adaptive binary range-coder run over
// the message's fields, each with its own model:
//
//   - the start line: kind (by the previous message's), body length,
//     version, method or status, request URI as a value;
//   - each header line as an op (a name from a static table, a literal
//     name or line, or the end) predicted from the message's context and
//     the two previous ops, then whether the value is one of the last few
//     of that header (one symbol), else the value by kind: numbers as "the
//     same as / one more or less than the last of this header" or by
//     magnitude, tokens from a static table, Fetion URIs and user numbers,
//     32-hex ids and dates in binary, lengths implied by the body;
//   - text without structure (other values, bodies) through an LZ77 coder
//     (lz3.go) at the point where it occurs: a value ends with its CRLF,
//     a body has its length; runs of digits or hex digits are coded as
//     numbers (or as one of the recent numbers) and nibbles, and the first
//     repeat distance points at the last text of the same kind, or at what
//     followed the same number last time.
//
// Version 4 differs from version 3 in SIP frames only (lz4.go): random
// tokens (Via branches, tags, Call-IDs, nonces: runs of letters and digits
// that look random) and UUIDs are items too, coded in a few uniform steps
// instead of a literal byte each; an item that ends a header value says
// so in one bit (its CRLF is implied); a new header value and a value of
// the header's last kind cost one bit each; a far distance's low bits go
// in one uniform step. SIP-C frames of versions 3 and 4 code alike.
//
// Both ends start from the primed state of a profile (SIP-C or SIP): the
// state after coding the profile's prototype messages and dictionary,
// which TestTrainV3 (train_test.go) derives from the tuned families of
// codec/corpus only and stores in dict3/. Stateless frames code with the
// primed models without adapting them; a stateful session (one Encoder and
// one Decoder per connection direction, Reset on reconnect) copies them at
// its first frame and adapts from there.
//
// Stateless frame: byte 0 = magic 0xB in the high nibble, format version
// modulo 4 in bits 3-2 (00: version 4, 11: version 3), profile in bits
// 1-0; then the run. Stateful frame: 2 bytes (mark 00 for version 4, 11
// for version 3; 14 bits of a 16-bit check), then the run: the check's
// last 2 bits, on the first frame of a session the profile, then the
// message.
// The check is CRC-32C of the message seeded by the frame sequence
// number: a lost, repeated, reordered or corrupted frame is reported as
// ErrStateMismatch and the decoder refuses everything until Reset. A run
// ends in about one byte: trailing zero bytes are not sent.
//
// Decoders also read format versions 3 (the same coder without the
// version 4 steps, from its own primed state) and 2 (v2dec.go: version
// bits 10, stateful mark 01), so an older peer's frames still decode; a
// stateful session keeps the version of its first frame.
//
// AppendFrame and ReadFrame add a varint length prefix for stream links.
package codec
