package login_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/store"
)

// disk is a real store in a directory that outlives a "restart": Close and
// Open again over the same files.
type disk struct {
	t   *testing.T
	dir string
	db  *store.DB
}

func openDisk(t *testing.T) *disk {
	t.Helper()
	d := &disk{t: t, dir: t.TempDir()}
	d.open()
	t.Cleanup(func() {
		if d.db != nil {
			d.db.Close()
		}
	})
	return d
}

func (d *disk) open() {
	d.t.Helper()
	db, err := store.Open(store.Options{Dir: d.dir})
	if err != nil {
		d.t.Fatal(err)
	}
	d.db = db
}

// restart closes the store and opens it again.
func (d *disk) restart() {
	d.t.Helper()
	if err := d.db.Close(); err != nil {
		d.t.Fatal(err)
	}
	d.db = nil
	d.open()
}

// keys lists the keys under prefix with their values.
func (d *disk) keys(prefix string) map[string]string {
	d.t.Helper()
	out := map[string]string{}
	if err := d.db.Iterate([]byte(prefix), func(k, v []byte) error {
		out[string(k)] = string(v)
		return nil
	}); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// flakyKV fails writes while fail is set.
type flakyKV struct {
	login.KV
	fail atomic.Bool
}

var errDisk = errors.New("disk on fire")

func (f *flakyKV) Put(ctx context.Context, k, v []byte) error {
	if f.fail.Load() {
		return errDisk
	}
	return f.KV.Put(ctx, k, v)
}

func (f *flakyKV) Delete(ctx context.Context, k []byte) error {
	if f.fail.Load() {
		return errDisk
	}
	return f.KV.Delete(ctx, k)
}

func newSocial(t *testing.T, clk *clock, kv login.KV, max int) *login.SocialAccounts {
	t.Helper()
	s, err := login.NewSocialAccounts(login.SocialConfig{
		Sites: []login.SocialSite{{ID: "fb", Key: socialKey}}, MaxEntries: max, Store: kv, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExternalUserNames(t *testing.T) {
	for _, c := range []struct{ kind, site, account, want string }{
		{"partner", "shop", "alice", "alice~shop"},
		{"social", "weibo", "vcase", "vcase!weibo"},
		{"social", "friendbook", "first.last_2-x", "first.last_2-x!friendbook"},
	} {
		if got, err := login.ExternalUserName(c.kind, c.site, c.account); err != nil || got != c.want {
			t.Errorf("%s %s %s: %q %v, want %q", c.kind, c.site, c.account, got, err, c.want)
		}
	}
	// Not canonical: lower-cased, a hash of the account as given before the
	// separator, so accounts differing in case stay apart.
	upper, _ := login.ExternalUserName("social", "weibo", "VCase")
	other, _ := login.ExternalUserName("social", "weibo", "vCASE")
	spaced, _ := login.ExternalUserName("partner", "shop", "Bob Smith")
	for _, n := range []string{upper, other, spaced} {
		_, rest, ok := strings.Cut(n, "=")
		if !ok || len(rest) < 6 || strings.Trim(rest[:5], "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("hashed name %q", n)
		}
	}
	if upper != "vcase=3qh2r!weibo" || upper == other { // the README's example
		t.Errorf("VCase → %q, vCASE → %q", upper, other)
	}
	if !strings.HasPrefix(other, "vcase=") || !strings.HasSuffix(other, "!weibo") {
		t.Errorf("VCase → %q, vCASE → %q", upper, other)
	}
	if !strings.HasPrefix(spaced, "bob_smith=") || !strings.HasSuffix(spaced, "~shop") {
		t.Errorf("Bob Smith → %q", spaced)
	}
	for _, c := range [][3]string{{"ordinary", "s", "a"}, {"partner", "", "a"}, {"social", "s", ""}} {
		if _, err := login.ExternalUserName(c[0], c[1], c[2]); !errors.Is(err, login.ErrBadName) {
			t.Errorf("%q accepted: %v", c, err)
		}
	}

	u := login.NewMemoryUsers()
	ctx := context.Background()
	n, created, err := u.EnsureExternal(ctx, "partner", "shop", "Bob Smith", "Bob")
	if err != nil || !created || n != spaced {
		t.Fatalf("EnsureExternal: %q %v %v", n, created, err)
	}
	if n2, created, err := u.EnsureExternal(ctx, "partner", "shop", "Bob Smith", "Bob"); err != nil || created || n2 != n {
		t.Fatalf("again: %q %v %v", n2, created, err)
	}
	if kind, site, account, ok := u.External(n); !ok || kind != "partner" || site != "shop" || account != "Bob Smith" {
		t.Fatalf("External(%q) = %q %q %q %v", n, kind, site, account, ok)
	}
	// the same account at a social site of the same id is another user
	if n3, created, err := u.EnsureExternal(ctx, "social", "shop", "Bob Smith", ""); err != nil || !created || n3 == n {
		t.Fatalf("social twin: %q %v %v", n3, created, err)
	}
}

// The partner's user "bob smith" logs in through the Authenticator: the
// store's name is the Result's and the credential's.
func TestPartnerLoginStoreNamesUser(t *testing.T) {
	f := newFixture(t)
	r, err := f.auth.Password(context.Background(), "bob smith#shop", "pw&=?", "")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := login.ExternalUserName("partner", "shop", "bob smith")
	if r.User != want || r.SIP.User != want || r.AOR != "sip:"+want+"@"+domain || !f.auth.CheckSIPPassword(want, r.SIP.Password) {
		t.Fatalf("result %+v, want user %q", r, want)
	}
}

func TestSocialReplaySurvivesRestart(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	ctx := context.Background()
	tok := func(sid string, ttl time.Duration) string {
		x, err := login.SignSocialToken(socialKey, "u", sid, clk.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	t1, t2 := tok("a", 5*time.Minute), tok("b", time.Minute)
	s := newSocial(t, clk, d.db, 0)
	for _, x := range []string{t1, t2} {
		if _, err := s.Verify(ctx, "u", "fb", x); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.keys("login/social/"); len(got) != 2 || got["login/social/fb\x00a"] != "1700000300" {
		t.Fatalf("stored %q", got)
	}

	d.restart()
	s = newSocial(t, clk, d.db, 0)
	for _, x := range []string{t1, t2} {
		if _, err := s.Verify(ctx, "u", "fb", x); !errors.Is(err, login.ErrReplayed) {
			t.Fatalf("token used before the restart: %v", err)
		}
	}
	if _, err := s.Verify(ctx, "u", "fb", tok("c", time.Minute)); err != nil {
		t.Fatalf("fresh token after restart: %v", err)
	}

	// Past b's and c's expiry a new instance forgets them, in the store too,
	// and keeps a.
	clk.Advance(2 * time.Minute)
	d.restart()
	s = newSocial(t, clk, d.db, 0)
	if got := d.keys("login/social/"); len(got) != 1 || got["login/social/fb\x00a"] == "" {
		t.Fatalf("after expiry: %q", got)
	}
	if _, err := s.Verify(ctx, "u", "fb", t1); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("live token after the second restart: %v", err)
	}

	// The cap counts what was loaded: full of live entries, new ones are
	// refused rather than anything forgotten.
	d.restart()
	s = newSocial(t, clk, d.db, 1)
	if _, err := s.Verify(ctx, "u", "fb", tok("d", time.Minute)); !errors.Is(err, login.ErrReplayFull) {
		t.Fatalf("full after load: %v", err)
	}

	// A record that does not parse is kept for the longest a token lives.
	if err := d.db.Put(ctx, []byte("login/social/fb\x00x"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	d.restart()
	s = newSocial(t, clk, d.db, 0)
	x, _ := login.SignSocialToken(socialKey, "u", "x", clk.Now().Add(time.Minute))
	if _, err := s.Verify(ctx, "u", "fb", x); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("session id with a corrupt record: %v", err)
	}
}

func TestSocialVerifyStoreFailure(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	kv := &flakyKV{KV: d.db}
	s := newSocial(t, clk, kv, 0)
	tok, _ := login.SignSocialToken(socialKey, "u", "s1", clk.Now().Add(time.Minute))
	kv.fail.Store(true)
	if _, err := s.Verify(context.Background(), "u", "fb", tok); !errors.Is(err, errDisk) {
		t.Fatalf("unrecorded session admitted: %v", err)
	}
	kv.fail.Store(false)
	// Not burnt by the failed attempt.
	if _, err := s.Verify(context.Background(), "u", "fb", tok); err != nil {
		t.Fatalf("after the store recovered: %v", err)
	}
}

// Many logins with one token at once: exactly one wins, and it is on disk.
func TestSocialConcurrentReplay(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	s := newSocial(t, clk, d.db, 0)
	tok, _ := login.SignSocialToken(socialKey, "u", "race", clk.Now().Add(time.Minute))
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := s.Verify(context.Background(), "u", "fb", tok); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, login.ErrReplayed) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || len(d.keys("login/social/")) != 1 {
		t.Fatalf("%d admitted", ok.Load())
	}
}

func newCreds(t *testing.T, clk *clock, kv login.KV, realm string) *login.Credentials {
	t.Helper()
	c, err := login.NewCredentials(login.CredentialsConfig{Realm: realm, TTL: time.Hour, Store: kv, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func has(hs []string, h string) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

func TestCredentialsSurviveRestart(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	ctx := context.Background()
	c := newCreds(t, clk, d.db, domain)
	phone, err := c.Issue(ctx, "alice~shop", "phone")
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := c.Issue(ctx, "alice~shop", "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := c.Issue(ctx, "bob!fb", "tab")
	if err != nil {
		t.Fatal(err)
	}
	stored := d.keys("login/cred/")
	if len(stored) != 3 {
		t.Fatalf("stored %q", stored)
	}
	v, ok := stored["login/cred/alice~shop\x00phone"]
	if !ok || !strings.Contains(v, `"ha1":"`+phone.HA1+`"`) || !strings.Contains(v, `"realm":"`+domain+`"`) {
		t.Fatalf("record %q", v)
	}
	for k, v := range stored {
		for _, pw := range []string{phone.Password, laptop.Password, bob.Password} {
			if strings.Contains(k+v, pw) {
				t.Fatalf("password stored in %q=%q", k, v)
			}
		}
	}

	d.restart()
	c = newCreds(t, clk, d.db, domain)
	hs := c.Issued("alice~shop")
	if len(hs) != 2 || !has(hs, phone.HA1) || !has(hs, laptop.HA1) || !has(c.Issued("bob!fb"), bob.HA1) {
		t.Fatalf("after restart: %q", hs)
	}
	// The SHA-256 credentials (RFC 8760) come back too, one per device.
	s256 := c.IssuedSHA256("alice~shop")
	if len(s256) != 2 || !has(s256, login.HA1SHA256("alice~shop", domain, phone.Password)) || !has(s256, login.HA1SHA256("alice~shop", domain, laptop.Password)) {
		t.Fatalf("SHA-256 credentials after restart: %q", s256)
	}
	devs := c.Devices("alice~shop")
	if len(devs) != 2 || devs[0].Device != laptop.Device || devs[1].Device != "phone" || !devs[1].Expires.Equal(phone.Expires) || devs[0].Password != "" {
		t.Fatalf("devices %+v", devs)
	}

	// Logging out one device survives a restart; the other device stays.
	if err := c.Revoke(ctx, "alice~shop", "phone"); err != nil {
		t.Fatal(err)
	}
	d.restart()
	c = newCreds(t, clk, d.db, domain)
	if hs := c.Issued("alice~shop"); len(hs) != 1 || hs[0] != laptop.HA1 {
		t.Fatalf("after Revoke and restart: %q", hs)
	}
	if err := c.RevokeAll(ctx, "alice~shop"); err != nil {
		t.Fatal(err)
	}
	d.restart()
	c = newCreds(t, clk, d.db, domain)
	if len(c.Issued("alice~shop")) != 0 || len(c.Issued("bob!fb")) != 1 {
		t.Fatal("RevokeAll")
	}

	// Expired credentials and those of another realm are dropped at load,
	// from the store too.
	if _, err := c.Issue(ctx, "carl!fb", "x"); err != nil {
		t.Fatal(err)
	}
	d.restart()
	other := newCreds(t, clk, d.db, "other.example")
	if len(other.Issued("bob!fb")) != 0 || len(d.keys("login/cred/")) != 0 {
		t.Fatal("credentials of another realm kept")
	}
	c = newCreds(t, clk, d.db, domain)
	if _, err := c.Issue(ctx, "dan!fb", "x"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	d.restart()
	c = newCreds(t, clk, d.db, domain)
	if len(c.Issued("dan!fb")) != 0 || len(d.keys("login/cred/")) != 0 {
		t.Fatal("expired credential kept")
	}
}

func TestCredentialsStoreFailure(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	kv := &flakyKV{KV: d.db}
	c := newCreds(t, clk, kv, domain)
	ctx := context.Background()
	kv.fail.Store(true)
	if _, err := c.Issue(ctx, "a!fb", "d"); !errors.Is(err, errDisk) || len(c.Issued("a!fb")) != 0 {
		t.Fatalf("credential not on disk but issued: %v", err)
	}
	kv.fail.Store(false)
	cr, err := c.Issue(ctx, "a!fb", "d")
	if err != nil {
		t.Fatal(err)
	}
	kv.fail.Store(true)
	if err := c.Revoke(ctx, "a!fb", "d"); !errors.Is(err, errDisk) {
		t.Fatalf("Revoke hid a store failure: %v", err)
	}
	if len(c.Issued("a!fb")) != 0 {
		t.Fatal("device still logged in after a Revoke whose delete failed")
	}
	_ = cr
	if _, err := c.Issue(ctx, "a!fb", "bad device"); !errors.Is(err, login.ErrBadDevice) {
		t.Fatalf("bad device: %v", err)
	}
}

// The whole login side restarted over one store: a social token used before
// is refused, the devices it logged in stay logged in.
func TestAuthenticatorRestart(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	ctx := context.Background()
	build := func() *login.Authenticator {
		a, err := login.New(login.Config{
			Domain: domain, Social: newSocial(t, clk, d.db, 0), Credentials: newCreds(t, clk, d.db, domain), Logger: quiet(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := build()
	tok1, _ := login.SignSocialToken(socialKey, "VCase", "s1", clk.Now().Add(time.Minute))
	tok2, _ := login.SignSocialToken(socialKey, "VCase", "s2", clk.Now().Add(time.Minute))
	r1, err := a.Password(ctx, "VCase@fb", tok1, "phone")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.Password(ctx, "VCase@fb", tok2, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := login.ExternalUserName("social", "fb", "VCase")
	if r1.User != want || r2.User != want {
		t.Fatalf("users %q %q, want %q", r1.User, r2.User, want)
	}
	d.restart()
	a = build()
	if _, err := a.Password(ctx, "VCase@fb", tok1, "phone"); !errors.Is(err, login.ErrReplayed) {
		t.Fatalf("token replayed after restart: %v", err)
	}
	if !a.CheckSIPPassword(want, r1.SIP.Password) || !a.CheckSIPPassword(want, r2.SIP.Password) {
		t.Fatal("a restart logged devices out")
	}
	if err := a.Revoke(ctx, want, "phone"); err != nil {
		t.Fatal(err)
	}
	d.restart()
	a = build()
	if a.CheckSIPPassword(want, r1.SIP.Password) || !a.CheckSIPPassword(want, r2.SIP.Password) {
		t.Fatal("one device's logout")
	}
}

// Expired entries leave the store while running, not only at the next start.
func TestExpiredRecordsDeletedWhileRunning(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	ctx := context.Background()
	s := newSocial(t, clk, d.db, 0)
	for i, sid := range []string{"a", "b", "c"} {
		tok, _ := login.SignSocialToken(socialKey, "u", sid, clk.Now().Add(time.Duration(i+1)*time.Minute))
		if _, err := s.Verify(ctx, "u", "fb", tok); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)
	tok, _ := login.SignSocialToken(socialKey, "u", "d", clk.Now().Add(time.Minute))
	if _, err := s.Verify(ctx, "u", "fb", tok); err != nil {
		t.Fatal(err)
	}
	got := d.keys("login/social/")
	if _, ok := got["login/social/fb\x00c"]; len(got) != 2 || !ok {
		t.Fatalf("after a and b expired: %q", got)
	}

	c, err := login.NewCredentials(login.CredentialsConfig{Realm: domain, TTL: time.Minute, MaxEntries: 2, Store: d.db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"d1", "d2"} {
		if _, err := c.Issue(ctx, "u!fb", dev); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Minute)
	if _, err := c.Issue(ctx, "u!fb", "d3"); err != nil {
		t.Fatal(err)
	}
	if got := d.keys("login/cred/"); len(got) != 1 || got["login/cred/u!fb\x00d3"] == "" {
		t.Fatalf("after d1 and d2 expired: %q", got)
	}
}

// One more device than MaxDevices logs the user's oldest device out, on
// disk too; other users are untouched.
func TestCredentialsMaxDevices(t *testing.T) {
	d := openDisk(t)
	clk := newClock()
	ctx := context.Background()
	c, err := login.NewCredentials(login.CredentialsConfig{Realm: domain, MaxDevices: 2, Store: d.db, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(ctx, "bob!fb", "x"); err != nil {
		t.Fatal(err)
	}
	var got []login.Credential
	for _, dev := range []string{"d1", "d2", "d3"} {
		clk.Advance(time.Second)
		cr, err := c.Issue(ctx, "u!fb", dev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cr)
	}
	hs := c.Issued("u!fb")
	if len(hs) != 2 || has(hs, got[0].HA1) || !has(hs, got[1].HA1) || !has(hs, got[2].HA1) || len(c.Issued("bob!fb")) != 1 {
		t.Fatalf("issued %q", hs)
	}
	if keys := d.keys("login/cred/u!fb\x00"); len(keys) != 2 || keys["login/cred/u!fb\x00d1"] != "" {
		t.Fatalf("stored %q", keys)
	}
	// Renewing a device that has one evicts nothing.
	clk.Advance(time.Second)
	if _, err := c.Issue(ctx, "u!fb", "d2"); err != nil || len(c.Issued("u!fb")) != 2 {
		t.Fatalf("renewal: %v %d", err, len(c.Issued("u!fb")))
	}
}
