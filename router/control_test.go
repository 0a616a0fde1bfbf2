package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

func (g *rig) submitMsg(t *testing.T, m *msg.Message) string {
	t.Helper()
	if m.Origin.Kind == 0 {
		m.Origin = msg.Origin{Kind: msg.FromESME, Account: "esme1"}
	}
	if err := msg.Accept(context.Background(), g.r, m); err != nil {
		t.Fatalf("submit: %v", err)
	}
	return m.ID
}

func TestScheduledHeldUntilItsTime(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	at := time.Now().Add(400 * time.Millisecond)
	id := g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000001", Text: "later", NotBefore: at})
	// A registration of anyone does not wake it: only its time does.
	g.online(t, "+8613800000001", "sip:x@127.0.0.1")
	time.Sleep(time.Until(at.Add(-150 * time.Millisecond)))
	got := append(g.sent.sms_(), g.sent.im()...)
	w := g.r.Waiting()
	// On a loaded machine the steps above can outlast the schedule; only
	// a send seen while its time is still ahead is early.
	if time.Now().Before(at) {
		if len(got) != 0 {
			t.Fatalf("sent before its time: %v", got)
		}
		if w.Scheduled != 1 {
			t.Fatalf("waiting %+v, want one scheduled", w)
		}
	}
	g.waitState(t, id, msg.Delivered)
	if time.Now().Before(at) {
		t.Fatal("delivered before its time")
	}
}

func TestScheduledAfterExpiryRefused(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	m := &msg.Message{From: "+8613900000009", To: "+8613800000001", Text: "x", NotBefore: time.Now().Add(2 * time.Hour), Expires: time.Now().Add(time.Hour)}
	if _, err := g.r.Stage(context.Background(), m); !errors.Is(err, msg.ErrBadSchedule) {
		t.Fatalf("got %v, want ErrBadSchedule", err)
	}
	// Without an expiry, the default validity runs from the schedule.
	m = &msg.Message{From: "+8613900000009", To: "+8613800000001", Text: "x", NotBefore: time.Now().Add(72 * time.Hour)}
	id := g.submitMsg(t, m)
	rec, _ := g.db.Message(id)
	if !rec.Msg.Expires.After(m.NotBefore) {
		t.Fatalf("expires %v before its schedule %v", rec.Msg.Expires, m.NotBefore)
	}
}

func TestScheduledSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g := newRig(t, dir, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.r.Run(ctx); close(done) }()
	at := time.Now().Add(1500 * time.Millisecond)
	id := g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000002", Text: "held", NotBefore: at})
	cancel()
	<-done
	g.db.Close()

	g2 := newRig(t, dir, Config{})
	g2.run(t)
	time.Sleep(300 * time.Millisecond)
	if got := g2.sent.sms_(); len(got) != 0 {
		t.Fatalf("sent after the restart before its time: %v", got)
	}
	g2.waitState(t, id, msg.Delivered)
	if time.Now().Before(at) {
		t.Fatal("delivered before its time")
	}
}

// blockingSMS holds every SMS until released, recording the order.
type blockingSMS struct {
	mu      sync.Mutex
	order   []string
	release chan struct{}
}

func (b *blockingSMS) SendSMS(_ context.Context, m *msg.Message) error {
	<-b.release
	b.mu.Lock()
	b.order = append(b.order, m.Text)
	b.mu.Unlock()
	return nil
}

func TestPriorityGoesFirst(t *testing.T) {
	// One worker and no more: the rest wait in the queue, by priority.
	g := newRig(t, "", Config{Workers: 1, MaxWorkers: 1})
	sms := &blockingSMS{release: make(chan struct{})}
	g.r.sms = sms
	g.run(t)
	// The one worker is busy with the first; the rest are ready together.
	g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000003", Text: "first"})
	for i := range 3 {
		g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000003", Text: fmt.Sprint("normal", i)})
	}
	g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000003", Text: "urgent", Priority: 2})
	close(sms.release)
	g.waitIdle(t)
	sms.mu.Lock()
	defer sms.mu.Unlock()
	if len(sms.order) != 5 || sms.order[1] != "urgent" {
		t.Fatalf("order %v, want the urgent one right after the first", sms.order)
	}
}

func TestCancel(t *testing.T) {
	g := newRig(t, "", Config{})
	var finals sync.Map
	g.r.cfg.OnFinal = func(m *msg.Message, o msg.Outcome) { finals.Store(m.ID, o.State) }
	g.run(t)
	ctx := context.Background()
	// Scheduled: cancelled at once, never sent.
	id := g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000004", Text: "never", NotBefore: time.Now().Add(time.Hour)})
	rec, err := g.r.Cancel(ctx, id)
	if err != nil || rec.State != msg.Cancelled {
		t.Fatalf("cancel: %v %v", rec.State, err)
	}
	if st, _ := finals.Load(id); st != msg.Cancelled {
		t.Fatalf("OnFinal saw %v", st)
	}
	// Again: final now.
	if rec, err := g.r.Cancel(ctx, id); !errors.Is(err, msg.ErrFinal) || rec.State != msg.Cancelled {
		t.Fatalf("second cancel: %v %v", rec.State, err)
	}
	// Waiting for a retry.
	g.smsErr = func(*msg.Message) error { return errors.New("smsc down") }
	id = g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000005", Text: "retried"})
	testutil.WaitFor(t, "a retry", 5*time.Second, func() bool { return g.r.Stats().Retries.Load() > 0 })
	if rec, err := g.r.Cancel(ctx, id); err != nil || rec.State != msg.Cancelled {
		t.Fatalf("cancel a retry: %v %v", rec.State, err)
	}
	// Delivered: final.
	g.mu.Lock()
	g.smsErr = nil
	g.mu.Unlock()
	id = g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000006", Text: "gone"})
	g.waitState(t, id, msg.Delivered)
	if _, err := g.r.Cancel(ctx, id); !errors.Is(err, msg.ErrFinal) {
		t.Fatalf("cancel delivered: %v", err)
	}
	if _, err := g.r.Cancel(ctx, "00000000000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	g.waitIdle(t)
}

func TestCancelWhileDelivering(t *testing.T) {
	g := newRig(t, "", Config{})
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	g.smsErr = func(*msg.Message) error {
		once.Do(func() { close(entered) })
		<-release
		return errors.New("smsc busy")
	}
	g.run(t)
	id := g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000007", Text: "in flight"})
	<-entered
	res := make(chan error, 1)
	go func() {
		rec, err := g.r.Cancel(context.Background(), id)
		if err == nil && rec.State != msg.Cancelled {
			err = fmt.Errorf("state %v", rec.State)
		}
		res <- err
	}()
	time.Sleep(100 * time.Millisecond)
	close(release) // the attempt fails: instead of a retry, it ends cancelled
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	g.waitIdle(t)
}

func TestReplaceScheduled(t *testing.T) {
	g := newRig(t, "", Config{})
	g.run(t)
	ctx := context.Background()
	id := g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000008", Text: "old", NotBefore: time.Now().Add(time.Hour)})
	rec, err := g.r.Replace(ctx, id, func(m *msg.Message) error {
		m.Text = "new"
		m.NotBefore = time.Now().Add(200 * time.Millisecond)
		return nil
	})
	if err != nil || rec.Msg.Text != "new" {
		t.Fatalf("replace: %q %v", rec.Msg.Text, err)
	}
	g.waitState(t, id, msg.Delivered)
	if got := g.sent.sms_(); len(got) != 1 || got[0] != "+8613800000008|new" {
		t.Fatalf("sent %v", got)
	}
	if _, err := g.r.Replace(ctx, id, func(m *msg.Message) error { m.Text = "late"; return nil }); !errors.Is(err, msg.ErrFinal) {
		t.Fatalf("replace delivered: %v", err)
	}
	id = g.submitMsg(t, &msg.Message{From: "+8613900000009", To: "+8613800000008", Text: "x", NotBefore: time.Now().Add(time.Hour), Expires: time.Now().Add(2 * time.Hour)})
	if _, err := g.r.Replace(ctx, id, func(m *msg.Message) error { m.NotBefore = time.Now().Add(3 * time.Hour); return nil }); !errors.Is(err, msg.ErrBadSchedule) {
		t.Fatalf("replace past expiry: %v", err)
	}
	if w := g.r.Waiting(); w.Scheduled != 1 {
		t.Fatalf("the refused replacement lost the message: %+v", w)
	}
}
