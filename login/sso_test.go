package login_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/ssoticket"
)

var wikiKey = [32]byte{0xaa, 0xbb, 0xcc}

func newIssuer(t *testing.T, clk func() time.Time) *login.Issuer {
	t.Helper()
	is, err := login.NewIssuer([]login.Service{
		{ID: "wiki", KeyID: "wiki-2025", Key: wikiKey, TTL: time.Minute},
		{ID: "mail", KeyID: "mail-1", Key: [32]byte{1}},
	}, clk)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestIssuerTicket(t *testing.T) {
	clk := newClock()
	is := newIssuer(t, clk.Now)
	if got := is.Services(); len(got) != 2 || got[0] != "mail" || got[1] != "wiki" {
		t.Fatalf("services %v", got)
	}
	tk, claims, err := is.IssueClaims("alice~shop@"+domain, "Alice", "wiki")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tk, "sso1.wiki-2025.") {
		t.Fatalf("header of %q", tk)
	}
	keys := map[string][32]byte{"wiki-2025": wikiKey}
	c, err := ssoticket.Verifier{Keys: keys, Service: "wiki", Now: clk.Now}.Verify(tk)
	if err != nil {
		t.Fatal(err)
	}
	if c != claims || c.User != "alice~shop@"+domain || c.Display != "Alice" || c.IssuedAt != clk.Now().Unix() || c.Expires != clk.Now().Add(time.Minute).Unix() {
		t.Fatalf("claims %+v / %+v", c, claims)
	}
	// a ticket for mail does not open at the wiki (other key id, other key)
	mail, err := is.Issue("alice", "mail")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (ssoticket.Verifier{Keys: keys, Service: "wiki", Now: clk.Now}).Verify(mail); !errors.Is(err, ssoticket.ErrUnknownKey) {
		t.Fatalf("mail ticket at wiki: %v", err)
	}
	clk.Advance(61 * time.Second)
	if _, err := (ssoticket.Verifier{Keys: keys, Service: "wiki", Now: clk.Now}).Verify(tk); !errors.Is(err, ssoticket.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := is.Issue("alice", "nope"); !errors.Is(err, login.ErrUnknownService) {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := is.Issue("", "wiki"); err == nil {
		t.Fatal("empty user accepted")
	}
}

func TestNewIssuerValidates(t *testing.T) {
	for name, s := range map[string][]login.Service{
		"no id":     {{KeyID: "k", Key: wikiKey}},
		"bad kid":   {{ID: "a", KeyID: "k.1", Key: wikiKey}},
		"zero key":  {{ID: "a", KeyID: "k"}},
		"duplicate": {{ID: "a", KeyID: "k", Key: wikiKey}, {ID: "a", KeyID: "k2", Key: wikiKey}},
	} {
		if _, err := login.NewIssuer(s, nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func runCLI(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := login.RunSSOCLI(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSSOCLI(t *testing.T) {
	is := newIssuer(t, nil) // real clock: the CLI verifies against time.Now
	tk, err := is.Issue("alice@"+domain, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	keyHex := hex.EncodeToString(wikiKey[:])

	code, out, errOut := runCLI("", "verify", "--key-id", "wiki-2025", "--key", keyHex, "--service", "wiki", tk)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var c ssoticket.Claims
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.User != "alice@"+domain || c.Service != "wiki" {
		t.Fatalf("output %q: %v", out, err)
	}
	// ticket on stdin
	if code, out, _ := runCLI(tk+"\n", "verify", "--key-id", "wiki-2025", "--key", keyHex); code != 0 || !strings.Contains(out, `"sub": "alice@`+domain) {
		t.Fatalf("stdin: %d %q", code, out)
	}
	other := [32]byte{7}
	tampered := tk[:len(tk)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tk, "AA")]
	for name, args := range map[string][]string{
		"tampered":      {"verify", "--key-id", "wiki-2025", "--key", keyHex, tampered},
		"wrong key":     {"verify", "--key-id", "wiki-2025", "--key", hex.EncodeToString(other[:]), tk},
		"wrong key id":  {"verify", "--key-id", "wiki-2024", "--key", keyHex, tk},
		"wrong service": {"verify", "--key-id", "wiki-2025", "--key", keyHex, "--service", "mail", tk},
	} {
		code, out, errOut := runCLI("", args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "sso verify: ") {
			t.Errorf("%s: exit %d out %q err %q", name, code, out, errOut)
		}
	}
	for name, args := range map[string][]string{
		"no verb":   {},
		"other":     {"issue"},
		"no key":    {"verify", "--key-id", "k", tk},
		"short key": {"verify", "--key-id", "k", "--key", "abcd", tk},
		"bad flag":  {"verify", "--nope"},
	} {
		if code, _, _ := runCLI("", args...); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}

func BenchmarkIssue(b *testing.B) {
	is, _ := login.NewIssuer([]login.Service{{ID: "wiki", KeyID: "k", Key: wikiKey}}, nil)
	for b.Loop() {
		if _, err := is.Issue("alice@im.example", "wiki"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSocialVerify(b *testing.B) {
	clk := newClock()
	s, _ := login.NewSocialAccounts(login.SocialConfig{Sites: []login.SocialSite{{ID: "fb", Key: socialKey}}, MaxEntries: 1 << 30, Now: clk.Now})
	toks := make([]string, b.N)
	for i := range toks {
		toks[i], _ = login.SignSocialToken(socialKey, "u1", "s"+hex.EncodeToString([]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}), clk.Now().Add(time.Minute))
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Verify(context.Background(), "u1", "fb", toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}
