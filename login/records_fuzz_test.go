package login

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseSeen: no input panics; what parses formats back to a file that
// parses to the same entries, and every entry is one formatSeen can write.
func FuzzParseSeen(f *testing.F) {
	f.Add([]byte("# bridge sso seen v1\n0123abcd 1700000120\n"))
	f.Add([]byte(""))
	f.Add([]byte("a 1\nb 2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseSeen(data)
		if err != nil {
			return
		}
		again, err := parseSeen(formatSeen(es))
		if err != nil || len(again) != len(es) {
			t.Fatalf("round trip of %q: %v %v", data, again, err)
		}
		for i := range es {
			if es[i] != again[i] || es[i].until <= 0 || bytes.ContainsAny([]byte(es[i].id), " \n#") {
				t.Fatalf("entry %d: %+v → %+v", i, es[i], again[i])
			}
		}
	})
}

// FuzzCredRecord: no stored value panics the loader; a record that decodes
// re-encodes to one that decodes the same.
func FuzzCredRecord(f *testing.F) {
	f.Add([]byte(`{"ha1":"0123456789abcdef0123456789abcdef","realm":"im.example","iat":1700000000000000000,"exp":1700043200000000000}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"ha1":"0123456789ABCDEF0123456789ABCDEF","realm":"r","iat":1,"exp":1}`))
	f.Fuzz(func(t *testing.T, val []byte) {
		r, err := decodeCredRecord(val)
		if err != nil {
			return
		}
		r2, err := decodeCredRecord(r.encode())
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v → %+v %v", r, r2, err)
		}
	})
}

// FuzzSocialRecord: a stored social expiry decodes only from its canonical
// form, and encodes back to exactly those bytes.
func FuzzSocialRecord(f *testing.F) {
	f.Add([]byte("1700000300"))
	f.Add([]byte("0"))
	f.Add([]byte("+1"))
	f.Add([]byte("01"))
	f.Fuzz(func(t *testing.T, val []byte) {
		until, err := decodeSocialRecord(val)
		if err != nil {
			return
		}
		if got := encodeSocialRecord(until); !bytes.Equal(got, val) {
			t.Fatalf("%q → %v → %q", val, until, got)
		}
		if until.Sub(time.Unix(0, 0)) <= 0 {
			t.Fatalf("non-positive expiry %q", val)
		}
	})
}

// FuzzCredKey: a key splits only into a user and device that join back to it.
func FuzzCredKey(f *testing.F) {
	f.Add([]byte("login/cred/alice~shop\x00phone"))
	f.Add([]byte("login/cred/\x00x"))
	f.Add([]byte("login/cred/a\x00b\x00c"))
	f.Fuzz(func(t *testing.T, key []byte) {
		user, device, ok := splitCredKey(key)
		if !ok {
			return
		}
		if !bytes.Equal(credKey(user, device), key) || !validUser(user) || !validDevice(device) {
			t.Fatalf("%q → %q %q", key, user, device)
		}
	})
}
