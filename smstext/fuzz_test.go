package smstext

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip: any valid UTF-8 text survives Encode/Decode in every
// preference, and Split with Auto into parts that each decode alone, stay
// within one SMS, carry a valid UDH and reassemble (in reverse order) to the
// original.
func FuzzRoundTrip(f *testing.F) {
	f.Add("hello", uint16(1), false)
	f.Add(strings.Repeat("a", 152)+"€b", uint16(7), false)
	f.Add(strings.Repeat("中", 66)+"😀", uint16(300), true)
	f.Fuzz(func(t *testing.T, text string, ref uint16, ref16 bool) {
		if !utf8.ValidString(text) {
			if _, _, err := Encode(text, Auto); err == nil {
				t.Fatal("invalid UTF-8 encoded without error")
			}
			return
		}
		for _, pref := range []Preference{Auto, ForceUCS2, ForceLatin1} {
			dcs, body, err := Encode(text, pref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(dcs, body)
			if err != nil || got != text {
				t.Fatalf("%v: Decode(Encode(%q)) = %q, %v", pref, text, got, err)
			}
		}
		dcs, parts, err := Split(text, Auto, ref, ref16)
		if errors.Is(err, ErrTooLong) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := joinParts(t, dcs, parts); got != text {
			t.Fatalf("joined parts %q != %q", got, text)
		}
		r := NewReassembler(ReassemblyConfig{}, fixedClock())
		var done *Assembled
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			if dcs == 0 {
				limit := 160 // septets
				if len(p.UDH) > 0 {
					limit -= (len(p.UDH)*8 + 6) / 7 // UDH padded to septets
				}
				if len(p.Body) > limit {
					t.Fatalf("part %d: %d septets > %d", i+1, len(p.Body), limit)
				}
			} else if len(p.UDH)+len(p.Body) > 140 {
				t.Fatalf("part %d: UDH %d + body %d octets > 140", i+1, len(p.UDH), len(p.Body))
			}
			if len(parts) == 1 {
				break
			}
			_, body, c, err := ParseUDH(append(append([]byte{}, p.UDH...), p.Body...))
			if err != nil || !c.Ok || int(c.Seq) != i+1 || !bytes.Equal(body, p.Body) {
				t.Fatalf("part %d UDH: %+v %v", i+1, c, err)
			}
			a, err := r.Add(Key{Source: "s", Dest: "d", Ref: c.Ref}, c.Total, c.Seq, dcs, body)
			if err != nil {
				t.Fatal(err)
			}
			done = a
		}
		if len(parts) > 1 && (done == nil || done.Text != text) {
			t.Fatalf("reassembled %+v, want %q", done, text)
		}
	})
}

// FuzzDecode: any dcs and bytes decode or fail, never panic; GSM 7-bit
// output re-encodes to a body that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(byte(0), []byte("hello\x1b\x65"))
	f.Add(byte(8), []byte{0xD8, 0x3D, 0xDE, 0x00})
	f.Add(byte(8), []byte{0xD8, 0x3D})
	f.Add(byte(3), []byte{0xE9})
	f.Add(byte(0xF4), []byte{0xFF})
	f.Fuzz(func(t *testing.T, dcs byte, b []byte) {
		s, err := Decode(dcs, b)
		if err != nil {
			return
		}
		switch alphabetOf(dcs) {
		case alpha8bit:
			if s != string(b) {
				t.Fatalf("binary changed: %q", s)
			}
			return
		case alphaGSM7:
			d2, body, err := Encode(s, Auto)
			if err != nil || d2 != 0 {
				t.Fatalf("GSM text %q re-encodes as dcs %d: %v", s, d2, err)
			}
			if s2, err := Decode(0, body); err != nil || s2 != s {
				t.Fatalf("re-decode %q != %q", s2, s)
			}
		}
		if !utf8.ValidString(s) {
			t.Fatalf("Decode(%#x) returned invalid UTF-8 %q", dcs, s)
		}
	})
}

// FuzzParseUDH: never panics; udh+body is the input; a reported concat is
// valid.
func FuzzParseUDH(f *testing.F) {
	f.Add([]byte{0x05, 0x00, 0x03, 0x2A, 0x03, 0x02, 'h', 'i'})
	f.Add([]byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01})
	f.Add([]byte{0x03, 0x00, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, sm []byte) {
		udh, body, c, err := ParseUDH(sm)
		if err != nil {
			return
		}
		if !bytes.Equal(append(append([]byte{}, udh...), body...), sm) || len(udh) != int(sm[0])+1 {
			t.Fatalf("udh % X + body % X != % X", udh, body, sm)
		}
		if c.Ok && (c.Total == 0 || c.Seq == 0 || c.Seq > c.Total) {
			t.Fatalf("invalid concat reported %+v", c)
		}
	})
}

// FuzzParseReceipt: never panics; what parses formats and parses back to
// the same id and stat.
func FuzzParseReceipt(f *testing.F) {
	f.Add("id:7 sub:001 dlvrd:001 submit date:2503010905 done date:2503010906 stat:DELIVRD err:000 text:ok")
	f.Add("ID:ab SUBMIT_DATE:250301090507 stat:x")
	f.Add("id: sub:1")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReceipt(s)
		if err != nil {
			return
		}
		if r.ID == "" {
			t.Fatal("parsed receipt without id")
		}
		if strings.ContainsAny(r.ID, " \t\r\n") || strings.ContainsAny(r.Stat, " \t\r\n") {
			return // such ids cannot survive the space-separated form
		}
		r2, err := ParseReceipt(FormatReceipt(r))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", FormatReceipt(r), err)
		}
		if r2.ID != r.ID || r2.Stat != r.Stat || r2.Sub != r.Sub && r.Sub >= 0 && r.Sub < 1000 {
			t.Fatalf("re-parse %+v != %+v", r2, r)
		}
	})
}
