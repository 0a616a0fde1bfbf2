package codec

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode of arbitrary bytes never panics; whatever it accepts
// re-encodes to a frame that decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range sample(f) {
		fr, _ := Encode(nil, m)
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		msg, err := NewDecoder(false).Decode(nil, frame)
		if err == nil {
			fr, err := Encode(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(nil, fr)
			if err != nil || !bytes.Equal(back, msg) {
				t.Fatalf("re-encoded decode differs: %v", err)
			}
		}
		d := NewDecoder(true)
		_, _ = d.Decode(nil, frame)
		_, _ = d.Decode(nil, frame)
	})
}

// FuzzRoundTrip: Encode then Decode is the identity, stateless and
// stateful (the message sent twice, so the second uses the state).
func FuzzRoundTrip(f *testing.F) {
	for _, m := range sample(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		fr, err := Encode(nil, msg)
		if err != nil {
			if len(msg) > MaxMessageSize {
				return
			}
			t.Fatal(err)
		}
		got, err := Decode(nil, fr)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("stateless: err %v\n got %q\nwant %q", err, got, msg)
		}
		e, d := NewEncoder(true), NewDecoder(true)
		for i := range 2 {
			fr, err := e.Encode(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Decode(nil, fr)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("stateful #%d: err %v\n got %q\nwant %q", i, err, got, msg)
			}
		}
	})
}
