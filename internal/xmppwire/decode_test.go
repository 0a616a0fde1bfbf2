package xmppwire

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"

	"github.com/smsbridge/bridge/presence"
)

// decode reads the first stanza of raw XML the way both roles do.
func decode(t testing.TB, raw string) (Stanza, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return Stanza{}, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			return Decode(s, d)
		}
	}
}

func mustDecode(t testing.TB, raw string) Stanza {
	t.Helper()
	in, err := decode(t, raw)
	if err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return in
}

func TestDecodeMessage(t *testing.T) {
	in := mustDecode(t, `<message xmlns='jabber:component:accept' from='carol@example.test/phone' to='+8613900000002@sms.example.test' type='chat' id='c1'>`+
		`<body>one</body><body xml:lang='de'>eins</body><request xmlns='urn:xmpp:receipts'/><x xmlns='urn:example'><body>not this</body></x></message>`)
	if in.Kind != "message" || in.ID != "c1" || in.Type != "chat" || in.From != "carol@example.test/phone" ||
		in.To != "+8613900000002@sms.example.test" || !in.HasBody || in.Body != "one" || !in.ReceiptRequest || in.BodyTooLong {
		t.Fatalf("message: %+v", in)
	}

	in = mustDecode(t, `<message from='bob@other.test/p' to='alice@other.test' type='chat' id='1'><body>hi</body><body>two</body>`+
		`<received xmlns='urn:xmpp:receipts' id='r9'/></message>`)
	if in.Body != "hi" || !in.HasBody || in.ReceiptFor != "r9" || in.ReceiptRequest || in.From != "bob@other.test/p" || in.ID != "1" {
		t.Fatalf("message with a receipt: %+v", in)
	}

	in = mustDecode(t, `<message from='a@b/c'><received xmlns='urn:xmpp:receipts' id='r9'/></message>`)
	if in.ReceiptFor != "r9" || in.HasBody {
		t.Fatalf("receipt: %+v", in)
	}

	in = mustDecode(t, `<message from='a@b/c' type='error' id='x1'><error type='cancel'>`+
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>`)
	if !in.HasErr || in.Err.Type != stanza.Cancel || in.Err.Condition != stanza.ItemNotFound || in.Err.Text[""] != "gone" {
		t.Fatalf("error message: %+v", in)
	}
}

func TestDecodeBodyBound(t *testing.T) {
	in := mustDecode(t, `<message><body>`+strings.Repeat("é", MaxText/2)+`x</body></message>`)
	if !in.BodyTooLong || in.Body != "" {
		t.Fatalf("long body: too long %v, %d bytes kept", in.BodyTooLong, len(in.Body))
	}
	in = mustDecode(t, `<message><body>`+strings.Repeat("a", MaxText)+`</body></message>`)
	if in.BodyTooLong || len(in.Body) != MaxText {
		t.Fatalf("body of MaxText: too long %v, %d bytes", in.BodyTooLong, len(in.Body))
	}
}

func TestDecodePresence(t *testing.T) {
	in := mustDecode(t, `<presence from='a@b/c'><show> dnd </show><priority>300</priority><status>busy</status></presence>`)
	if in.Show != "dnd" || in.Priority != 127 {
		t.Fatalf("presence: %+v", in)
	}
	in = mustDecode(t, `<presence from='a@b/c'><priority>zillion</priority></presence>`)
	if in.Priority != 0 {
		t.Fatalf("presence with a bad priority: %+v", in)
	}
}

func TestDecodeIQ(t *testing.T) {
	in := mustDecode(t, `<iq type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if in.Payload != (xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"}) {
		t.Fatalf("iq: %+v", in)
	}

	in = mustDecode(t, `<iq type='set' id='push'><query xmlns='jabber:iq:roster' ver='3'>`+
		`<item jid='carol@other.test' name='Carol' subscription='both'><group>Friends</group></item>`+
		`<item jid='dave@other.test' subscription='remove'/></query></iq>`)
	want := []PushItem{{JID: "carol@other.test", Name: "Carol", Subscription: "both"}, {JID: "dave@other.test", Subscription: "remove"}}
	if in.Payload != (xml.Name{Space: NSRoster, Local: "query"}) || len(in.Items) != 2 || in.Items[0] != want[0] || in.Items[1] != want[1] {
		t.Fatalf("roster push: %+v", in)
	}
	// Items outside a roster query are not roster items.
	in = mustDecode(t, `<iq type='set' id='x'><query xmlns='urn:other'><item jid='eve@other.test'/></query></iq>`)
	if len(in.Items) != 0 {
		t.Fatalf("items of another query read: %+v", in.Items)
	}

	in = mustDecode(t, `<iq type='error' id='p' from='bob@other.test/p'><ping xmlns='urn:xmpp:ping'/><error type='cancel'>`+
		`<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>`)
	if !in.HasErr || in.Err.Condition != stanza.ServiceUnavailable || in.Err.Text[""] != "no" || in.Payload.Local != "ping" {
		t.Fatalf("error: %+v", in)
	}
	var se stanza.Error
	if err := AnswerError(in); !errors.As(err, &se) || se.Condition != stanza.ServiceUnavailable {
		t.Errorf("AnswerError: %v", err)
	}
	// An error without a condition still reads as one.
	if err := AnswerError(Stanza{Kind: "iq", Type: "error"}); !errors.As(err, &se) || se.Condition != stanza.UndefinedCondition {
		t.Errorf("AnswerError without a condition: %v", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	if _, err := decode(t, `<message><body>unclosed</message>`); err == nil {
		t.Fatal("malformed stanza decoded")
	}
	if _, err := decode(t, `<message><body>cut`); err == nil {
		t.Fatal("truncated stanza decoded")
	}
}

func TestRosterName(t *testing.T) {
	long := strings.Repeat("a", maxName-1) + "é"
	if got := RosterName(long); got != strings.Repeat("a", maxName-1) {
		t.Errorf("RosterName cut a character: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := RosterName("Carol"); got != "Carol" {
		t.Errorf("RosterName(Carol) = %q", got)
	}
}

func TestShowOf(t *testing.T) {
	for show, want := range map[string]presence.Show{
		"": presence.Available, "chat": presence.Available, "away": presence.Away,
		"xa": presence.ExtendedAway, "dnd": presence.DoNotDisturb, "bogus": presence.Available,
	} {
		if got := ShowOf(show); got != want {
			t.Errorf("ShowOf(%q) = %v, want %v", show, got, want)
		}
	}
}

// FuzzDecode: any input decodes without panicking, and what is kept stays
// within its bounds.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`<message from='a@b/c' to='+1234@sms.example.test' type='chat' id='1'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`,
		`<presence from='a@b/c'><show>away</show><priority>-5</priority></presence>`,
		`<iq type='error' id='p'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		`<message from='bob@other.test/p' type='chat' id='1'><body>hi</body></message>`,
		`<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='c@d' name='C'/></query></iq>`,
	} {
		f.Add([]byte(s))
	}
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
			in, err := Decode(s, d)
			if err != nil {
				return
			}
			if len(in.Body) > MaxText || len(in.Show) > maxSmall || len(in.Err.Text[""]) > maxSmall || len(in.Items) > maxPushItems {
				t.Fatalf("kept too much: body %d, show %d, error text %d, items %d", len(in.Body), len(in.Show), len(in.Err.Text[""]), len(in.Items))
			}
			if in.Priority < -128 || in.Priority > 127 {
				t.Fatalf("priority %d", in.Priority)
			}
			if in.BodyTooLong && in.Body != "" {
				t.Fatal("a body too long was kept")
			}
			for _, it := range in.Items {
				if len(it.Name) > maxName || !utf8.ValidString(it.Name) {
					t.Fatalf("item name %q", it.Name)
				}
			}
			if !utf8.ValidString(in.Body) {
				t.Fatalf("body not UTF-8: %q", in.Body)
			}
		}
	})
}
