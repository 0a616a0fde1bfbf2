package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/store"
)

// The router is tested over the real store and presence index; only the
// edges (IM and SMS senders) are functions here, recording what they were
// handed. End-to-end tests in cmd/bridge drive the real adapters.

type sent struct {
	mu  sync.Mutex
	ims []string // "to|text|contact"
	sms []string // "to|text"
	src []string // the SMS's sources, in the same order
}

func (s *sent) im() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ims...)
}
func (s *sent) sms_() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sms...)
}

type rig struct {
	r             *Router
	db            *store.DB
	pres          *presence.Store
	sent          *sent
	imErr, smsErr func(*msg.Message) error
	mu            sync.Mutex
}

func newRig(t *testing.T, dir string, cfg Config) *rig {
	t.Helper()
	return newRigStore(t, store.Options{Dir: dir}, store.Faults{}, cfg)
}

func newRigStore(t *testing.T, so store.Options, faults store.Faults, cfg Config) *rig {
	t.Helper()
	db, err := store.OpenWithFaults(so, faults)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{KV: db})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{db: db, pres: pres, sent: &sent{}}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 10 * time.Millisecond
	}
	g.r = New(cfg, db, pres)
	g.r.AddIM("sip", g)
	g.r.SetSMS(g)
	return g
}

// SendIM records an IM delivery, or fails it with imErr.
func (g *rig) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	g.mu.Lock()
	f := g.imErr
	g.mu.Unlock()
	if f != nil {
		if err := f(m); err != nil {
			return err
		}
	}
	g.sent.mu.Lock()
	g.sent.ims = append(g.sent.ims, string(m.To)+"|"+m.Text+"|"+b.Contact)
	g.sent.mu.Unlock()
	return nil
}

// SendSMS records an SMS hand-off, or fails it with smsErr.
func (g *rig) SendSMS(ctx context.Context, m *msg.Message) error {
	g.mu.Lock()
	f := g.smsErr
	g.mu.Unlock()
	if f != nil {
		if err := f(m); err != nil {
			return err
		}
	}
	g.sent.mu.Lock()
	g.sent.sms = append(g.sent.sms, string(m.To)+"|"+m.Text)
	g.sent.src = append(g.sent.src, string(m.From))
	g.sent.mu.Unlock()
	return nil
}

func (g *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; g.db.Close() })
}

func (g *rig) online(t *testing.T, aor msg.Address, contact string) {
	t.Helper()
	err := g.pres.Register(context.Background(), presence.Binding{AOR: aor, Contact: contact, Via: "sip", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
}

func (g *rig) submit(t *testing.T, from, to msg.Address, text string) string {
	t.Helper()
	m := &msg.Message{From: from, To: to, Text: text, Origin: msg.Origin{Kind: msg.FromESME, Account: "esme1"}}
	if err := msg.Accept(context.Background(), g.r, m); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if m.ID == "" {
		t.Fatal("accepted message has no id")
	}
	return m.ID
}

func (g *rig) waitState(t *testing.T, id string, want msg.State) store.Record {
	t.Helper()
	var rec store.Record
	var err error
	testutil.WaitForState(t, 10*time.Second, func() bool {
		rec, err = g.db.Message(id)
		return err == nil && rec.State == want
	}, func() string { return fmt.Sprintf("message %s: state %v (err %v), want %v", id, rec.State, err, want) })
	return rec
}

// waitParked waits until n messages are in the router's set parked for aor,
// the set Online wakes when aor registers (the Parked counter moves before
// a message joins it, so it cannot tell).
func (g *rig) waitParked(t *testing.T, aor msg.Address, n int) {
	t.Helper()
	parked := func() int {
		g.r.mu.Lock()
		defer g.r.mu.Unlock()
		return len(g.r.offline[g.r.parkKey(aor)])
	}
	testutil.WaitForState(t, 10*time.Second, func() bool { return parked() == n },
		func() string { return fmt.Sprintf("%d messages parked for %s, want %d", parked(), aor, n) })
}

// waitIdle waits until every message the router took is final (Pending
// counts recovered ones too), so whatever it was going to send is sent.
func (g *rig) waitIdle(t *testing.T) {
	t.Helper()
	testutil.WaitForState(t, 10*time.Second, func() bool { return g.r.Pending() == 0 },
		func() string { return fmt.Sprintf("%d messages still pending", g.r.Pending()) })
}

func TestOnlineRecipientGetsIM(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	g.online(t, "+8613800000001", "sip:a@127.0.0.1:5062")
	id := g.submit(t, "+8613900000009", "+8613800000001", "hi")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000001|hi|sip:a@127.0.0.1:5062" || len(g.sent.sms_()) != 0 {
		t.Fatalf("im %v sms %v", got, g.sent.sms_())
	}
}

func TestOfflineNumberGetsSMS(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000002", "to sms")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000002|to sms" || len(g.sent.im()) != 0 {
		t.Fatalf("sms %v im %v", got, g.sent.im())
	}
}

func TestIMFailureFallsBackToSMS(t *testing.T) {
	g := newRig(t, "", Config{})
	g.imErr = func(*msg.Message) error { return errors.New("480 temporarily unavailable") }
	g.run(t)
	g.online(t, "+8613800000003", "sip:c@127.0.0.1:5062")
	id := g.submit(t, "+8613900000009", "+8613800000003", "fallback")
	g.waitState(t, id, msg.Delivered)
	if len(g.sent.sms_()) != 1 || g.r.Stats().Fallbacks.Load() != 1 {
		t.Fatalf("sms %v fallbacks %d", g.sent.sms_(), g.r.Stats().Fallbacks.Load())
	}
}

// Delivery does not wait for the acceptance's group commit; the
// acknowledgement (Submit's return) does. Commits here are at least a second
// apart, so the IM send must happen while Submit still waits.
func TestDeliveryOverlapsCommit(t *testing.T) {
	g := newRigStore(t, store.Options{CommitInterval: time.Second}, store.Faults{}, Config{})
	sending := make(chan struct{}, 1)
	g.imErr = func(*msg.Message) error { sending <- struct{}{}; return nil }
	g.run(t)
	g.online(t, "+8613800000004", "sip:d@127.0.0.1:5062") // a commit: the next one waits a second
	m := &msg.Message{From: "+8613900000009", To: "+8613800000004", Text: "early", Origin: msg.Origin{Kind: msg.FromESME}}
	res := make(chan error, 1)
	go func() { res <- msg.Accept(context.Background(), g.r, m) }()
	select {
	case <-sending:
	case err := <-res:
		t.Fatalf("Submit returned (%v) before the IM send started", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no IM send")
	}
	select {
	case err := <-res:
		t.Fatalf("Submit returned (%v) within the commit interval: acknowledged before the commit", err)
	default:
	}
	if err := <-res; err != nil || m.ID == "" {
		t.Fatalf("submit: %v, id %q", err, m.ID)
	}
	g.waitState(t, m.ID, msg.Delivered)
}

// When the acceptance's commit fails, the sender is refused, so the job
// started early must end there: no retry, no final record, no pending slot.
func TestFailedCommitEndsEarlyDelivery(t *testing.T) {
	var failing atomic.Bool
	g := newRigStore(t, store.Options{Dir: t.TempDir()}, store.Faults{Sync: func() error {
		if failing.Load() {
			return errors.New("injected: disk full")
		}
		return nil
	}}, Config{})
	var sends atomic.Int32
	g.imErr = func(*msg.Message) error { sends.Add(1); return errors.New("408 request timeout") }
	g.run(t)
	g.online(t, "sip:eve@example.com", "sip:e@127.0.0.1:5062")
	failing.Store(true)
	m := &msg.Message{From: "+8613900000009", To: "sip:eve@example.com", Text: "lost?", Origin: msg.Origin{Kind: msg.FromESME}}
	if err := msg.Accept(context.Background(), g.r, m); !errors.Is(err, msg.ErrNotStored) || m.ID != "" {
		t.Fatalf("submit with a failing disk: %v, id %q; want ErrNotStored and no id", err, m.ID)
	}
	testutil.WaitForState(t, 5*time.Second, func() bool { return g.r.Pending() == 0 },
		func() string { return fmt.Sprintf("pending %d after a refused submit", g.r.Pending()) })
	time.Sleep(25 * time.Millisecond) // nothing marks "no retry": wait twice the longest first backoff (RetryMin 10 ms +20%)
	if n, r := sends.Load(), g.r.Stats().Retries.Load(); n > 1 || r != 0 {
		t.Fatalf("refused message: %d IM sends, %d retries; want at most the one early send and no retry", n, r)
	}
}

func TestIMOnlyUserParkedUntilRegister(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	id := g.submit(t, "+8613900000009", "sip:bob@example.com", "wait for me")
	g.waitParked(t, "sip:bob@example.com", 1)
	if rec, _ := g.db.Message(id); rec.State.Final() || len(g.sent.im()) != 0 {
		t.Fatalf("IM-only offline message should wait, state %v", rec.State)
	}
	g.online(t, "sip:bob@example.com", "sip:bob@127.0.0.1:5099")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "sip:bob@example.com|wait for me|sip:bob@127.0.0.1:5099" {
		t.Fatalf("im %v", got)
	}
}

func TestRouteHint(t *testing.T) {
	g := newRig(t, "", Config{})
	g.imErr = func(m *msg.Message) error {
		if m.Text == "im fails" {
			return errors.New("408 request timeout")
		}
		return nil
	}
	g.run(t)
	g.online(t, "+8613800000005", "sip:e@127.0.0.1:5062")
	submit := func(to msg.Address, text, route string) string {
		m := &msg.Message{From: "+8613900000009", To: to, Text: text, Route: route, Origin: msg.Origin{Kind: msg.FromAPI}}
		if err := msg.Accept(context.Background(), g.r, m); err != nil {
			t.Fatalf("submit %q: %v", route, err)
		}
		return m.ID
	}
	// "sms" sends SMS even though the recipient is online in IM.
	g.waitState(t, submit("+8613800000005", "forced sms", "sms"), msg.Delivered)
	// "im" waits for an offline number instead of falling back to SMS.
	parked := submit("+8613800000006", "im only", "im")
	// "im" retries a failing IM contact instead of falling back either.
	failing := submit("+8613800000005", "im fails", "im")
	g.waitParked(t, "+8613800000006", 1)
	// Until its first attempt and first retry have both failed and been
	// retried (nothing else here retries), or one fell back to SMS after all.
	testutil.WaitFor(t, "two retries of the failing IM", 10*time.Second, func() bool {
		return g.r.Stats().Retries.Load() >= 2 || len(g.sent.sms_()) > 1
	})
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000005|forced sms" {
		t.Fatalf("sms %v", got)
	}
	for _, id := range []string{parked, failing} {
		if rec, _ := g.db.Message(id); rec.State.Final() {
			t.Fatalf("im-only message %s ended %v", id, rec.State)
		}
	}
	g.online(t, "+8613800000006", "sip:f@127.0.0.1:5062")
	g.waitState(t, parked, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000006|im only|sip:f@127.0.0.1:5062" {
		t.Fatalf("im %v", got)
	}
	for _, bad := range []struct {
		to    msg.Address
		route string
	}{{"+8613800000005", "pigeon"}, {"sip:bob@example.com", "sms"}} {
		err := msg.Accept(context.Background(), g.r, &msg.Message{From: "+8613900000009", To: bad.to, Text: "x", Route: bad.route})
		if !errors.Is(err, msg.ErrNoRoute) {
			t.Fatalf("route %q to %s: %v, want ErrNoRoute", bad.route, bad.to, err)
		}
	}
}

type permanent struct{ error }

func (permanent) Permanent() bool { return true }

func TestSMSRetriesThenDelivers(t *testing.T) {
	g := newRig(t, "", Config{})
	var mu sync.Mutex
	fails := 2
	g.smsErr = func(*msg.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return errors.New("smsc throttled")
		}
		return nil
	}
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000004", "retry me")
	rec := g.waitState(t, id, msg.Delivered)
	if rec.Attempts != 2 || g.r.Stats().Retries.Load() != 2 {
		t.Fatalf("attempts %d retries %d, want 2", rec.Attempts, g.r.Stats().Retries.Load())
	}
}

func TestPermanentSMSErrorFails(t *testing.T) {
	g := newRig(t, "", Config{})
	g.smsErr = func(*msg.Message) error { return permanent{errors.New("invalid destination")} }
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000005", "bad")
	g.waitState(t, id, msg.Failed)
}

func TestExpiry(t *testing.T) {
	g := newRig(t, "", Config{DefaultValidity: 100 * time.Millisecond})
	g.smsErr = func(*msg.Message) error { return errors.New("smsc down") }
	var finals sync.Map
	g.r.cfg.OnFinal = func(m *msg.Message, o msg.Outcome) { finals.Store(m.ID, o.State) }
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000006", "too late")
	g.waitState(t, id, msg.Expired)
	// The record is readable once badger has it, before the commit's
	// waiter, which then calls OnFinal, wakes: wait for that call too.
	var st any
	testutil.WaitForState(t, 5*time.Second, func() bool { st, _ = finals.Load(id); return st == msg.Expired },
		func() string { return fmt.Sprintf("OnFinal saw %v", st) })
}

func TestOverloadThrottles(t *testing.T) {
	g := newRig(t, "", Config{QueueDepth: 2, Workers: 1})
	block := make(chan struct{})
	g.smsErr = func(*msg.Message) error { <-block; return nil }
	g.run(t)
	defer close(block)
	g.submit(t, "+8613900000009", "+8613800000007", "1")
	g.submit(t, "+8613900000009", "+8613800000007", "2")
	err := msg.Accept(context.Background(), g.r, &msg.Message{From: "+8613900000009", To: "+8613800000007", Text: "3"})
	if !errors.Is(err, msg.ErrOverloaded) {
		t.Fatalf("third submit over depth 2: %v, want ErrOverloaded", err)
	}
	if g.r.Stats().Throttled.Load() != 1 {
		t.Fatal("throttle not counted")
	}
}

func TestNoRouteForAlphanumeric(t *testing.T) {
	g := newRig(t, "", Config{})
	err := msg.Accept(context.Background(), g.r, &msg.Message{From: "+8613900000009", To: "alpha:BANK", Text: "x"})
	if !errors.Is(err, msg.ErrNoRoute) {
		t.Fatalf("got %v", err)
	}
	g.db.Close()
}

// Submit before Run has scanned the store waits: a message must not be both
// queued by Submit and found again as unfinished by recovery.
func TestSubmitWaitsForRecoveryScan(t *testing.T) {
	g := newRig(t, "", Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := msg.Accept(ctx, g.r, &msg.Message{From: "+8613900000009", To: "+8613800000009", Text: "early"})
	if !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("submit before Run: %v, want ErrNotStored after the context ends", err)
	}
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000009", "after start")
	g.waitState(t, id, msg.Delivered)
	g.waitIdle(t)
	if n := len(g.sent.sms_()); n != 1 {
		t.Fatalf("delivered %d times, want once", n)
	}
}

// Accepted but undelivered at shutdown: the next start delivers it.
func TestRecoveryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Accepted and durable, never attempted: what a crash right after the
	// acknowledgement leaves behind.
	m := &msg.Message{From: "+8613900000009", To: "+8613800000008", Text: "survive", Expires: time.Now().Add(time.Hour)}
	_, p, err := db.Stage(context.Background(), m, store.Dedup{})
	if err == nil {
		err = p.Settle(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	db.Close()

	g2 := newRig(t, dir, Config{})
	g2.run(t)
	g2.waitState(t, id, msg.Delivered)
	if got := g2.sent.sms_(); len(got) != 1 || got[0] != "+8613800000008|survive" {
		t.Fatalf("after restart sms %v", got)
	}
	if g2.r.Stats().Recovered.Load() != 1 {
		t.Fatalf("recovered %d", g2.r.Stats().Recovered.Load())
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	r := New(Config{RetryMin: time.Second, RetryMax: 8 * time.Second}, nil, &presence.Store{})
	for attempts, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 9: 8 * time.Second} {
		d := r.backoff(attempts)
		if d < base*8/10 || d > base*12/10 {
			t.Errorf("backoff(%d) = %v, want %v ±20%%", attempts, d, base)
		}
	}
}

func TestDuplicateSuppressed(t *testing.T) {
	g := newRig(t, "", Config{DedupWindow: time.Minute})
	g.run(t)
	first := g.submit(t, "+8613900000009", "+8613800000010", "same text")
	second := g.submit(t, "+8613900000009", "+8613800000010", "same text")
	other := g.submit(t, "+8613900000009", "+8613800000010", "other text")
	if second != first || other == first {
		t.Fatalf("ids %s %s %s: the resubmission must get the first id", first, second, other)
	}
	g.waitState(t, other, msg.Delivered)
	g.waitState(t, first, msg.Delivered)
	g.waitIdle(t)
	if n := len(g.sent.sms_()); n != 2 || g.r.Stats().Duplicates.Load() != 1 {
		t.Fatalf("sent %d, duplicates %d; want 2 and 1", n, g.r.Stats().Duplicates.Load())
	}
}

func TestConcurrentDuplicatesStoredOnce(t *testing.T) {
	g := newRig(t, "", Config{DedupWindow: time.Minute})
	g.run(t)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &msg.Message{From: "+8613900000009", To: "+8613800000011", Text: "burst", Origin: msg.Origin{Kind: msg.FromESME, Account: "esme1"}}
			if err := msg.Accept(context.Background(), g.r, m); err != nil {
				t.Error(err)
			}
			ids[i] = m.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("ids %v: concurrent copies must share the first id", ids)
		}
	}
	g.waitState(t, ids[0], msg.Delivered)
	g.waitIdle(t)
	if n := len(g.sent.sms_()); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

// Messages parked for an IM-only user arrive in acceptance order when the
// user registers.
func TestParkedDrainInOrder(t *testing.T) {
	g := newRig(t, "", Config{DrainRate: 1000})
	g.run(t)
	var ids []string
	for i := range 6 {
		ids = append(ids, g.submit(t, "+8613900000009", "sip:carol@example.com", fmt.Sprintf("m%d", i)))
	}
	g.waitParked(t, "sip:carol@example.com", len(ids))
	g.online(t, "sip:carol@example.com", "sip:carol@127.0.0.1:5098")
	for _, id := range ids {
		g.waitState(t, id, msg.Delivered)
	}
	got := g.sent.im()
	for i, s := range got {
		if want := fmt.Sprintf("sip:carol@example.com|m%d|sip:carol@127.0.0.1:5098", i); s != want {
			t.Fatalf("delivery %d: %q, want %q (all: %v)", i, s, want, got)
		}
	}
}

// people is a directory of persons for the router's tests: every address of
// a person resolves to it.
type people map[msg.Address]msg.Person

func (p people) add(name string, number msg.Address, endpoints ...msg.Address) {
	per := msg.Person{Name: name, Endpoints: endpoints, Number: number}
	for _, a := range endpoints {
		p[a] = per
	}
}

func (p people) Resolve(a msg.Address) (msg.Person, bool) {
	per, ok := p[a]
	return per, ok
}

// OfflineSMS: persons whose name ends in "-sms" chose SMS while offline.
func (p people) OfflineSMS(name string) bool { return strings.HasSuffix(name, "-sms") }

func bobAndDave() people {
	p := people{}
	p.add("bob", "+8613800000002", "sip:bob@example.com", "+8613800000002")
	p.add("dave", "", "sip:dave@example.com", "sip:dave@other.example")
	return p
}

// An SMS to a person's number reaches them in IM where they are online
// under another address; the same number goes out as SMS once they are not.
func TestNumberOfOnlinePersonGoesToIM(t *testing.T) {
	g := newRig(t, "", Config{People: bobAndDave()})
	g.run(t)
	g.online(t, "sip:bob@example.com", "sip:bob@127.0.0.1:5062")
	id := g.submit(t, "+8613900000009", "+8613800000002", "to bob's number")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000002|to bob's number|sip:bob@127.0.0.1:5062" || len(g.sent.sms_()) != 0 {
		t.Fatalf("im %v sms %v", got, g.sent.sms_())
	}
	if err := g.pres.Unregister(context.Background(), "sip:bob@example.com", ""); err != nil {
		t.Fatal(err)
	}
	id = g.submit(t, "+8613900000009", "+8613800000002", "bob offline")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000002|bob offline" {
		t.Fatalf("sms %v", got)
	}
}

// An IM user's message to a phone leaves with the user's number as its
// source, so the reply comes back; a user without a number keeps theirs.
func TestIMToNumberLeavesFromUsersNumber(t *testing.T) {
	g := newRig(t, "", Config{People: bobAndDave()})
	g.run(t)
	for _, from := range []msg.Address{"sip:bob@example.com", "sip:dave@example.com"} {
		m := &msg.Message{From: from, To: "+8613900000009", Text: "hi", Origin: msg.Origin{Kind: msg.FromSIP, Account: string(from)}}
		if err := msg.Accept(context.Background(), g.r, m); err != nil {
			t.Fatal(err)
		}
		g.waitState(t, m.ID, msg.Delivered)
	}
	g.sent.mu.Lock()
	src := append([]string(nil), g.sent.src...)
	g.sent.mu.Unlock()
	if len(src) != 2 || src[0] != "+8613800000002" || src[1] != "sip:dave@example.com" {
		t.Fatalf("SMS sources %v, want bob's number, then dave's address (no number)", src)
	}
	// The stored message keeps who sent it.
	if rec, err := g.db.Message(g.submitFrom(t, "sip:bob@example.com", "+8613900000008")); err != nil || rec.Msg.From != "sip:bob@example.com" {
		t.Fatalf("stored sender %q %v", rec.Msg.From, err)
	}
}

func (g *rig) submitFrom(t *testing.T, from, to msg.Address) string {
	t.Helper()
	m := &msg.Message{From: from, To: to, Text: "x", Origin: msg.Origin{Kind: msg.FromSIP, Account: string(from)}}
	if err := msg.Accept(context.Background(), g.r, m); err != nil {
		t.Fatal(err)
	}
	g.waitState(t, m.ID, msg.Delivered)
	return m.ID
}

// A message parked for a person drains when any of their endpoints comes
// online, also when that person registered before with nothing waiting.
func TestParkedForPersonDrainsOnAnyEndpoint(t *testing.T) {
	g := newRig(t, "", Config{People: bobAndDave()})
	g.run(t)
	g.online(t, "sip:dave@example.com", "sip:d@127.0.0.1:5062") // nothing parked yet
	if err := g.pres.Unregister(context.Background(), "sip:dave@example.com", ""); err != nil {
		t.Fatal(err)
	}
	id := g.submit(t, "+8613900000009", "sip:dave@example.com", "for dave")
	g.waitParked(t, "sip:dave@example.com", 1)
	g.online(t, "sip:dave@other.example", "sip:d2@127.0.0.1:5063")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "sip:dave@example.com|for dave|sip:d2@127.0.0.1:5063" {
		t.Fatalf("im %v", got)
	}
}

// Without a directory, registering with nothing parked must not keep the
// next parked message from draining.
func TestRegisterWithNothingParkedThenParkedDrains(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	g.online(t, "sip:dave@example.com", "sip:d@127.0.0.1:5062")
	if err := g.pres.Unregister(context.Background(), "sip:dave@example.com", ""); err != nil {
		t.Fatal(err)
	}
	id := g.submit(t, "+8613900000009", "sip:dave@example.com", "parked")
	g.waitParked(t, "sip:dave@example.com", 1)
	g.online(t, "sip:dave@example.com", "sip:d@127.0.0.1:5062")
	g.waitState(t, id, msg.Delivered)
}

// edge is a second IM network for the router's tests: it records what it
// delivers, or fails every delivery while down.
type edge struct {
	mu   sync.Mutex
	down bool
	got  []string // "contact|text"
}

func (e *edge) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return errors.New("edge down")
	}
	e.got = append(e.got, b.Contact+"|"+m.Text)
	return nil
}

func (e *edge) setDown(d bool) {
	e.mu.Lock()
	e.down = d
	e.mu.Unlock()
}

func (e *edge) delivered() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// A person on two IM networks gets each message on the better binding
// (availability, then priority), on the other when that one fails, and as
// SMS when both fail.
func TestBestEndpointThenTheOtherThenSMS(t *testing.T) {
	p := people{}
	p.add("alice", "+8613800000001", "sip:alice@example.com", "xmpp:alice@example.com", "+8613800000001")
	cfg := Config{People: p}
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{db: db, pres: pres, sent: &sent{}}
	cfg.RetryMin = 10 * time.Millisecond
	g.r = New(cfg, db, pres)
	g.r.AddIM("sip", g)
	x := &edge{}
	g.r.AddIM("xmpp", x)
	g.r.SetSMS(g)
	g.run(t)

	now := time.Now()
	reg := func(b presence.Binding) {
		t.Helper()
		b.Expires = now.Add(time.Hour)
		if err := pres.Register(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	reg(presence.Binding{AOR: "sip:alice@example.com", Contact: "sip:alice@127.0.0.1:5062", Via: "sip", Updated: now})
	reg(presence.Binding{AOR: "xmpp:alice@example.com", Contact: "alice@example.com/phone", Via: "xmpp", Updated: now.Add(-time.Minute), Priority: 5})

	send := func(text string) {
		t.Helper()
		g.waitState(t, g.submit(t, "+8613900000009", "+8613800000001", text), msg.Delivered)
	}
	send("one") // same availability: the higher priority wins over the fresher
	if got := x.delivered(); len(got) != 1 || got[0] != "alice@example.com/phone|one" || len(g.sent.im()) != 0 {
		t.Fatalf("xmpp %v sip %v", got, g.sent.im())
	}
	x.setDown(true)
	send("two") // the better one fails: the other
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000001|two|sip:alice@127.0.0.1:5062" {
		t.Fatalf("sip %v", got)
	}
	x.setDown(false)
	reg(presence.Binding{AOR: "xmpp:alice@example.com", Contact: "alice@example.com/phone", Via: "xmpp", Updated: now, Priority: 5, Show: presence.Away})
	send("three") // away loses to available, whatever the priority
	if got := g.sent.im(); len(got) != 2 || got[1] != "+8613800000001|three|sip:alice@127.0.0.1:5062" {
		t.Fatalf("sip %v", got)
	}
	x.setDown(true)
	g.mu.Lock()
	g.imErr = func(*msg.Message) error { return errors.New("sip down") }
	g.mu.Unlock()
	send("four") // both fail: SMS
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000001|four" {
		t.Fatalf("sms %v", got)
	}
}

// A message for a person's IM address waits while they are offline, or
// goes to their number as SMS if they chose so; it still goes into IM
// while they are online.
func TestOfflinePersonHoldOrSMS(t *testing.T) {
	p := people{}
	p.add("erin", "+8613800000005", "sip:erin@example.com", "+8613800000005")
	p.add("fred-sms", "+8613800000006", "sip:fred-sms@example.com", "+8613800000006")
	g := newRig(t, "", Config{People: p})
	g.run(t)
	held := g.submitFrom0(t, "sip:alice@example.com", "sip:erin@example.com")
	id := g.submitFrom0(t, "sip:alice@example.com", "sip:fred-sms@example.com")
	g.waitState(t, id, msg.Delivered)
	g.sent.mu.Lock()
	sms, src := append([]string(nil), g.sent.sms...), append([]string(nil), g.sent.src...)
	g.sent.mu.Unlock()
	if len(sms) != 1 || sms[0] != "+8613800000006|x" || src[0] != "sip:alice@example.com" {
		t.Fatalf("SMS %v from %v; want one to fred's number", sms, src)
	}
	if rec, err := g.db.Message(held); err != nil || rec.State != msg.Accepted {
		t.Fatalf("erin's message: %+v %v; want it held", rec.State, err)
	}
	if rec, err := g.db.Message(id); err != nil || rec.Msg.To != "sip:fred-sms@example.com" {
		t.Fatalf("the stored message's recipient changed: %q %v", rec.Msg.To, err)
	}
	g.online(t, "sip:fred-sms@example.com", "sip:f@127.0.0.1:5062")
	g.waitState(t, g.submitFrom0(t, "sip:alice@example.com", "sip:fred-sms@example.com"), msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "sip:fred-sms@example.com|x|sip:f@127.0.0.1:5062" {
		t.Fatalf("im %v", got)
	}
}

// submitFrom0 accepts a message and returns its id without waiting.
func (g *rig) submitFrom0(t *testing.T, from, to msg.Address) string {
	t.Helper()
	m := &msg.Message{From: from, To: to, Text: "x", Origin: msg.Origin{Kind: msg.FromSIP, Account: string(from)}}
	if err := msg.Accept(context.Background(), g.r, m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// A message whose IM delivery failed waits for its retry, or for the next
// registration of its person, whichever comes first.
func TestRetryWokenByRegistration(t *testing.T) {
	g := newRig(t, "", Config{People: bobAndDave(), RetryMin: time.Hour})
	g.run(t)
	g.online(t, "sip:dave@example.com", "sip:d@127.0.0.1:5062")
	g.mu.Lock()
	g.imErr = func(*msg.Message) error { return errors.New("edge down") }
	g.mu.Unlock()
	id := g.submitFrom0(t, "+8613900000009", "sip:dave@example.com")
	testutil.WaitFor(t, "the failed attempt", 10*time.Second, func() bool { return g.r.Stats().Retries.Load() == 1 })
	g.mu.Lock()
	g.imErr = nil
	g.mu.Unlock()
	// Another of dave's addresses registers (again on each poll: the failed
	// attempt is counted just before it is scheduled).
	testutil.WaitFor(t, "the retry woken by a registration", 10*time.Second, func() bool {
		g.online(t, "sip:dave@other.example", "sip:d@127.0.0.1:5064")
		rec, err := g.db.Message(id)
		return err == nil && rec.State == msg.Delivered
	})
}

// lateRegistration is the presence store with one interleaving forced: the
// first Lookup of aor answers "offline" and then registers aor, so its
// Online runs after decide chose to park but before the job is parked.
type lateRegistration struct {
	*presence.Store
	aor  msg.Address
	once sync.Once
}

func (p *lateRegistration) Lookup(aor msg.Address) (presence.Binding, bool) {
	first := false
	if aor == p.aor {
		p.once.Do(func() { first = true })
	}
	if !first {
		return p.Store.Lookup(aor)
	}
	b := presence.Binding{AOR: aor, Contact: "sip:bob@127.0.0.1:5099", Via: "sip", Expires: time.Now().Add(time.Hour)}
	if err := p.Store.Register(context.Background(), b); err != nil {
		panic(err)
	}
	return presence.Binding{}, false
}

// A registration that lands between the decision to park and the parking
// still wakes the message: it is not left waiting for the next one.
func TestRegistrationRacingParkWakesIt(t *testing.T) {
	g := newRig(t, "", Config{})
	late := &lateRegistration{Store: g.pres, aor: "sip:bob@example.com"}
	g.r = New(Config{RetryMin: 10 * time.Millisecond}, g.db, late)
	g.r.AddIM("sip", g)
	g.r.SetSMS(g)
	g.run(t)
	id := g.submit(t, "+8613900000009", "sip:bob@example.com", "racing")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "sip:bob@example.com|racing|sip:bob@127.0.0.1:5099" {
		t.Fatalf("im %v", got)
	}
}

// clusterSender records what the router hands to other nodes, or fails
// the bindings of the nodes in down.
type clusterSender struct {
	mu   sync.Mutex
	got  []string
	down map[string]bool
}

func (c *clusterSender) SendIM(_ context.Context, m *msg.Message, b presence.Binding) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[b.Node] {
		return errors.New("node " + b.Node + " did not answer")
	}
	c.got = append(c.got, m.Text+"|"+b.Node+"|"+b.Via+"|"+b.Contact)
	return nil
}

func (c *clusterSender) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// Other nodes' bindings are delivered through the cluster sender, the best
// first and only when this node has none; a failing node's binding falls
// back to the next one, then SMS; an IM-only user who comes online at
// another node gets what waited for them.
func TestRemoteBindingsThroughCluster(t *testing.T) {
	g := newRig(t, "", Config{})
	cs := &clusterSender{down: map[string]bool{}}
	g.r.AddIM(ViaCluster, cs)
	g.run(t)
	remote := func(aor msg.Address, node, contact string, prio int) {
		t.Helper()
		if err := g.pres.ApplyRemote(presence.Binding{AOR: aor, Contact: contact, Via: "sip", Node: node, Priority: prio,
			Updated: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	const num = msg.Address("+8613800000031")
	remote(num, "a", "sip:u@10.0.0.1", 10)
	remote(num, "b", "sip:u@10.0.0.2", 20)
	id := g.submit(t, "+8613900000009", num, "best remote")
	rec := g.waitState(t, id, msg.Delivered)
	if got := cs.sent(); len(got) != 1 || got[0] != "best remote|b|sip|sip:u@10.0.0.2" {
		t.Fatalf("cluster got %v", got)
	}
	if h := rec.Events[len(rec.Events)-1].Detail; !strings.Contains(h, "node b") {
		t.Fatalf("history %q does not name the node", h)
	}

	g.online(t, num, "sip:u@127.0.0.1:5062")
	id = g.submit(t, "+8613900000009", num, "local first")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.im(); len(got) != 1 || len(cs.sent()) != 1 {
		t.Fatalf("local %v cluster %v: the local binding goes first", got, cs.sent())
	}
	if err := g.pres.Unregister(context.Background(), num, ""); err != nil {
		t.Fatal(err)
	}

	cs.mu.Lock()
	cs.down["b"] = true
	cs.mu.Unlock()
	id = g.submit(t, "+8613900000009", num, "b is down")
	g.waitState(t, id, msg.Delivered)
	if got := cs.sent(); len(got) != 2 || got[1] != "b is down|a|sip|sip:u@10.0.0.1" {
		t.Fatalf("cluster got %v, want a after b failed", got)
	}
	cs.mu.Lock()
	cs.down["a"] = true
	cs.mu.Unlock()
	id = g.submit(t, "+8613900000009", num, "both down")
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.sms_(); len(got) != 1 || got[0] != string(num)+"|both down" {
		t.Fatalf("sms %v, want the fallback once both nodes failed", got)
	}

	const im = msg.Address("sip:erin@example.com")
	id = g.submit(t, "+8613900000009", im, "wait for erin")
	g.waitParked(t, im, 1)
	remote(im, "c", "sip:erin@10.0.0.3", 0)
	g.waitState(t, id, msg.Delivered)
	if got := cs.sent(); len(got) != 3 || got[2] != "wait for erin|c|sip|sip:erin@10.0.0.3" {
		t.Fatalf("cluster got %v", got)
	}
}

// Without a cluster sender other nodes' bindings are not delivered to.
func TestRemoteBindingsNeedClusterSender(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	g.pres.ApplyRemote(presence.Binding{AOR: "+8613800000032", Contact: "sip:v@10.0.0.1", Via: "sip", Node: "a",
		Updated: time.Now(), Expires: time.Now().Add(time.Hour)})
	id := g.submit(t, "+8613900000009", "+8613800000032", "to sms")
	g.waitState(t, id, msg.Delivered)
	if len(g.sent.sms_()) != 1 || len(g.sent.im()) != 0 {
		t.Fatalf("sms %v im %v", g.sent.sms_(), g.sent.im())
	}
}

// appTable routes numbers starting with +86106 to the application "svc".
type appTable struct{}

func (appTable) AppFor(m *msg.Message) (string, bool) {
	return "svc", strings.HasPrefix(string(m.To), "+86106")
}

type appEdge struct {
	mu    sync.Mutex
	fails int // attempts still to fail
	got   []string
}

func (a *appEdge) SendApp(_ context.Context, m *msg.Message, app string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fails > 0 {
		a.fails--
		return errors.New("app answered 503")
	}
	a.got = append(a.got, app+"|"+string(m.To)+"|"+m.Text)
	return nil
}

// A message for an application's number goes to the app edge, even when
// someone is online at that number, and is retried there until it takes
// it; the application's replies, a sender's route and other numbers are
// routed as ever.
func TestAppRoutes(t *testing.T) {
	g := newRig(t, "", Config{Apps: appTable{}})
	edge := &appEdge{fails: 2}
	g.r.SetApp(edge)
	g.run(t)
	g.online(t, "+8610690001", "sip:svc@127.0.0.1:5062")
	id := g.submit(t, "+8613900000009", "+8610690001", "weather")
	rec := g.waitState(t, id, msg.Delivered)
	if last := rec.Events[len(rec.Events)-1]; last.Detail != "app svc" {
		t.Errorf("history %+v", rec.Events)
	}
	edge.mu.Lock()
	got := edge.got
	edge.mu.Unlock()
	if len(got) != 1 || got[0] != "svc|+8610690001|weather" || g.r.Stats().AppFailed.Load() != 2 || g.r.Stats().AppDelivered.Load() != 1 {
		t.Fatalf("app got %v, failed %d", got, g.r.Stats().AppFailed.Load())
	}
	if len(g.sent.im()) != 0 || len(g.sent.sms_()) != 0 {
		t.Fatalf("im %v sms %v", g.sent.im(), g.sent.sms_())
	}

	reply := &msg.Message{From: "+8610690001", To: "+8610690002", Text: "an app's reply", Origin: msg.Origin{Kind: msg.FromApp, Account: "svc"}}
	hinted := &msg.Message{From: "+8613900000009", To: "+8610690003", Text: "as sms", Route: "sms", Origin: msg.Origin{Kind: msg.FromAPI}}
	for _, m := range []*msg.Message{reply, hinted} {
		if err := msg.Accept(context.Background(), g.r, m); err != nil {
			t.Fatal(err)
		}
		g.waitState(t, m.ID, msg.Delivered)
	}
	if sms := g.sent.sms_(); len(sms) != 2 {
		t.Fatalf("sms %v", sms)
	}
}

// Without an app edge a message for an application waits, retried, and
// expires as any other: its outcome names the application's network.
func TestAppRouteWithoutEdgeExpires(t *testing.T) {
	g := newRig(t, "", Config{Apps: appTable{}})
	var via atomic.Value
	g.r.cfg.OnFinal = func(_ *msg.Message, o msg.Outcome) { via.Store(o.Via) }
	g.run(t)
	m := &msg.Message{From: "+8613900000009", To: "+8610690001", Text: "x", Expires: time.Now().Add(300 * time.Millisecond)}
	if err := msg.Accept(context.Background(), g.r, m); err != nil {
		t.Fatal(err)
	}
	g.waitState(t, m.ID, msg.Expired)
	// OnFinal is called once the final state is stored, so a moment after.
	testutil.WaitFor(t, "the final outcome", 5*time.Second, func() bool { return via.Load() != nil })
	if v := via.Load(); v != msg.ViaApp || len(g.sent.sms_()) != 0 {
		t.Fatalf("via %v, sms %v", v, g.sent.sms_())
	}
}

// Waiting tells a message held for an offline IM-only user from one
// scheduled for a retry of its SMS, each under its network.
func TestWaitingByStateAndNetwork(t *testing.T) {
	g := newRig(t, "", Config{RetryMin: time.Hour})
	g.smsErr = func(*msg.Message) error { return errors.New("smsc throttled") }
	g.run(t)
	g.submit(t, "+8613900000009", "sip:bob@example.com", "held")
	g.submit(t, "+8613900000009", "+8613800000004", "retried")
	want := Waiting{Pending: 2, Retry: map[msg.Network]int{msg.ViaSMS: 1}, Held: map[msg.Network]int{msg.ViaIM: 1}}
	testutil.WaitForState(t, 10*time.Second, func() bool { return fmt.Sprint(g.r.Waiting()) == fmt.Sprint(want) },
		func() string { return fmt.Sprintf("waiting %+v, want %+v", g.r.Waiting(), want) })
	g.online(t, "sip:bob@example.com", "sip:bob@127.0.0.1:5099")
	want = Waiting{Pending: 1, Retry: map[msg.Network]int{msg.ViaSMS: 1}, Held: map[msg.Network]int{}}
	testutil.WaitForState(t, 10*time.Second, func() bool { return fmt.Sprint(g.r.Waiting()) == fmt.Sprint(want) },
		func() string { return fmt.Sprintf("once bob is online: waiting %+v, want %+v", g.r.Waiting(), want) })
}

// A delivery that succeeds while the router is stopping is recorded as
// delivered, so the restart does not send it again.
func TestOutcomeRecordedDuringShutdown(t *testing.T) {
	dir := t.TempDir()
	g := newRig(t, dir, Config{})
	inSend := make(chan struct{})
	release := make(chan struct{})
	g.smsErr = func(*msg.Message) error { close(inSend); <-release; return nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.r.Run(ctx); close(done) }()
	id := g.submit(t, "+8613900000009", "+8613800000031", "once")
	<-inSend
	cancel() // the stop begins while the SMSC has the message
	close(release)
	<-done
	g.db.Close()

	g = newRig(t, dir, Config{})
	g.run(t)
	rec, err := g.db.Message(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != msg.Delivered {
		t.Fatalf("after the restart the message is %v, want delivered", rec.State)
	}
	time.Sleep(100 * time.Millisecond) // room for a resend, were one due
	if got := g.sent.sms_(); len(got) != 0 {
		t.Fatalf("sent again after the restart: %v", got)
	}
}

// Deliveries that wait (an XMPP one until its client answers a ping) grow
// the pool past Workers, up to MaxWorkers and no further, and the extra
// workers stop once nothing waits.
func TestWorkersGrowWhileBusyThenShrink(t *testing.T) {
	g := newRig(t, "", Config{Workers: 2, MaxWorkers: 6})
	release := make(chan struct{})
	var inFlight, most atomic.Int32
	g.imErr = func(*msg.Message) error {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return nil
	}
	g.run(t)
	released := false
	defer func() {
		if !released {
			close(release) // a failed test still lets its workers end
		}
	}()
	g.online(t, "sip:bob@example.com", "sip:bob@10.0.0.2")
	for i := range 10 {
		g.submit(t, "+8613900000009", "sip:bob@example.com", fmt.Sprint(i))
	}
	testutil.WaitForState(t, 10*time.Second, func() bool { return inFlight.Load() == 6 },
		func() string { return fmt.Sprintf("%d deliveries in flight, want 6 (MaxWorkers)", inFlight.Load()) })
	if run, busy := g.r.Workers(); run != 6 || busy != 6 {
		t.Fatalf("workers %d, busy %d; want 6 and 6", run, busy)
	}
	close(release)
	released = true
	g.waitIdle(t)
	if n := len(g.sent.im()); n != 10 {
		t.Fatalf("%d delivered, want 10", n)
	}
	if m := most.Load(); m != 6 {
		t.Fatalf("at most %d deliveries at once, want 6 (MaxWorkers)", m)
	}
	testutil.WaitForState(t, 10*time.Second, func() bool { run, _ := g.r.Workers(); return run == 2 },
		func() string {
			run, _ := g.r.Workers()
			return fmt.Sprintf("%d workers once idle, want 2 (Workers)", run)
		})
}
