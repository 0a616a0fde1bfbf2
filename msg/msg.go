package msg

import (
	"fmt"
	"strings"
	"time"
)

// Kind says through which edge a message entered the bridge.
type Kind uint8

const (
	FromESME   Kind = iota + 1 // submit_sm from an ESME bound to us
	FromSMSC                   // deliver_sm from the upstream SMSC we bound to
	FromSIP                    // SIP MESSAGE from an IM user
	FromMCP                    // SIP-C M over the MCP handset link
	FromAPI                    // HTTP API
	FromXMPP                   // XMPP message through the component
	FromFusion                 // a user's external IM account the bridge is logged in to
	FromGroup                  // a member's copy of a post to a group (or a group's answer)
	FromApp                    // an HTTP application's reply to a message it took
)

func (k Kind) String() string {
	switch k {
	case FromESME:
		return "esme"
	case FromSMSC:
		return "smsc"
	case FromSIP:
		return "sip"
	case FromMCP:
		return "mcp"
	case FromAPI:
		return "api"
	case FromXMPP:
		return "xmpp"
	case FromFusion:
		return "fusion"
	case FromGroup:
		return "group"
	case FromApp:
		return "app"
	}
	return "unknown"
}

// Origin records where a message came from, so receipts and replies can find
// their way back.
type Origin struct {
	Kind    Kind
	Account string // SMPP system_id of the bind, SIP AOR of the sender, API token name
	Ref     string // the edge's own id for it: SMPP sequence, SIP Call-ID, client message id
}

// Message is a short message inside the bridge: always UTF-8 text.
type Message struct {
	ID       string  // assigned by the bridge on acceptance, unique across restarts
	From     Address // normalized sender
	To       Address // normalized recipient
	Text     string  // UTF-8
	Origin   Origin
	Receipt  bool      // the originator asked for a delivery receipt
	Accepted time.Time // when the bridge acknowledged it
	Expires  time.Time // validity: after this it is failed as expired; zero = default policy
	// NotBefore is a scheduled delivery: the message is held, stored,
	// until then (zero: at once).
	NotBefore time.Time
	// Priority 0 (normal) to 3: any above 0 goes before normal messages
	// that are ready at the same time.
	Priority uint8
	// Route is the sender's hint: "" lets the router decide; "im" delivers
	// only into IM (waiting while the user is offline); "sms" always sends
	// SMS; "smsc", "smsc:NAME|NAME" or "esme:SYSTEM_ID" send SMS over that
	// route.
	Route string
	// Group names the group a member's copy of a post comes from; the SMS
	// edge shows it ("[group] nick: text"), IM shows the group's address.
	Group string
	// ReportURL is where an HTTP sender wants the message's delivery
	// reports posted (its dlr_url, or the configured default); "" = none.
	ReportURL string
	// IdempotencyKey is the client's own key for the message (HTTP
	// Idempotency-Key): a copy with the same key from the same
	// Origin.Account is the first message, whatever its content. Only
	// the router reads it; the store keeps its digest, not the key.
	IdempotencyKey string
}

// CheckRoute returns nil when route is a hint the router understands for a
// message to to, else why not: only "im" (or none) suits an IM address.
func CheckRoute(route string, to Address) error {
	switch {
	case route == "" || route == "im":
		return nil
	case route != "sms" && route != "smsc" && (!strings.HasPrefix(route, "esme:") || len(route) == 5) &&
		(!strings.HasPrefix(route, "smsc:") || len(route) == 5):
		return fmt.Errorf("route %q: want im, sms, smsc, smsc:NAME|NAME or esme:SYSTEM_ID", route)
	case !to.IsMSISDN():
		return fmt.Errorf("route %q: the recipient is not a phone number", route)
	}
	return nil
}

// ForcesSMS reports whether the route hint sends m as SMS even when its
// recipient is online in IM.
func (m *Message) ForcesSMS() bool { return m.Route != "" && m.Route != "im" }
