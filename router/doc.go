// Package router decides where every message goes and sees it through.
//
// Submit queues a message's acceptance into the store's next group commit,
// hands it to the workers at once and returns when the commit is durable
// (the only point where an adapter may then acknowledge it): delivery
// overlaps the fsync, while outcomes, retries and parking wait for it, and a
// failed commit ends the job (the sender was refused and resubmits, so a
// delivery already made is at worst repeated). Stage is Submit without the
// wait: its Ticket settles later, for an adapter that acknowledges a whole
// commit's messages from one goroutine. Workers decide per message:
// recipient online in IM → IM through the adapter that holds the binding;
// not online and a mobile number → SMS; an IM-only user offline → parked
// until they register or the message expires. Failures retry with exponential backoff and jitter;
// IM failures to a user with a number fall back to SMS. Adapters only
// translate; the decisions are all here.
package router
