package directory

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/smsbridge/bridge/msg"
)

// nameByte reports whether c may appear in a user name after mapping:
// [a-z0-9._+-], and the reserved '~', '!', '=' of derived names.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-' ||
		c == '~' || c == '!' || c == '='
}

func reservedByte(c byte) bool { return c == '~' || c == '!' || c == '=' }

// NormalizeName maps a user name to its canonical form: PRECIS
// UsernameCaseMapped (RFC 8265: width-mapped, case-folded, NFC), then only
// [a-z0-9._+-] are allowed, so the name is the same unescaped SIP user
// part, XMPP localpart and store key. "BOB" and fullwidth "ＢＯＢ" are
// "bob". The names of external users also contain '~', '!' or '=' (see
// EnsureExternal); NormalizeName accepts them so that they can be looked up,
// but no local user may be created with them. Leading and trailing white
// space is trimmed. Errors wrap ErrInvalid and name the offending character.
func NormalizeName(s string) (string, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return "", invalid("user name is empty")
	}
	if len(t) > 4*MaxNameLen {
		return "", invalid("user name %.32q… is longer than %d bytes", t, MaxNameLen)
	}
	fast := len(t) <= MaxNameLen
	for i := 0; fast && i < len(t); i++ {
		fast = nameByte(t[i])
	}
	n := t
	if !fast {
		if !utf8.ValidString(t) {
			return "", invalid("user name %q is not valid UTF-8", s)
		}
		m, err := precis.UsernameCaseMapped.String(t)
		if err != nil {
			return "", invalid("user name %q: %s", s, precisCulprit(t))
		}
		for _, r := range m {
			if r >= utf8.RuneSelf || !nameByte(byte(r)) {
				return "", invalid("user name %q: character %s is not allowed (only a-z, 0-9, '.', '_', '+' and '-')", s, describeRune(r))
			}
		}
		n = m
	}
	if len(n) > MaxNameLen {
		return "", invalid("user name %q is longer than %d bytes", s, MaxNameLen)
	}
	if !strings.ContainsFunc(n, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }) {
		return "", invalid("user name %q has no letter or digit", s)
	}
	return n, nil
}

// normalizeLocalName is NormalizeName for names a client may create.
func normalizeLocalName(s string) (string, error) {
	n, err := NormalizeName(s)
	if err != nil {
		return "", err
	}
	if i := strings.IndexFunc(n, func(r rune) bool { return r < utf8.RuneSelf && reservedByte(byte(r)) }); i >= 0 {
		return "", invalid("user name %q: character %s is reserved for the names of external users", s, describeRune(rune(n[i])))
	}
	return n, nil
}

// precisCulprit names the first rune PRECIS refuses on its own.
func precisCulprit(s string) string {
	for _, r := range s {
		if _, err := precis.UsernameCaseMapped.String(string(r)); err != nil {
			return fmt.Sprintf("character %s is not allowed", describeRune(r))
		}
	}
	return "not a valid PRECIS username (RFC 8265)"
}

func describeRune(r rune) string {
	if unicode.IsPrint(r) {
		return fmt.Sprintf("%q (%U)", r, r)
	}
	return fmt.Sprintf("%U", r)
}

// ownAOR is the address of record of user name (canonical): the number
// for a numeric name, else "sip:<name>@<domain>".
func (d *Directory) ownAOR(name string) (msg.Address, error) {
	if msg.IsNumberUser(name) {
		a, err := msg.FromAOR("sip:"+name+"@"+d.domain, d.opts.CountryCode)
		if err != nil {
			return "", invalid("user name %q is not a number: %v", name, err)
		}
		return a, nil
	}
	return msg.Address("sip:" + name + "@" + d.domain), nil
}

// normalizeSite validates an external site id: [a-z0-9._-], lower-cased.
func normalizeSite(site string) (string, error) {
	s := strings.ToLower(site)
	if s == "" {
		return "", invalid("site id is empty")
	}
	if len(s) > maxSiteLen {
		return "", invalid("site id %q is longer than %d bytes", site, maxSiteLen)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", invalid("site id %q: character %s is not allowed (only a-z, 0-9, '.', '_' and '-')", site, describeRune(r))
		}
	}
	return s, nil
}

// validAccount checks an external account, which is kept exactly: valid
// UTF-8, no control characters, no white space at either end.
func validAccount(a string) error {
	switch {
	case a == "":
		return invalid("account is empty")
	case len(a) > maxAccountLen:
		return invalid("account is longer than %d bytes", maxAccountLen)
	case !utf8.ValidString(a):
		return invalid("account %q is not valid UTF-8", a)
	}
	for _, r := range a {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return invalid("account %q: character %s is not allowed", a, describeRune(r))
		}
	}
	if r, _ := utf8.DecodeRuneInString(a); unicode.IsSpace(r) {
		return invalid("account %q starts with white space", a)
	}
	if r, _ := utf8.DecodeLastRuneInString(a); unicode.IsSpace(r) {
		return invalid("account %q ends with white space", a)
	}
	return nil
}

// External kinds and their name separators.
const (
	sepPartner = '~'
	sepSocial  = '!'
	hashLen    = 5
	maxCounter = 9999
)

// lowerB32 is RFC 4648 base 32 in lower case (names stay lower case).
var lowerB32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// accountHash is a short deterministic hash of the exact account: the
// first 5 base-32 characters (25 bits) of its SHA-256.
func accountHash(account string) string {
	sum := sha256.Sum256([]byte(account))
	return lowerB32.EncodeToString(sum[:4])[:hashLen]
}

func canonicalAccountByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// derivedName is the user name of external account (site validated) for
// attempt n (1 = first choice; n ≥ 2 adds the counter "=<n>"):
//
//	<base>[=<hash>][=<n>]<sep><site>
//
// base is the account lower-cased, each character other than [a-z0-9._-]
// replaced by '_', cut to fit MaxNameLen; the hash of the exact account is
// added unless the account already was its own base (lower case, only
// those characters, not cut), so "vcase" and "VCASE" get two names. sep is
// '~' for a partner site and '!' for a social site: "alice~shop",
// "vcase=xxxxx!weibo".
func derivedName(sep byte, site, account string, n int) string {
	canonical := account != ""
	for i := 0; i < len(account); i++ {
		canonical = canonical && canonicalAccountByte(account[i])
	}
	base := make([]byte, 0, len(account))
	for _, r := range strings.ToLower(account) {
		if r < utf8.RuneSelf && canonicalAccountByte(byte(r)) {
			base = append(base, byte(r))
		} else {
			base = append(base, '_')
		}
	}
	room := MaxNameLen - 1 - len(site) - (1 + hashLen) - (1 + len(strconv.Itoa(maxCounter)))
	if len(base) > room {
		base, canonical = base[:room], false
	}
	if !canonical {
		base = append(append(base, '='), accountHash(account)...)
	}
	if n > 1 {
		base = strconv.AppendInt(append(base, '='), int64(n), 10)
	}
	base = append(base, sep)
	return string(append(base, site...))
}
