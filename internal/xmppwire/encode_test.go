package xmppwire

import (
	"bytes"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/stanza"
)

// render writes t as XML text.
func render(t *testing.T, toks Tokens) string {
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
