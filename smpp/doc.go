// Package smpp is the bridge's SMPP 3.4 session engine, used by both roles:
// the server that carriers' ESMEs and SMSCs bind to, and the client that
// binds out to an upstream SMSC.
//
// It owns what no Go SMPP library gets right for a gateway: correct
// per-direction sequence numbers on transceivers (our requests and the
// peer's requests never share a pending table), a window of in-flight
// requests that waits instead of failing, response timeouts, enquire_link
// both ways, unbind, and generic_nack for unknown or malformed PDUs with the
// session kept up. The PDU codec decodes into reusable PDU values so the hot
// path allocates little. A handler that is also a Stager takes requests on
// the session's read goroutine and answers them later, in order, from one
// acker goroutine per session: a store that commits many messages at once
// acknowledges them with one wake-up instead of a goroutine each.
package smpp
