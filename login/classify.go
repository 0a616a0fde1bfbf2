package login

import (
	"fmt"
	"strings"
)

// Kind is the login path a user name takes.
type Kind int

// Login kinds, decided by the form of the name alone.
const (
	Ordinary Kind = iota // "alice" or "alice@DOMAIN": the bridge's own users
	Partner              // "alice#site": delegated to partner website "site"
	Social               // "account@site", site a configured social site
)

func (k Kind) String() string {
	switch k {
	case Ordinary:
		return "ordinary"
	case Partner:
		return "partner"
	case Social:
		return "social"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// PartnerSep separates the user from the partner site id: "alice#site".
// '#' never appears in a SIP user part unescaped nor in an e-mail-like name,
// so it cannot be confused with "user@domain".
const PartnerSep = "#"

// Classify tells which path a login name takes. isSocialSite reports whether
// a domain after '@' is a configured social site (nil = none are); any other
// "user@domain" is ordinary, so the bridge's own "alice@DOMAIN" keeps working.
// The site part of "alice#site" is taken as given: whether the site is
// authorized is Partners' decision, so an unknown site is refused there
// rather than silently treated as an ordinary user.
func Classify(name string, isSocialSite func(site string) bool) Kind {
	if i := strings.LastIndex(name, PartnerSep); i > 0 && i < len(name)-1 {
		return Partner
	}
	if i := strings.LastIndexByte(name, '@'); i > 0 && i < len(name)-1 && isSocialSite != nil && isSocialSite(name[i+1:]) {
		return Social
	}
	return Ordinary
}

// SplitPartner splits "alice#site" into ("alice", "site").
func SplitPartner(name string) (user, site string, ok bool) {
	i := strings.LastIndex(name, PartnerSep)
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// SplitSocial splits "account@site" into ("account", "site").
func SplitSocial(name string) (account, site string, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}
