package smstext

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// gsmBasicGolden is the 3GPP TS 23.038 §6.2.1 default alphabet as
// "septet unicode" pairs in hex, typed from the spec rather than copied from
// the codec's table. 0x1B (escape) is tested separately.
const gsmBasicGolden = `
00 0040 01 00A3 02 0024 03 00A5 04 00E8 05 00E9 06 00F9 07 00EC
08 00F2 09 00C7 0A 000A 0B 00D8 0C 00F8 0D 000D 0E 00C5 0F 00E5
10 0394 11 005F 12 03A6 13 0393 14 039B 15 03A9 16 03A0 17 03A8
18 03A3 19 0398 1A 039E 1C 00C6 1D 00E6 1E 00DF 1F 00C9
20 0020 21 0021 22 0022 23 0023 24 00A4 25 0025 26 0026 27 0027
28 0028 29 0029 2A 002A 2B 002B 2C 002C 2D 002D 2E 002E 2F 002F
30 0030 31 0031 32 0032 33 0033 34 0034 35 0035 36 0036 37 0037
38 0038 39 0039 3A 003A 3B 003B 3C 003C 3D 003D 3E 003E 3F 003F
40 00A1 41 0041 42 0042 43 0043 44 0044 45 0045 46 0046 47 0047
48 0048 49 0049 4A 004A 4B 004B 4C 004C 4D 004D 4E 004E 4F 004F
50 0050 51 0051 52 0052 53 0053 54 0054 55 0055 56 0056 57 0057
58 0058 59 0059 5A 005A 5B 00C4 5C 00D6 5D 00D1 5E 00DC 5F 00A7
60 00BF 61 0061 62 0062 63 0063 64 0064 65 0065 66 0066 67 0067
68 0068 69 0069 6A 006A 6B 006B 6C 006C 6D 006D 6E 006E 6F 006F
70 0070 71 0071 72 0072 73 0073 74 0074 75 0075 76 0076 77 0077
78 0078 79 0079 7A 007A 7B 00E4 7C 00F6 7D 00F1 7E 00FC 7F 00E0
`

// gsmExtGolden is the §6.2.1.1 extension table: septet after 0x1B, unicode.
const gsmExtGolden = `0A 000C 14 005E 28 007B 29 007D 2F 005C 3C 005B 3D 007E 3E 005D 40 007C 65 20AC`

func parseGolden(t *testing.T, s string) map[byte]rune {
	t.Helper()
	f := strings.Fields(s)
	m := map[byte]rune{}
	for i := 0; i+1 < len(f); i += 2 {
		c, err1 := strconv.ParseUint(f[i], 16, 8)
		r, err2 := strconv.ParseUint(f[i+1], 16, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad golden pair %q %q", f[i], f[i+1])
		}
		m[byte(c)] = rune(r)
	}
	return m
}

func TestGSM7BasicTableGolden(t *testing.T) {
	golden := parseGolden(t, gsmBasicGolden)
	if len(golden) != 127 {
		t.Fatalf("golden table has %d entries, want 127 (all but escape)", len(golden))
	}
	for c := 0; c < 128; c++ {
		if c == esc {
			continue
		}
		want := golden[byte(c)]
		got, err := Decode(0, []byte{byte(c)})
		if err != nil || got != string(want) {
			t.Errorf("Decode(0x%02X) = %q, %v; want %q (U+%04X)", c, got, err, want, want)
		}
		dcs, body, err := Encode(string(want), Auto)
		if err != nil || dcs != 0 || !bytes.Equal(body, []byte{byte(c)}) {
			t.Errorf("Encode(%q) = %d % X, %v; want dcs 0, %02X", want, dcs, body, err, c)
		}
	}
}

func TestGSM7ExtensionGolden(t *testing.T) {
	golden := parseGolden(t, gsmExtGolden)
	if len(golden) != 10 {
		t.Fatalf("golden has %d entries", len(golden))
	}
	for c, want := range golden {
		got, err := Decode(0, []byte{esc, c})
		if err != nil || got != string(want) {
			t.Errorf("Decode(1B %02X) = %q, %v; want %q", c, got, err, want)
		}
		dcs, body, err := Encode(string(want), Auto)
		if err != nil || dcs != 0 || !bytes.Equal(body, []byte{esc, c}) {
			t.Errorf("Encode(%q) = %d % X, %v; want 1B %02X", want, dcs, body, err, c)
		}
	}
	// Spot checks the brief names explicitly.
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte{0x00}, "@"}, {[]byte{0x02}, "$"}, {[]byte{0x11}, "_"}, {[]byte{0x1B, 0x65}, "€"},
		{[]byte{0x24}, "¤"}, {[]byte{0x40}, "¡"}, {[]byte{0x60}, "¿"}, {[]byte{0x5B}, "Ä"},
	} {
		if got, _ := Decode(0, tc.in); got != tc.want {
			t.Errorf("Decode(% X) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGSM7EscapeEdgeCases(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte{0x41, esc}, "A "},         // trailing escape shows as space
		{[]byte{esc, 0x41}, "A"},          // undefined extension: default char
		{[]byte{esc, esc, 0x65}, " €"},    // 1B1B reserved: space, then 1B65
		{[]byte{esc, 0x0A, 0x0A}, "\f\n"}, // form feed, then line feed
		{[]byte("Hello"), "Hello"},        // ASCII letters are identical
		{[]byte{0x1B, 0x14, 0x1B, 0x2F}, `^\`},
	} {
		got, err := Decode(0, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Decode(% X) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range [][]byte{{0x80}, {0x41, 0xFF}, {esc, 0x80}} {
		if _, err := Decode(0, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(0, % X) err = %v, want ErrInvalid", in, err)
		}
	}
}

func TestEncodeChoosesAlphabet(t *testing.T) {
	for _, tc := range []struct {
		text string
		pref Preference
		dcs  byte
		body string // hex
	}{
		{"Hi {x}", Auto, 0, "4869201B28781B29"},
		{"€5", Auto, 0, "1B6535"},
		{"ç", Auto, 8, "00E7"}, // lower-case c-cedilla is not in the table (0x09 is Ç)
		{"Hi", ForceUCS2, 8, "00480069"},
		{"café", ForceLatin1, 3, "636166E9"},
		{"ÿ€", ForceLatin1, 8, "00FF20AC"},
		{"😀", Auto, 8, "D83DDE00"},
		{"", Auto, 0, ""},
	} {
		dcs, body, err := Encode(tc.text, tc.pref)
		if err != nil || dcs != tc.dcs || hex.EncodeToString(body) != strings.ToLower(tc.body) {
			t.Errorf("Encode(%q, %v) = %d %X, %v; want %d %s", tc.text, tc.pref, dcs, body, err, tc.dcs, tc.body)
		}
	}
	if _, _, err := Encode("bad \xff", Auto); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid UTF-8: err = %v", err)
	}
	if _, _, err := Encode("x", Preference(9)); err == nil {
		t.Error("unknown preference: no error")
	}
}

func TestDecodeUCS2(t *testing.T) {
	for _, tc := range []struct {
		hex, want string
	}{
		{"00480069", "Hi"},
		{"D83DDE00", "😀"},
		{"4F60597DD83DDC4B", "你好👋"},
		{"DC00", "\uFFFD"},      // lone low surrogate
		{"D83D0041", "\uFFFDA"}, // high surrogate not followed by a low one
		{"0000", "\x00"},
		{"", ""},
	} {
		b, _ := hex.DecodeString(tc.hex)
		got, err := Decode(8, b)
		if err != nil || got != tc.want {
			t.Errorf("Decode(8, %s) = %q, %v; want %q", tc.hex, got, err, tc.want)
		}
	}
	for _, b := range [][]byte{{0x00, 0x41, 0x00}, {0x00, 0x41, 0xD8, 0x3D}, {0xD8, 0x3D}, {0x41}} {
		if _, err := Decode(8, b); !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(8, % X) err = %v, want ErrInvalid", b, err)
		}
	}
	// Emoji both ways.
	dcs, body, err := Encode("ok 👍🏽", Auto)
	if err != nil || dcs != 8 {
		t.Fatal(dcs, err)
	}
	if got, _ := Decode(dcs, body); got != "ok 👍🏽" {
		t.Errorf("round trip = %q", got)
	}
	if hex.EncodeToString(body) != "006f006b0020d83ddc4dd83cdffd" {
		t.Errorf("body = %x", body)
	}
}

func TestDecodeOtherAlphabets(t *testing.T) {
	for _, tc := range []struct {
		dcs  byte
		in   []byte
		want string
	}{
		{1, []byte("plain {ascii} ~"), "plain {ascii} ~"},
		{3, []byte{0x63, 0x61, 0x66, 0xE9, 0xA3, 0xFF}, "café£ÿ"},
		{2, []byte{0xFF, 0x00, 0x80}, "\xff\x00\x80"}, // binary comes back as is
		{4, []byte{0xDE, 0xAD}, "\xde\xad"},
		{6, []byte{0xA1, 0xB0, 0xEF, 0xF0, 0xFD, 0xFF, 0x41}, "ЁАя№§џA"},
		{7, []byte{0xE0, 0xFA, 0xAA, 0xBA, 0x41}, "את×÷A"},
		{0x11, []byte{0x00, 0x1B, 0x65}, "@€"}, // general group, GSM7, class 1
		{0x18, []byte{0x00, 0x41}, "A"},        // general group, UCS2
		{0x14, []byte{0xFF}, "\xff"},           // general group, 8-bit
		{0xF0, []byte{0x00}, "@"},              // data coding group, GSM7
		{0xF5, []byte{0x01, 0x02}, "\x01\x02"}, // data coding group, 8-bit
		{0xC8, []byte{0x41}, "A"},              // MWI discard, GSM7
		{0xE0, []byte{0x04, 0x10}, "А"},        // MWI store, UCS2 (Cyrillic A)
		{0x41, []byte{0x41}, "A"},              // auto-deletion group, GSM7
	} {
		got, err := Decode(tc.dcs, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Decode(%#x, % X) = %q, %v; want %q", tc.dcs, tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		dcs byte
		in  []byte
		err error
	}{
		{1, []byte{0x80}, ErrInvalid},
		{7, []byte{0xA1}, ErrInvalid},
		{5, []byte{0x41}, ErrUnsupported},
		{0x0E, []byte{0x41}, ErrUnsupported},
		{0x24, []byte{0x41}, ErrUnsupported}, // compressed
		{0x1C, []byte{0x41}, ErrUnsupported}, // reserved alphabet
		{0x90, []byte{0x41}, ErrUnsupported}, // reserved group
	} {
		if _, err := Decode(tc.dcs, tc.in); !errors.Is(err, tc.err) {
			t.Errorf("Decode(%#x) err = %v, want %v", tc.dcs, err, tc.err)
		}
	}
}

func TestPackUnpackGolden(t *testing.T) {
	for _, tc := range []struct {
		text, packed string
	}{
		{"hellohello", "E8329BFD4697D9EC37"},
		{"hello", "E8329BFD06"},
		{"1234567", "31D98C56B3DD00"}, // 7 septets: last octet has 7 spare bits
		{"12345678", "31D98C56B3DD70"},
		{"", ""},
	} {
		_, septets, err := Encode(tc.text, Auto)
		if err != nil {
			t.Fatal(err)
		}
		got := Pack7(septets)
		if !strings.EqualFold(hex.EncodeToString(got), tc.packed) {
			t.Errorf("Pack7(%q) = %X, want %s", tc.text, got, tc.packed)
		}
		if back := Unpack7(got, len(septets)); !bytes.Equal(back, septets) {
			t.Errorf("Unpack7(%X) = % X, want % X", got, back, septets)
		}
	}
	// Escapes pack like any septet; asking for more septets than there are
	// returns only those present; the high bit of an input byte is ignored.
	p := Pack7([]byte{esc, 0x65})
	if got := Unpack7(p, 2); !bytes.Equal(got, []byte{esc, 0x65}) {
		t.Errorf("escape round trip % X", got)
	}
	if got := Unpack7([]byte{0xE8, 0x32}, 10); len(got) != 2 {
		t.Errorf("Unpack7 over-long n = %d septets", len(got))
	}
	if !bytes.Equal(Pack7([]byte{0xC1}), Pack7([]byte{0x41})) {
		t.Error("Pack7 did not mask the high bit")
	}
	if got := Unpack7(nil, -1); len(got) != 0 {
		t.Errorf("Unpack7(nil,-1) = %v", got)
	}
}

func TestEncodeDecodeIdentity(t *testing.T) {
	texts := []string{
		"Hello @ £ $ ¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É ¤ ¡ Ä Ö Ñ Ü § ¿ ä ö ñ ü à",
		"ext: ^ { } \\ [ ~ ] | € \f end",
		"mixed 中文 and emoji 🎉👨‍👩‍👧",
		"line\r\nbreaks\n",
		"\x00nul",
	}
	for _, s := range texts {
		for _, pref := range []Preference{Auto, ForceUCS2, ForceLatin1} {
			dcs, body, err := Encode(s, pref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(dcs, body)
			if err != nil || got != s {
				t.Errorf("%v: Decode(Encode(%q)) = %q, %v", pref, s, got, err)
			}
		}
	}
	if !utf8.ValidString(texts[2]) {
		t.Fatal("test text invalid")
	}
}
