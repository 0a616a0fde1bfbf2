package xmpp

import (
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
	"mellium.im/xmpp/jid"
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

// FuzzContactParts: the split a plain contact takes is what jid.Parse
// gives, and a number's sender JID is what JIDOf gives.
func FuzzContactParts(f *testing.F) {
	for _, s := range []string{"carol@example.test/x", "carol@example.test", "example.test", "Carol@example.test/x",
		"a@b.c/r/s", "a@b.c/", "a@b.c.", "a@-b.c", "a b@c.d/e", "a@b.c/é", "@b.c", "+86139@sms.example.test/r"} {
		f.Add(s, "+8613900000002")
	}
	f.Fuzz(func(t *testing.T, c, from string) {
		full, bare, res, err := contactParts(c)
		j, jerr := jid.Parse(c)
		if plainJID(c) {
			if jerr != nil || j.String() != full || j.Bare().String() != bare || (j.Resourcepart() != "") != res {
				t.Fatalf("plain %q: %q %q %v; jid.Parse: %q %q %q %v", c, full, bare, res, j, j.Bare(), j.Resourcepart(), jerr)
			}
		} else if (err == nil) != (jerr == nil) || err == nil && (full != j.String() || bare != j.Bare().String()) {
			t.Fatalf("%q: %q %q %v; jid.Parse: %q %v", c, full, bare, err, j, jerr)
		}
		s, err := senderJID(msg.Address(from), domain)
		want, werr := JIDOf(msg.Address(from), domain)
		if (err == nil) != (werr == nil) || err == nil && s != want.String() {
			t.Fatalf("senderJID(%q) = %q, %v; JIDOf: %q, %v", from, s, err, want, werr)
		}
	})
}
