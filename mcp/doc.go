// Package mcp is the handset link: a TCP listener carrying SIP-C/2.0
// (Fetion's compact SIP dialect) packed in binary MCP frames.
//
// # Wire
//
// The stream is a sequence of frames, each a uvarint length followed by one
// codec frame (codec.AppendFrame / codec.ReadFrame). Each frame carries
// exactly one SIP-C message. By default every connection has one stateful
// codec.Decoder for what the handset sends and one stateful codec.Encoder for
// what the bridge sends; both start fresh on every new connection, so a
// handset that reconnects and the bridge always agree on the state.
// Config.Stateless switches a server to standalone frames.
//
// A frame that does not decode is answered "SIP-C/2.0 400 Bad Request"; in
// stateful mode the connection is then closed (the decoder state can no
// longer be trusted and the handset must reconnect so both sides reset). A
// frame that decodes but is not well-formed SIP-C gets 400 and the
// connection stays up. Every close is logged with its reason.
//
// # SIP-C accepted
//
// Start line "METHOD target SIP-C/2.0" or "SIP-C/2.0 code reason"; header
// lines "Name: value" ended by CRLF (values are trimmed of surrounding
// blanks); an empty line; a body of exactly L bytes (no L means no body).
// The compact names used: F from, T to, I call id, Q cseq ("n METHOD"),
// L content length, X expires, C content type, N event/service, K
// supported, D date, XI message id, W challenge, A answer. "SIP/2.0" is
// accepted as a version, REGISTER and MESSAGE as R and M, and the RFC 3261
// long names (From, To, Call-ID, CSeq, Content-Length, Expires,
// Content-Type, Authorization) as the compact ones.
//
// # Register and digest
//
// R carries F: <user> (a bare user name or Fetion number, or a sip: URI of
// which the user part is taken). Without an A header the bridge answers
//
//	SIP-C/2.0 401 Unauthorized
//	W: Digest algorithm="MD5-sess",nonce="<32 upper-case hex>"
//
// The nonce is random per challenge and kept by the connection (the link is
// stateful anyway), so it is single-use: a successful answer consumes it.
// The handset answers with a new R carrying
//
//	A: Digest response="<hex>",cnonce="<hex>"
//
// where response = hex(md5(HA1 ":" nonce ":" cnonce)) and HA1 = lower-case
// hex md5(user ":" domain ":" password), the same credential sources as the
// SIP edge (Config.HA1, then, when it does not match, any of the user's live
// issued credentials, one per device: Config.Issued), realm = Config.Domain.
// Hex is compared case-insensitively; other A parameters (algorithm, salt)
// are ignored. A right answer gets 200 OK with X: the granted expiry (the
// request's X, default 600 s, clamped to 60..86400) and the handset becomes
// present:
// presence.Binding{AOR: msg.FromAOR("sip:user@domain"), Contact: the
// connection id "mcp:<boot>.<n>", Via: "mcp"}. A wrong answer gets a fresh
// 401; the third wrong answer on a connection gets 403 Forbidden and so does
// every R after it on that connection. X: 0 unregisters. An R with the call
// id of the accepted registration and no body and no A is a keepalive: the
// binding is refreshed and 200 OK returned. With Config.OpenRegistration no
// digest is asked. When the connection closes its binding is removed.
//
// # Methods
//
//   - R: register, refresh, unregister (above).
//   - M from a registered handset: T is sip:N@host, tel:+N, a bare number,
//     or sip:user@host; C text/plain (default) or text/html-fragment (the
//     text inside Fetion's <Font> markup, entities unescaped). The message
//     is handed to the router (a msg.Stager) and answered only after it is durably
//     stored: "280 Send SMS OK" when N: SendCatSMS, or when Config.Lookup is
//     set and the recipient is a number not online in IM; otherwise 200 OK
//     (with XI: the bridge message id and D: the date). msg.ErrOverloaded →
//     503 Service Unavailable, msg.ErrNoRoute or a bad T → 404 Not Found /
//     400, msg.ErrTooLong (a text to a number that SMS cannot carry) → 413,
//     any other failure → 500. Not registered → 401.
//   - S: N: GetContactList → Config.Service's answer (the bridge answers
//     with the user's contacts from the identity directory), else 200 with
//     an empty contact list; SetPresence → 200; any other service → 200
//     with <results />.
//   - Server.Notify pushes BN with an event (N: contact when a user's
//     contact list changed) to every connection registered as that user.
//   - B, BN, O, I, A, SUB: 200 OK (accepted and ignored: the bridge keeps no
//     sessions, invitations or subscriptions for handsets).
//   - anything else: 501 Not Implemented.
//
// Every request but R needs a registration on the same connection (401
// otherwise). Responses echo the request's I, Q and T.
//
// # Delivery to handsets
//
// Server.SendIM (the router's IMSender for Via "mcp") sends
// "M <user> SIP-C/2.0" with a new I, Q: 1 M, F: the sender (tel:+N for a
// number, its sip: URI otherwise), C: text/plain, D, XI: the message id, and
// waits for the handset's final response with the same I and Q: 2xx is
// delivered, any other code or Config.MessageTimeout is an error. Any number
// of SendIM calls may be in flight on one connection.
//
// Handset is a simulator of a real handset (its own stateful encoder and
// decoder per connection) for tests and the end-to-end test.
package mcp
