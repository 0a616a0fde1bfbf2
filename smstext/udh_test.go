package smstext

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseUDH(t *testing.T) {
	for _, tc := range []struct {
		name string
		sm   []byte
		udh  int // UDH length incl. length octet
		c    Concat
	}{
		{"8-bit ref", []byte{0x05, 0x00, 0x03, 0x2A, 0x03, 0x02, 'h', 'i'}, 6, Concat{Ref: 0x2A, Total: 3, Seq: 2, Ok: true}},
		{"16-bit ref", []byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01, 'x'}, 7, Concat{Ref: 0x1234, Total: 2, Seq: 1, Ok: true}},
		{"other IE first", []byte{0x08, 0x24, 0x01, 0x01, 0x00, 0x03, 0x07, 0x02, 0x02}, 9, Concat{Ref: 7, Total: 2, Seq: 2, Ok: true}},
		{"no concat IE", []byte{0x03, 0x24, 0x01, 0x01, 'b'}, 4, Concat{}},
		{"empty UDH", []byte{0x00, 'b'}, 1, Concat{}},
		{"seq 0 ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x00}, 6, Concat{}},
		{"seq > total ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x03}, 6, Concat{}},
		{"total 0 ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x00, 0x00}, 6, Concat{}},
		{"last concat wins", []byte{0x0B, 0x00, 0x03, 0x01, 0x02, 0x01, 0x08, 0x04, 0x00, 0x09, 0x03, 0x03}, 12, Concat{Ref: 9, Total: 3, Seq: 3, Ok: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			udh, body, c, err := ParseUDH(tc.sm)
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.c || !bytes.Equal(udh, tc.sm[:tc.udh]) || !bytes.Equal(body, tc.sm[tc.udh:]) {
				t.Fatalf("got udh % X body % X %+v; want %+v", udh, body, c, tc.c)
			}
		})
	}
	for _, sm := range [][]byte{
		nil,
		{0x05, 0x00, 0x03, 0x01},             // length beyond message
		{0x03, 0x00, 0x03, 0x01},             // IE length beyond UDH
		{0x01, 0x00},                         // truncated IE header
		{0x04, 0x00, 0x02, 0x01, 0x02},       // concat IE too short
		{0x06, 0x08, 0x03, 0x01, 0x02, 0x03}, // 16-bit concat IE too short
	} {
		if _, _, _, err := ParseUDH(sm); !errors.Is(err, ErrUDH) {
			t.Errorf("ParseUDH(% X) err = %v, want ErrUDH", sm, err)
		}
	}
}
