package mcp

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/store"
)

const domain = "fetion.com.cn"

var passwords = map[string]string{
	"13800000001": "pw-one",
	"13800000002": "pw-two",
	"alice":       "pw-alice",
}

func testHA1(user string) (string, bool) {
	pw, ok := passwords[user]
	if !ok {
		return "", false
	}
	return HA1(user, domain, pw), true
}

// bridge is the real core (in-memory store, presence, router) with the
// MCP server on a loopback port and an SMS route that records messages.
type bridge struct {
	srv  *Server
	pres *presence.Store
	rt   *router.Router
	addr string
	logs *testutil.SyncBuffer
	sms  chan msg.Message
}

func startBridge(t testing.TB, mutate func(*Config)) *bridge {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bridge{pres: pres, logs: logs, sms: make(chan msg.Message, 1024)}
	cfg := Config{
		Domain: domain, CountryCode: "86", HA1: testHA1,
		Lookup: pres.Lookup, Logger: log,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	rt := router.New(router.Config{Workers: 16, RetryMin: 50 * time.Millisecond, Logger: log}, db, pres)
	srv, err := New(cfg, pres, rt)
	if err != nil {
		t.Fatal(err)
	}
	rt.AddIM("mcp", srv)
	rt.SetSMS(router.SMSSenderFunc(func(ctx context.Context, m *msg.Message) error {
		b.sms <- *m
		return nil
	}))
	b.srv, b.rt = srv, rt
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		rt.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		db.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return b
}

func (b *bridge) dial(t testing.TB, stateful bool) *Handset {
	t.Helper()
	h, err := Dial(context.Background(), b.addr, stateful)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// login dials and registers user with its right password.
func (b *bridge) login(t testing.TB, user string) *Handset {
	t.Helper()
	h := b.dial(t, true)
	if err := h.Register(ctx(t), user, passwords[user], domain, 600); err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return h
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func recvIM(t testing.TB, h *Handset) Incoming {
	t.Helper()
	select {
	case in := <-h.Messages():
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the handset")
	}
	return Incoming{}
}

func recvSMS(t testing.TB, b *bridge) msg.Message {
	t.Helper()
	select {
	case m := <-b.sms:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the SMS route")
	}
	return msg.Message{}
}
