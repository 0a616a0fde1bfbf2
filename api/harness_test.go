package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/partnersite"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/provision"
	"github.com/smsbridge/bridge/store"
)

const (
	testToken  = "t0ken-for-tests"
	testDomain = "im.example"
)

// storeSubmitter is the smallest real submitter: it stores the message the
// way the router's first step does (the router itself is built elsewhere).
type storeSubmitter struct{ db *store.DB }

func (s storeSubmitter) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	_, p, err := s.db.Stage(ctx, m, store.Dedup{})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// overloaded stands in for a saturated router.
type overloaded struct{}

func (overloaded) Stage(context.Context, *msg.Message) (msg.Ack, error) {
	return nil, msg.ErrOverloaded
}

type env struct {
	base string
	db   *store.DB
	prov *provision.Store
	dir  *directory.Directory
	pres *presence.Store
	key  [32]byte
}

type envOpt func(*Config, *msg.Stager)

// startEnv runs a full API server on loopback over real parts: an
// in-memory store, provisioning, presence, login with a reference partner
// site on its own loopback socket, and an SSO issuer.
func startEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	static := map[string]string{"carol": directory.HA1Of("carol", testDomain, "carol-pw")}
	dir, err := directory.Open(directory.Options{KV: db, Domain: testDomain, CountryCode: "86", Static: static})
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.Open(provision.Options{KV: db, Domain: testDomain, CountryCode: "86", SMSC: true,
		StaticAccounts: map[string]string{"cfgesme": "pw"}, HashIterations: 16})
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{KV: db})
	if err != nil {
		t.Fatal(err)
	}
	h, err := partnersite.NewHandler(partnersite.Config{SiteID: "shop", ServerID: "bridge-1", ServerSecret: "s3cret",
		Users: []partnersite.User{{Name: "alice", Password: "wonderland", Display: "Alice",
			Contacts: []login.Contact{{User: "bob", Display: "Bob"}}}},
		Posts: []login.Post{{ID: "p1", Title: "Spring sale", Body: "Everything half price"}}, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	site := httptest.NewServer(h)
	t.Cleanup(site.Close)
	partners, err := login.NewPartners(login.PartnersConfig{Sites: []login.Site{{ID: "shop", Enabled: true,
		ServerID: "bridge-1", ServerSecret: "s3cret", VerifyURL: site.URL + "/verify", ContactsURL: site.URL + "/contacts", PostsURL: site.URL + "/posts"}}, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := login.NewCredentials(login.CredentialsConfig{Realm: testDomain, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := login.New(login.Config{Domain: testDomain, OrdinaryHA1: dir.HA1, Partners: partners,
		Users: dir, Credentials: creds, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	copy(key[:], "0123456789abcdef0123456789abcdef")
	iss, err := login.NewIssuer([]login.Service{{ID: "wiki", KeyID: "wiki-1", Key: key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Tokens: []string{"other", testToken}, CountryCode: "86", Domain: testDomain,
		Directory: dir, Provision: prov, Presence: pres, Logins: auth, Tickets: iss, Partners: partners,
		MaxBody: 4096, MaxImport: 1 << 20, Logger: quietLog(),
		Metrics: func() []Metric {
			return []Metric{{Name: "bridge_presence_users", Help: "Users online.", Type: "gauge", Value: func() float64 { return float64(pres.Len()) }}}
		}}
	var sub msg.Stager = storeSubmitter{db}
	for _, o := range opts {
		o(&cfg, &sub)
	}
	srv := New(cfg, sub, db)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &env{base: "http://" + ln.Addr().String(), db: db, prov: prov, dir: dir, pres: pres, key: key}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// do sends one request with the test token and returns status and body.
func (e *env) do(t testing.TB, method, path, ctype, body string) (int, string, http.Header) {
	t.Helper()
	return e.doTok(t, testToken, method, path, ctype, body)
}

func (e *env) doTok(t testing.TB, tok, method, path, ctype, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func userSpec(name, pw, display string) directory.UserSpec {
	return directory.UserSpec{Name: name, Password: pw, Display: display}
}
