// Package sip is the SIP edge of the SMS–IM bridge.
//
// It runs a registrar and a pager-mode instant messaging endpoint (RFC 3428)
// on UDP and TCP, built on github.com/emiago/sipgo:
//
//   - REGISTER (RFC 3261 §10) with digest authentication (RFC 2617 / RFC 8760,
//     MD5, qop=auth) against per-user HA1 credentials; nonces are stateless
//     (an HMAC over a timestamp with a per-server random key) so any number of
//     clients can be challenged without server-side state, and they expire
//     after five minutes (answered with stale=true). Bindings go to a
//     Registrar (presence.Store) keyed by the normalized AOR: a numeric user
//     part is an MSISDN, so sip:8613800000001@domain is "+8613800000001".
//   - MESSAGE from IM users, authenticated the same way unless the lab mode
//     OpenRegistration is on, is handed to the router (a msg.Stager) and
//     answered 202 Accepted only after the message is durably stored;
//     overload maps to 503 + Retry-After.
//   - SendIM delivers a bridged message to a registered contact (or through an
//     outbound proxy) as a SIP MESSAGE, and SendIMDN sends RFC 5438 delivery
//     notifications.
//
// sipgo starts one goroutine per incoming request with no backpressure, so
// the server bounds concurrently handled requests (Config.MaxInFlight) and
// answers 503 + Retry-After beyond that instead of queueing without limit.
//
// Domain check: a request is for us when its host (To for REGISTER, the
// Request-URI for MESSAGE) is Config.Domain or an IP literal — a UA that
// addresses the registrar by IP reached us, so the IP is ours. Any other
// host gets 404.
//
// Contacts are stored as given (URI with its own parameters such as
// transport=tcp, without header parameters), except unreachable ones
// (0.0.0.0, *.invalid) which are replaced by the request's source address.
//
// Outgoing MESSAGEs over UDP leave from the listening socket, so replies and
// NAT bindings see the registrar's address. With Config.OutboundProxy the
// Request-URI is the recipient's AOR and the proxy is the first Route (;lr).
// To an IP-literal UDP target (the common case) they do not use sipgo's
// client transactions, whose per-request object, goroutine and timers are
// the largest single cost of a delivery in a CPU profile of the bridge:
// udpclient.go renders the request once, runs the RFC 3261 §17.1.2 timers
// in the caller's goroutine and takes the responses off the socket before
// sipgo parses them. Host names, TCP and sips use sipgo.
// MESSAGE requests arriving over UDP skip sipgo's transaction layer too
// (udpserver.go): sipgo's parser and our handler, with a minimal server
// transaction that keeps only the final response for Timer J, instead of
// sipgo's full transaction per request, which holds 32 s of traffic in memory.
//
// Every request read off UDP or TCP is screened before sipgo's transaction
// layer (malformed.go): one sipgo cannot parse, or that breaks a rule of
// RFC 3261 §8.2, is answered from its raw bytes with a reason phrase naming
// the fault (400, 416, 483, 505, 513), never dropped, unless it has no Via
// to address a response by. Over TCP a request that cannot be framed is
// answered and its connection closed.
//
// Interoperability is tested against SIPp (Debian package sip-tester) with
// the scenarios in testdata/sipp; TestSippInterop skips when sipp is missing
// unless BRIDGE_REQUIRE_INTEROP=1.
package sip
