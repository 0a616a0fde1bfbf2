// Package xmpp is the XMPP edge of the SMS–IM bridge: an external component
// (XEP-0114) of an XMPP server, built on mellium.im/xmpp, that acts as an
// SMS gateway in the manner of XEP-0100. It only translates; the router
// decides where every message goes.
//
// Addresses. An XMPP user inside the bridge is "xmpp:" and their bare JID,
// lower case. A bridge address appears to XMPP users as a JID at the
// component's domain: a number is its own localpart
// (+8613900000002@sms.example.com), a SIP user their user part, an XMPP
// user their XEP-0106-escaped bare JID (u\40d@sms.example.com); JIDOf
// writes them and AddressOf reads back what can be read without the
// directory. An incoming message's recipient is its unescaped localpart as
// Config.Local maps it (by default: numbers only).
//
// Acknowledgements. The component protocol has no per-message
// acknowledgement: a stanza the server routed to us is ours, and the
// sender hears nothing unless we answer.
//
//   - A message with a body is staged with the router (msg.Stager). If it
//     cannot be taken in, the sender gets a stanza error for it: wait /
//     resource-constraint when the bridge is overloaded or the message was
//     not stored (the client may resend), cancel / item-not-found when no
//     route or no such recipient, modify / policy-violation for a text over
//     MaxText. Nothing with a body is dropped silently, except headlines,
//     which take no errors.
//   - A staged message is waited for off the read loop (its msg.Ack);
//     should its commit fail, the error above follows.
//   - The XEP-0184 receipt (<received id=.../>) is sent by Report, when the
//     router reports the message delivered and the sender asked for one;
//     a failed or expired message gets an error stanza then. Both go to the
//     client that sent the message while the gateway still knows it, else
//     to the bare JID.
//   - Messages without a body (chat states, receipts) are consumed; a
//     receipt for a message we sent completes that delivery.
//
// Delivery. SendIM sends a chat message to the binding's full JID,
// requesting a receipt, then an XEP-0199 ping to the same JID. It succeeds
// on the receipt or the ping's result, whichever comes first: the client
// answered on the ordered stream after our message, so it holds it. An
// error stanza for either, no answer within Config.Timeout, or a stream
// that is down fail the attempt, and the router moves on to the next
// binding, SMS, or parks the message. The text is cleaned of what XML 1.0
// cannot carry. Pings to one client are batched: one is out at a time,
// it confirms every message written before it, and with Config.PingGap
// (--xmpp-ping-gap) the next goes no sooner than that after the last.
// Under load that spares the server two stanzas a message, at the cost
// of later confirmations, and so more messages sent twice if the stream
// dies with them unconfirmed.
//
// Presence. A user who subscribes to the gateway's domain is approved,
// asked back and remembered (Config.KV, "xmpp/sub/<bare JID>");
// unsubscribing forgets them. Available presence from a full JID binds it
// in Config.Presence with Via "xmpp" for Config.TTL, with its show and
// priority; unavailable removes it. On every (re)connection the gateway
// sends each subscriber its own presence and a probe, and probes again
// every TTL/2, so the bindings of users still online are renewed and those
// of users who vanished run out, as SIP registrations do.
//
// Connection. Run dials the server, authenticates with the component
// secret and serves the stream; when it drops, Run reconnects with capped
// exponential backoff until its context ends. Each message and its ping
// are written as XML text under mellium's output lock
// (xmppwire.AppendChat, WriteRaw), other stanzas through mellium's
// encoder. Writes made within a millisecond go to the server in one
// system call (xmppwire.GatherConn);
// a write that fails closes the stream, so the deliveries it carried are
// not confirmed and move on as above. Stanzas are read one at a
// time on the stream's read loop; a stanza of more than a MiB ends the
// stream, anything malformed inside a well-formed one gets a stanza error
// or is skipped. Presence is applied by workers that keep each user's
// updates in order.
//
// Interoperability is tested against Prosody (Debian package prosody,
// started by internal/prosodytest) with github.com/xmppo/go-xmpp as the
// user's client; those tests skip when prosody is missing unless
// BRIDGE_REQUIRE_INTEROP=1.
package xmpp
