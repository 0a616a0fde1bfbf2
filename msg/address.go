package msg

import (
	"errors"
	"fmt"
	"strings"
)

// Address is a normalized party identity: "+" followed by E.164 digits for a
// mobile number, or "sip:user@domain" for an IM user that has no number.
type Address string

// IsMSISDN reports whether a is a mobile number (E.164).
func (a Address) IsMSISDN() bool { return len(a) > 1 && a[0] == '+' }

// Digits returns the E.164 digits without "+", or "" for an IM-only address.
func (a Address) Digits() string {
	if a.IsMSISDN() {
		return string(a[1:])
	}
	return ""
}

// SMPP type-of-number and numbering-plan values (SMPP 3.4 §5.2.5, §5.2.6).
const (
	TONUnknown       = 0x00
	TONInternational = 0x01
	TONNational      = 0x02
	TONAlphanumeric  = 0x05
	NPIUnknown       = 0x00
	NPIISDN          = 0x01
)

var ErrBadNumber = errors.New("bad number")

// MinE164Digits is the fewest digits, country code included, of a number
// the bridge accepts: the shortest numbers in service (Niue, Tokelau: a
// 3-digit country code and 4 digits) have 7. Fewer is a typo or a short
// code of no network the bridge can name ("1" must not become "+861").
const MinE164Digits = 7

// NormalizeNumber turns an SMPP address with its TON/NPI into an Address.
// cc is the default country code (digits) applied to national numbers.
// Alphanumeric senders are kept as they are, prefixed "alpha:"; they can
// receive nothing and are never looked up in presence.
func NormalizeNumber(raw string, ton, npi byte, cc string) (Address, error) {
	s := strings.TrimSpace(raw)
	if ton == TONAlphanumeric {
		if s == "" {
			return "", fmt.Errorf("%w: empty alphanumeric address", ErrBadNumber)
		}
		return Address("alpha:" + s), nil
	}
	plus := strings.HasPrefix(s, "+")
	if plus {
		s = s[1:]
	}
	if s == "" || len(s) > 20 {
		return "", fmt.Errorf("%w: %q", ErrBadNumber, raw)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", fmt.Errorf("%w: %q has a non-digit", ErrBadNumber, raw)
		}
	}
	switch {
	case plus || ton == TONInternational:
		s = strings.TrimPrefix(s, "00")
	case ton == TONNational:
		s = cc + strings.TrimLeft(s, "0")
	default: // unknown TON: guess the way carriers' dial plans do
		switch {
		case strings.HasPrefix(s, "00"):
			s = s[2:]
		case strings.HasPrefix(s, "0"):
			s = cc + s[1:]
		case cc != "" && strings.HasPrefix(s, cc) && len(s) > 11:
			// already carries the country code
		case len(s) <= 11:
			s = cc + s
		}
	}
	if len(s) < MinE164Digits || len(s) > 15 || s[0] == '0' {
		return "", fmt.Errorf("%w: %q is not E.164 (%d digits with the country code; want %d to 15, and no country code starts with 0)",
			ErrBadNumber, raw, len(s), MinE164Digits)
	}
	return Address("+" + s), nil
}

// FromAOR maps a SIP address of record ("sip:+8613800000001@domain",
// "sip:8613800000001@domain", "sip:alice@domain", with or without scheme or
// angle brackets) to an Address: a user part that is a number is that MSISDN;
// one that is a JID with its '@' escaped ("sip:bob%40example.org@domain",
// how SIPURI shows an XMPP user to SIP) is that XMPP user.
func FromAOR(aor, cc string) (Address, error) {
	s := strings.TrimSpace(aor)
	// A control character (CR/LF above all) cannot be written into a SIP
	// header: such an address could never be delivered, only retried.
	if i := strings.IndexFunc(s, isControl); i >= 0 {
		return "", fmt.Errorf("%w: AOR %q has a control character at byte %d", ErrBadNumber, aor, i)
	}
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "sips:"), "sip:")
	if i := strings.IndexAny(s, ";?"); i >= 0 {
		s = s[:i]
	}
	user, host := s, ""
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		user, host = s[:i], s[i+1:]
	}
	if user == "" {
		return "", fmt.Errorf("%w: AOR %q has no user part", ErrBadNumber, aor)
	}
	if IsNumberUser(user) {
		digits := strings.TrimPrefix(user, "+")
		if strings.HasPrefix(user, "+") || len(digits) > 11 {
			return NormalizeNumber("+"+digits, TONInternational, NPIISDN, cc)
		}
		return NormalizeNumber(digits, TONUnknown, NPIISDN, cc)
	}
	if host == "" {
		return "", fmt.Errorf("%w: AOR %q has no domain", ErrBadNumber, aor)
	}
	if jid := strings.ReplaceAll(user, "%40", "@"); strings.Contains(jid, "@") {
		if l, d, _ := strings.Cut(jid, "@"); l == "" || d == "" || strings.ContainsAny(d, "@/") {
			return "", fmt.Errorf("%w: AOR %q: user part is neither a name nor a JID", ErrBadNumber, aor)
		}
		return Address(xmppScheme + strings.ToLower(jid)), nil
	}
	return Address("sip:" + strings.ToLower(user) + "@" + strings.ToLower(host)), nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// IsNumberUser reports whether a SIP user part names a number, as
// FromAOR reads it: three or more digits, optionally after a '+'.
func IsNumberUser(u string) bool {
	u = strings.TrimPrefix(u, "+")
	if len(u) < 3 {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] < '0' || u[i] > '9' {
			return false
		}
	}
	return true
}

const xmppScheme = "xmpp:"

// SIPURI renders the address as a SIP URI in domain: an XMPP user as their
// JID with its '@' escaped, so that a reply to it comes back to the bridge.
func (a Address) SIPURI(domain string) string {
	if a.IsMSISDN() {
		return "sip:" + string(a) + "@" + domain
	}
	if jid, ok := strings.CutPrefix(string(a), xmppScheme); ok {
		return "sip:" + strings.ReplaceAll(jid, "@", "%40") + "@" + domain
	}
	if strings.HasPrefix(string(a), "alpha:") {
		return "sip:" + strings.TrimPrefix(string(a), "alpha:") + "@" + domain
	}
	return string(a)
}
