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
	f.creds, err = login.NewCredentials(login.CredentialsConfig{Realm: domain, TTL: time.Hour, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
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
		r, err := f.auth.Password(ctx, name, "carol-pw", "")
		if err != nil || r.Kind != login.Ordinary || r.User != "carol" || r.AOR != "sip:carol@"+domain || r.SIP != nil {
			t.Fatalf("%s: %+v %v", name, r, err)
		}
	}
	for _, c := range [][2]string{{"carol", "wrong"}, {"nobody", "carol-pw"}, {"carol@elsewhere", "carol-pw"}, {"", ""}} {
		if _, err := f.auth.Password(ctx, c[0], c[1], ""); !errors.Is(err, login.ErrBadPassword) {
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
	r, err := f.auth.Password(ctx, "alice#shop", "wonderland", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != login.Partner || r.User != "alice~shop" || r.AOR != "sip:alice~shop@"+domain || r.Site != "shop" || r.Display != "Alice" || !r.Created {
		t.Fatalf("result %+v", r)
	}
	if r.SIP == nil || r.SIP.User != "alice~shop" || r.SIP.Device != "phone" || r.SIP.Password == "" {
		t.Fatalf("no SIP credential: %+v", r.SIP)
	}
	// The SIP layer finds the issued password's HA1 among the user's issued
	// ones; the ordinary lookup keeps the static users only.
	if hs := f.auth.Issued("alice~shop"); len(hs) != 1 || hs[0] != login.HA1("alice~shop", domain, r.SIP.Password) {
		t.Fatalf("Issued = %q", hs)
	}
	if _, ok := f.auth.HA1("alice~shop"); ok {
		t.Fatal("an issued password leaked into the ordinary lookup")
	}
	if h, ok := f.auth.HA1("carol"); !ok || h != login.HA1("carol", domain, "carol-pw") {
		t.Fatal("static user lost")
	}
	if !f.auth.CheckSIPPassword("alice~shop", r.SIP.Password) || !f.auth.CheckSIPPassword("carol", "carol-pw") ||
		f.auth.CheckSIPPassword("alice~shop", "guess") || f.auth.CheckSIPPassword("carol", r.SIP.Password) {
		t.Fatal("CheckSIPPassword")
	}
	if d, ok := f.users.Lookup("alice~shop"); !ok || d != "Alice" {
		t.Fatalf("user not created: %q %v", d, ok)
	}
	// A second device logs in: both passwords work.
	r2, err := f.auth.Password(ctx, "alice#shop", "wonderland", "")
	if err != nil || r2.Created || r2.User != "alice~shop" || r2.SIP == nil || r2.SIP.Device == "" || r2.SIP.Device == "phone" {
		t.Fatalf("second login: %+v %v", r2, err)
	}
	if !f.auth.CheckSIPPassword("alice~shop", r.SIP.Password) || !f.auth.CheckSIPPassword("alice~shop", r2.SIP.Password) {
		t.Fatal("a second device's login logged the first out")
	}
	// The same device again replaces only that device's password.
	r3, err := f.auth.Password(ctx, "alice#shop", "wonderland", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if f.auth.CheckSIPPassword("alice~shop", r.SIP.Password) || !f.auth.CheckSIPPassword("alice~shop", r3.SIP.Password) ||
		!f.auth.CheckSIPPassword("alice~shop", r2.SIP.Password) || len(f.auth.Issued("alice~shop")) != 2 {
		t.Fatal("re-login of one device")
	}
	// Logout of one device.
	if err := f.auth.Revoke(ctx, "alice~shop", "phone"); err != nil {
		t.Fatal(err)
	}
	if f.auth.CheckSIPPassword("alice~shop", r3.SIP.Password) || !f.auth.CheckSIPPassword("alice~shop", r2.SIP.Password) {
		t.Fatal("Revoke of one device")
	}
	if _, err := f.auth.Password(ctx, "alice#shop", "nope", ""); !errors.Is(err, login.ErrDenied) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := f.auth.Password(ctx, "alice#shop", "wonderland", "bad device"); !errors.Is(err, login.ErrBadDevice) {
		t.Fatalf("bad device id: %v", err)
	}
	// issued passwords expire
	f.clk.Advance(time.Hour)
	if hs := f.auth.Issued("alice~shop"); len(hs) != 0 || f.auth.CheckSIPPassword("alice~shop", r2.SIP.Password) {
		t.Fatal("expired SIP password still accepted")
	}
}

func TestPartnerDigestLogin(t *testing.T) {
	f := newFixture(t)
	r, err := f.auth.PartnerDigest(context.Background(), uaDigest("alice#shop", domain, "wonderland", true))
	if err != nil || r.User != "alice~shop" || r.SIP != nil {
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
	r, err := f.auth.Password(ctx, "u123@friendbook", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != login.Social || r.User != "u123!friendbook" || r.AOR != "sip:u123!friendbook@"+domain || !r.Created || r.SIP == nil {
		t.Fatalf("result %+v", r)
	}
	if !f.auth.CheckSIPPassword("u123!friendbook", r.SIP.Password) {
		t.Fatal("no SIP credential for the social user")
	}
	// replay of the same token
	if _, err := f.auth.Password(ctx, "u123@friendbook", tok, ""); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	// a fresh session of the same account: admitted, not created again
	r, err = f.auth.Password(ctx, "u123@friendbook", f.token(t, socialKey, "u123", "sess-2", time.Minute), "")
	if err != nil || r.Created {
		t.Fatalf("fresh social session id: %+v %v", r, err)
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
		if _, err := f.auth.Password(ctx, c.name, c.tok, ""); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if f.users.Len() != 1 {
		t.Fatalf("denied logins created users: %d", f.users.Len())
	}
	// an unknown social site is not social at all: ordinary, refused
	if _, err := f.auth.Password(ctx, "u123@otherbook", tok, ""); !errors.Is(err, login.ErrBadPassword) {
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
	ctx := context.Background()
	for _, sid := range []string{"a", "b"} {
		if _, err := s.Verify(ctx, "u", "fb", tok(sid)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Verify(ctx, "u", "fb", tok("c")); !errors.Is(err, login.ErrReplayFull) {
		t.Fatalf("full: %v", err)
	}
	if _, err := s.Verify(ctx, "u", "fb", t1); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("replay while full: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := s.Verify(ctx, "u", "fb", tok("c")); err != nil {
		t.Fatalf("after expiry purge: %v", err)
	}
	if _, err := s.Verify(ctx, "u", "fb", t1); !errors.Is(err, login.ErrExpired) {
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
	ctx := context.Background()
	c, err := login.NewCredentials(login.CredentialsConfig{Realm: domain, TTL: time.Minute, MaxEntries: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Issue(ctx, "a", "d1")
	if err != nil {
		t.Fatal(err)
	}
	if hs := c.Issued("a"); len(hs) != 1 || hs[0] != a.HA1 || a.HA1 != login.HA1("a", domain, a.Password) {
		t.Fatal("Issued")
	}
	if _, err := c.Issue(ctx, "a", "d2"); err != nil {
		t.Fatal(err)
	}
	// Full: a new device is refused, a device that has one may renew it.
	if _, err := c.Issue(ctx, "b", "d1"); !errors.Is(err, login.ErrTooManyCredentials) {
		t.Fatalf("full: %v", err)
	}
	if _, err := c.Issue(ctx, "a", "d1"); err != nil {
		t.Fatalf("renewal while full: %v", err)
	}
	clk.Advance(time.Minute)
	if _, err := c.Issue(ctx, "b", "d1"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := c.Revoke(ctx, "b", "d1"); err != nil {
		t.Fatal(err)
	}
	if len(c.Issued("b")) != 0 {
		t.Fatal("revoked")
	}
	if _, err := login.NewCredentials(login.CredentialsConfig{}); err == nil {
		t.Fatal("credentials without a realm")
	}
	if _, err := login.New(login.Config{Domain: "other.example", Credentials: c}); err == nil {
		t.Fatal("credentials of another realm accepted")
	}
}
