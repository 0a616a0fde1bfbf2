package msg

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeNumber(t *testing.T) {
	cases := []struct {
		raw      string
		ton, npi byte
		want     Address
	}{
		{"8613800000001", TONInternational, NPIISDN, "+8613800000001"},
		{"+8613800000001", TONUnknown, NPIISDN, "+8613800000001"},
		{"008613800000001", TONInternational, NPIISDN, "+8613800000001"},
		{"13800000001", TONNational, NPIISDN, "+8613800000001"},
		{"013800000001", TONNational, NPIISDN, "+8613800000001"},
		{"13800000001", TONUnknown, NPIUnknown, "+8613800000001"},
		{"013800000001", TONUnknown, NPIUnknown, "+8613800000001"},
		{"008613800000001", TONUnknown, NPIUnknown, "+8613800000001"},
		{"8613800000001", TONUnknown, NPIUnknown, "+8613800000001"},
		{"Bank", TONAlphanumeric, NPIUnknown, "alpha:Bank"},
	}
	for _, c := range cases {
		got, err := NormalizeNumber(c.raw, c.ton, c.npi, "86")
		if err != nil || got != c.want {
			t.Errorf("NormalizeNumber(%q,%d,%d) = %q, %v; want %q", c.raw, c.ton, c.npi, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "+", "12a4", "1", "+123456", strings.Repeat("1", 21)} {
		if got, err := NormalizeNumber(bad, TONInternational, NPIISDN, "86"); !errors.Is(err, ErrBadNumber) {
			t.Errorf("NormalizeNumber(%q) = %q, %v; want ErrBadNumber", bad, got, err)
		}
	}
	// A national number too short to be one is refused, not padded with
	// the country code into something that looks like E.164.
	for _, bad := range []string{"1", "12", "1234"} {
		if got, err := NormalizeNumber(bad, TONUnknown, NPIISDN, "86"); !errors.Is(err, ErrBadNumber) {
			t.Errorf("NormalizeNumber(%q, unknown TON) = %q, %v; want ErrBadNumber", bad, got, err)
		}
	}
	// The shortest numbers in service: a 3-digit country code and 4 digits.
	if got, err := NormalizeNumber("+6834002", TONUnknown, NPIISDN, "86"); err != nil || got != "+6834002" {
		t.Errorf("Niue number: %q, %v", got, err)
	}
}

func TestFromAOR(t *testing.T) {
	cases := map[string]Address{
		"sip:+8613800000001@example.com":             "+8613800000001",
		"sip:8613800000001@example.com":              "+8613800000001",
		"<sip:13800000001@example.com;user=phone>":   "+8613800000001",
		"\"Alice\" <sip:Alice@Example.COM>;tag=1234": "sip:alice@example.com",
		"sips:bob@example.com":                       "sip:bob@example.com",
		"sip:Carol%40Example.test@d.example":         "xmpp:carol@example.test",
		"<sip:carol@example.test@d.example>":         "xmpp:carol@example.test",
	}
	for in, want := range cases {
		got, err := FromAOR(in, "86")
		if err != nil || got != want {
			t.Errorf("FromAOR(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "sip:@example.com", "sip:alice", "sip:%40x@d.example", "sip:a%40@d.example",
		"sip:alice@example.com\r\nX-Injected: 1", "sip:al\x00ice@example.com", "sip:alice\t@example.com", "sip:bob@ex\x7fample.com"} {
		if got, err := FromAOR(bad, "86"); err == nil {
			t.Errorf("FromAOR(%q) = %q; want an error", bad, got)
		}
	}
}

func TestSIPURI(t *testing.T) {
	if got := Address("+8613800000001").SIPURI("d.example"); got != "sip:+8613800000001@d.example" {
		t.Fatalf("got %q", got)
	}
	if got := Address("sip:alice@x.example").SIPURI("d.example"); got != "sip:alice@x.example" {
		t.Fatalf("got %q", got)
	}
	// An XMPP user shows to SIP as a user of the bridge, and maps back.
	x := Address("xmpp:carol@example.test")
	if got := x.SIPURI("d.example"); got != "sip:carol%40example.test@d.example" {
		t.Fatalf("got %q", got)
	}
	if back, err := FromAOR(x.SIPURI("d.example"), "86"); err != nil || back != x {
		t.Fatalf("back %q %v", back, err)
	}
}

// FuzzFromAOR: whatever a SIP peer puts in a header, mapping never panics,
// and whatever it returns is a well-formed Address that maps to itself.
func FuzzFromAOR(f *testing.F) {
	for _, s := range []string{"sip:+8613800000001@example.com", "<sip:alice@example.com>;tag=1", "sip:0013800@x", "sips:@", "<<>>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := FromAOR(s, "86")
		if err != nil {
			return
		}
		if a.IsMSISDN() {
			b, err := NormalizeNumber(string(a), TONInternational, NPIISDN, "86")
			if err != nil || b != a {
				t.Fatalf("%q -> %q not stable: %q %v", s, a, b, err)
			}
			return
		}
		if strings.HasPrefix(string(a), "xmpp:") {
			if b, err := FromAOR(a.SIPURI("d.example"), "86"); err != nil || b != a {
				t.Fatalf("%q -> %q does not map back from SIP: %q %v", s, a, b, err)
			}
			return
		}
		if !strings.HasPrefix(string(a), "sip:") || !strings.Contains(string(a), "@") {
			t.Fatalf("%q -> %q is not sip:user@domain", s, a)
		}
	})
}

// FuzzNormalizeNumber: an accepted number is "+" and 3-15 digits.
func FuzzNormalizeNumber(f *testing.F) {
	f.Add("8613800000001", byte(1), byte(1))
	f.Add("013800000001", byte(2), byte(1))
	f.Add("Bank", byte(5), byte(0))
	f.Fuzz(func(t *testing.T, raw string, ton, npi byte) {
		a, err := NormalizeNumber(raw, ton, npi, "86")
		if err != nil || ton == TONAlphanumeric {
			return
		}
		d := a.Digits()
		if len(d) < 3 || len(d) > 15 || strings.Trim(d, "0123456789") != "" {
			t.Fatalf("%q -> %q", raw, a)
		}
	})
}
