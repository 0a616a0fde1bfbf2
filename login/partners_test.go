package login_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
)

func TestPartnerPassword(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	p := newPartners(t, clk, nil, tp.site("shop"))
	ctx := context.Background()

	id, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if id.User != "alice" || id.Site != "shop" || id.Display != "Alice" || id.Name() != "alice#shop" {
		t.Fatalf("identity %+v", id)
	}
	// explicit site parameter, bare user; a name needing URL escaping
	if _, err := p.VerifyPassword(ctx, "shop", "bob smith", "pw&=?"); err != nil {
		t.Fatalf("explicit site: %v", err)
	}
	for _, c := range []struct{ user, pw string }{
		{"alice#shop", "Wonderland"},
		{"alice#shop", ""},
		{"mallory#shop", "wonderland"},
	} {
		_, err := p.VerifyPassword(ctx, "", c.user, c.pw)
		if !errors.Is(err, login.ErrDenied) {
			t.Errorf("%s/%q: err %v, want ErrDenied", c.user, c.pw, err)
		}
	}
	if _, err := p.VerifyPassword(ctx, "other", "alice#shop", "wonderland"); !errors.Is(err, login.ErrBadName) {
		t.Errorf("conflicting site: %v", err)
	}
	if got := p.Breaker("shop"); got != "closed" {
		t.Errorf("breaker %s after answered requests", got)
	}
}

func TestPartnerUnauthorizedSiteNoRequest(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	off := tp.site("closed")
	off.Enabled = false
	p := newPartners(t, clk, nil, tp.site("shop"), off)
	ctx := context.Background()
	if _, err := p.VerifyPassword(ctx, "", "alice#nowhere", "wonderland"); !errors.Is(err, login.ErrUnknownSite) {
		t.Errorf("unknown site: %v", err)
	}
	if _, err := p.VerifyPassword(ctx, "", "alice#closed", "wonderland"); !errors.Is(err, login.ErrSiteDisabled) {
		t.Errorf("disabled site: %v", err)
	}
	if _, err := p.VerifyDigest(ctx, "", login.DigestParams{Username: "alice#closed"}); !errors.Is(err, login.ErrSiteDisabled) {
		t.Errorf("disabled site digest: %v", err)
	}
	if _, err := p.Contacts(ctx, "closed", "alice"); !errors.Is(err, login.ErrSiteDisabled) {
		t.Errorf("disabled site contacts: %v", err)
	}
	if _, err := p.Posts(ctx, "nowhere", "alice"); !errors.Is(err, login.ErrUnknownSite) {
		t.Errorf("unknown site posts: %v", err)
	}
	if n := tp.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the partner for unauthorized sites", n)
	}
	if p.Authorized("closed") || p.Authorized("nowhere") || !p.Authorized("shop") {
		t.Error("Authorized")
	}
}

func TestPartnerRejectsWrongServerID(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	wrongID := tp.site("shop")
	wrongID.ServerID = "bridge-evil"
	wrongSecret := tp.site("shop2")
	wrongSecret.ServerSecret = "guess"
	p := newPartners(t, clk, nil, wrongID, wrongSecret)
	ctx := context.Background()
	if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); !errors.Is(err, login.ErrServerRejected) {
		t.Errorf("wrong server id: %v", err)
	}
	if _, err := p.VerifyPassword(ctx, "", "alice#shop2", "wonderland"); !errors.Is(err, login.ErrServerRejected) {
		t.Errorf("wrong server secret: %v", err)
	}
	if n := tp.hits.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (rejections are not retried)", n)
	}
	if p.Breaker("shop") != "closed" {
		t.Error("a site that answers must not open the breaker")
	}
}

func TestPartnerStaleTimestampRejected(t *testing.T) {
	siteClk := newClock()
	tp := startPartner(t, siteClk)
	bridgeClk := newClock()
	bridgeClk.Advance(-login.MaxSkew - time.Second) // bridge clock far behind: replayed/old request
	p := newPartners(t, bridgeClk, nil, tp.site("shop"))
	if _, err := p.VerifyPassword(context.Background(), "", "alice#shop", "wonderland"); !errors.Is(err, login.ErrServerRejected) {
		t.Fatalf("stale timestamp: %v", err)
	}
}

// uaDigest computes what a SIP UA sends for REGISTER with qop=auth.
func uaDigest(user, realm, password string, qop bool) login.DigestParams {
	d := login.DigestParams{Username: user, Realm: realm, Nonce: "bridge-nonce-1", URI: "sip:" + realm, Method: "REGISTER"}
	if qop {
		d.QOP, d.NC, d.CNonce = "auth", "00000001", "0a4f113b"
	}
	d.Response = d.ExpectedResponse(login.HA1(user, realm, password))
	return d
}

func TestPartnerDigest(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	p := newPartners(t, clk, nil, tp.site("shop"))
	ctx := context.Background()
	for _, qop := range []bool{true, false} {
		id, err := p.VerifyDigest(ctx, "", uaDigest("alice#shop", domain, "wonderland", qop))
		if err != nil || id.User != "alice" {
			t.Fatalf("valid digest qop=%v: %+v %v", qop, id, err)
		}
	}
	bad := map[string]login.DigestParams{
		"wrong password": uaDigest("alice#shop", domain, "guess", true),
		"wrong realm":    uaDigest("alice#shop", "other.example", "wonderland", true),
		"unknown user":   uaDigest("mallory#shop", domain, "wonderland", true),
	}
	tampered := uaDigest("alice#shop", domain, "wonderland", true)
	tampered.URI = "sip:elsewhere" // response no longer covers it
	bad["tampered uri"] = tampered
	tampered = uaDigest("alice#shop", domain, "wonderland", true)
	tampered.NC = "00000002"
	bad["tampered nc"] = tampered
	for name, d := range bad {
		if _, err := p.VerifyDigest(ctx, "", d); !errors.Is(err, login.ErrDenied) {
			t.Errorf("%s: %v, want ErrDenied", name, err)
		}
	}
	before := tp.hits.Load()
	incomplete := uaDigest("alice#shop", domain, "wonderland", true)
	incomplete.CNonce = ""
	if _, err := p.VerifyDigest(ctx, "", incomplete); !errors.Is(err, login.ErrDenied) {
		t.Errorf("incomplete digest: %v", err)
	}
	if tp.hits.Load() != before {
		t.Error("incomplete digest parameters were sent to the site")
	}
}

func TestPartnerHangTimeoutThenCircuitOpens(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	tp.mode.Store(modeHang)
	p := newPartners(t, clk, func(c *login.PartnersConfig) {
		c.Timeout = 150 * time.Millisecond
		c.Retries = 1
		c.BreakerThreshold = 2
	}, tp.site("shop"))
	ctx := context.Background()

	_, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland")
	if !errors.Is(err, login.ErrPartnerUnavailable) {
		t.Fatalf("hanging site: %v, want ErrPartnerUnavailable", err)
	}
	if n := tp.hits.Load(); n != 2 {
		t.Fatalf("%d attempts reached the site, want 2 (1 + 1 retry)", n)
	}
	if p.Breaker("shop") != "open" {
		t.Fatalf("breaker %s after 2 timeouts, want open", p.Breaker("shop"))
	}
	for range 5 {
		if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); !errors.Is(err, login.ErrCircuitOpen) {
			t.Fatalf("open circuit: %v", err)
		}
		if _, err := p.Contacts(ctx, "shop", "alice"); !errors.Is(err, login.ErrCircuitOpen) {
			t.Fatalf("open circuit contacts: %v", err)
		}
	}
	if n := tp.hits.Load(); n != 2 {
		t.Fatalf("open circuit let %d requests through", n-2)
	}

	// Cool-down over, site still hangs: one probe, which fails and reopens.
	clk.Advance(31 * time.Second)
	if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); !errors.Is(err, login.ErrCircuitOpen) {
		t.Fatalf("failed probe: %v", err)
	}
	if n := tp.hits.Load(); n != 3 {
		t.Fatalf("half-open sent %d requests, want exactly 1 probe", n-2)
	}
	if p.Breaker("shop") != "open" {
		t.Fatalf("breaker %s after a failed probe", p.Breaker("shop"))
	}

	// Site recovers: the next probe closes the breaker.
	tp.mode.Store(modeOK)
	clk.Advance(31 * time.Second)
	if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); err != nil {
		t.Fatalf("recovered site: %v", err)
	}
	if p.Breaker("shop") != "closed" {
		t.Fatalf("breaker %s after a good probe", p.Breaker("shop"))
	}
}

func TestPartnerRetriesTransientFailure(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	tp.fail500.Store(2)
	p := newPartners(t, clk, func(c *login.PartnersConfig) { c.Retries = 2 }, tp.site("shop"))
	if _, err := p.VerifyPassword(context.Background(), "", "alice#shop", "wonderland"); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if n := tp.hits.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	tp.mode.Store(mode500)
	if _, err := p.VerifyPassword(context.Background(), "", "alice#shop", "wonderland"); !errors.Is(err, login.ErrPartnerUnavailable) {
		t.Fatalf("persistent 500: %v", err)
	}
	if n := tp.hits.Load(); n != 6 {
		t.Fatalf("%d requests, want 3 more (bounded retries)", n)
	}
}

func TestPartnerContextCanceled(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	tp.mode.Store(modeHang)
	p := newPartners(t, clk, func(c *login.PartnersConfig) { c.Timeout = time.Minute }, tp.site("shop"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
	if tp.hits.Load() != 0 {
		t.Fatal("request sent with a canceled context")
	}
}

func TestPartnerContactsPostsCached(t *testing.T) {
	clk := newClock()
	tp := startPartner(t, clk)
	p := newPartners(t, clk, nil, tp.site("shop"))
	ctx := context.Background()

	c, err := p.Contacts(ctx, "", "alice#shop")
	if err != nil || len(c) != 2 || c[0].User != "bob" || c[0].Display != "Bob" {
		t.Fatalf("contacts %+v %v", c, err)
	}
	if _, err := p.Contacts(ctx, "shop", "alice"); err != nil {
		t.Fatal(err)
	}
	if n := tp.hits.Load(); n != 1 {
		t.Fatalf("%d requests for two contact reads within TTL, want 1", n)
	}
	posts, err := p.Posts(ctx, "shop", "alice")
	if err != nil || len(posts) != 1 || posts[0].Title != "Spring sale" {
		t.Fatalf("posts %+v %v", posts, err)
	}
	p.Posts(ctx, "shop", "alice")
	if n := tp.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// a user whose name needs escaping: the signature must cover the same URI
	if _, err := p.Contacts(ctx, "shop", "bob smith"); err != nil {
		t.Fatalf("escaped user: %v", err)
	}
	clk.Advance(61 * time.Second)
	if _, err := p.Contacts(ctx, "shop", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Posts(ctx, "shop", "alice"); err != nil {
		t.Fatal(err)
	}
	if n := tp.hits.Load(); n != 5 {
		t.Fatalf("%d requests, want 5 (expired entries refetched)", n)
	}
	if _, err := p.Contacts(ctx, "shop", "nobody"); !errors.Is(err, login.ErrPartnerUnavailable) {
		t.Fatalf("unknown user contacts: %v", err)
	}
}

func TestNewPartnersValidates(t *testing.T) {
	clk := newClock()
	for name, s := range map[string][]login.Site{
		"no id":      {{VerifyURL: "http://x/verify", ServerID: "a", ServerSecret: "b", Enabled: true}},
		"no secret":  {{ID: "a", VerifyURL: "http://x/verify", ServerID: "a", Enabled: true}},
		"bad url":    {{ID: "a", VerifyURL: "not a url", ServerID: "a", ServerSecret: "b", Enabled: true}},
		"duplicated": {{ID: "a"}, {ID: "a"}},
	} {
		if _, err := login.NewPartners(login.PartnersConfig{Sites: s, Now: clk.Now}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkPartnerVerify measures one delegated password login against the
// reference site over loopback (signing, fasthttp round trip, JSON both ways).
func BenchmarkPartnerVerify(b *testing.B) {
	clk := newClock()
	tp := startPartner(b, clk)
	p, err := login.NewPartners(login.PartnersConfig{Sites: []login.Site{tp.site("shop")}, Now: clk.Now, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.VerifyPassword(ctx, "", "alice#shop", "wonderland"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
