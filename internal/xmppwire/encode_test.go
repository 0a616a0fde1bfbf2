package xmppwire

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

// render writes t as XML text.
func render(t testing.TB, toks Tokens) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	for {
		tok, err := toks.Token()
		if err != nil {
			break
		}
		if err := e.EncodeToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestBuilders(t *testing.T) {
	for _, c := range []struct {
		name string
		got  Tokens
		want string
	}{
		{"El leaves out empty values",
			Empty(nil, El(xml.Name{Local: "presence"}, "type", "", "to", "a@b", "odd")),
			`<presence to="a@b"></presence>`},
		{"TextEl",
			TextEl(nil, xml.StartElement{Name: xml.Name{Local: "body"}}, "a<b"),
			`<body>a&lt;b</body>`},
		{"Chat from the component",
			Chat("m1", "+1@sms.test", "c@d/r", "hi\x00!"),
			`<message type="chat" id="m1" from="+1@sms.test" to="c@d/r"><body>hi!</body><request xmlns="urn:xmpp:receipts"></request></message>`},
		{"Chat from a client",
			Chat("m1", "", "c@d/r", "hi"),
			`<message type="chat" id="m1" to="c@d/r"><body>hi</body><request xmlns="urn:xmpp:receipts"></request></message>`},
		{"Ping",
			Ping("p1", "sms.test", "c@d/r"),
			`<iq type="get" id="p1" from="sms.test" to="c@d/r"><ping xmlns="urn:xmpp:ping"></ping></iq>`},
		{"ErrorReply with from",
			ErrorReply(Stanza{Kind: "message", ID: "x", From: "c@d/r", To: "+1@sms.test"}, "+1@sms.test", stanza.Wait, stanza.ResourceConstraint, "later"),
			`<message type="error" id="x" from="+1@sms.test" to="c@d/r"><error type="wait">` +
				`<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></resource-constraint>` +
				`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">later</text></error></message>`},
		{"ErrorReply without from or text",
			ErrorReply(Stanza{Kind: "iq", ID: "q", From: "c@d/r"}, "", stanza.Cancel, stanza.ServiceUnavailable, ""),
			`<iq type="error" id="q" to="c@d/r"><error type="cancel">` +
				`<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"></service-unavailable></error></iq>`},
	} {
		if got := render(t, c.got); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"plain":                 "plain",
		"tab\tnl\ncr\r":         "tab\tnl\ncr\r",
		"nul\x00esc\x1bdel\x7f": "nulescdel\x7f",
		"nul\x00bell\x07":       "nulbell",
		"\x01\x02":              "",
		"bad\xffutf8":           "badutf8",
		"nonchar\uFFFE\uFFFF.":  "nonchar.",
		"emoji 😀 and ü":         "emoji 😀 and ü",
		"\uFFFD stays":          "\uFFFD stays",
	} {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

// canonical is the element tree of the XML text s, one line per token,
// with attributes sorted: two texts of one stanza give the same.
func canonical(t testing.TB, s string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatalf("%q does not parse: %v", s, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attrs := make([]string, 0, len(tok.Attr))
			for _, a := range tok.Attr {
				attrs = append(attrs, fmt.Sprintf("%s:%s=%q", a.Name.Space, a.Name.Local, a.Value))
			}
			sort.Strings(attrs)
			fmt.Fprintf(&b, "<%s:%s %s>\n", tok.Name.Space, tok.Name.Local, strings.Join(attrs, " "))
		case xml.CharData:
			fmt.Fprintf(&b, "%q\n", string(tok))
		case xml.EndElement:
			fmt.Fprintf(&b, "</%s:%s>\n", tok.Name.Space, tok.Name.Local)
		}
	}
}

// sameAsTokens checks that AppendChat and AppendPing write the stanzas
// Chat and Ping build, as a token encoder writes them.
func sameAsTokens(t testing.TB, id, from, to, body string) {
	t.Helper()
	chat := Chat(id, from, to, body)
	if got, want := canonical(t, string(AppendChat(nil, id, from, to, body))), canonical(t, render(t, chat)); got != want {
		t.Errorf("AppendChat(%q, %q, %q, %q):\n%s\nwant\n%s", id, from, to, body, got, want)
	}
	ping := Ping(id, from, to)
	if got, want := canonical(t, string(AppendPing(nil, id, from, to))), canonical(t, render(t, ping)); got != want {
		t.Errorf("AppendPing(%q, %q, %q):\n%s\nwant\n%s", id, from, to, got, want)
	}
}

func TestAppendMatchesTokens(t *testing.T) {
	for _, c := range [][4]string{
		{"m1.x1", "+8613900000001@sms.example.org", "alice@example.org/phone", "hello"},
		{"q'\"<&>", "a'b@sms.example.org", "c\"d@example.org/r<1>", "a < b & c > d 'x' \"y\""},
		{"ws", "", "bob@example.org", "tab\there\nline\r\nend"},
		{"bad", "x\x01y@sms.example.org", "z\xffw@example.org", "ctl\x00\x1b bad\xc3 utf8 \U0001F600 \uFFFE\uFFFD"},
		{"", "", "", ""},
	} {
		sameAsTokens(t, c[0], c[1], c[2], c[3])
	}
}

// FuzzAppendChat: for any attributes and body, the bytes written without a
// token encoder parse, and to the stanza the token encoder writes.
func FuzzAppendChat(f *testing.F) {
	f.Add("m1.x1", "+8613900000001@sms.example.org", "alice@example.org/phone", "hello")
	f.Add("q'", "a&b", "c<d", "x\r\ny\tz \x00\xff")
	f.Fuzz(func(t *testing.T, id, from, to, body string) {
		sameAsTokens(t, id, from, to, body)
	})
}

// Chat is, as tokens, the chat message AppendChat writes: what it is
// checked against.
func Chat(id, from, to, body string) Tokens {
	ms := El(xml.Name{Local: "message"}, "type", "chat", "id", id, "from", from, "to", to)
	t := Tokens{ms}
	t = TextEl(t, xml.StartElement{Name: xml.Name{Local: "body"}}, CleanText(body))
	t = Empty(t, xml.StartElement{Name: xml.Name{Space: NSReceipts, Local: "request"}})
	return append(t, ms.End())
}

// Ping is, as tokens, the ping AppendPing writes.
func Ping(id, from, to string) Tokens {
	iq := El(xml.Name{Local: "iq"}, "type", "get", "id", id, "from", from, "to", to)
	t := Empty(Tokens{iq}, xml.StartElement{Name: xml.Name{Space: NSPing, Local: "ping"}})
	return append(t, iq.End())
}
