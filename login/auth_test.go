package login_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
)

var socialKey = bytes.Repeat([]byte{0x5a}, 32)

type fixture struct {
	clk   *clock
	tp    *testPartner
	users *login.MemoryUsers
	creds *login.Credentials
	auth  *login.Authenticator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clk: newClock(), users: login.NewMemoryUsers()}
	f.tp = startPartner(t, f.clk)
	social, err := login.NewSocialAccounts(login.SocialConfig{
		Sites: []login.SocialSite{{ID: "friendbook", Key: socialKey}},
		Now:   f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.creds = login.NewCredentials(login.CredentialsConfig{Realm: domain, TTL: time.Hour, Now: f.clk.Now})
	static := map[string]string{"carol": login.HA1("carol", domain, "carol-pw")}
	f.auth, err = login.New(login.Config{
		Domain:      domain,
		OrdinaryHA1: func(u string) (string, bool) { h, ok := static[u]; return h, ok },
		Partners:    newPartners(t, f.clk, nil, f.tp.site("shop")),
		Social:      social,
		Users:       f.users,
		Credentials: f.creds,
		Logger:      quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) token(t *testing.T, key []byte, uid, sid string, ttl time.Duration) string {
	t.Helper()
	tok, err := login.SignSocialToken(key, uid, sid, f.clk.Now().Add(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestClassify(t *testing.T) {
	f := newFixture(t)
	for name, want := range map[string]login.Kind{
		"carol":                 login.Ordinary,
		"carol@" + domain:       login.Ordinary,
		"carol@elsewhere":       login.Ordinary,
		"alice#shop":            login.Partner,
		"al.ice#shop":           login.Partner,
		"#shop":                 login.Ordinary,
		"alice#":                login.Ordinary,
		"u123@friendbook":       login.Social,
		"@friendbook":           login.Ordinary,
		"first.last@friendbook": login.Social,
	} {
		if got := f.auth.Classify(name); got != want {
			t.Errorf("Classify(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestOrdinaryLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, name := range []string{"carol", "carol@" + domain} {
		r, err := f.auth.Password(ctx, name, "carol-pw")
		if err != nil || r.Kind != login.Ordinary || r.User != "carol" || r.AOR != "sip:carol@"+domain || r.SIP != nil {
			t.Fatalf("%s: %+v %v", name, r, err)
		}
	}
	for _, c := range [][2]string{{"carol", "wrong"}, {"nobody", "carol-pw"}, {"carol@elsewhere", "carol-pw"}, {"", ""}} {
		if _, err := f.auth.Password(ctx, c[0], c[1]); !errors.Is(err, login.ErrBadPassword) {
			t.Errorf("%q/%q: %v", c[0], c[1], err)
		}
	}
	if f.tp.hits.Load() != 0 {
		t.Error("ordinary logins reached the partner")
	}
}

func TestPartnerLoginIssuesSIPPassword(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.auth.Password(ctx, "alice#shop", "wonderland")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != login.Partner || r.User != "alice.shop" || r.Site != "shop" || r.Display != "Alice" || !r.Created {
		t.Fatalf("result %+v", r)
	}
	if r.SIP == nil || r.SIP.User != "alice.shop" || r.SIP.Password == "" {
		t.Fatalf("no SIP credential: %+v", r.SIP)
	}
	// The SIP layer finds the issued password's HA1 through the chain,
	// and the static users still work.
	if h, ok := f.auth.HA1("alice.shop"); !ok || h != login.HA1("alice.shop", domain, r.SIP.Password) {
		t.Fatalf("HA1 lookup %q %v", h, ok)
	}
	if h, ok := f.auth.HA1("carol"); !ok || h != login.HA1("carol", domain, "carol-pw") {
		t.Fatal("static user lost from the chain")
	}
	if d, ok := f.users.Lookup("alice.shop"); !ok || d != "Alice" {
		t.Fatalf("user not created: %q %v", d, ok)
	}
	r2, err := f.auth.Password(ctx, "alice#shop", "wonderland")
	if err != nil || r2.Created {
		t.Fatalf("second login: %+v %v", r2, err)
	}
	if _, ok := f.auth.HA1("alice.shop"); !ok {
		t.Fatal("renewed credential missing")
	}
	if h, _ := f.auth.HA1("alice.shop"); h == login.HA1("alice.shop", domain, r.SIP.Password) {
		t.Fatal("old SIP password still valid after a new login")
	}
	if _, err := f.auth.Password(ctx, "alice#shop", "nope"); !errors.Is(err, login.ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	// issued passwords expire
	f.clk.Advance(time.Hour)
	if _, ok := f.auth.HA1("alice.shop"); ok {
		t.Fatal("expired SIP password still accepted")
	}
}

func TestPartnerDigestLogin(t *testing.T) {
	f := newFixture(t)
	r, err := f.auth.PartnerDigest(context.Background(), uaDigest("alice#shop", domain, "wonderland", true))
	if err != nil || r.User != "alice.shop" || r.SIP != nil {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := f.auth.PartnerDigest(context.Background(), uaDigest("alice#shop", domain, "x", true)); !errors.Is(err, login.ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := f.auth.PartnerDigest(context.Background(), uaDigest("carol", domain, "carol-pw", true)); !errors.Is(err, login.ErrBadName) {
		t.Fatalf("ordinary name: %v", err)
	}
}

func TestSocialLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.token(t, socialKey, "u123", "sess-1", 5*time.Minute)
	r, err := f.auth.Password(ctx, "u123@friendbook", tok)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != login.Social || r.User != "u123.friendbook" || r.AOR != "sip:u123.friendbook@"+domain || !r.Created || r.SIP == nil {
		t.Fatalf("result %+v", r)
	}
	if _, ok := f.auth.HA1("u123.friendbook"); !ok {
		t.Fatal("no SIP credential for the social user")
	}
	// replay of the same token
	if _, err := f.auth.Password(ctx, "u123@friendbook", tok); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	// a fresh session of the same account: admitted, not created again
	r, err = f.auth.Password(ctx, "u123@friendbook", f.token(t, socialKey, "u123", "sess-2", time.Minute))
	if err != nil || r.Created {
		t.Fatalf("second session: %+v %v", r, err)
	}
	if f.users.Len() != 1 {
		t.Fatalf("%d users", f.users.Len())
	}

	deny := map[string]struct {
		name, tok string
		want      error
	}{
		"wrong key":     {"u123@friendbook", f.token(t, bytes.Repeat([]byte{1}, 32), "u123", "s3", time.Minute), login.ErrBadSignature},
		"expired":       {"u123@friendbook", f.token(t, socialKey, "u123", "s4", -time.Second), login.ErrExpired},
		"expires now":   {"u123@friendbook", f.token(t, socialKey, "u123", "s4b", 0), login.ErrExpired},
		"other account": {"u999@friendbook", f.token(t, socialKey, "u123", "s5", time.Minute), login.ErrWrongAccount},
		"too long":      {"u123@friendbook", f.token(t, socialKey, "u123", "s6", 24*time.Hour), login.ErrTooLong},
		"garbage":       {"u123@friendbook", "not-a-token", login.ErrMalformedToken},
		"empty":         {"u123@friendbook", "", login.ErrMalformedToken},
	}
	good := f.token(t, socialKey, "u123", "s7", time.Minute)
	b64, sig, _ := strings.Cut(good, ".")
	flipped := []byte(sig)
	flipped[0] = "01"[map[bool]int{true: 1}[flipped[0] == '0']] // another hex digit
	deny["flipped signature"] = struct {
		name, tok string
		want      error
	}{"u123@friendbook", b64 + "." + string(flipped), login.ErrBadSignature}
	// same signature, payload with a later expiry
	forged, _ := login.SignSocialToken(socialKey, "u123", "s7", f.clk.Now().Add(10*time.Minute))
	fb64, _, _ := strings.Cut(forged, ".")
	deny["payload swapped"] = struct {
		name, tok string
		want      error
	}{"u123@friendbook", fb64 + "." + sig, login.ErrBadSignature}
	for name, c := range deny {
		if _, err := f.auth.Password(ctx, c.name, c.tok); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if f.users.Len() != 1 {
		t.Fatalf("denied logins created users: %d", f.users.Len())
	}
	// an unknown social site is not social at all: ordinary, refused
	if _, err := f.auth.Password(ctx, "u123@otherbook", tok); !errors.Is(err, login.ErrBadPassword) {
		t.Errorf("unknown social site: %v", err)
	}
}

func TestSocialReplayMemoryBounded(t *testing.T) {
	clk := newClock()
	s, err := login.NewSocialAccounts(login.SocialConfig{
		Sites: []login.SocialSite{{ID: "fb", Key: socialKey}}, MaxEntries: 2, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(sid string) string {
		x, err := login.SignSocialToken(socialKey, "u", sid, clk.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	t1 := tok("a")
	for _, sid := range []string{"a", "b"} {
		if _, err := s.Verify("u", "fb", tok(sid)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Verify("u", "fb", tok("c")); !errors.Is(err, login.ErrReplayFull) {
		t.Fatalf("full: %v", err)
	}
	if _, err := s.Verify("u", "fb", t1); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("replay while full: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := s.Verify("u", "fb", tok("c")); err != nil {
		t.Fatalf("after expiry purge: %v", err)
	}
	if _, err := s.Verify("u", "fb", t1); !errors.Is(err, login.ErrExpired) {
		t.Fatalf("old token after purge: %v", err)
	}
}

func TestNewSocialValidates(t *testing.T) {
	for name, sites := range map[string][]login.SocialSite{
		"short key": {{ID: "a", Key: []byte("short")}},
		"bad id":    {{ID: "a@b", Key: socialKey}},
		"dup":       {{ID: "a", Key: socialKey}, {ID: "a", Key: socialKey}},
	} {
		if _, err := login.NewSocialAccounts(login.SocialConfig{Sites: sites}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestCredentialsBounded(t *testing.T) {
	clk := newClock()
	c := login.NewCredentials(login.CredentialsConfig{Realm: domain, TTL: time.Minute, MaxEntries: 1, Now: clk.Now})
	a, err := c.Issue("a")
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := c.HA1("a"); !ok || h != a.HA1 {
		t.Fatal("HA1")
	}
	if h, ok := c.HA1Func("other")("a"); !ok || h != login.HA1("a", "other", a.Password) {
		t.Fatal("HA1Func other realm")
	}
	if _, err := c.Issue("b"); !errors.Is(err, login.ErrTooManyCredentials) {
		t.Fatalf("full: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := c.Issue("b"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	c.Revoke("b")
	if _, ok := c.HA1("b"); ok {
		t.Fatal("revoked")
	}
}
