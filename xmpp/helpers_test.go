package xmpp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

const (
	domain  = "sms.example.test"
	carol   = "carol@example.test"
	carolPW = "c4rol"
	waitFor = 10 * time.Second
)

// rig is a gateway on a real Prosody with a real presence store.
type rig struct {
	srv  *prosodytest.Server
	gw   *Gateway
	pres *presence.Store
	rec  *testutil.Stager
	kv   *testutil.MemKV
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() || os.Getenv("XMPP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startRig starts Prosody with carol, and the gateway connected to it.
func startRig(t *testing.T, tune func(*Config)) *rig {
	t.Helper()
	srv := prosodytest.Start(t, prosodytest.Options{Users: map[string]string{carol: carolPW, "dave@example.test": "d4ve"}})
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: srv, pres: pres, rec: &testutil.Stager{}, kv: testutil.NewMemKV()}
	cfg := Config{
		Server: srv.ComponentAddr, Domain: srv.ComponentDomain, Secret: srv.Secret,
		Stager: r.rec, Presence: pres, KV: r.kv,
		Timeout: 3 * time.Second, Logger: testLogger(t),
	}
	if tune != nil {
		tune(&cfg)
	}
	r.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.WaitFor(t, "the gateway to connect", waitFor, r.gw.Connected)
	return r
}

// join subscribes the client to the gateway and waits for its binding.
func (r *rig) join(t *testing.T, c *prosodytest.Client) presence.Binding {
	t.Helper()
	c.RequestSubscription(domain)
	return r.waitBinding(t, c.JID())
}

func (r *rig) waitBinding(t *testing.T, contact string) presence.Binding {
	t.Helper()
	aor := msg.Address("xmpp:" + strings.ToLower(strings.SplitN(contact, "/", 2)[0]))
	var got presence.Binding
	testutil.WaitForState(t, waitFor, func() bool {
		for _, b := range r.pres.Bindings(aor) {
			if b.Contact == contact {
				got = b
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no binding of %s at %s: %+v", aor, contact, r.pres.Bindings(aor)) })
	return got
}
