// Package smppgw is the bridge's SMPP edge: it turns submit_sm from bound
// ESMEs and deliver_sm from the upstream SMSC into msg.Message for the router,
// answers them only after the router stored them, and sends messages the
// router routes to SMS out as submit_sm (upstream SMSC) or deliver_sm (a bound
// receiver designated as the SMS route). It owns the SMPP sessions of both
// roles: the server ESMEs bind to (Serve) and the bind to the SMSC (Run).
// An ESME's query_sm, cancel_sm and replace_sm reach its own messages
// through the router (Control); a message the router wants withdrawn at the
// SMSC goes there as cancel_sm (CancelSMS).
//
// The protocol engine is package smpp; this package only translates.
package smppgw
