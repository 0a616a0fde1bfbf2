// Command bench is the load tester carriers run against the bridge.
//
// It plays every role over real loopback sockets: SMPP ESMEs submitting
// (our smpp.Client, which waits on a full window instead of failing), the
// SMSC the bridge binds to (smpp.Server), and SIP user agents that REGISTER
// with digest credentials, answer MESSAGE with 200 and send MESSAGE
// themselves. Every message carries a token with a sequence number and its
// send time, so the sinks can tell what arrived, how late, and what never
// arrived at all (LOST: acknowledged but not delivered after a drain period).
//
// A run has up to two phases. The ceiling phase drives the same generator
// against a minimal SMPP echo peer and SIP MESSAGE responder with no bridge in
// between; the bridge phase spawns (or targets) a bridge. The report puts the
// bridge's delivered rate next to the ceiling's.
//
//	go run ./bench --duration 60s --warmup 5s --mix sms-im:1 --out /tmp/bench
//
// Output: a live progress line on stderr, and report.json, timeseries.csv and
// chart.svg in --out.
package main
