package smstext

import (
	"strings"
	"testing"
)

func BenchmarkEncodeGSM7(b *testing.B) {
	text := strings.Repeat("Hello {world} €5 Ä ñ @ ", 7)[:160]
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if dcs, _, err := Encode(text, Auto); err != nil || dcs != 0 {
			b.Fatal(dcs, err)
		}
	}
}

func BenchmarkDecodeGSM7(b *testing.B) {
	_, body, err := Encode(strings.Repeat("Hello {world} €5 Ä ñ @ ", 7)[:160], Auto)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(0, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeUCS2(b *testing.B) {
	_, body, err := Encode(strings.Repeat("短信😀", 23), ForceUCS2)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Decode(8, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitLong(b *testing.B) {
	text := strings.Repeat("A long SMS with an escape € now and then. ", 100) // ~4300 chars
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, parts, err := Split(text, Auto, 1, false); err != nil || len(parts) < 2 {
			b.Fatal(len(parts), err)
		}
	}
}
