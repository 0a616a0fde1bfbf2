// Package router decides where every message goes and sees it through.
//
// Stage (the router is a msg.Stager) queues a message's acceptance into the
// store's next group commit and hands it to the workers at once; its
// msg.Ack settles when the commit is durable, the only point where an
// adapter may acknowledge the sender. Delivery overlaps the fsync, while
// outcomes, retries and parking wait for it, and a failed commit ends the
// job (the sender was refused and resubmits, so a delivery already made is
// at worst repeated).
//
// Workers decide per message: a service number of an HTTP application
// (Config.Apps) → that application, whoever is online; recipient online in
// IM → IM through the edge that holds the binding; not online and a mobile
// number → SMS; an IM-only user offline → parked until they register or
// the message expires. Failures retry with exponential backoff and jitter;
// IM failures to a user with a number fall back to SMS. Edges register
// with New's router before Run (AddIM, SetSMS, SetApp, AddReporter); they
// only translate, the decisions are all here.
//
// A worker holds a delivery until the edge answers (an XMPP one until its
// client answers a ping), so the pool is Config.Workers goroutines that
// always run, and more while every one is busy and messages wait, up to
// Config.MaxWorkers; those stop when they find nothing waiting.
package router
