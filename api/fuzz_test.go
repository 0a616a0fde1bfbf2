package api

import (
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/directory"
)

// FuzzMessageRequest: any body is either a message with normalized parties
// and non-empty text, or an error; never a panic.
func FuzzMessageRequest(f *testing.F) {
	f.Add([]byte(`{"from":"+8613800000001","to":"sip:alice@im.example","text":"hi"}`))
	f.Add([]byte(`{"from":"13800000001","to":"0044123456789","text":"x","receipt":true,"ref":"r"}`))
	f.Add([]byte(`{"from":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseSendRequest(body, "86")
		if err != nil {
			return
		}
		if m.Text == "" || m.From == "" || m.To == "" || strings.HasPrefix(string(m.To), "alpha:") {
			t.Fatalf("accepted %q as %+v", body, m)
		}
	})
}

// FuzzPresenceRequest: an accepted binding has a contact and a future
// expiry within the bound.
func FuzzPresenceRequest(f *testing.F) {
	f.Add([]byte(`{"contact":"sip:alice@10.0.0.5","expires_in":300}`))
	f.Add([]byte(`{"contact":"xmpp:a@b/c","via":"xmpp","expires_in":604800}`))
	f.Add([]byte(`{"contact":"javascript:alert(1)","expires_in":60}`))
	f.Add([]byte(`{"contact":" ","expires_in":-1}`))
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := ParsePresenceRequest(body, "+8613800000001", now)
		if err != nil {
			return
		}
		if scheme, _, _ := strings.Cut(strings.ToLower(b.Contact), ":"); b.Via == "sip" && scheme != "sip" && scheme != "sips" {
			t.Fatalf("accepted %q: contact %q via sip", body, b.Contact)
		}
		if b.Contact == "" || !b.Expires.After(now) || b.Expires.Sub(now) > MaxPresenceSeconds*time.Second || b.Via == "" {
			t.Fatalf("accepted %q as %+v", body, b)
		}
	})
}

// FuzzUserRequest: decoding a user body then provisioning it either fails
// cleanly or yields a user whose credential never shows in its JSON form.
func FuzzUserRequest(f *testing.F) {
	f.Add([]byte(`{"name":"alice","password":"pw","msisdn":"13800000001","display":"A"}`))
	f.Add([]byte(`{"name":"Bob","ha1":"0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"name":"x","password":"p","ha1":"y"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var spec directory.UserSpec
		if err := decodeStrict(body, &spec); err != nil {
			return
		}
		s, err := directory.Open(directory.Options{Domain: "im.example", CountryCode: "86"})
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(t.Context(), spec)
		if err != nil {
			return
		}
		if u.Name != strings.ToLower(u.Name) || len(u.Addresses) == 0 {
			t.Fatalf("bad user %+v from %q", u, body)
		}
	})
}
