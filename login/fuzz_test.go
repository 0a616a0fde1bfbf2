package login_test

import (
	"strings"
	"testing"

	"github.com/smsbridge/bridge/login"
)

// FuzzParseSocialToken: no input panics, and whatever parses re-signs to a
// token whose payload parses back to the same claims (so the split from the
// right is unambiguous).
func FuzzParseSocialToken(f *testing.F) {
	f.Add("Zmlyc3QubGFzdC5zZXNzLTEuMTcwMDAwMDMwMA.c5f1434f360d2c2c195269415bb15acbc787aa0555e7fdbcc552b9f6dba270f4")
	f.Add("")
	f.Add(".")
	f.Fuzz(func(t *testing.T, s string) {
		tok, payload, sig, err := login.ParseSocialToken(s)
		if err != nil {
			return
		}
		if len(sig) != 32 {
			t.Fatalf("signature of %d bytes accepted", len(sig))
		}
		again, err := login.SignSocialToken([]byte("k"), tok.UserID, tok.SessionID, tok.Expires)
		if err != nil {
			t.Fatalf("parsed claims %+v do not re-sign: %v", tok, err)
		}
		tok2, payload2, _, err := login.ParseSocialToken(again)
		if err != nil || tok2 != tok || payload2 != payload {
			t.Fatalf("round trip %+v %q → %+v %q %v", tok, payload, tok2, payload2, err)
		}
	})
}

// FuzzClassify: the kind agrees with the split helpers.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"alice", "alice#shop", "u1@fb", "a@im.example", "#", "@", "a#b@fb", "a@b#c"} {
		f.Add(s)
	}
	isSocial := func(s string) bool { return s == "fb" }
	f.Fuzz(func(t *testing.T, s string) {
		switch login.Classify(s, isSocial) {
		case login.Partner:
			u, site, ok := login.SplitPartner(s)
			if !ok || u == "" || site == "" || u+login.PartnerSep+site != s {
				t.Fatalf("partner %q splits to %q %q %v", s, u, site, ok)
			}
		case login.Social:
			a, site, ok := login.SplitSocial(s)
			_, _, alsoPartner := login.SplitPartner(s)
			if !ok || a == "" || site != "fb" || a+"@"+site != s || alsoPartner {
				t.Fatalf("social %q splits to %q %q %v", s, a, site, ok)
			}
		}
	})
}

// FuzzExternalUserName: every name is a SIP user part of the unreserved
// characters, deterministic, unhashed exactly for canonical accounts, and
// ends with the separator and the site.
func FuzzExternalUserName(f *testing.F) {
	for _, s := range [][3]string{{"partner", "shop", "alice"}, {"social", "weibo", "VCase"}, {"social", "fb", "bob smith"}, {"partner", "s", "ü~!="}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, kind, site, account string) {
		n, err := login.ExternalUserName(kind, site, account)
		if err != nil {
			return
		}
		again, _ := login.ExternalUserName(kind, site, account)
		sep := map[string]string{"partner": login.PartnerUserSep, "social": login.SocialUserSep}[kind]
		if again != n || sep == "" || !strings.HasSuffix(n, sep+site) {
			t.Fatalf("%q %q %q → %q", kind, site, account, n)
		}
		head := strings.TrimSuffix(n, sep+site)
		base, hash, hashed := strings.Cut(head, "=")
		if hashed != (head != account) || (hashed && len(hash) != 5) {
			t.Fatalf("%q → %q: hashed %v", account, n, hashed)
		}
		for _, c := range base + hash {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("%q → %q has %q", account, n, c)
			}
		}
	})
}
