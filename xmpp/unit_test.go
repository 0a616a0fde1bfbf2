package xmpp

import (
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/msg"
)

func TestJIDOf(t *testing.T) {
	for _, tc := range []struct {
		a    msg.Address
		want string
	}{
		{"+8613900000002", "+8613900000002@sms.example.test"},
		{"sip:bob@host.example", "bob@sms.example.test"},
		{"xmpp:u@d.example", `u\40d.example@sms.example.test`},
		{"xmpp:o'hara@d.example", `o\27hara\40d.example@sms.example.test`},
		{"alpha:MyBank", "mybank@sms.example.test"},
		{"alpha:My Bank", `my\20bank@sms.example.test`},
	} {
		j, err := JIDOf(tc.a, domain)
		if err != nil || j.String() != tc.want {
			t.Errorf("JIDOf(%q) = %q, %v; want %q", tc.a, j, err, tc.want)
		}
	}
	for _, a := range []msg.Address{"", "sip:@host", "alpha:", msg.Address("xmpp:" + strings.Repeat("a", 1100) + "@d")} {
		if j, err := JIDOf(a, domain); err == nil {
			t.Errorf("JIDOf(%q) = %q, want an error", a, j)
		}
	}
}

func TestAddressOf(t *testing.T) {
	for _, tc := range []struct {
		local string
		want  msg.Address
		ok    bool
	}{
		{"+8613900000002", "+8613900000002", true},
		{"8613900000002", "+8613900000002", true},
		{"008613900000002", "+8613900000002", true},
		{`u\40d.example`, "xmpp:u@d.example", true},
		{`U\40D.Example`, "xmpp:u@d.example", true},
		{"bob", "", false},
		{"12", "", false},
		{"+86139abc", "", false},
		{`u\40d\2fres`, "", false}, // a full JID is not a user
		{`\40d`, "", false},
		{"", "", false},
	} {
		a, ok := AddressOf(tc.local)
		if a != tc.want || ok != tc.ok {
			t.Errorf("AddressOf(%q) = %q, %v; want %q, %v", tc.local, a, ok, tc.want, tc.ok)
		}
	}
}

func TestEscapeExamples(t *testing.T) {
	// Examples from XEP-0106 §5.
	for raw, esc := range map[string]string{
		`space cadet`:       `space\20cadet`,
		`call me "ishmael"`: `call\20me\20\22ishmael\22`,
		`at&t guy`:          `at\26t\20guy`,
		`d'artagnan`:        `d\27artagnan`,
		`/.fanboy`:          `\2f.fanboy`,
		`::foo::`:           `\3a\3afoo\3a\3a`,
		`<foo>`:             `\3cfoo\3e`,
		`user@host`:         `user\40host`,
		`c:\net`:            `c\3a\net`,
		`c:\\net`:           `c\3a\\net`,
		`c:\cool stuff`:     `c\3a\cool\20stuff`,
		`c:\5commas`:        `c\3a\5c5commas`,
	} {
		if got := Escape(raw); got != esc {
			t.Errorf("Escape(%q) = %q, want %q", raw, got, esc)
		}
		if got := Unescape(esc); got != raw {
			t.Errorf("Unescape(%q) = %q, want %q", esc, got, raw)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{`a b"c&d'e/f:g<h>i@j\k`, `\20`, `\5c`, `\`, `x\zz`, `c:\net`, `c:\5commas`, "plain"} {
		e := Escape(s)
		if strings.ContainsAny(e, " \"&'/:<>@") {
			t.Errorf("Escape(%q) = %q keeps a character a localpart may not hold", s, e)
		}
		if u := Unescape(e); u != s {
			t.Errorf("Unescape(Escape(%q)) = %q", s, u)
		}
	}
}

func TestXMLText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                 "plain",
		"tab\tnl\ncr\r":         "tab\tnl\ncr\r",
		"nul\x00esc\x1bdel\x7f": "nulescdel\x7f",
		"bad\xffutf8":           "badutf8",
		"nonchar\uFFFE\uFFFF.":  "nonchar.",
		"emoji 😀 ok":            "emoji 😀 ok",
		"\uFFFD stays":          "\uFFFD stays",
	} {
		if got := xmlText(in); got != want {
			t.Errorf("xmlText(%q) = %q, want %q", in, got, want)
		}
	}
}

// decode reads one stanza from raw XML the way the gateway does.
func decode(t testing.TB, raw string) (inbound, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return inbound{}, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			return decodeInbound(s, d)
		}
	}
}

func TestDecodeInbound(t *testing.T) {
	in, err := decode(t, `<message xmlns='jabber:component:accept' from='carol@example.test/phone' to='+8613900000002@sms.example.test' type='chat' id='c1'>`+
		`<body>one</body><body xml:lang='de'>eins</body><request xmlns='urn:xmpp:receipts'/><x xmlns='urn:example'><body>not this</body></x></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != "message" || in.ID != "c1" || in.Type != "chat" || in.From != "carol@example.test/phone" ||
		in.To != "+8613900000002@sms.example.test" || !in.HasBody || in.Body != "one" || !in.ReceiptRequest || in.BodyTooLong {
		t.Fatalf("message: %+v", in)
	}

	in, err = decode(t, `<message from='a@b/c' type='error' id='x1'><error type='cancel'>`+
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>`)
	if err != nil || !in.HasErr || in.Err.Type != stanza.Cancel || in.Err.Condition != stanza.ItemNotFound || in.Err.Text[""] != "gone" {
		t.Fatalf("error message: %+v %v", in, err)
	}

	in, err = decode(t, `<message from='a@b/c'><received xmlns='urn:xmpp:receipts' id='r9'/></message>`)
	if err != nil || in.ReceiptFor != "r9" || in.HasBody {
		t.Fatalf("receipt: %+v %v", in, err)
	}

	in, err = decode(t, `<presence from='a@b/c'><show> dnd </show><priority>300</priority><status>busy</status></presence>`)
	if err != nil || in.Show != "dnd" || in.Priority != 127 {
		t.Fatalf("presence: %+v %v", in, err)
	}

	in, err = decode(t, `<iq type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if err != nil || in.Payload != (xml.Name{Space: nsDiscoInfo, Local: "query"}) {
		t.Fatalf("iq: %+v %v", in, err)
	}

	in, err = decode(t, `<message><body>`+strings.Repeat("é", MaxText/2)+`x</body></message>`)
	if err != nil || !in.BodyTooLong || in.Body != "" {
		t.Fatalf("long body: too long %v, %d bytes kept, %v", in.BodyTooLong, len(in.Body), err)
	}
	in, err = decode(t, `<message><body>`+strings.Repeat("a", MaxText)+`</body></message>`)
	if err != nil || in.BodyTooLong || len(in.Body) != MaxText {
		t.Fatalf("body of MaxText: too long %v, %d bytes, %v", in.BodyTooLong, len(in.Body), err)
	}

	if _, err := decode(t, `<message><body>unclosed</message>`); err == nil {
		t.Fatal("malformed stanza decoded")
	}
	if _, err := decode(t, `<message><body>cut`); err == nil {
		t.Fatal("truncated stanza decoded")
	}
}

// FuzzDecodeInbound: any input decodes without panicking, and what is kept
// stays within its bounds.
func FuzzDecodeInbound(f *testing.F) {
	f.Add([]byte(`<message from='a@b/c' to='+1234@sms.example.test' type='chat' id='1'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`))
	f.Add([]byte(`<presence from='a@b/c'><show>away</show><priority>-5</priority></presence>`))
	f.Add([]byte(`<iq type='error' id='p'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := xml.NewDecoder(strings.NewReader(string(data)))
		for {
			tok, err := d.Token()
			if err != nil {
				return
			}
			s, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			in, err := decodeInbound(s, d)
			if err != nil {
				return
			}
			if len(in.Body) > MaxText || len(in.Show) > maxSmall || len(in.Err.Text[""]) > maxSmall {
				t.Fatalf("kept too much: body %d, show %d, error text %d", len(in.Body), len(in.Show), len(in.Err.Text[""]))
			}
			if in.Priority < -128 || in.Priority > 127 {
				t.Fatalf("priority %d", in.Priority)
			}
			if in.BodyTooLong && in.Body != "" {
				t.Fatal("a body too long was kept")
			}
			if !utf8.ValidString(in.Body) {
				t.Fatalf("body not UTF-8: %q", in.Body)
			}
		}
	})
}

// FuzzAddressOf: reading a localpart never panics; an address read back is
// written as a localpart that reads back to it; escaping round-trips.
func FuzzAddressOf(f *testing.F) {
	for _, s := range []string{"+8613900000002", "8613900000002", `u\40d.example`, "bob", `a\5c40b\40c`, `\20x\40y`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, local string) {
		if u := Unescape(Escape(local)); u != local {
			t.Fatalf("Unescape(Escape(%q)) = %q", local, u)
		}
		a, ok := AddressOf(local)
		if !ok {
			return
		}
		if !a.IsMSISDN() && !strings.HasPrefix(string(a), Scheme) {
			t.Fatalf("AddressOf(%q) = %q, neither a number nor an XMPP user", local, a)
		}
		j, err := JIDOf(a, domain)
		if err != nil {
			return // too long once escaped: refused, not mangled
		}
		if back, ok := AddressOf(j.Localpart()); !ok || back != a {
			t.Fatalf("AddressOf(%q) = %q, written as %q, read back as %q, %v", local, a, j, back, ok)
		}
	})
}
