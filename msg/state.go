package msg

import (
	"fmt"
	"time"
)

// State is where a message is in its life.
type State uint8

const (
	Accepted  State = iota + 1 // durably stored, not yet routed
	Routed                     // a route (IM or SMS) was chosen
	InFlight                   // handed to the next hop, awaiting its answer
	Delivered                  // final: the next hop took it (or a receipt said delivered)
	Failed                     // final: given up
	Expired                    // final: validity ran out
	Cancelled                  // final: its sender withdrew it before delivery
)

func (s State) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Routed:
		return "routed"
	case InFlight:
		return "inflight"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether no further transition is allowed.
func (s State) Final() bool { return s >= Delivered && s <= Cancelled }

// Valid reports whether s is one of the states above.
func (s State) Valid() bool { return s >= Accepted && s <= Cancelled }

// Network names the network that gave an outcome.
type Network string

const (
	ViaIM  Network = "im"
	ViaSMS Network = "sms"
	ViaApp Network = "app" // an HTTP application of a service number
)

// Outcome is how a message ended, for its originator and for metrics.
type Outcome struct {
	Delivered bool
	State     State // Delivered, Failed, Expired or Cancelled
	Detail    string
	At        time.Time
	Via       Network // which network gave the outcome
	// Stat is the SMS network's own word when the outcome comes from its
	// delivery receipt (DELIVRD, UNDELIV, EXPIRED, DELETED, REJECTD), else "".
	Stat string
}
