package xmpp

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"
)

// Namespaces the gateway reads or writes.
const (
	nsReceipts  = "urn:xmpp:receipts"
	nsPing      = "urn:xmpp:ping"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// Bounds on what one incoming stanza may make the gateway hold.
const (
	// MaxText is the longest message body taken in, in bytes; a longer one
	// is refused with a policy-violation stanza error.
	MaxText = 64 << 10
	// maxSmall bounds the other texts kept: show, priority, error text.
	maxSmall = 256
)

// inbound is what the gateway reads of one incoming stanza: its routing
// attributes and the few children it acts on; everything else is skipped
// without being kept.
type inbound struct {
	Kind           string // "message", "presence" or "iq"
	ID, Type       string
	From, To       string
	Body           string // the first <body/>, at most MaxText bytes
	HasBody        bool
	BodyTooLong    bool   // the body was longer than MaxText (Body is empty)
	ReceiptRequest bool   // XEP-0184 <request/>
	ReceiptFor     string // XEP-0184 <received id=.../>: the id it confirms
	Show           string // presence <show/>
	Priority       int    // presence <priority/>, clamped to -128..127
	Payload        xml.Name
	HasErr         bool         // type="error" with an <error/> child
	Err            stanza.Error // that child: type, condition, text
}

// decodeInbound reads the stanza that start opened from r, up to and
// including its end element. It never keeps more than MaxText bytes of body
// and maxSmall of any other text; a malformed stream is its only error.
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
	case in.Kind == "message" && t.Name == xml.Name{Space: nsReceipts, Local: "request"}:
		in.ReceiptRequest = true
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
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err == nil {
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

// tokens is an xml.TokenReader over a slice: the stanzas the gateway sends
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

// empty appends an element without content.
func empty(dst tokens, s xml.StartElement) tokens { return append(dst, s, s.End()) }

// textEl appends an element holding text.
func textEl(dst tokens, s xml.StartElement, text string) tokens {
	return append(dst, s, xml.CharData(text), s.End())
}

// errorEl appends a stanza <error/> of type typ with condition cond and an
// optional human-readable text.
func errorEl(dst tokens, typ stanza.ErrorType, cond stanza.Condition, text string) tokens {
	e := el(xml.Name{Local: "error"}, "type", string(typ))
	dst = append(dst, e)
	dst = empty(dst, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: string(cond)}})
	if text != "" {
		dst = textEl(dst, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: "text"}}, text)
	}
	return append(dst, e.End())
}

// xmlText returns s with what XML 1.0 cannot carry removed: invalid UTF-8
// and the characters outside its Char production (most C0 controls,
// surrogates, U+FFFE and U+FFFF).
func xmlText(s string) string {
	clean := true
	for i, r := range s {
		if !xmlChar(r) || (r == utf8.RuneError && isBadRune(s[i:])) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		if xmlChar(r) && !(r == utf8.RuneError && isBadRune(s[i:])) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isBadRune(s string) bool {
	_, n := utf8.DecodeRuneInString(s)
	return n <= 1
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// errTooLarge ends a stream on which one stanza ran past maxStanza bytes.
var errTooLarge = errors.New("xmpp: stanza exceeds the size limit")
