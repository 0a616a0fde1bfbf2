package xmppwire

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/presence"
)

// Namespaces of the children Decode reads and the stanzas both roles send.
const (
	NSReceipts = "urn:xmpp:receipts"
	NSPing     = "urn:xmpp:ping"
	NSRoster   = "jabber:iq:roster"
)

// Bounds on what one incoming stanza may make a role hold.
const (
	// MaxText is the longest message body taken in, in bytes; a longer one
	// is refused with a policy-violation stanza error.
	MaxText = 64 << 10
	// maxSmall bounds the other texts kept: show, priority, error text.
	maxSmall = 256
	// maxName bounds a roster item's name.
	maxName = 1024
	// maxPushItems bounds the items read from one roster push (RFC 6121
	// allows exactly one).
	maxPushItems = 16
)

// PushItem is one <item/> of a roster push.
type PushItem struct {
	JID          string
	Name         string // at most maxName bytes (RosterName)
	Subscription string
}

// Stanza is what Decode reads of one incoming stanza: its routing
// attributes and the few children either role acts on.
type Stanza struct {
	Kind           string // "message", "presence" or "iq"
	ID, Type       string
	From, To       string
	Body           string // the first <body/>, at most MaxText bytes
	HasBody        bool
	BodyTooLong    bool         // the body ran past MaxText (Body is empty then)
	ReceiptRequest bool         // XEP-0184 <request/>
	ReceiptFor     string       // XEP-0184 <received id=…/>: the id it confirms
	Show           string       // presence <show/>, trimmed
	Priority       int          // presence <priority/>, clamped to -128..127
	Payload        xml.Name     // an iq's first child
	Items          []PushItem   // the items of an iq's roster <query/>
	HasErr         bool         // type="error" with an <error/> child
	Err            stanza.Error // that child: type, condition, text
}

// Decode reads the stanza that start opened from r, up to and including
// its end element. It keeps at most MaxText bytes of body and maxSmall of
// any other text; a malformed stream is its only error.
func Decode(start xml.StartElement, r xml.TokenReader) (Stanza, error) {
	in := Stanza{Kind: start.Name.Local}
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
		text    strings.Builder // text of the element being collected
		child   xml.Name        // the direct child being read
		collect bool            // child's text is wanted
		errText bool            // inside the error's <text/>
		depth   = 1
	)
	for depth > 0 {
		tok, err := r.Token()
		if err == io.EOF && depth == 1 && tok == nil {
			// A reader that ends at the stanza's end element without
			// returning it (xmlstream.Inner) ends the stanza too.
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
			case depth == 3 && in.Kind == "iq" && child == xml.Name{Space: NSRoster, Local: "query"} &&
				t.Name.Local == "item" && (t.Name.Space == NSRoster || t.Name.Space == "") && len(in.Items) < maxPushItems:
				in.Items = append(in.Items, PushItem{
					JID:          Attr(t, "jid"),
					Name:         RosterName(Attr(t, "name")),
					Subscription: Attr(t, "subscription"),
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
func (in *Stanza) child(t xml.StartElement, ns string) bool {
	own := t.Name.Space == ns || t.Name.Space == ""
	switch {
	case own && t.Name.Local == "error" && in.Type == "error" && !in.HasErr:
		in.HasErr = true
		in.Err.Type = stanza.ErrorType(Attr(t, "type"))
	case in.Kind == "message" && own && t.Name.Local == "body":
		if !in.HasBody {
			in.HasBody = true
			return true
		}
	case in.Kind == "message" && t.Name == xml.Name{Space: NSReceipts, Local: "request"}:
		in.ReceiptRequest = true
	case in.Kind == "message" && t.Name == xml.Name{Space: NSReceipts, Local: "received"}:
		in.ReceiptFor = Attr(t, "id")
	case in.Kind == "presence" && own && (t.Name.Local == "show" || t.Name.Local == "priority"):
		return true
	case in.Kind == "iq" && in.Payload.Local == "" && t.Name.Local != "error":
		in.Payload = t.Name
	}
	return false
}

func (in *Stanza) setText(child, s string) {
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

// Attr is the value of t's attribute name (in no namespace), "" if none.
func Attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// RosterName is a roster item's name as kept: at most maxName bytes, cut
// at a character boundary. A roster fetched whole is bounded the same way
// as a push.
func RosterName(s string) string {
	n := maxName
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// AnswerError is the error a peer answered one of our stanzas with.
func AnswerError(in Stanza) error {
	e := in.Err
	if !in.HasErr || e.Condition == "" {
		e.Condition = stanza.UndefinedCondition
	}
	return fmt.Errorf("%s answered %s %s: %w", in.From, in.Kind, in.Type, e)
}

// ShowOf is the availability a presence <show/> says.
func ShowOf(show string) presence.Show {
	switch show {
	case "away":
		return presence.Away
	case "xa":
		return presence.ExtendedAway
	case "dnd":
		return presence.DoNotDisturb
	}
	return presence.Available
}
