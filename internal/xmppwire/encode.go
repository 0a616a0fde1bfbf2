package xmppwire

import (
	"encoding/xml"
	"io"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"
)

// Tokens is an xml.TokenReader over a slice: stanzas are built as token
// lists and sent (or copied to a stream) from one.
type Tokens []xml.Token

func (t *Tokens) Token() (xml.Token, error) {
	if len(*t) == 0 {
		return nil, io.EOF
	}
	tok := (*t)[0]
	*t = (*t)[1:]
	return tok, nil
}

// El opens an element with the attributes given as name, value pairs,
// leaving out those with an empty value.
func El(name xml.Name, attrs ...string) xml.StartElement {
	s := xml.StartElement{Name: name}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			s.Attr = append(s.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	return s
}

// Empty appends an element without content.
func Empty(dst Tokens, s xml.StartElement) Tokens { return append(dst, s, s.End()) }

// TextEl appends an element holding text.
func TextEl(dst Tokens, s xml.StartElement, text string) Tokens {
	return append(dst, s, xml.CharData(text), s.End())
}

// ErrorReply is the error stanza answering in: same kind and id, sent to
// its sender, with an <error/> of type typ, condition cond and an optional
// human-readable text. from is left out when empty (a client's server
// stamps it).
func ErrorReply(in Stanza, from string, typ stanza.ErrorType, cond stanza.Condition, text string) Tokens {
	s := El(xml.Name{Local: in.Kind}, "type", "error", "id", in.ID, "from", from, "to", in.From)
	e := El(xml.Name{Local: "error"}, "type", string(typ))
	t := Tokens{s, e}
	t = Empty(t, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: string(cond)}})
	if text != "" {
		t = TextEl(t, xml.StartElement{Name: xml.Name{Space: stanza.NSError, Local: "text"}}, text)
	}
	return append(t, e.End(), s.End())
}

// CleanText returns s without what XML 1.0 cannot carry: invalid UTF-8 and
// the characters outside its Char production (most C0 controls,
// surrogates, U+FFFE and U+FFFF).
func CleanText(s string) string {
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

// isBadRune reports whether s starts with a byte that is not UTF-8, as
// opposed to a U+FFFD written out.
func isBadRune(s string) bool {
	_, n := utf8.DecodeRuneInString(s)
	return n <= 1
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// AppendChat appends a chat message as XML text: body, cleaned by
// CleanText, and an XEP-0184 receipt request; from is left out when empty.
// Text, not tokens: it goes out with every message, where a token
// encoder's cost shows in the bridge's profile (PERFORMANCE.md). Write it
// with WriteRaw.
func AppendChat(dst []byte, id, from, to, body string) []byte {
	dst = append(dst, "<message type='chat'"...)
	dst = appendAttr(dst, "id", id)
	dst = appendAttr(dst, "from", from)
	dst = appendAttr(dst, "to", to)
	dst = append(dst, "><body>"...)
	dst = appendEscaped(dst, body, "") // what CleanText drops, dropped in the same pass
	return append(dst, "</body><request xmlns='"+NSReceipts+"'/></message>"...)
}

// AppendPing appends an XEP-0199 ping as XML text; from is left out when
// empty.
func AppendPing(dst []byte, id, from, to string) []byte {
	dst = append(dst, "<iq type='get'"...)
	dst = appendAttr(dst, "id", id)
	dst = appendAttr(dst, "from", from)
	dst = appendAttr(dst, "to", to)
	return append(dst, "><ping xmlns='"+NSPing+"'/></iq>"...)
}

// appendAttr appends name='value', or nothing for an empty value (as El).
func appendAttr(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, "='"...)
	dst = appendEscaped(dst, value, "\uFFFD")
	return append(dst, '\'')
}

// escapes are the references appendEscaped writes for ASCII characters.
var escapes = [utf8.RuneSelf]string{
	'&': "&amp;", '<': "&lt;", '>': "&gt;", '\'': "&#39;", '"': "&#34;",
	'\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;",
}

// appendEscaped appends s escaped as encoding/xml escapes text and
// attribute values: the five markup characters and tab, newline and
// carriage return as references (so that attribute normalisation keeps
// them), and what XML cannot carry as bad (encoding/xml's U+FFFD, or ""
// to drop it as CleanText does).
func appendEscaped(dst []byte, s, bad string) []byte {
	last := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		esc := ""
		if r < utf8.RuneSelf {
			esc = escapes[r]
		}
		hit := esc != ""
		if !hit && (!xmlChar(r) || (r == utf8.RuneError && n == 1)) {
			esc, hit = bad, true
		}
		i += n
		if hit {
			dst = append(dst, s[last:i-n]...)
			dst = append(dst, esc...)
			last = i
		}
	}
	return append(dst, s[last:]...)
}
