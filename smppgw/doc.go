// Package smppgw is the bridge's SMPP edge: it turns submit_sm from bound
// ESMEs and deliver_sm from the upstream SMSCs into msg.Message for the
// router, answers them only after the router stored them, and sends messages
// the router routes to SMS out as submit_sm (through the upstream SMSC its
// chooser picks) or deliver_sm (a bound receiver designated as the SMS
// route). It owns the SMPP sessions of both roles: the server ESMEs bind to
// (Serve) and the binds to the SMSCs (Run). README.md describes the upstream
// side. An ESME's query_sm, cancel_sm and replace_sm reach its own messages
// through the router (Control); a message the router wants withdrawn at the
// SMSC goes as cancel_sm to the SMSC that took it (CancelSMS).
//
// The protocol engine is package smpp; this package only translates.
package smppgw
