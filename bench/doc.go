// Command bench is the load tester carriers run against the bridge.
//
// It plays every role over real loopback sockets: SMPP ESMEs submitting
// (our smpp.Client, which waits on a full window instead of failing), the
// SMSC the bridge binds to (smpp.Server), SIP user agents that REGISTER
// with digest credentials, answer MESSAGE with 200 and send MESSAGE
// themselves, and for the XMPP routes the XMPP users of a Prosody it starts
// (internal/prosodytest), of which the spawned bridge is the gateway
// component; those users are lean clients of its own (xmppclient.go) that
// read stanzas as raw XML tokens, to leave the CPU to the bridge and
// Prosody. Every message carries a token with a sequence number and its
// send time, so the sinks can tell what arrived, how late, and what never
// arrived at all (LOST: acknowledged but not delivered after a drain period).
//
// A run has up to two phases. The bridge phase spawns (or targets) a bridge.
// The ceiling phase measures what the transports and the machine allow for
// the same work with no bridge: the bridge carries every message over two
// legs (SMS→IM: submit_sm in, MESSAGE out; SMS→SMS: submit_sm in, submit_sm
// out over its one bind to the SMSC; IM→SMS: MESSAGE in, submit_sm out;
// IM→IM: MESSAGE in, MESSAGE out; SMS→XMPP: submit_sm in, chat message and
// ping out through Prosody; XMPP→SMS: chat message and ping in through
// Prosody, submit_sm out), so the ceiling's generator does both legs of each
// message itself, as a zero-logic relay with no store and no routing would:
// leg 1 to an echo SMPP peer, SIP responder or XMPP component that
// acknowledges and counts but reports no delivery, then, in the same worker,
// leg 2 (Relay) to a counting SIP responder, split into parts over one SMPP
// bind to a counting SMSC, or from that component through the same Prosody
// to the XMPP users' clients.
// Only that egress sink counts a message delivered, as in the bridge phase.
// (A ceiling that drove the ingress leg alone would do half the work per
// message and make the bridge/ceiling ratio meaningless.) The report puts
// the bridge's delivered rate next to the ceiling's.
//
//	go run ./bench --duration 60s --warmup 5s --mix sms-im:1 --out /tmp/bench
//
// Output: a live progress line on stderr, and report.json, timeseries.csv and
// chart.svg in --out. Each second also carries how fast each CPU ran
// (SpeedProbe): on a VM that changes with the host, and with it what the
// bridge costs.
package main
