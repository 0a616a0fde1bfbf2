package directory

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAddress: any input is refused with ErrInvalid or gives a
// canonical address of a known kind that parses to itself.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"+8613800000002", "13800000002", "tel:+86-138-0000-0002", "sip:Bob@Example.COM;transport=udp",
		"sips:%61lice@atlanta.com", "sip:BOB@im.example", "xmpp:bob@example.com/res", "partner:shop:bob", "social:weibo:VCASE",
		"sip:a%2fb@[2001:db8::1]:5060", "xmpp:j%C3%B6rg@example.com", "sip:张@example.com"} {
		f.Add(s)
	}
	d, err := Open(Options{Domain: "im.example", CountryCode: "86"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		a, err := d.ParseAddress(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		s := string(a)
		switch {
		case a.IsMSISDN(), strings.HasPrefix(s, schemeSIP), strings.HasPrefix(s, schemeXMPP),
			strings.HasPrefix(s, schemePartner), strings.HasPrefix(s, schemeSocial):
		default:
			t.Fatalf("ParseAddress(%q) = %q: unknown kind", raw, a)
		}
		if !utf8.ValidString(s) || strings.TrimSpace(s) != s {
			t.Fatalf("ParseAddress(%q) = %q: not clean", raw, a)
		}
		again, err := d.ParseAddress(s)
		if err != nil || again != a {
			t.Fatalf("ParseAddress(%q) = %q, but that parses to %q, %v", raw, a, again, err)
		}
	})
}

// FuzzNormalizeName: a name is refused with ErrInvalid or mapped to a
// canonical name of allowed bytes that maps to itself and whose own address
// parses to itself.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"bob", "BOB", "ＢＯＢ", "sp ace", "José", "+8613800000001", "13800000001", "alice~shop",
		"vcase=abcde!weibo", "\u212Aelvin", "..."} {
		f.Add(s)
	}
	d, err := Open(Options{Domain: "im.example", CountryCode: "86"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := NormalizeName(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if n == "" || len(n) > MaxNameLen {
			t.Fatalf("NormalizeName(%q) = %q: bad length", raw, n)
		}
		for i := 0; i < len(n); i++ {
			if !nameByte(n[i]) {
				t.Fatalf("NormalizeName(%q) = %q: byte %q", raw, n, n[i])
			}
		}
		if again, err := NormalizeName(n); err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %q, which maps to %q, %v", raw, n, again, err)
		}
		aor, err := d.ownAOR(n)
		if err != nil {
			return // a numeric name that is no number: refused at creation
		}
		if a, err := d.ParseAddress(string(aor)); err != nil || a != aor {
			t.Fatalf("own AOR %q of %q parses to %q, %v", aor, n, a, err)
		}
	})
}

// FuzzParseCSV: any input parses or is refused with ErrInvalid, never
// panics, and rows carry positive, increasing line numbers.
func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("user,password,msisdn,display\nalice,pw,13800000001,Alice\n"))
	f.Add([]byte("bob,pw\n# c\n\"q,uoted\",\"p\"\"w\"\n"))
	f.Add([]byte("a,\"open\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseCSV(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		last := 0
		for _, r := range rows {
			if r.Line <= last {
				t.Fatalf("line numbers not increasing: %d after %d", r.Line, last)
			}
			last = r.Line
		}
		d, err := Open(Options{Domain: "im.example", CountryCode: "86"})
		if err != nil {
			t.Fatal(err)
		}
		n, err := d.ImportCSV(ctx, strings.NewReader(string(data)))
		if err != nil && n != 0 {
			t.Fatalf("refused import wrote %d users", n)
		}
		if err == nil && len(d.Users()) != n {
			t.Fatalf("imported %d, have %d", n, len(d.Users()))
		}
	})
}
