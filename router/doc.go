// Package router decides where every message goes and sees it through.
//
// Submit makes a message durable (the only point where an adapter may then
// acknowledge it) and queues it; workers decide per message: recipient online
// in IM → IM through the adapter that holds the binding; not online and a
// mobile number → SMS; an IM-only user offline → parked until they register
// or the message expires. Failures retry with exponential backoff and jitter;
// IM failures to a user with a number fall back to SMS. Adapters only
// translate; the decisions are all here.
package router
