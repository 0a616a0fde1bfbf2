package fusion

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	bx "github.com/smsbridge/bridge/xmpp"
)

// Namespaces the proxy reads or writes.
const (
	nsReceipts = "urn:xmpp:receipts"
	nsPing     = "urn:xmpp:ping"
	nsRoster   = "jabber:iq:roster"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// Bounds on what one incoming stanza may make the proxy hold.
const (
	// MaxText is the longest message body taken in, in bytes (the XMPP
	// edge's bound); a longer one is refused with policy-violation.
	MaxText = bx.MaxText
	// maxSmall bounds the other texts kept: show, priority, error text.
	maxSmall = 256
	// maxName bounds a roster item's name.
	maxName = 1024
	// maxPushItems bounds the items read from one roster push (RFC 6121
	// allows exactly one).
	maxPushItems = 16
)

// pushItem is one <item/> of a roster push.
type pushItem struct {
	JID          string
	Name         string
	Subscription string
}

// inbound is what the proxy reads of one incoming stanza: its routing
// attributes and the few children it acts on; the rest is skipped without
// being kept.
type inbound struct {
	Kind        string // "message", "presence" or "iq"
	ID, Type    string
	From, To    string
	Body        string // the first <body/>, at most MaxText bytes
	HasBody     bool
	BodyTooLong bool   // the body ran past MaxText (Body is empty then)
	ReceiptFor  string // XEP-0184 <received id=…/>
	Show        string
	Priority    int      // clamped to -128..127
	Payload     xml.Name // an iq's first child
	Items       []pushItem
	HasErr      bool
	Err         stanza.Error
}

// decodeInbound reads the stanza start opened from r, up to and including
// its end element. It keeps at most MaxText bytes of body and maxSmall of
// other texts; a malformed stream is its only error.
func decodeInbound(start xml.StartElement, r xml.TokenReader) (inbound, error) {
	in := inbound{Kind: start.Name.Local}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			in.ID = a.Value
		case "type":
			in.Type = a.Value
		case "from":
			in.From = a.Value
		case "to":
			in.To = a.Value
		}
	}
	var (
		text    strings.Builder
		child   xml.Name
		collect bool // the direct child's text is wanted
		errText bool // inside the error's <text/>
		depth   = 1
	)
	for depth > 0 {
		tok, err := r.Token()
		if err == io.EOF && depth == 1 && tok == nil {
			// A reader that stops at the stanza's end without returning it
			// (mellium's inner reader) ends the stanza too.
			break
		}
		if err == io.EOF {
			return in, io.ErrUnexpectedEOF
		}
		if err != nil {
			return in, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2:
				child = t.Name
				text.Reset()
				collect = in.child(t, start.Name.Space)
			case depth == 3 && in.HasErr && child.Local == "error" && t.Name.Space == stanza.NSError:
				if t.Name.Local == "text" {
					errText = true
					text.Reset()
				} else if in.Err.Condition == "" {
					in.Err.Condition = stanza.Condition(t.Name.Local)
				}
			case depth == 3 && in.Kind == "iq" && child == xml.Name{Space: nsRoster, Local: "query"} &&
				t.Name.Local == "item" && (t.Name.Space == nsRoster || t.Name.Space == "") && len(in.Items) < maxPushItems:
				in.Items = append(in.Items, pushItem{
					JID:          attr(t, "jid"),
					Name:         truncate(attr(t, "name"), maxName),
					Subscription: attr(t, "subscription"),
				})
			}
		case xml.CharData:
			switch {
			case depth == 2 && collect:
				limit := maxSmall
				if child.Local == "body" {
					limit = MaxText
				}
				if text.Len()+len(t) > limit {
					in.BodyTooLong = in.BodyTooLong || child.Local == "body"
					collect = false
					break
				}
				text.Write(t)
			case depth == 3 && errText && text.Len()+len(t) <= maxSmall:
				text.Write(t)
			}
		case xml.EndElement:
			switch {
			case depth == 3 && errText:
				in.Err.Text = map[string]string{"": text.String()}
				errText = false
			case depth == 2:
				if collect {
					in.setText(child.Local, text.String())
				}
				collect = false
			}
			depth--
		}
	}
	return in, nil
}

// child notes a direct child of the stanza and reports whether its text is
// wanted.
func (in *inbound) child(t xml.StartElement, ns string) bool {
	own := t.Name.Space == ns || t.Name.Space == ""
	switch {
	case own && t.Name.Local == "error" && in.Type == "error" && !in.HasErr:
		in.HasErr = true
		in.Err.Type = stanza.ErrorType(attr(t, "type"))
	case in.Kind == "message" && own && t.Name.Local == "body":
		if !in.HasBody {
			in.HasBody = true
			return true
		}
	case in.Kind == "message" && t.Name == xml.Name{Space: nsReceipts, Local: "received"}:
		in.ReceiptFor = attr(t, "id")
	case in.Kind == "presence" && own && (t.Name.Local == "show" || t.Name.Local == "priority"):
		return true
	case in.Kind == "iq" && in.Payload.Local == "" && t.Name.Local != "error":
		in.Payload = t.Name
	}
	return false
}

func (in *inbound) setText(child, s string) {
	switch child {
	case "body":
		in.Body = s
	case "show":
		in.Show = strings.TrimSpace(s)
	case "priority":
		if p, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			in.Priority = min(max(p, -128), 127)
		}
	}
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// tokens is an xml.TokenReader over a slice: the stanzas the proxy sends
// are built as token lists.
type tokens []xml.Token

func (t *tokens) Token() (xml.Token, error) {
	if len(*t) == 0 {
		return nil, io.EOF
	}
	tok := (*t)[0]
	*t = (*t)[1:]
	return tok, nil
}

// el opens an element with the attributes given as name, value pairs,
// leaving out those with an empty value.
func el(name xml.Name, attrs ...string) xml.StartElement {
	s := xml.StartElement{Name: name}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			s.Attr = append(s.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return s
}

func empty(dst tokens, s xml.StartElement) tokens { return append(dst, s, s.End()) }

func textEl(dst tokens, s xml.StartElement, text string) tokens {
	return append(dst, s, xml.CharData(text), s.End())
}

// errorReply is the error stanza answering in: same kind and id, sent to
// its sender (the server stamps our address as from).
func errorReply(in inbound, typ stanza.ErrorType, cond stanza.Condition, text string) tokens {
	s := el(xml.Name{Local: in.Kind}, "type", "error", "id", in.ID, "to", in.From)
	e := el(xml.Name{Local: "error"}, "type", string(typ))
	t := tokens{s, e}
	t = empty(t, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: string(cond)}})
	if text != "" {
		t = textEl(t, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: "text"}}, text)
	}
	return append(t, e.End(), s.End())
}

// answerError is the error a peer answered one of our stanzas with.
func answerError(in inbound) error {
	e := in.Err
	if !in.HasErr || e.Condition == "" {
		e.Condition = stanza.UndefinedCondition
	}
	return fmt.Errorf("%s answered %s %s: %w", in.From, in.Kind, in.Type, e)
}

// cleanText returns s without what XML 1.0 cannot carry: invalid UTF-8 and
// the characters outside its Char production (most C0 controls,
// surrogates, U+FFFE and U+FFFF). The XMPP edge does the same; its helper
// is not exported.
func cleanText(s string) string {
	ok := func(s string, i int, r rune) bool {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return false
			}
		}
		return r == 0x09 || r == 0x0A || r == 0x0D ||
			(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	}
	for i, r := range s {
		if !ok(s, i, r) {
			var b strings.Builder
			b.Grow(len(s))
			b.WriteString(s[:i])
			for j, r := range s[i:] {
				if ok(s, i+j, r) {
					b.WriteRune(r)
				}
			}
			return b.String()
		}
	}
	return s
}

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
