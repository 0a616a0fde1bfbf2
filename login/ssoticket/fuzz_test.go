package ssoticket_test

import (
	"testing"

	"github.com/smsbridge/bridge/login/ssoticket"
)

// FuzzOpen: no input panics; whatever opens re-seals and opens to the same
// claims (so only a real seal under k1 can ever pass).
func FuzzOpen(f *testing.F) {
	f.Add("sso1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("sso1..")
	f.Add("")
	keys := map[string][32]byte{"k1": k1}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ssoticket.Open(s, keys)
		if err != nil {
			return
		}
		tk, err := ssoticket.Seal(k1, c)
		if err != nil {
			t.Fatalf("opened claims do not re-seal: %v", err)
		}
		c2, err := ssoticket.Open(tk, keys)
		if err != nil || c2 != c {
			t.Fatalf("round trip: %+v %v", c2, err)
		}
	})
}
