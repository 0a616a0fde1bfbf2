// Package smstext is the SMS text layer of the SMPP<->SIP gateway.
//
// It turns the octets an SMPP peer puts in short_message (or
// message_payload) into UTF-8 and back, and handles everything that sits
// between one UTF-8 string and the SMS segments that carry it:
//
//   - Alphabets (Decode, Encode): the GSM 03.38 / 3GPP TS 23.038 default
//     alphabet with its 0x1B extension table, carried UNPACKED (one septet
//     per octet) as SMPP does; IA5/ASCII; Latin-1; UCS-2 read as UTF-16BE so
//     that emoji (surrogate pairs) survive; ISO-8859-5 and ISO-8859-8 for
//     the SMPP data_coding values 6 and 7; and the GSM 03.38 §4 coding groups
//     for data_coding values SMPP does not define itself. Binary data
//     (data_coding 2, 4 and the 8-bit coding groups) is returned unchanged as
//     the bytes of the string.
//   - Septet packing (Pack7, Unpack7) per TS 23.038 §6.1.2.1, for peers and
//     tests that deal in packed GSM 7-bit.
//   - Segmentation (Split): a text that does not fit one SMS is cut into
//     concatenated parts with an 8-bit (IEI 0x00) or 16-bit (IEI 0x08)
//     reference UDH. A cut never separates a GSM escape sequence or a UTF-16
//     surrogate pair, so every part decodes on its own.
//   - UDH parsing (ParseUDH) for esm_class 0x40 messages.
//   - Reassembly (Reassembler) of concatenated parts that may arrive out of
//     order, duplicated, or never, with a timeout and a snapshot that can be
//     persisted across a restart. A waiting message holds only the parts that
//     came. At the timeout, or when MaxPending messages or MaxBytes of parts
//     wait, the oldest is handed out: partial (a marker per run of missing
//     parts) or Dropped, for its sender to be told; none is forgotten. The
//     memory held is about MaxPending×400 B + MaxBytes: with the defaults
//     (10,000, 16 MiB), 40,000 first parts of different 255-part messages
//     hold 5 MiB of heap (TestReassemblyMemoryUnderFirstParts; 213 MiB when
//     each waiting message had a table for all 255 parts).
//   - Delivery receipts (FormatReceipt, ParseReceipt) in the SMPP 3.4
//     Appendix B text form, message_state mapping, and message id
//     comparison across the hex/decimal mismatch SMSCs are known for
//     (NormalizeMessageID, SameMessageID).
//
// The package has no global mutable state and depends only on the standard
// library. Only Reassembler holds state; it is safe for concurrent use.
package smstext
