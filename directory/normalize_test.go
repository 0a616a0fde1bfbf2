package directory

import (
	"errors"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
)

func TestNormalizeName(t *testing.T) {
	ok := map[string]string{
		"bob":                           "bob",
		"BOB":                           "bob",
		"ＢＯＢ":                           "bob", // fullwidth: PRECIS width mapping
		"  Alice ":                      "alice",
		"Bob.Smith_1+x-y":               "bob.smith_1+x-y",
		"+8613800000001":                "+8613800000001",
		"13800000001":                   "13800000001",
		"\u212Aelvin":                   "kelvin", // KELVIN SIGN folds to k
		"alice~shop":                    "alice~shop",
		"vcase=abcde!weibo":             "vcase=abcde!weibo",
		"12":                            "12",
		strings.Repeat("a", MaxNameLen): strings.Repeat("a", MaxNameLen),
	}
	for in, want := range ok {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{ // input → what the error must name
		"":                                 "empty",
		"sp ace":                           `' ' (U+0020)`,
		"al#ice":                           `'#' (U+0023)`,
		"x@y":                              `'@' (U+0040)`,
		"a:b":                              `':'`,
		"José":                             `'é' (U+00E9)`,
		"bob\u00a0x":                       "U+00A0",
		"tab\tx":                           "U+0009",
		"a/b":                              `'/'`,
		"...":                              "no letter or digit",
		"a\xffb":                           "UTF-8",
		strings.Repeat("a", MaxNameLen+1):  "longer than 64",
		strings.Repeat("Ａ", MaxNameLen+1):  "longer than 64",
		strings.Repeat("Ａ", 10*MaxNameLen): "longer than",
		"Straße":                           `'ß' (U+00DF)`, // RFC 8265 lower-cases, it does not fold
	}
	for in, want := range bad {
		got, err := NormalizeName(in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeName(%q) = %q, %v; want ErrInvalid naming %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"alice~shop": `'~'`, "a!b": `'!'`, "x=y": `'='`} {
		if _, err := normalizeLocalName(in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("normalizeLocalName(%q) = %v; want reserved %s", in, err, want)
		}
	}
}

func TestDerivedName(t *testing.T) {
	cases := []struct {
		sep           byte
		site, account string
		n             int
		want          string
	}{
		{sepPartner, "shop", "alice", 1, "alice~shop"},
		{sepSocial, "weibo", "vcase", 1, "vcase!weibo"},
		{sepSocial, "weibo", "VCASE", 1, "vcase=" + accountHash("VCASE") + "!weibo"},
		{sepPartner, "shop", "bob#1", 1, "bob_1=" + accountHash("bob#1") + "~shop"},
		{sepSocial, "weibo", "张三", 1, "__=" + accountHash("张三") + "!weibo"},
		{sepPartner, "shop", "alice", 2, "alice=2~shop"},
		{sepSocial, "weibo", "VCASE", 3, "vcase=" + accountHash("VCASE") + "=3!weibo"},
	}
	for _, c := range cases {
		if got := derivedName(c.sep, c.site, c.account, c.n); got != c.want {
			t.Errorf("derivedName(%c, %s, %q, %d) = %q, want %q", c.sep, c.site, c.account, c.n, got, c.want)
		}
	}
	if accountHash("VCASE") == accountHash("vcase") || len(accountHash("x")) != hashLen {
		t.Fatal("hash is not a short hash of the exact account")
	}
	// Long accounts and sites still give valid names.
	long := derivedName(sepSocial, strings.Repeat("s", maxSiteLen), strings.Repeat("A", 300), maxCounter)
	if n, err := NormalizeName(long); err != nil || n != long {
		t.Fatalf("long derived name %q: %v", long, err)
	}
	if n := derivedName(sepPartner, "shop", strings.Repeat("a", 200), 1); !strings.Contains(n, "=") {
		t.Fatalf("a cut account must be hashed: %q", n)
	}
}

func testDir(t testing.TB) *Directory {
	t.Helper()
	d, err := Open(Options{Domain: "im.example", CountryCode: "86"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseAddress(t *testing.T) {
	d := testDir(t)
	ok := map[string]msg.Address{
		// numbers
		"+8613800000002":                    "+8613800000002",
		"13800000002":                       "+8613800000002",
		"013800000002":                      "+8613800000002",
		"008613800000002":                   "+8613800000002",
		"+86 138-0000-0002":                 "+8613800000002",
		"(138) 0000.0002":                   "+8613800000002",
		"tel:+86-138-0000-0002":             "+8613800000002",
		"TEL:13800000002":                   "+8613800000002",
		"tel:7042;phone-context=+1-212-555": "+12125557042",
		// SIP, foreign domains: user part case-sensitive
		"sip:Bob@Example.COM;transport=udp":         "sip:Bob@example.com",
		"SIP:Bob@Example.COM":                       "sip:Bob@example.com",
		"sips:Bob@example.com":                      "sip:Bob@example.com",
		"<sip:Bob@example.com>":                     "sip:Bob@example.com",
		"sip:bob:secret@example.com":                "sip:bob@example.com",
		"sip:bob@example.com:5070":                  "sip:bob@example.com:5070",
		"sip:bob@[2001:DB8::0:1]:5060":              "sip:bob@[2001:db8::1]:5060",
		"sip:bob@192.0.2.1":                         "sip:bob@192.0.2.1",
		"sip:%61lice@example.com":                   "sip:alice@example.com",
		"sip:a%2fb@example.com":                     "sip:a%2Fb@example.com",
		"sip:a%20b@example.com":                     "sip:a%20b@example.com",
		"sip:张@example.com":                         "sip:%E5%BC%A0@example.com",
		"sip:+8613800000002@example.com":            "sip:+8613800000002@example.com",
		"sip:+1-212-555-1212@gw.example;user=phone": "+12125551212",
		// SIP, our domain: user names, numbers
		"sip:Bob@IM.Example;transport=udp": "sip:bob@im.example",
		"sips:BOB@im.example":              "sip:bob@im.example",
		"sip:%42ob@im.example":             "sip:bob@im.example",
		"sip:+8613800000002@im.example":    "+8613800000002",
		"sip:13800000002@im.example":       "+8613800000002",
		"sip:bob@im.example:5060":          "sip:bob@im.example",
		// XMPP
		"xmpp:bob@example.com":                                  "xmpp:bob@example.com",
		"xmpp:Bob@Example.COM/phone":                            "xmpp:bob@example.com",
		"XMPP:ＢＯＢ@example.com":                                  "xmpp:bob@example.com",
		"xmpp://me@example.org/bob@example.com?message;body=hi": "xmpp:bob@example.com",
		"xmpp:j%C3%B6rg@example.com":                            "xmpp:jörg@example.com",
		"xmpp:a%3Fb@example.com":                                "xmpp:a%3Fb@example.com",
		// external accounts
		"partner:shop:bob":    "partner:shop:bob",
		"partner:Shop:Bob":    "partner:shop:Bob",
		"PARTNER:shop:bob#x":  "partner:shop:bob#x",
		"social:weibo:VCASE":  "social:weibo:VCASE",
		"social:weibo:a:b c":  "social:weibo:a:b c",
		"  social:weibo:张三  ": "social:weibo:张三",
	}
	for in, want := range ok {
		got, err := d.ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if again, err := d.ParseAddress(string(got)); err != nil || again != got {
			t.Errorf("ParseAddress(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
	bad := map[string]string{ // input → part of the reason
		"":                          "empty",
		"bob":                       "not an address",
		"bob@example.com":           "not an address",
		"mailto:bob@example.com":    "unsupported scheme",
		"alpha:FOO":                 "unsupported scheme",
		"sip:example.com":           "no user part",
		"sip:@example.com":          "empty user part",
		"sip:a b@example.com":       `' '`,
		"sip:a#b@example.com":       `'#'`,
		"sip:bob@exa mple.com":      `' '`,
		"sip:bob@example.com:0":     "port",
		"sip:bob@[::1":              "IPv6",
		"sip:a%zzb@example.com":     "escape",
		"sip:sp%20ace@im.example":   `' '`,
		"sip:al~x@im.example":       "",
		"+12ab":                     "non-digit",
		"0":                         "E.164",
		"tel:":                      "without a number",
		"xmpp:example.com":          "no localpart",
		"xmpp:a b@example.com":      `' '`,
		"xmpp:bob@example.com:5222": "port",
		"partner:shop":              "partner:<site>:<account>",
		"partner:sh op:bob":         `' '`,
		"partner:shop:":             "empty",
		"social:weibo: bob":         "white space",
		"social:weibo:a\x00b":       "U+0000",
		"partner::bob":              "site id is empty",
	}
	for in, want := range bad {
		got, err := d.ParseAddress(in)
		if in == "sip:al~x@im.example" { // a derived name: valid, resolves to that user
			if err != nil || got != "sip:al~x@im.example" {
				t.Errorf("ParseAddress(%q) = %q, %v", in, got, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddress(%q) = %q, %v; want ErrInvalid with %q", in, got, err, want)
		}
	}
}

// TestSIPComparison follows RFC 3261 §19.1.4: equivalent URIs have one
// canonical form, and URIs that are not equivalent keep two.
func TestSIPComparison(t *testing.T) {
	d := testDir(t)
	same := [][2]string{
		{"sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"},
		{"sip:carol@chicago.com", "sip:carol@chicago.com;security=on"},
		{"sip:alice@atlanta.com?subject=project%20x&priority=urgent", "sip:alice@AtLanTa.com?priority=urgent&subject=project%20x"},
		{"sip:a%2fb@h.example", "sip:a%2Fb@h.example"},       // escapes compare case-insensitively
		{"sip:%7Ebob@h.example", "sip:~bob@h.example"},       // unreserved escapes decoded
		{"sips:bob@h.example", "sip:bob@h.example"},          // folded on purpose (see ParseAddress)
		{"sip:BOB@im.example", "sip:bob@im.example"},         // our users are case-insensitive
		{"sip:bob@[2001:db8:0::1]", "sip:bob@[2001:DB8::1]"}, // IPv6 canonical
		{"sip:+8613800000001@im.example", "sip:13800000001@im.example"},
	}
	for _, p := range same {
		a, err1 := d.ParseAddress(p[0])
		b, err2 := d.ParseAddress(p[1])
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%q → %q (%v), %q → %q (%v): want equal", p[0], a, err1, p[1], b, err2)
		}
	}
	differ := [][2]string{
		{"SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"}, // user part is case-sensitive
		{"sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"},                              // port
		{"sip:a%2Fb@h.example", "sip:a/b@h.example"},                                   // reserved escapes are not decoded
		{"sip:bob@h.example", "xmpp:bob@h.example"},
	}
	for _, p := range differ {
		a, err1 := d.ParseAddress(p[0])
		b, err2 := d.ParseAddress(p[1])
		if err1 != nil || err2 != nil || a == b {
			t.Errorf("%q → %q (%v), %q → %q (%v): want different", p[0], a, err1, p[1], b, err2)
		}
	}
}
