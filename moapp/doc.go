// Package moapp delivers messages for service numbers to HTTP
// applications, as Kannel's sms-service and Jasmin's HTTP MO do: a
// mobile-originated SMS (deliver_sm from the SMSC, submit_sm from an ESME)
// or an IM message to a number of an application's becomes a signed JSON
// POST to its URL.
//
// Table is the routing table the router consults (router.Apps): the
// longest number prefix wins, a route with a keyword (the text's first
// word) over one without. Sender is the router's app edge
// (router.AppSender): one attempt per call, nil on the application's 2xx.
// The message is stored before its sender is acknowledged and is the
// router's like any other: retried with backoff across restarts until the
// application takes it or the message expires, its state over the API the
// real one.
//
// A 2xx with a body is a reply: a new message from the service number to
// the sender, staged through the edges' stager (groups, then the router)
// before the attempt counts as taken, so a reply is never lost; the same
// reply staged again after a crash is the first one (its idempotency key
// is the message's id). The contract for applications is in README.md.
package moapp
