package main

import (
	"strconv"
	"strings"
)

// Route is one of the ways a message crosses the bridge.
type Route uint8

const (
	SMSToIM Route = iota
	SMSToSMS
	IMToSMS
	IMToIM
	SMSToXMPP
	XMPPToSMS
	// Group is a post into a bench group (SMS MO to the group's number):
	// one token, one copy per other member, at the IM UA or the SMSC.
	Group
	numRoutes
)

// The tracker keeps a message's route in the upper three bits of its state
// byte.
var _ [8 - numRoutes]struct{}

var routeNames = [numRoutes]string{"sms-im", "sms-sms", "im-sms", "im-im", "sms-xmpp", "xmpp-sms", "group"}

func (r Route) String() string {
	if r < numRoutes {
		return routeNames[r]
	}
	return "route" + strconv.Itoa(int(r))
}

// FromSMS reports whether the route enters the bridge over SMPP.
func (r Route) FromSMS() bool { return r == SMSToIM || r == SMSToSMS || r == SMSToXMPP }

// FromXMPP reports whether the route enters the bridge over XMPP (else SMPP
// or SIP).
func (r Route) FromXMPP() bool { return r == XMPPToSMS }

// ToSMS reports whether the route leaves the bridge over SMPP.
func (r Route) ToSMS() bool { return r == SMSToSMS || r == IMToSMS || r == XMPPToSMS }

// ToXMPP reports whether the route leaves the bridge over XMPP (else SMPP or
// SIP).
func (r Route) ToXMPP() bool { return r == SMSToXMPP }

// XMPP reports whether the route needs the bench's Prosody.
func (r Route) XMPP() bool { return r.FromXMPP() || r.ToXMPP() }

// ParseRoute maps a route name to its Route.
func ParseRoute(s string) (Route, bool) {
	for i, n := range routeNames {
		if n == s {
			return Route(i), true
		}
	}
	return 0, false
}

// Token identifies one bench message inside its text: "#<route><seq>.<us>#"
// with seq and the send time (microseconds since the run's epoch) in base 36.
// It uses only characters every alphabet carries (GSM 7-bit, UCS-2, Latin-1)
// and sits at the start of the text, so it survives segmentation.
type Token struct {
	Route  Route
	Seq    uint64
	SentUs uint64
}

// Append writes t's text form to b.
func (t Token) Append(b []byte) []byte {
	b = append(b, '#', 'a'+byte(t.Route))
	b = strconv.AppendUint(b, t.Seq, 36)
	b = append(b, '.')
	b = strconv.AppendUint(b, t.SentUs, 36)
	return append(b, '#')
}

func (t Token) String() string { return string(t.Append(nil)) }

// ParseToken finds the token at the start of text.
func ParseToken(text string) (Token, bool) {
	if len(text) < 6 || text[0] != '#' {
		return Token{}, false
	}
	r := text[1] - 'a'
	if text[1] < 'a' || r >= byte(numRoutes) {
		return Token{}, false
	}
	rest := text[2:]
	end := strings.IndexByte(rest, '#')
	if end < 0 {
		return Token{}, false
	}
	seqS, usS, ok := strings.Cut(rest[:end], ".")
	if !ok || seqS == "" || usS == "" || seqS[0] == '+' || seqS[0] == '-' || usS[0] == '+' || usS[0] == '-' {
		return Token{}, false
	}
	seq, err := strconv.ParseUint(seqS, 36, 64)
	if err != nil {
		return Token{}, false
	}
	us, err := strconv.ParseUint(usS, 36, 64)
	if err != nil {
		return Token{}, false
	}
	return Token{Route: Route(r), Seq: seq, SentUs: us}, true
}

// FindGroupToken finds the token of a group post's copy, which the bridge
// prefixes with the poster's nick ("nick: ") and, in SMS, the group's name
// ("[name] nick: "): the token is the first '#' on. Only a Group token is
// taken there; other routes' tokens must start the text.
func FindGroupToken(text string) (Token, bool) {
	i := strings.IndexByte(text, '#')
	if i <= 0 || i > maxGroupPrefix {
		return Token{}, false
	}
	tok, ok := ParseToken(text[i:])
	if !ok || tok.Route != Group {
		return Token{}, false
	}
	return tok, true
}

// maxGroupPrefix bounds where a copy's token may start: "[" + a 32-byte
// name + "] " + a 24-byte nick + ": ".
const maxGroupPrefix = 64
