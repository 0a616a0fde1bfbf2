package msg

// Person is who an address belongs to, as routing needs it: the addresses
// where presence may hold them and the number their SMS leave from. The
// identity directory resolves any of a person's addresses to it.
type Person struct {
	Name      string
	Endpoints []Address // own AOR, bound SIP and XMPP addresses, bound numbers
	Number    Address   // "" when the person has no number
}
