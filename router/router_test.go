package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	return newRigStore(t, store.Options{Dir: dir}, cfg)
}

func newRigStore(t *testing.T, so store.Options, cfg Config) *rig {
	t.Helper()
	db, err := store.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{KV: db})
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{db: db, pres: pres, sent: &sent{}}
	im := IMSenderFunc(func(ctx context.Context, m *msg.Message, b presence.Binding) error {
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
	})
	sms := SMSSenderFunc(func(ctx context.Context, m *msg.Message) error {
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
		g.sent.mu.Unlock()
		return nil
	})
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 10 * time.Millisecond
	}
	g.r = New(cfg, db, pres, map[string]IMSender{"sip": im}, sms)
	pres.OnRegister(func(b presence.Binding) { g.r.Online(b.AOR) })
	return g
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
	if err := g.r.Submit(context.Background(), m); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if m.ID == "" {
		t.Fatal("accepted message has no id")
	}
	return m.ID
}

func (g *rig) waitState(t *testing.T, id string, want store.State) store.Record {
	t.Helper()
	var rec store.Record
	var err error
	waitUntil(t, 10*time.Second, func() bool {
		rec, err = g.db.Message(id)
		return err == nil && rec.State == want
	}, func() string { return fmt.Sprintf("message %s: state %v (err %v), want %v", id, rec.State, err, want) })
	return rec
}

// waitUntil polls cond until it holds, failing with why() after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOnlineRecipientGetsIM(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	g.online(t, "+8613800000001", "sip:a@127.0.0.1:5062")
	id := g.submit(t, "+8613900000009", "+8613800000001", "hi")
	g.waitState(t, id, store.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000001|hi|sip:a@127.0.0.1:5062" || len(g.sent.sms_()) != 0 {
		t.Fatalf("im %v sms %v", got, g.sent.sms_())
	}
}

func TestOfflineNumberGetsSMS(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000002", "to sms")
	g.waitState(t, id, store.Delivered)
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
	g.waitState(t, id, store.Delivered)
	if len(g.sent.sms_()) != 1 || g.r.Stats().Fallbacks.Load() != 1 {
		t.Fatalf("sms %v fallbacks %d", g.sent.sms_(), g.r.Stats().Fallbacks.Load())
	}
}

// Delivery does not wait for the acceptance's group commit; the
// acknowledgement (Submit's return) does. Commits here are at least a second
// apart, so the IM send must happen while Submit still waits.
func TestDeliveryOverlapsCommit(t *testing.T) {
	g := newRigStore(t, store.Options{CommitInterval: time.Second}, Config{})
	sending := make(chan struct{}, 1)
	g.imErr = func(*msg.Message) error { sending <- struct{}{}; return nil }
	g.run(t)
	g.online(t, "+8613800000004", "sip:d@127.0.0.1:5062") // a commit: the next one waits a second
	m := &msg.Message{From: "+8613900000009", To: "+8613800000004", Text: "early", Origin: msg.Origin{Kind: msg.FromESME}}
	res := make(chan error, 1)
	go func() { res <- g.r.Submit(context.Background(), m) }()
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
	g.waitState(t, m.ID, store.Delivered)
}

// When the acceptance's commit fails, the sender is refused, so the job
// started early must end there: no retry, no final record, no pending slot.
func TestFailedCommitEndsEarlyDelivery(t *testing.T) {
	var failing atomic.Bool
	g := newRigStore(t, store.Options{Dir: t.TempDir(), SyncFault: func() error {
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
	if err := g.r.Submit(context.Background(), m); !errors.Is(err, msg.ErrNotStored) || m.ID != "" {
		t.Fatalf("submit with a failing disk: %v, id %q; want ErrNotStored and no id", err, m.ID)
	}
	waitUntil(t, 5*time.Second, func() bool { return g.r.Pending() == 0 },
		func() string { return fmt.Sprintf("pending %d after a refused submit", g.r.Pending()) })
	time.Sleep(100 * time.Millisecond) // ten retry periods (RetryMin 10 ms): none may come
	if n, r := sends.Load(), g.r.Stats().Retries.Load(); n > 1 || r != 0 {
		t.Fatalf("refused message: %d IM sends, %d retries; want at most the one early send and no retry", n, r)
	}
}

func TestIMOnlyUserParkedUntilRegister(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	id := g.submit(t, "+8613900000009", "sip:bob@example.com", "wait for me")
	time.Sleep(50 * time.Millisecond)
	if rec, _ := g.db.Message(id); rec.State.Final() || len(g.sent.im()) != 0 {
		t.Fatalf("IM-only offline message should wait, state %v", rec.State)
	}
	g.online(t, "sip:bob@example.com", "sip:bob@127.0.0.1:5099")
	g.waitState(t, id, store.Delivered)
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
		if err := g.r.Submit(context.Background(), m); err != nil {
			t.Fatalf("submit %q: %v", route, err)
		}
		return m.ID
	}
	// "sms" sends SMS even though the recipient is online in IM.
	g.waitState(t, submit("+8613800000005", "forced sms", "sms"), store.Delivered)
	// "im" waits for an offline number instead of falling back to SMS.
	parked := submit("+8613800000006", "im only", "im")
	// "im" retries a failing IM contact instead of falling back either.
	failing := submit("+8613800000005", "im fails", "im")
	time.Sleep(100 * time.Millisecond)
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000005|forced sms" {
		t.Fatalf("sms %v", got)
	}
	for _, id := range []string{parked, failing} {
		if rec, _ := g.db.Message(id); rec.State.Final() {
			t.Fatalf("im-only message %s ended %v", id, rec.State)
		}
	}
	g.online(t, "+8613800000006", "sip:f@127.0.0.1:5062")
	g.waitState(t, parked, store.Delivered)
	if got := g.sent.im(); len(got) != 1 || got[0] != "+8613800000006|im only|sip:f@127.0.0.1:5062" {
		t.Fatalf("im %v", got)
	}
	for _, bad := range []struct {
		to    msg.Address
		route string
	}{{"+8613800000005", "pigeon"}, {"sip:bob@example.com", "sms"}} {
		err := g.r.Submit(context.Background(), &msg.Message{From: "+8613900000009", To: bad.to, Text: "x", Route: bad.route})
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
	rec := g.waitState(t, id, store.Delivered)
	if rec.Attempts != 2 || g.r.Stats().Retries.Load() != 2 {
		t.Fatalf("attempts %d retries %d, want 2", rec.Attempts, g.r.Stats().Retries.Load())
	}
}

func TestPermanentSMSErrorFails(t *testing.T) {
	g := newRig(t, "", Config{})
	g.smsErr = func(*msg.Message) error { return permanent{errors.New("invalid destination")} }
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000005", "bad")
	g.waitState(t, id, store.Failed)
}

func TestExpiry(t *testing.T) {
	g := newRig(t, "", Config{DefaultValidity: 100 * time.Millisecond})
	g.smsErr = func(*msg.Message) error { return errors.New("smsc down") }
	var finals sync.Map
	g.r.cfg.OnFinal = func(m *msg.Message, st store.State, _ string) { finals.Store(m.ID, st) }
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000006", "too late")
	g.waitState(t, id, store.Expired)
	// The record is readable once badger has it, before the commit's
	// waiter, which then calls OnFinal, wakes: wait for that call too.
	var st any
	waitUntil(t, 5*time.Second, func() bool { st, _ = finals.Load(id); return st == store.Expired },
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
	err := g.r.Submit(context.Background(), &msg.Message{From: "+8613900000009", To: "+8613800000007", Text: "3"})
	if !errors.Is(err, msg.ErrOverloaded) {
		t.Fatalf("third submit over depth 2: %v, want ErrOverloaded", err)
	}
	if g.r.Stats().Throttled.Load() != 1 {
		t.Fatal("throttle not counted")
	}
}

func TestNoRouteForAlphanumeric(t *testing.T) {
	g := newRig(t, "", Config{})
	err := g.r.Submit(context.Background(), &msg.Message{From: "+8613900000009", To: "alpha:BANK", Text: "x"})
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
	err := g.r.Submit(ctx, &msg.Message{From: "+8613900000009", To: "+8613800000009", Text: "early"})
	if !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("submit before Run: %v, want ErrNotStored after the context ends", err)
	}
	g.run(t)
	id := g.submit(t, "+8613900000009", "+8613800000009", "after start")
	g.waitState(t, id, store.Delivered)
	time.Sleep(20 * time.Millisecond)
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
	if err := db.Accept(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	id := m.ID
	db.Close()

	g2 := newRig(t, dir, Config{})
	g2.run(t)
	g2.waitState(t, id, store.Delivered)
	if got := g2.sent.sms_(); len(got) != 1 || got[0] != "+8613800000008|survive" {
		t.Fatalf("after restart sms %v", got)
	}
	if g2.r.Stats().Recovered.Load() != 1 {
		t.Fatalf("recovered %d", g2.r.Stats().Recovered.Load())
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	r := New(Config{RetryMin: time.Second, RetryMax: 8 * time.Second}, nil, nil, nil, nil)
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
	g.waitState(t, other, store.Delivered)
	g.waitState(t, first, store.Delivered)
	time.Sleep(20 * time.Millisecond)
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
			if err := g.r.Submit(context.Background(), m); err != nil {
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
	g.waitState(t, ids[0], store.Delivered)
	time.Sleep(20 * time.Millisecond)
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
	time.Sleep(50 * time.Millisecond)
	g.online(t, "sip:carol@example.com", "sip:carol@127.0.0.1:5098")
	for _, id := range ids {
		g.waitState(t, id, store.Delivered)
	}
	got := g.sent.im()
	for i, s := range got {
		if want := fmt.Sprintf("sip:carol@example.com|m%d|sip:carol@127.0.0.1:5098", i); s != want {
			t.Fatalf("delivery %d: %q, want %q (all: %v)", i, s, want, got)
		}
	}
}
