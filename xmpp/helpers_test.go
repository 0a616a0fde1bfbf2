package xmpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
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

// recorder is a Stager that keeps what it is given and settles at once;
// refuse maps a recipient to the error Stage returns for it.
type recorder struct {
	mu     sync.Mutex
	msgs   []msg.Message
	refuse map[msg.Address]error
}

func (r *recorder) Stage(_ context.Context, m *msg.Message) (msg.Ack, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refuse[m.To]; err != nil {
		return nil, err
	}
	m.ID = fmt.Sprintf("m%d", len(r.msgs)+1)
	r.msgs = append(r.msgs, *m)
	return msg.Settled{}, nil
}

func (r *recorder) all() []msg.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]msg.Message(nil), r.msgs...)
}

// memKV is an in-memory KV.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

var errNotFound = errors.New("not found")

func newMemKV() *memKV { return &memKV{m: make(map[string][]byte)} }

func (k *memKV) Put(_ context.Context, key, val []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[string(key)] = bytes.Clone(val)
	return nil
}

func (k *memKV) Get(key []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	if !ok {
		return nil, errNotFound
	}
	return bytes.Clone(v), nil
}

func (k *memKV) Delete(_ context.Context, key []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, string(key))
	return nil
}

func (k *memKV) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	k.mu.Lock()
	keys := make([]string, 0, len(k.m))
	for key := range k.m {
		if strings.HasPrefix(key, string(prefix)) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, key := range keys {
		vals[i] = k.m[key]
	}
	k.mu.Unlock()
	for i, key := range keys {
		if err := fn([]byte(key), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// rig is a gateway on a real Prosody with a real presence store.
type rig struct {
	srv  *prosodytest.Server
	gw   *Gateway
	pres *presence.Store
	rec  *recorder
	kv   *memKV
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
	r := &rig{srv: srv, pres: pres, rec: &recorder{}, kv: newMemKV()}
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
