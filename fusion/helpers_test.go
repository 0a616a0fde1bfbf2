package fusion

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
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
	domain  = "other.test"
	alice   = "alice@other.test"
	alicePW = "al1ce-secret"
	bob     = "bob@other.test"
	bobPW   = "b0b-secret"
	waitFor = 15 * time.Second

	bobAOR = msg.Address("xmpp:bob@other.test")
)

// The bridge users of the tests: alice owns the bound account, eve does
// not.
const (
	aliceAddr = msg.Address("sip:alice@bridge.test")
	eveAddr   = msg.Address("sip:eve@bridge.test")
)

func owner(from msg.Address) (string, bool) {
	switch from {
	case aliceAddr:
		return "alice", true
	case eveAddr:
		return "eve", true
	}
	return "", false
}

func userAddress(user string) msg.Address { return msg.Address("sip:" + user + "@bridge.test") }

// rosters records OnRoster calls.
type rosters struct {
	mu      sync.Mutex
	calls   [][]RosterItem
	foreign []string // calls for anyone but alice's account: none expected
}

func (r *rosters) on(_ context.Context, user, account string, items []RosterItem) {
	r.mu.Lock()
	if user != "alice" || account != alice {
		r.foreign = append(r.foreign, user+" "+account)
	}
	r.calls = append(r.calls, items)
	r.mu.Unlock()
}

func (r *rosters) last() []RosterItem {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return nil
	}
	return r.calls[len(r.calls)-1]
}

// rig is a Prosody serving other.test with alice and bob in each other's
// rosters, and a proxy for it.
type rig struct {
	srv     *prosodytest.Server
	kv      *testutil.MemKV
	pres    *presence.Store
	rec     *testutil.Stager
	rosters *rosters
	key     []byte
	ttl     time.Duration
	p       *Proxy
	stop    func() // ends the current Run and waits for it
}

func newKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func logger(t testing.TB) *slog.Logger {
	if os.Getenv("FUSION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tWriter sends log lines to the test log, shown when a test fails, until
// the test's cleanup (testing panics on a log after the test).
type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func startRig(t *testing.T) *rig {
	t.Helper()
	srv := prosodytest.Start(t, prosodytest.Options{
		VHosts: []string{domain},
		Users:  map[string]string{alice: alicePW, bob: bobPW, "carol@other.test": "c4rol"},
	})
	befriend(t, srv)
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{srv: srv, kv: testutil.NewMemKV(), pres: pres, rec: &testutil.Stager{}, rosters: &rosters{}, key: newKey(t)}
}

// befriend makes alice and bob subscribe to each other, with clients of
// their own, before the proxy logs in.
func befriend(t *testing.T, srv *prosodytest.Server) {
	t.Helper()
	srv.Befriend(t, alice, alicePW, bob, bobPW)
}

func (r *rig) config(t testing.TB) Config {
	return Config{
		Key: r.key, KV: r.kv, Stager: r.rec, Presence: r.pres,
		Owner: owner, UserAddress: userAddress, OnRoster: r.rosters.on,
		RootCAs: r.srv.CertPool(),
		Resolve: func(d string) string {
			if d != domain {
				return "127.0.0.1:1"
			}
			return r.srv.C2SAddr
		},
		TTL:    r.ttl,
		Logger: logger(t),
	}
}

// run builds a proxy on the rig's KV and key and runs it until the test
// ends or stop is called.
func (r *rig) run(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(r.config(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	r.p = p
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitFor):
				t.Errorf("Run did not return within %v of its context ending", waitFor)
			}
		})
	}
	t.Cleanup(r.stop)
	return p
}

// bind binds alice's account for the bridge user alice and checks it is
// online.
func (r *rig) bind(t *testing.T) {
	t.Helper()
	v, err := r.p.Bind(context.Background(), "alice", alice, alicePW)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if v.State != StateOnline || v.JID != alice {
		t.Fatalf("Bind: %+v, want online", v)
	}
}

// state is the state of alice's account.
func (r *rig) state() AccountView {
	for _, v := range r.p.Accounts("alice") {
		if v.JID == alice {
			return v
		}
	}
	return AccountView{State: "absent"}
}

func (r *rig) waitState(t *testing.T, want string) {
	t.Helper()
	testutil.WaitForState(t, waitFor, func() bool { return r.state().State == want },
		func() string { return fmt.Sprintf("account %+v, want %s", r.state(), want) })
}

// waitBob waits for bob's binding through alice's account.
func (r *rig) waitBob(t *testing.T, resource string) presence.Binding {
	t.Helper()
	contact := "alice|" + alice + "|" + bob + "/" + resource
	var found presence.Binding
	testutil.WaitForState(t, waitFor, func() bool {
		for _, b := range r.pres.Bindings(bobAOR) {
			if b.Contact == contact {
				found = b
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("no binding %s; have %+v", contact, r.pres.Bindings(bobAOR)) })
	return found
}

// flush waits until the session's worker has done what was queued so far.
func (r *rig) flush(t *testing.T) {
	t.Helper()
	s := r.p.account("alice", alice).cur.Load()
	if s == nil {
		t.Fatal("no session to flush")
	}
	done := make(chan struct{})
	s.enqueue(func(context.Context) { close(done) })
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("the session's worker is stuck")
	}
}
