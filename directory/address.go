package directory

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/smsbridge/bridge/msg"
)

// Address kinds, by prefix of the canonical form.
const (
	schemeSIP     = "sip:"
	schemeXMPP    = "xmpp:"
	schemePartner = "partner:"
	schemeSocial  = "social:"
)

// isEndpoint reports whether a canonical address is one presence may hold
// (a number, a SIP AOR, an XMPP JID) rather than an external account.
func isEndpoint(a msg.Address) bool {
	return a.IsMSISDN() || strings.HasPrefix(string(a), schemeSIP) || strings.HasPrefix(string(a), schemeXMPP)
}

// ParseAddress turns what a client may type for an address into its
// canonical msg.Address, or an error wrapping ErrInvalid that says why:
//
//   - numbers: "+8613800000002", national "13800000002" (the configured
//     country code), visual separators " -.()" ignored, "tel:" URIs
//     (RFC 3966; a local number's "+digits" phone-context is its prefix)
//     → "+<E.164>";
//   - SIP URIs (RFC 3261 §19.1.4): "sip:Bob@Example.COM;transport=udp" →
//     "sip:Bob@example.com". Scheme and host are lower-cased, the user part
//     is kept case-sensitive, %-escapes of unreserved characters decoded and
//     the others upper-cased, password, parameters and headers dropped; a
//     port is kept (RFC 3261: with and without a port are different URIs).
//     "sips:" is folded into "sip:": the directory maps identities, and one
//     identity reached with or without TLS is one address. In our domain
//     the user part is a user name (NormalizeName): "sip:BOB@<domain>" is
//     "sip:bob@<domain>", and a numeric one is that number, as msg.FromAOR
//     does. A foreign URI with ";user=phone" is its number;
//   - XMPP (RFC 5122, RFC 7622): "xmpp:Bob@Example.com/phone" →
//     "xmpp:bob@example.com": the localpart by PRECIS UsernameCaseMapped,
//     the domain lower-cased, the resource and query dropped;
//   - external accounts: "partner:<site>:<account>", "social:<site>:<account>":
//     the site validated and lower-cased, the account kept exactly.
//
// ParseAddress is idempotent: a canonical address parses to itself.
func (d *Directory) ParseAddress(raw string) (msg.Address, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", invalid("address is empty")
	}
	if len(s) > maxAddressLen {
		return "", invalid("address is longer than %d bytes", maxAddressLen)
	}
	if s[0] == '<' && s[len(s)-1] == '>' {
		s = s[1 : len(s)-1]
	}
	if s != "" && (s[0] == '+' || s[0] == '(' || s[0] >= '0' && s[0] <= '9') {
		return d.parseNumber(raw, s, d.opts.CountryCode)
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", invalid("%q is not an address: give a number, or a tel:, sip:, xmpp:, partner: or social: URI", raw)
	}
	switch strings.ToLower(scheme) {
	case "tel":
		return d.parseTel(raw, rest)
	case "sip", "sips":
		return d.parseSIP(raw, rest)
	case "xmpp":
		return parseXMPP(raw, rest)
	case "partner", "social":
		site, account, ok := strings.Cut(rest, ":")
		if !ok {
			return "", invalid("%q: want %s:<site>:<account>", raw, strings.ToLower(scheme))
		}
		return externalAddress(strings.ToLower(scheme), site, account)
	}
	return "", invalid("%q: unsupported scheme %q (want a number, or a tel:, sip:, xmpp:, partner: or social: URI)", raw, scheme)
}

func externalAddress(kind, site, account string) (msg.Address, error) {
	st, err := normalizeSite(site)
	if err != nil {
		return "", err
	}
	if err := validAccount(account); err != nil {
		return "", err
	}
	return msg.Address(kind + ":" + st + ":" + account), nil
}

// stripVisual removes the visual separators of a dialled number.
func stripVisual(s string) string {
	if !strings.ContainsAny(s, " -.()") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -.()", r) {
			return -1
		}
		return r
	}, s)
}

func (d *Directory) parseNumber(raw, s, cc string) (msg.Address, error) {
	s = stripVisual(s)
	a, err := msg.NormalizeNumber(s, msg.TONUnknown, msg.NPIISDN, cc)
	if err != nil || !a.IsMSISDN() {
		return "", invalid("number %q: %v", raw, err)
	}
	return a, nil
}

// parseTel handles RFC 3966 "tel:" URIs.
func (d *Directory) parseTel(raw, rest string) (msg.Address, error) {
	num, params, _ := strings.Cut(rest, ";")
	num = stripVisual(num)
	if num == "" {
		return "", invalid("%q: tel URI without a number", raw)
	}
	if num[0] == '+' {
		return d.parseNumber(raw, num, d.opts.CountryCode)
	}
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "phone-context") && strings.HasPrefix(v, "+") {
			ctx := stripVisual(v)
			return d.parseNumber(raw, ctx+num, d.opts.CountryCode)
		}
	}
	return d.parseNumber(raw, num, d.opts.CountryCode)
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0
}

func isUserUnreserved(c byte) bool { return strings.IndexByte("&=+$,;?/", c) >= 0 }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// canonSIPUser canonicalizes a SIP user part: escapes of unreserved
// characters decoded, other escapes upper-cased, raw non-ASCII escaped;
// anything else that may not appear unescaped is refused. decoded is the
// user part with every escape decoded (for our users and telephone
// numbers).
func canonSIPUser(raw, u string) (canon, decoded string, err error) {
	if u == "" {
		return "", "", invalid("SIP URI %q has an empty user part", raw)
	}
	var c, dec strings.Builder
	for i := 0; i < len(u); i++ {
		b := u[i]
		switch {
		case b == '%':
			if i+2 >= len(u) {
				return "", "", invalid("SIP URI %q: truncated %%-escape", raw)
			}
			hi, ok1 := unhex(u[i+1])
			lo, ok2 := unhex(u[i+2])
			if !ok1 || !ok2 {
				return "", "", invalid("SIP URI %q: bad %%-escape %q", raw, u[i:i+3])
			}
			v := hi<<4 | lo
			i += 2
			dec.WriteByte(v)
			if isUnreserved(v) {
				c.WriteByte(v)
			} else {
				c.WriteByte('%')
				c.WriteByte(upperHex[v>>4])
				c.WriteByte(upperHex[v&15])
			}
		case isUnreserved(b) || isUserUnreserved(b):
			c.WriteByte(b)
			dec.WriteByte(b)
		case b >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(u[i:])
			if r == utf8.RuneError {
				return "", "", invalid("SIP URI %q is not valid UTF-8", raw)
			}
			for j := range size {
				c.WriteByte('%')
				c.WriteByte(upperHex[u[i+j]>>4])
				c.WriteByte(upperHex[u[i+j]&15])
			}
			dec.WriteString(u[i : i+size])
			i += size - 1
		default:
			return "", "", invalid("SIP URI %q: character %s may not appear unescaped in a user part", raw, describeRune(rune(b)))
		}
	}
	return c.String(), dec.String(), nil
}

// canonHost lower-cases and checks a host[:port]: a DNS name or IPv4
// address, or an IPv6 reference in brackets (rewritten in its canonical
// form). port is "" or the digits.
func canonHost(hp string) (host, port string, err error) {
	hp = strings.ToLower(hp)
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", invalid("host %q: unterminated IPv6 reference", hp)
		}
		ip, perr := netip.ParseAddr(hp[1:end])
		if perr != nil || !ip.Is6() || ip.Zone() != "" {
			return "", "", invalid("host %q is not an IPv6 address", hp)
		}
		host = "[" + ip.String() + "]"
		hp = hp[end+1:]
		if hp != "" && hp[0] != ':' {
			return "", "", invalid("host %q: junk after the IPv6 reference", hp)
		}
	} else {
		host, port, _ = strings.Cut(hp, ":")
		if host == "" {
			return "", "", invalid("empty host")
		}
		if len(host) > 253 {
			return "", "", invalid("host %q is too long", host)
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return "", "", invalid("host %q: character %s is not allowed in a host name", host, describeRune(rune(c)))
			}
		}
		if host[0] == '.' || host[0] == '-' || strings.Contains(host, "..") {
			return "", "", invalid("host %q is not a host name", host)
		}
		hp = hp[len(host):]
	}
	if hp != "" {
		port = strings.TrimPrefix(hp, ":")
		n, perr := strconv.Atoi(port)
		if perr != nil || n <= 0 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return "", "", invalid("port %q", port)
		}
	}
	return host, port, nil
}

// parseSIP canonicalizes a SIP or SIPS URI after its scheme.
func (d *Directory) parseSIP(raw, rest string) (msg.Address, error) {
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return "", invalid("SIP URI %q has no user part (want sip:user@host)", raw)
	}
	userinfo, hostpart := rest[:at], rest[at+1:]
	params := ""
	if i := strings.IndexAny(hostpart, ";?"); i >= 0 {
		hostpart, params = hostpart[:i], hostpart[i:]
	}
	user, _, _ := strings.Cut(userinfo, ":") // a password is dropped
	host, port, err := canonHost(hostpart)
	if err != nil {
		return "", invalid("SIP URI %q: %v", raw, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	cuser, decoded, err := canonSIPUser(raw, user)
	if err != nil {
		return "", err
	}
	if host == d.domain {
		name, err := NormalizeName(decoded)
		if err != nil {
			return "", invalid("SIP URI %q is in our domain but %v", raw, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
		return d.ownAOR(name)
	}
	if userPhone(params) {
		if a, err := d.parseNumber(raw, decoded, d.opts.CountryCode); err == nil {
			return a, nil
		}
	}
	hp := host
	if port != "" {
		hp += ":" + port
	}
	return msg.Address(schemeSIP + cuser + "@" + hp), nil
}

func userPhone(params string) bool {
	if params == "" || params[0] != ';' {
		return false
	}
	params, _, _ = strings.Cut(params[1:], "?")
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "user") && strings.EqualFold(v, "phone") {
			return true
		}
	}
	return false
}

// xmppEscape are the characters a canonical JID's localpart escapes so
// that it parses again as the same URI.
const xmppEscape = "%?#"

// ParseXMPP canonicalizes an XMPP URI ("xmpp:Bob@Example.com/phone") to the
// address of its bare JID ("xmpp:bob@example.com"), as ParseAddress does.
func ParseXMPP(raw string) (msg.Address, error) {
	s := strings.TrimSpace(raw)
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.EqualFold(scheme, "xmpp") {
		return "", invalid("%q is not an xmpp: URI", raw)
	}
	return parseXMPP(raw, rest)
}

// parseXMPP canonicalizes an XMPP URI (RFC 5122) to "xmpp:local@domain".
func parseXMPP(raw, rest string) (msg.Address, error) {
	if strings.HasPrefix(rest, "//") { // an authority: "xmpp://me@host/them@there"
		i := strings.IndexByte(rest[2:], '/')
		if i < 0 {
			return "", invalid("XMPP URI %q names no JID after its authority", raw)
		}
		rest = rest[2+i+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	jid, err := unescapeAll(rest)
	if err != nil || !utf8.ValidString(jid) {
		return "", invalid("XMPP URI %q: bad %%-escape or UTF-8", raw)
	}
	jid, _, _ = strings.Cut(jid, "/") // the resource
	local, domain, ok := strings.Cut(jid, "@")
	if !ok || local == "" {
		return "", invalid("XMPP URI %q has no localpart (want xmpp:user@domain)", raw)
	}
	if i := strings.IndexAny(local, "\"&'/:<>@ "); i >= 0 {
		r, _ := utf8.DecodeRuneInString(local[i:])
		return "", invalid("XMPP address %q: character %s is not allowed in a localpart", raw, describeRune(r))
	}
	l, err := precis.UsernameCaseMapped.String(local)
	if err != nil {
		return "", invalid("XMPP address %q: localpart %s", raw, precisCulprit(local))
	}
	if len(l) > 1023 {
		return "", invalid("XMPP address %q: localpart is too long", raw)
	}
	host, port, err := canonHost(domain)
	if err != nil || port != "" {
		if err == nil {
			err = invalid("a domain has no port")
		}
		return "", invalid("XMPP address %q: %v", raw, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	var b strings.Builder
	b.WriteString(schemeXMPP)
	for i := 0; i < len(l); i++ {
		if c := l[i]; strings.IndexByte(xmppEscape, c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte('@')
	b.WriteString(host)
	return msg.Address(b.String()), nil
}

func unescapeAll(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", invalid("truncated escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", invalid("bad escape")
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}
