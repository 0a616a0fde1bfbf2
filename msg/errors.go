package msg

import "errors"

// Errors the core returns to adapters; each adapter maps them to its own
// wire status (SMPP ESME_RTHROTTLED / ESME_RMSGQFUL, SIP 503 + Retry-After,
// HTTP 429 or 503).
var (
	// ErrOverloaded: the bridge is saturated; the sender should retry later.
	ErrOverloaded = errors.New("bridge overloaded")
	// ErrNotStored: the message could not be made durable, so it must not be
	// acknowledged (disk full, store failure).
	ErrNotStored = errors.New("message not stored")
	// ErrNoRoute: nothing can deliver to the recipient (e.g. alphanumeric).
	ErrNoRoute = errors.New("no route to recipient")
	// ErrTooLong: the text cannot go as SMS (more than 255 parts in the
	// configured alphabet), and the recipient is a number it may have to
	// go to; refused at submission rather than failing after it.
	ErrTooLong = errors.New("text too long for SMS")
	// ErrBadSchedule: the message is to be sent after it expires.
	ErrBadSchedule = errors.New("scheduled after the message expires")
	// ErrFinal: the message already reached a final state, so it can no
	// longer be cancelled or replaced.
	ErrFinal = errors.New("message already final")
	// ErrBusy: the message is being delivered right now; only a message
	// waiting in the router can be replaced.
	ErrBusy = errors.New("message is being delivered")
)
