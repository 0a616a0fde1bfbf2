// Package cluster lets several bridges share presence over NATS JetStream.
//
// A Node embeds a NATS server (JetStream on, routes to the other nodes) or
// connects to an external NATS. It publishes this node's registrations to a
// replicated KV bucket and mirrors the other nodes' bindings into the local
// presence.Store as remote bindings. As the router's "cluster" IMSender it
// asks a binding's node, by NATS request/reply, to deliver through that
// node's own edge. See README.md for what is shared, what each
// acknowledgement means, and what is not built yet.
package cluster
