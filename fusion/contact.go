package fusion

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// A binding's Contact names the bridge user, the external account and the
// contact's JID, separated by '|': "alice|alice@other.test|bob@other.test/phone".
// User names and account JIDs never hold '|' (Bind refuses them), so the
// first two separators are unambiguous and the contact JID, which may hold
// '|' in its localpart or resource, is the rest.
const sep = "|"

var errContact = errors.New("fusion: not a contact of this proxy")

// contactOf writes a binding's Contact.
func contactOf(user string, account, contact jid.JID) string {
	return user + sep + account.String() + sep + contact.String()
}

// parseContact reads a binding's Contact back. Only the canonical form
// that contactOf writes is accepted, so what parses writes back unchanged.
func parseContact(s string) (user string, account, contact jid.JID, err error) {
	user, rest, ok := strings.Cut(s, sep)
	if !ok || !validUser(user) {
		return "", jid.JID{}, jid.JID{}, fmt.Errorf("%w: %q: no user", errContact, s)
	}
	acct, to, ok := strings.Cut(rest, sep)
	if !ok {
		return "", jid.JID{}, jid.JID{}, fmt.Errorf("%w: %q: no account", errContact, s)
	}
	account, err = jid.Parse(acct)
	if err != nil || account.Localpart() == "" || account.Resourcepart() != "" || account.String() != acct {
		return "", jid.JID{}, jid.JID{}, fmt.Errorf("%w: %q: bad account %q", errContact, s, acct)
	}
	contact, err = jid.Parse(to)
	if err != nil || contact.Localpart() == "" || contact.String() != to {
		return "", jid.JID{}, jid.JID{}, fmt.Errorf("%w: %q: bad contact JID %q", errContact, s, to)
	}
	return user, account, contact, nil
}

// maxUser bounds a bridge user name as the proxy keeps it.
const maxUser = 256

// validUser reports whether name can name a bridge user in keys and
// contacts: not empty, valid UTF-8, without '|' or NUL.
func validUser(name string) bool {
	return name != "" && len(name) <= maxUser && utf8.ValidString(name) && !strings.ContainsAny(name, sep+"\x00")
}
