// Package dlr posts delivery reports to HTTP senders: each message sent
// over the HTTP API with a report URL (its dlr_url, or --dlr-url) gets a
// signed JSON POST when it is handed to the SMS network (ENROUTE) and when
// its outcome is known (DELIVRD, UNDELIV, EXPIRED, REJECTD).
//
// A report is stored (the store's KV) before the router or the SMSC is
// answered, and deleted once the receiver answered 2xx: it survives a
// restart. Failed attempts are retried with exponential backoff and full
// jitter until Config.Expiry after the report was made. The reports of
// one message go one at a time, in order; one not yet delivered when a
// later one of the same message is made is dropped, as the later says
// more. The contract for receivers is in ../api/README.md.
package dlr
