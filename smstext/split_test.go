package smstext

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// joinParts decodes each part on its own (as a receiver that does not
// reassemble would) and concatenates the texts.
func joinParts(t testing.TB, dcs byte, parts []Part) string {
	t.Helper()
	var sb strings.Builder
	for i, p := range parts {
		s, err := Decode(dcs, p.Body)
		if err != nil {
			t.Fatalf("part %d does not decode alone: %v", i+1, err)
		}
		sb.WriteString(s)
	}
	return sb.String()
}

// checkUDH verifies each part's UDH is a well-formed concatenation header.
func checkUDH(t *testing.T, parts []Part, ref uint16, ref16 bool) {
	t.Helper()
	for i, p := range parts {
		_, body, c, err := ParseUDH(append(append([]byte{}, p.UDH...), p.Body...))
		if err != nil || !c.Ok {
			t.Fatalf("part %d UDH % X: %+v %v", i+1, p.UDH, c, err)
		}
		wantRef := ref
		if !ref16 {
			wantRef = ref & 0xFF
		}
		if c.Ref != wantRef || int(c.Total) != len(parts) || int(c.Seq) != i+1 || !bytes.Equal(body, p.Body) {
			t.Fatalf("part %d concat %+v, want ref %d total %d seq %d", i+1, c, wantRef, len(parts), i+1)
		}
	}
}

func bodyLens(parts []Part) []int {
	var n []int
	for _, p := range parts {
		n = append(n, len(p.Body))
	}
	return n
}

func TestSplitBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		pref  Preference
		ref16 bool
		dcs   byte
		lens  []int // body octets per part
	}{
		{"160 gsm", strings.Repeat("a", 160), Auto, false, 0, []int{160}},
		{"161 gsm", strings.Repeat("a", 161), Auto, false, 0, []int{153, 8}},
		{"161 gsm ref16", strings.Repeat("a", 161), Auto, true, 0, []int{152, 9}},
		{"306 gsm", strings.Repeat("a", 306), Auto, false, 0, []int{153, 153}},
		{"307 gsm", strings.Repeat("a", 307), Auto, false, 0, []int{153, 153, 1}},
		{"80 euro = 160 septets", strings.Repeat("€", 80), Auto, false, 0, []int{160}},
		{"70 ucs2", strings.Repeat("中", 70), Auto, false, 8, []int{140}},
		{"71 ucs2", strings.Repeat("中", 71), Auto, false, 8, []int{134, 8}},
		{"71 ucs2 ref16", strings.Repeat("中", 71), Auto, true, 8, []int{132, 10}},
		{"35 emoji = 70 units", strings.Repeat("😀", 35), Auto, false, 8, []int{140}},
		{"140 latin1", strings.Repeat("é", 140), ForceLatin1, false, 3, []int{140}},
		{"141 latin1", strings.Repeat("é", 141), ForceLatin1, false, 3, []int{134, 7}},
		{"141 latin1 ref16", strings.Repeat("é", 141), ForceLatin1, true, 3, []int{133, 8}},
		{"forced ucs2", strings.Repeat("a", 71), ForceUCS2, false, 8, []int{134, 8}},
		// The escape of "€" would be septet 153 of part 1: the whole
		// sequence moves to part 2, part 1 has 152 septets.
		{"escape straddles", strings.Repeat("a", 152) + "€" + strings.Repeat("b", 10), Auto, false, 0, []int{152, 12}},
		// One septet earlier it fits exactly.
		{"escape fits", strings.Repeat("a", 151) + "€" + strings.Repeat("b", 10), Auto, false, 0, []int{153, 10}},
		// The high surrogate of the emoji would be unit 67 of part 1.
		{"emoji straddles", strings.Repeat("中", 66) + "😀" + strings.Repeat("中", 5), Auto, false, 8, []int{132, 14}},
		{"emoji fits", strings.Repeat("中", 65) + "😀" + strings.Repeat("中", 5), Auto, false, 8, []int{134, 10}},
		{"emoji straddles ref16", strings.Repeat("中", 65) + "😀" + strings.Repeat("中", 5), Auto, true, 8, []int{130, 14}},
		{"empty", "", Auto, false, 0, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dcs, parts, err := Split(tc.text, tc.pref, 0x1234, tc.ref16)
			if err != nil {
				t.Fatal(err)
			}
			if dcs != tc.dcs {
				t.Errorf("dcs = %d, want %d", dcs, tc.dcs)
			}
			if got := bodyLens(parts); !equalInts(got, tc.lens) {
				t.Errorf("part lengths = %v, want %v", got, tc.lens)
			}
			if len(parts) == 1 {
				if len(parts[0].UDH) != 0 {
					t.Errorf("single part has UDH % X", parts[0].UDH)
				}
			} else {
				checkUDH(t, parts, 0x1234, tc.ref16)
			}
			if got := joinParts(t, dcs, parts); got != tc.text {
				t.Errorf("joined parts = %q", got)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSplitUDHBytes(t *testing.T) {
	_, parts, err := Split(strings.Repeat("x", 200), Auto, 0xABCD, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x05, 0x00, 0x03, 0xCD, 0x02, 0x02}; !bytes.Equal(parts[1].UDH, want) {
		t.Errorf("8-bit UDH = % X, want % X", parts[1].UDH, want)
	}
	_, parts, err = Split(strings.Repeat("x", 200), Auto, 0xABCD, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x06, 0x08, 0x04, 0xAB, 0xCD, 0x02, 0x01}; !bytes.Equal(parts[0].UDH, want) {
		t.Errorf("16-bit UDH = % X, want % X", parts[0].UDH, want)
	}
}

func TestSplitTooLong(t *testing.T) {
	// 255 parts of 153 septets fit; one more septet does not.
	_, parts, err := Split(strings.Repeat("a", 255*153), Auto, 1, false)
	if err != nil || len(parts) != 255 {
		t.Fatalf("255 parts: %d, %v", len(parts), err)
	}
	if _, _, err := Split(strings.Repeat("a", 255*153+1), Auto, 1, false); !errors.Is(err, ErrTooLong) {
		t.Fatalf("256 parts: err = %v", err)
	}
	if _, _, err := Split("\xff", Auto, 1, false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid UTF-8: err = %v", err)
	}
}

func TestSplitChinese1000ReassemblesOutOfOrder(t *testing.T) {
	text := strings.Repeat("短信网关测试文本", 125) // 1000 characters
	dcs, parts, err := Split(text, Auto, 77, false)
	if err != nil {
		t.Fatal(err)
	}
	if dcs != 8 || len(parts) != 15 {
		t.Fatalf("dcs %d, %d parts; want 8, 15", dcs, len(parts))
	}
	for i, p := range parts[:14] {
		if len(p.Body) != 134 {
			t.Fatalf("part %d has %d octets, want 134 (67 units)", i+1, len(p.Body))
		}
	}
	if len(parts[14].Body) != 2*(1000-14*67) {
		t.Fatalf("last part %d octets", len(parts[14].Body))
	}
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	k := Key{Source: "8613900000001", Dest: "8613800000010", Ref: 77}
	order := []int{14, 3, 0, 7, 12, 1, 9, 5, 13, 2, 11, 6, 10, 8, 4}
	var done *Assembled
	for n, i := range order {
		sm := append(append([]byte{}, parts[i].UDH...), parts[i].Body...)
		_, body, c, err := ParseUDH(sm)
		if err != nil || !c.Ok {
			t.Fatal(err)
		}
		a, err := r.Add(Key{Source: k.Source, Dest: k.Dest, Ref: c.Ref}, c.Total, c.Seq, dcs, body)
		if err != nil {
			t.Fatal(err)
		}
		if (a != nil) != (n == len(order)-1) {
			t.Fatalf("after %d parts: assembled = %v", n+1, a != nil)
		}
		done = a
	}
	if done.Text != text || done.Parts != 15 || done.Missing != 0 || done.Key != k {
		t.Fatalf("assembled %+v", *done)
	}
}
