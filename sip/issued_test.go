package sip

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// Two logins of one social user from two devices, each with its own issued
// SIP password, both REGISTER over real SIP; logging one device out leaves
// the other registered, also after the login side restarts over its store.
func TestIssuedCredentialsPerDevice(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0x5a}, 32)
	ctx := context.Background()
	var db *store.DB
	var auth atomic.Pointer[login.Authenticator]
	start := func() {
		t.Helper()
		var err error
		if db, err = store.Open(store.Options{Dir: dir, Logger: testLogger()}); err != nil {
			t.Fatal(err)
		}
		social, err := login.NewSocialAccounts(login.SocialConfig{Sites: []login.SocialSite{{ID: "fb", Key: key}}, Store: db})
		if err != nil {
			t.Fatal(err)
		}
		creds, err := login.NewCredentials(login.CredentialsConfig{Realm: testDomain, Store: db})
		if err != nil {
			t.Fatal(err)
		}
		a, err := login.New(login.Config{Domain: testDomain, OrdinaryHA1: testHA1, Social: social, Credentials: creds, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		auth.Store(a)
	}
	start()
	t.Cleanup(func() { db.Close() })

	b := startBridge(t, func(c *Config) {
		c.HA1 = func(u string) (string, bool) { return auth.Load().HA1(u) }
		c.Issued = func(u string) []string { return auth.Load().Issued(u) }
	})
	loginOnce := func(sid, device string) login.Result {
		t.Helper()
		tok, err := login.SignSocialToken(key, "VCase", sid, time.Now().Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		r, err := auth.Load().Password(ctx, "VCase@fb", tok, device)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	phone := loginOnce("s1", "phone")
	laptop := loginOnce("s2", "")
	user := phone.User
	if laptop.User != user || phone.SIP.Password == laptop.SIP.Password || laptop.SIP.Device == "" {
		t.Fatalf("logins %+v %+v", phone, laptop)
	}
	aor, err := msg.FromAOR(phone.AOR, "86")
	if err != nil {
		t.Fatal(err)
	}

	uaPhone, uaLaptop := newTestUA(t, 200, "OK"), newTestUA(t, 200, "OK")
	register := func(ua *testUA, password string) int {
		t.Helper()
		_, final := ua.do(t, registerReq(t, b.srv, user, ua.contact(user), 600), user, password)
		return final.StatusCode
	}
	if code := register(uaPhone, phone.SIP.Password); code != 200 {
		t.Fatalf("phone REGISTER: %d", code)
	}
	if code := register(uaLaptop, laptop.SIP.Password); code != 200 {
		t.Fatalf("laptop REGISTER: %d", code)
	}
	if code := register(uaPhone, phone.SIP.Password); code != 200 {
		t.Fatalf("phone refresh after the laptop's login: %d", code)
	}
	if n := len(b.pres.Bindings(aor)); n != 2 {
		t.Fatalf("%d bindings for %s, want 2", n, aor)
	}
	if code := register(uaPhone, "guess"); code == 200 {
		t.Fatal("REGISTER with a guessed password")
	}
	// An ordinary user is unaffected.
	if code := register(newTestUA(t, 200, "OK"), ""); code != 401 {
		t.Fatalf("unauthenticated: %d", code)
	}
	{
		ua := newTestUA(t, 200, "OK")
		if _, final := ua.do(t, registerReq(t, b.srv, "carol", ua.contact("carol"), 600), "carol", testPasswords["carol"]); final.StatusCode != 200 {
			t.Fatalf("ordinary user: %d", final.StatusCode)
		}
	}

	// Log the phone out: its password stops working, the laptop's does not.
	if err := auth.Load().Revoke(ctx, user, "phone"); err != nil {
		t.Fatal(err)
	}
	if code := register(uaPhone, phone.SIP.Password); code == 200 {
		t.Fatal("revoked device registered")
	}
	if code := register(uaLaptop, laptop.SIP.Password); code != 200 {
		t.Fatalf("other device after one device's logout: %d", code)
	}

	// Restart the login side over the same store.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	start()
	if code := register(uaLaptop, laptop.SIP.Password); code != 200 {
		t.Fatalf("laptop after restart: %d", code)
	}
	if code := register(uaPhone, phone.SIP.Password); code == 200 {
		t.Fatal("revoked device registered after restart")
	}
	tok, _ := login.SignSocialToken(key, "VCase", "s1", time.Now().Add(5*time.Minute))
	if _, err := auth.Load().Password(ctx, "VCase@fb", tok, "phone"); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("session used before the restart: %v", err)
	}
}
