package xmpp

import (
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/smsbridge/bridge/msg"
)

// Scheme prefixes an XMPP user's bare JID to make it a bridge address.
const Scheme = "xmpp:"

// escapable lists the characters XEP-0106 escapes, each as a backslash and
// its two lower-case hex digits.
const escapable = " \"&'/:<>@\\"

// Escape applies XEP-0106 JID escaping to a localpart: space " & ' / : < >
// and @ become \20 \22 \26 \27 \2f \3a \3c \3e \40, and a backslash
// becomes \5c only where it would otherwise read as one of those sequences
// (or \5c itself); any other backslash stays.
func Escape(local string) string {
	var b strings.Builder
	for i := 0; i < len(local); i++ {
		c := local[i]
		if strings.IndexByte(escapable, c) < 0 || (c == '\\' && !isEscape(local[i:])) {
			if b.Cap() > 0 {
				b.WriteByte(c)
			}
			continue
		}
		if b.Cap() == 0 {
			b.Grow(len(local) + 8)
			b.WriteString(local[:i])
		}
		b.WriteByte('\\')
		b.WriteByte("0123456789abcdef"[c>>4])
		b.WriteByte("0123456789abcdef"[c&15])
	}
	if b.Cap() == 0 {
		return local
	}
	return b.String()
}

// Unescape reverses Escape: each of those escape sequences becomes its
// character again; any other backslash is kept as it is.
func Unescape(local string) string {
	i := strings.IndexByte(local, '\\')
	if i < 0 {
		return local
	}
	var b strings.Builder
	b.Grow(len(local))
	b.WriteString(local[:i])
	for ; i < len(local); i++ {
		if local[i] == '\\' && isEscape(local[i:]) {
			b.WriteByte(unhex(local[i+1])<<4 | unhex(local[i+2]))
			i += 2
			continue
		}
		b.WriteByte(local[i])
	}
	return b.String()
}

// isEscape reports whether s starts with one of the escape sequences.
func isEscape(s string) bool {
	if len(s) < 3 || s[0] != '\\' || !isLowerHex(s[1]) || !isLowerHex(s[2]) {
		return false
	}
	return strings.IndexByte(escapable, unhex(s[1])<<4|unhex(s[2])) >= 0
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// UserAddress is the bridge address of the XMPP user j: "xmpp:" and the
// bare JID, lower case.
func UserAddress(j jid.JID) msg.Address {
	return msg.Address(Scheme + strings.ToLower(j.Bare().String()))
}

// JIDOf is the JID at the component domain that stands for bridge address
// a: a number is its own localpart (+8613900000002@domain), a SIP user its
// user part (sip:bob@host → bob@domain), an XMPP user its escaped bare JID
// (xmpp:u@d → u\40d@domain), an alphanumeric sender its escaped name.
func JIDOf(a msg.Address, domain string) (jid.JID, error) {
	s := string(a)
	var local string
	switch {
	case a.IsMSISDN():
		local = s
	case strings.HasPrefix(s, "sip:"), strings.HasPrefix(s, "sips:"):
		user, _, _ := strings.Cut(s[strings.IndexByte(s, ':')+1:], "@")
		local = Escape(user)
	case strings.HasPrefix(s, Scheme):
		local = Escape(s[len(Scheme):])
	case strings.HasPrefix(s, "alpha:"):
		local = Escape(s[len("alpha:"):])
	default:
		local = Escape(s)
	}
	if local == "" {
		return jid.JID{}, fmt.Errorf("xmpp: address %q has no name to show as a JID", a)
	}
	j, err := jid.New(local, domain, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("xmpp: address %q as a JID at %s: %w", a, domain, err)
	}
	return j, nil
}

// AddressOf reads the localpart of a JID at the component back into the
// bridge address JIDOf wrote it from, where that can be done without the
// directory: a number (+8613900000002, or digits taken as international),
// or an escaped XMPP user (u\40d → xmpp:u@d). Other names are false.
func AddressOf(local string) (msg.Address, bool) {
	u := Unescape(local)
	if a, ok := numberOf(u); ok {
		return a, true
	}
	if !strings.Contains(u, "@") {
		return "", false
	}
	j, err := jid.Parse(u)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return "", false
	}
	// Only a JID that reads back as itself names a user: parsing drops
	// e.g. a trailing dot of the domain, and what it made of "u@d." must
	// not be written out as a localpart that no longer reads.
	a := UserAddress(j)
	if k, err := jid.Parse(string(a[len(Scheme):])); err != nil || k.String() != string(a[len(Scheme):]) {
		return "", false
	}
	return a, true
}

// numberOf is the default Config.Local: an (unescaped) localpart that is a
// number, normalized as an international E.164 number.
func numberOf(u string) (msg.Address, bool) {
	if !msg.IsNumberUser(u) {
		return "", false
	}
	a, err := msg.NormalizeNumber(u, msg.TONInternational, msg.NPIISDN, "")
	if err != nil {
		return "", false
	}
	return a, true
}

// contactParts returns a binding's contact as a full JID, its bare JID and
// whether it names a resource. The gateway binds contacts as canonical JIDs
// (presence.go), mostly plain ASCII that PRECIS leaves as it is: such a
// contact is split as it stands, sparing a jid.Parse per delivery; any
// other goes through jid.Parse.
func contactParts(c string) (full, bare string, resource bool, err error) {
	if plainJID(c) {
		bare, _, resource = strings.Cut(c, "/")
		return c, bare, resource, nil
	}
	j, err := jid.Parse(c)
	if err != nil {
		return "", "", false, err
	}
	return j.String(), j.Bare().String(), j.Resourcepart() != "", nil
}

// plainJID reports whether s is a JID that jid.Parse would return as it is:
// an optional localpart of lower-case letters, digits and "+-._", a domain
// of lower-case labels of letters, digits and '-', and an optional
// resource of printable ASCII without spaces.
func plainJID(s string) bool {
	addr, res, hasRes := strings.Cut(s, "/")
	if hasRes {
		if res == "" || len(res) > 1023 {
			return false
		}
		for i := 0; i < len(res); i++ {
			if res[i] < '!' || res[i] > '~' {
				return false
			}
		}
	}
	local, domain, hasLocal := strings.Cut(addr, "@")
	if !hasLocal {
		local, domain = "", addr
	} else if local == "" || len(local) > 1023 {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !lowerAlnum(c) && !strings.ContainsRune("+-._", rune(c)) {
			return false
		}
	}
	if domain == "" || len(domain) > 253 {
		return false
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !lowerAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// senderJID is JIDOf(a, domain).String(), with a number ("+" and digits)
// written as it stands: PRECIS leaves it so, and domain is the gateway's
// own, already a canonical JID.
func senderJID(a msg.Address, domain string) (string, error) {
	if n := a.Digits(); n != "" && strings.Trim(n, "0123456789") == "" {
		return string(a) + "@" + domain, nil
	}
	j, err := JIDOf(a, domain)
	if err != nil {
		return "", err
	}
	return j.String(), nil
}
