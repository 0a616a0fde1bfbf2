package login_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/partnersite"
)

// clock is a manual clock shared by the bridge side and the partner site.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// partner mode: how the test partner server behaves.
const (
	modeOK   int32 = iota
	modeHang       // never answers until the test ends
	mode500        // answers 500
)

// testPartner is the reference partner site on a loopback socket, with a
// count of the requests that reached it and a switchable failure mode.
type testPartner struct {
	srv     *httptest.Server
	hits    atomic.Int64
	mode    atomic.Int32
	fail500 atomic.Int32 // answer 500 to this many requests, then behave
}

const (
	serverID     = "bridge-1"
	serverSecret = "partner-shared-secret"
	domain       = "im.example"
)

func startPartner(t testing.TB, clk *clock) *testPartner {
	t.Helper()
	h, err := partnersite.NewHandler(partnersite.Config{
		SiteID:       "shop",
		ServerID:     serverID,
		ServerSecret: serverSecret,
		Realm:        domain,
		Users: []partnersite.User{
			{Name: "alice", Password: "wonderland", Display: "Alice", Contacts: []login.Contact{{User: "bob", Display: "Bob"}, {User: "carol"}}},
			{Name: "bob smith", Password: "pw&=?", Display: "Bob S."},
		},
		Posts:  []login.Post{{ID: "1", Title: "Spring sale", Published: 1_700_000_000}},
		Now:    clk.Now,
		Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tp := &testPartner{}
	release := make(chan struct{})
	tp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.hits.Add(1)
		switch tp.mode.Load() {
		case modeHang:
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		case mode500:
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if tp.fail500.Add(-1) >= 0 {
			http.Error(w, "flaky", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	// Cleanups run last-in first-out: release hung handlers, then close.
	t.Cleanup(tp.srv.Close)
	t.Cleanup(func() { close(release) })
	return tp
}

func (tp *testPartner) site(id string) login.Site {
	return login.Site{
		ID: id, VerifyURL: tp.srv.URL + "/verify", ContactsURL: tp.srv.URL + "/contacts", PostsURL: tp.srv.URL + "/posts",
		ServerID: serverID, ServerSecret: serverSecret, Enabled: true,
	}
}

func newPartners(t *testing.T, clk *clock, mod func(*login.PartnersConfig), sites ...login.Site) *login.Partners {
	t.Helper()
	cfg := login.PartnersConfig{
		Sites:            sites,
		Timeout:          2 * time.Second,
		Retries:          -1,
		Backoff:          time.Millisecond,
		BreakerThreshold: 3,
		BreakerCooldown:  30 * time.Second,
		CacheTTL:         time.Minute,
		Now:              clk.Now,
		Logger:           quiet(),
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := login.NewPartners(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
