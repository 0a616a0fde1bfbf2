package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"expvar"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smstext"
)

// accept stages m and waits for its commit, as msg.Accept does for adapters.
func accept(db *DB, ctx context.Context, m *msg.Message) error {
	_, p, err := db.Stage(ctx, m, Dedup{})
	if err != nil {
		return err
	}
	return p.Settle(ctx)
}

// acceptDedup is accept with duplicate suppression under key.
func acceptDedup(db *DB, ctx context.Context, m *msg.Message, key []byte, window time.Duration) (dup string, err error) {
	dup, p, err := db.Stage(ctx, m, Dedup{Key: key, Window: window})
	if err != nil || dup != "" {
		return dup, err
	}
	return "", p.Settle(ctx)
}

func openT(t testing.TB, opts Options) *DB {
	t.Helper()
	return openKnobsT(t, opts, knobs{})
}

// openKnobsT is openT with test-only settings (faults, baselines).
func openKnobsT(t testing.TB, opts Options, k knobs) *DB {
	t.Helper()
	db, err := open(opts, k)
	if err != nil {
		t.Fatalf("Open(%+v): %v", opts, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newMsg(i int) *msg.Message {
	return &msg.Message{
		From:    msg.Address(fmt.Sprintf("+86138%08d", i)),
		To:      "sip:alice@example.com",
		Text:    fmt.Sprintf("hello %d — 你好", i),
		Origin:  msg.Origin{Kind: msg.FromESME, Account: "esme1", Ref: fmt.Sprint(i)},
		Receipt: i%2 == 0,
		Expires: time.Unix(1900000000, 123).Add(time.Duration(i)),
	}
}

func sameMsg(t *testing.T, got, want msg.Message) {
	t.Helper()
	if got.ID != want.ID || got.From != want.From || got.To != want.To || got.Text != want.Text ||
		got.Origin != want.Origin || got.Receipt != want.Receipt ||
		!got.Accepted.Equal(want.Accepted) || !got.Expires.Equal(want.Expires) {
		t.Fatalf("message differs:\n got %+v\nwant %+v", got, want)
	}
}

// acceptConcurrently accepts n messages from w goroutines and returns them.
func acceptConcurrently(t *testing.T, db *DB, w, n int) []*msg.Message {
	t.Helper()
	ms := make([]*msg.Message, n)
	for i := range ms {
		ms[i] = newMsg(i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, w)
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += w {
				if err := accept(db, context.Background(), ms[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Accept: %v", err)
	}
	return ms
}

func TestAcceptDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	ms := acceptConcurrently(t, db, 32, 2000)
	if s := db.Stats(); s.Batches >= 2000 || s.Commits != 2000 { // one key per accepted message
		t.Errorf("stats %+v: want 2000 writes in fewer batches than writes", s)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openT(t, Options{Dir: dir})
	want := map[string]*msg.Message{}
	for _, m := range ms {
		want[m.ID] = m
	}
	var got []string
	err := db.Unfinished(func(r Record) error {
		m, ok := want[r.Msg.ID]
		if !ok {
			return fmt.Errorf("unexpected id %s", r.Msg.ID)
		}
		sameMsg(t, r.Msg, *m)
		if r.State != msg.Accepted || len(r.Events) != 1 || r.Events[0].State != msg.Accepted || !r.Events[0].At.Equal(m.Accepted) {
			return fmt.Errorf("record %s: state %v events %+v", r.Msg.ID, r.State, r.Events)
		}
		got = append(got, r.Msg.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ms) {
		t.Fatalf("Unfinished after reopen gave %d records, want %d", len(got), len(ms))
	}
	if !sort.StringsAreSorted(got) {
		t.Fatal("Unfinished is not in id (acceptance) order")
	}
}

func TestIDsUniqueAndIncreasingAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	var all []string
	for run := 0; run < 3; run++ {
		db := openT(t, Options{Dir: dir})
		for i := 0; i < 200; i++ {
			m := newMsg(i)
			if err := accept(db, context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if !validID(m.ID) {
				t.Fatalf("malformed id %q", m.ID)
			}
			if n := len(all); n > 0 && m.ID <= all[n-1] {
				t.Fatalf("run %d: id %s not after %s", run, m.ID, all[n-1])
			}
			all = append(all, m.ID)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Two stores sharing nothing, opened in the same second, still differ.
	a, b := openT(t, Options{}), openT(t, Options{})
	ma, mb := newMsg(1), newMsg(1)
	if err := accept(a, context.Background(), ma); err != nil {
		t.Fatal(err)
	}
	if err := accept(b, context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	if ma.ID == mb.ID {
		t.Fatalf("two independent stores issued the same id %s", ma.ID)
	}
}

func TestTransitionsAndHistory(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	ctx := context.Background()
	done, open, lazy := newMsg(1), newMsg(2), newMsg(3)
	for _, m := range []*msg.Message{done, open, lazy} {
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	steps := []Event{
		{State: msg.Routed, Detail: "im sip:alice@example.com"},
		{State: msg.InFlight, Detail: "sip MESSAGE sent"},
		{State: msg.Delivered, Detail: "200 OK"},
	}
	for i, ev := range steps {
		if err := db.Transition(ctx, done.ID, ev, i != 1); err != nil { // the middle one not waited for
			t.Fatal(err)
		}
	}
	if err := db.Transition(ctx, done.ID, Event{State: msg.Failed}, true); !errors.Is(err, ErrFinal) {
		t.Fatalf("transition after final: %v, want ErrFinal", err)
	}
	if err := db.Transition(ctx, open.ID, Event{State: msg.Routed, Detail: "sms smsc"}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Transition(ctx, lazy.ID, Event{State: msg.Routed, Detail: "queued lazily"}, false); err != nil {
		t.Fatal(err)
	}
	next := time.Now().Add(time.Minute)
	if err := db.Reschedule(ctx, open.ID, 2, next, "480 Temporarily Unavailable"); err != nil {
		t.Fatal(err)
	}
	// Bad input gets clear errors.
	if err := db.Transition(ctx, open.ID, Event{State: 0}, true); !errors.Is(err, ErrBadState) {
		t.Fatalf("state 0: %v", err)
	}
	if err := db.Transition(ctx, "nope", Event{State: msg.Routed}, true); !errors.Is(err, ErrBadID) {
		t.Fatalf("bad id: %v", err)
	}
	if err := db.Transition(ctx, "00000000000000000000", Event{State: msg.Routed}, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := db.Message("00000000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}

	check := func(when string) {
		t.Helper()
		r, err := db.Message(done.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != msg.Delivered || len(r.Events) != 4 {
			t.Fatalf("%s: done: state %v, %d events", when, r.State, len(r.Events))
		}
		for i, ev := range steps {
			got := r.Events[i+1]
			if got.State != ev.State || got.Detail != ev.Detail || got.At.IsZero() || got.At.Before(r.Events[i].At) {
				t.Fatalf("%s: event %d = %+v, want %+v", when, i+1, got, ev)
			}
		}
		r, err = db.Message(open.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != msg.Routed || r.Attempts != 2 || !r.NextAttempt.Equal(next) || len(r.Events) != 3 ||
			r.Events[2] != (Event{State: msg.Routed, At: r.Events[2].At, Detail: "480 Temporarily Unavailable"}) {
			t.Fatalf("%s: open: %+v", when, r)
		}
		var ids []string
		if err := db.Unfinished(func(r Record) error { ids = append(ids, r.Msg.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{open.ID, lazy.ID}) {
			t.Fatalf("%s: unfinished %v, want [%s %s]", when, ids, open.ID, lazy.ID)
		}
	}
	check("before reopen")
	db.Close() // also flushes the lazy transition
	db = openT(t, Options{Dir: dir})
	check("after reopen")
	if r, err := db.Message(lazy.ID); err != nil || r.State != msg.Routed {
		t.Fatalf("non-durable transition lost over Close: %+v %v", r, err)
	}
	if err := db.Transition(ctx, done.ID, Event{State: msg.Expired}, true); !errors.Is(err, ErrFinal) {
		t.Fatalf("transition of final record read from disk: %v, want ErrFinal", err)
	}
}

// Many goroutines transition one record: every event is kept, none lost to a
// racing read-modify-write.
func TestConcurrentTransitionsOneRecord(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	m := newMsg(1)
	if err := accept(db, context.Background(), m); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Reschedule(context.Background(), m.ID, i, time.Time{}, fmt.Sprint("try ", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := db.Message(m.ID)
	if err != nil || len(r.Events) != n+1 {
		t.Fatalf("got %d events, %v; want %d", len(r.Events), err, n+1)
	}
}

// With a tiny cache, records are evicted once committed and read back from
// disk: transitions still work and the cache stays bounded.
func TestCacheBounded(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), CacheRecords: 1})
	ms := acceptConcurrently(t, db, 8, 1500)
	for _, m := range ms {
		if err := db.Transition(context.Background(), m.ID, Event{State: msg.Routed, Detail: "x"}, true); err != nil {
			t.Fatal(err)
		}
	}
	if c := db.Stats().Cached; c > 64*4+64 {
		t.Fatalf("cache holds %d records, want it bounded near %d", c, 64*4)
	}
	for _, m := range ms {
		r, err := db.Message(m.ID)
		if err != nil || r.State != msg.Routed || len(r.Events) != 2 {
			t.Fatalf("%s: %+v %v", m.ID, r, err)
		}
	}
}

func TestRetentionTTL(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Retention: time.Second})
	ctx := context.Background()
	m, keep := newMsg(1), newMsg(2)
	for _, x := range []*msg.Message{m, keep} {
		if err := accept(db, ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true); err != nil {
		t.Fatal(err)
	}
	// badger's TTL runs on the real clock (none to inject): the record goes
	// at its deadline second, within about a second.
	var err error
	testutil.WaitFor(t, "the final record to expire", 15*time.Second, func() bool {
		_, err = db.Message(m.ID)
		return err != nil
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if r, err := db.Message(keep.ID); err != nil || r.State != msg.Accepted {
		t.Fatalf("unfinished record must not expire: %+v %v", r, err)
	}
}

func TestSyncFailureReachesEveryWaiter(t *testing.T) {
	injected := errors.New("injected: no space left on device")
	var failing atomic.Bool
	failing.Store(true)
	db := openKnobsT(t, Options{Dir: t.TempDir(), ProbeInterval: 10 * time.Millisecond}, knobs{syncFault: func() error {
		if failing.Load() {
			return injected
		}
		return nil
	}})

	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := newMsg(i)
			errs[i] = accept(db, context.Background(), m)
			if errs[i] != nil && m.ID != "" {
				errs[i] = fmt.Errorf("failed accept left id %q set", m.ID)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, injected) || !errors.Is(err, msg.ErrNotStored) {
			t.Fatalf("writer %d: %v, want the injected error and ErrNotStored", i, err)
		}
	}
	if err := db.Put(context.Background(), []byte("k/x"), []byte("v")); !errors.Is(err, injected) {
		t.Fatalf("Put: %v", err)
	}
	if err := db.Healthy(); !errors.Is(err, injected) {
		t.Fatalf("Healthy: %v", err)
	}
	if s := db.Stats(); s.Failed == 0 || !errors.Is(s.LastError, injected) {
		t.Fatalf("stats %+v", s)
	}
	failing.Store(false) // the disk recovers: the probe write makes the store healthy again
	testutil.WaitForState(t, 10*time.Second, func() bool { return db.Healthy() == nil },
		func() string { return fmt.Sprintf("still unhealthy: %v", db.Healthy()) })
	if err := accept(db, context.Background(), newMsg(99)); err != nil {
		t.Fatal(err)
	}
}

// A real failure, no hook: badger underneath is closed while the store runs.
func TestBadgerFailure(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	m := newMsg(1)
	if err := accept(db, context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Close(); err != nil {
		t.Fatal(err)
	}
	// The first acceptance after the failure is durable in the commit log
	// (the next start replays it) and may be acknowledged; once badger has
	// refused a write, acceptances wait for it and are refused.
	_ = accept(db, context.Background(), newMsg(2))
	testutil.WaitForState(t, 5*time.Second, func() bool { return db.Healthy() != nil },
		func() string { return "store still healthy after badger refused a write" })
	if err := accept(db, context.Background(), newMsg(3)); !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("Accept on failed disk: %v", err)
	}
	if err := db.Transition(context.Background(), m.ID, Event{State: msg.Routed}, true); err == nil {
		t.Fatal("Transition on failed disk succeeded")
	}
	if db.Healthy() == nil {
		t.Fatal("Healthy after write failure")
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close after failure: %v", err)
	}
}

func TestClosed(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	m := newMsg(1)
	if err := accept(db, context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Accept":     accept(db, ctx, newMsg(2)),
		"Transition": db.Transition(ctx, m.ID, Event{State: msg.Routed}, false),
		"Put":        db.Put(ctx, []byte("k/a"), nil),
		"Delete":     db.Delete(ctx, []byte("k/a")),
		"Healthy":    db.Healthy(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestCanceledContextIsNotAnAck(t *testing.T) {
	db := openT(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := newMsg(1)
	if err := accept(db, ctx, m); !errors.Is(err, context.Canceled) || !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("Accept with canceled ctx: %v", err)
	}
}

func TestKV(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	ctx := context.Background()
	m := newMsg(1)
	if err := accept(db, ctx, m); err != nil { // internal keys must not show in Iterate
		t.Fatal(err)
	}
	kv := map[string]string{"p/+8613800000001": "online", "p/+8613800000002": "away", "k/x": "1"}
	for k, v := range kv {
		if err := db.Put(ctx, []byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"", "m/x", "_/epoch"} {
		if err := db.Put(ctx, []byte(k), []byte("v")); !errors.Is(err, ErrReservedKey) {
			t.Errorf("Put(%q): %v, want ErrReservedKey", k, err)
		}
		if _, err := db.Get([]byte(k)); !errors.Is(err, ErrReservedKey) {
			t.Errorf("Get(%q): %v, want ErrReservedKey", k, err)
		}
	}
	if err := db.Delete(ctx, []byte("p/+8613800000002")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, Options{Dir: dir})
	if v, err := db.Get([]byte("p/+8613800000001")); err != nil || string(v) != "online" {
		t.Fatalf("Get: %q %v", v, err)
	}
	if _, err := db.Get([]byte("p/+8613800000002")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	var keys []string
	if err := db.Iterate(nil, func(k, v []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"k/x", "p/+8613800000001"}) {
		t.Fatalf("Iterate(all) = %q", keys)
	}
	stop := errors.New("stop")
	n := 0
	err := db.Iterate([]byte("p/"), func(k, v []byte) error {
		n++
		if !bytes.Equal(v, []byte("online")) {
			t.Errorf("%s = %q", k, v)
		}
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Iterate stop: %v after %d", err, n)
	}
}

func TestAcceptDedup(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, DedupWindow: time.Hour})
	ctx := context.Background()
	a := newMsg(1)
	if dup, err := acceptDedup(db, ctx, a, []byte("k1"), time.Hour); err != nil || dup != "" || a.ID == "" {
		t.Fatalf("first: dup %q err %v id %q", dup, err, a.ID)
	}
	b := newMsg(1)
	if dup, err := acceptDedup(db, ctx, b, []byte("k1"), time.Hour); err != nil || dup != a.ID || b.ID != "" {
		t.Fatalf("second: dup %q (want %q) err %v id %q", dup, a.ID, err, b.ID)
	}
	c := newMsg(2)
	if dup, err := acceptDedup(db, ctx, c, []byte("k2"), time.Hour); err != nil || dup != "" || c.ID == a.ID {
		t.Fatalf("other key: dup %q err %v", dup, err)
	}
	// c finishes: its key must come back from the final record, a's from
	// the unfinished one.
	if err := db.Transition(ctx, c.ID, Event{State: msg.Delivered}, true); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, Options{Dir: dir, DedupWindow: time.Hour})
	d := newMsg(1)
	if dup, err := acceptDedup(db, ctx, d, []byte("k1"), time.Hour); err != nil || dup != a.ID {
		t.Fatalf("after reopen: dup %q err %v, want %q", dup, err, a.ID)
	}
	e := newMsg(2)
	if dup, err := acceptDedup(db, ctx, e, []byte("k2"), time.Hour); err != nil || dup != c.ID {
		t.Fatalf("after reopen, finished message: dup %q err %v, want %q", dup, err, c.ID)
	}
	n := 0
	db.Unfinished(func(Record) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d unfinished records, want 1 (duplicates stored nothing)", n)
	}
	if st := db.Stats(); st.Commits != 0 {
		t.Fatalf("%d writes after reopen, want 0: a duplicate writes nothing", st.Commits)
	}
}

// A key costs no badger write of its own: it lives in the record, so an
// accepted message is one write.
func TestDedupKeyIsInTheRecord(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	m := newMsg(1)
	if _, err := acceptDedup(db, ctx, m, []byte("k1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.Commits != 1 {
		t.Fatalf("%d writes for one accepted message, want 1", st.Commits)
	}
	r, err := db.Message(m.ID)
	if err != nil || r.dedup != "k1" || r.dedupUntil < time.Now().Add(59*time.Minute).Unix() {
		t.Fatalf("record: key %q until %d, err %v", r.dedup, r.dedupUntil, err)
	}
}

// The window is exact (second resolution), and a key leaves memory within
// two windows.
func TestDedupIndexWindow(t *testing.T) {
	var x dedupIndex
	x.init(DefaultDedupMaxKeys)
	t0 := time.Unix(1700000000, 0)
	w := time.Minute
	id1, id2, id3 := "0000000000000000000a", "0000000000000000000b", "0000000000000000000c"
	x.put([]byte("k"), id1, t0.Add(w).Unix(), t0, w)
	if id, ok := x.get([]byte("k"), t0.Add(w-time.Second)); !ok || id != id1 {
		t.Fatalf("inside the window: %q %v", id, ok)
	}
	if _, ok := x.get([]byte("k"), t0.Add(w)); ok {
		t.Fatal("found at the end of its window")
	}
	x.put([]byte("x"), id2, t0.Add(2*w).Unix(), t0.Add(w), w) // rotation: k moves to prev
	if k := x.key([]byte("k")); x.prev[k.mapKey()] == (dedupEntry{}) {
		t.Fatal("rotation lost a key younger than two windows")
	}
	x.put([]byte("y"), id3, t0.Add(3*w).Unix(), t0.Add(2*w), w) // second rotation drops k
	if _, ok := x.get([]byte("k"), t0); ok || len(x.cur)+len(x.prev) != 2 {
		t.Fatalf("after two windows: %d keys kept, want 2", len(x.cur)+len(x.prev))
	}
}

// The index holds at most its cap: past half of it the window's keys
// rotate early, the newest half-cap of keys still found, and the early
// rotations counted.
func TestDedupIndexBounded(t *testing.T) {
	var x dedupIndex
	x.init(100)
	t0 := time.Unix(1700000000, 0)
	w := time.Hour
	id := func(i int) string { return fmt.Sprintf("%020d", i) }
	for i := range 1000 {
		x.put([]byte(id(i)), id(i), t0.Add(w).Unix(), t0, w) // all in one window
	}
	keys, short := x.stats()
	if keys > 100 || short == 0 {
		t.Fatalf("1,000 keys under a cap of 100: %d held, %d early rotations", keys, short)
	}
	for i := 950; i < 1000; i++ {
		if got, ok := x.get([]byte(id(i)), t0); !ok || got != id(i) {
			t.Fatalf("key %d of the newest 50: %q %v", i, got, ok)
		}
	}
	if _, ok := x.get([]byte(id(0)), t0); ok {
		t.Fatal("the oldest key outlived the cap")
	}
}

// An index entry naming a record that is not there (its commit never
// happened) is no duplicate: the message is accepted and takes the key.
func TestDedupEntryWithoutRecord(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	now := time.Now()
	ghost := "0000000000000000000a"
	db.dedup.put([]byte("k1"), ghost, now.Add(time.Hour).Unix(), now, time.Hour)
	m := newMsg(1)
	if dup, err := acceptDedup(db, ctx, m, []byte("k1"), time.Hour); err != nil || dup != "" || m.ID == "" {
		t.Fatalf("dup %q err %v id %q, want a new message", dup, err, m.ID)
	}
	if id, ok := db.dedup.get([]byte("k1"), time.Now()); !ok || id != m.ID {
		t.Fatalf("key names %q, want %q", id, m.ID)
	}
}

// An unfinished record is one key under "_/u/"; finishing moves it to "m/".
// Until a checkpoint an unfinished record is only in the commit log and in
// memory, and one finished before it never reaches badger's "_/u/"; its
// final record is in the segments, not in badger.
func TestRecordLayout(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CheckpointInterval: time.Hour})
	ctx := context.Background()
	a, b := newMsg(1), newMsg(2)
	for _, m := range []*msg.Message{a, b} {
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Transition(ctx, a.ID, Event{State: msg.Delivered}, true); err != nil {
		t.Fatal(err)
	}
	db.committer.waitApplied() // badger gets a batch after its acknowledgement
	has := func(key string) bool { _, err := db.get([]byte(key)); return err == nil }
	if has(prefixUnfinished + b.ID) {
		t.Fatal("unfinished record in badger before the checkpoint")
	}
	if r, err := db.Message(b.ID); err != nil || r.State != msg.Accepted {
		t.Fatalf("deferred record: %v %v", r.State, err)
	}
	if err := db.committer.flushDeferred(); err != nil {
		t.Fatal(err)
	}
	inFinals := func(id string) bool { _, err := db.committer.finals.get(id, time.Now()); return err == nil }
	if has(prefixUnfinished+a.ID) || has(prefixMsg+a.ID) || !inFinals(a.ID) || !has(prefixUnfinished+b.ID) || inFinals(b.ID) {
		t.Fatalf("layout: u/a %v m/a %v final a %v u/b %v final b %v", has(prefixUnfinished+a.ID), has(prefixMsg+a.ID), inFinals(a.ID), has(prefixUnfinished+b.ID), inFinals(b.ID))
	}
	db.Close()
	db = openT(t, Options{Dir: dir})
	var ids []string
	if err := db.Unfinished(func(r Record) error { ids = append(ids, r.Msg.ID+":"+r.State.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	want := []string{b.ID + ":" + msg.Accepted.String()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("unfinished %v, want %v", ids, want)
	}
	for _, id := range []string{a.ID, b.ID} {
		if _, err := db.Message(id); err != nil {
			t.Fatalf("Message(%s): %v", id, err)
		}
	}
}

// With CommitInterval, a commit starts no sooner than the interval after the
// previous one started, and a write after an idle spell is not held back.
func TestCommitInterval(t *testing.T) {
	const iv = 200 * time.Millisecond
	db := openT(t, Options{Dir: t.TempDir(), CommitInterval: iv})
	ctx := context.Background()
	put := func(k string) time.Duration {
		t.Helper()
		start := time.Now()
		if err := db.Put(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	put("a")
	if d := put("b"); d < iv*3/4 {
		t.Errorf("second commit right after the first took %v, want about %v", d, iv)
	}
	time.Sleep(iv) // the committer paces on the real clock, none to inject: b's commit began before put returned
	if d := put("c"); d >= iv*3/4 {
		t.Errorf("commit after an idle %v took %v, want no wait", iv, d)
	}
	if got := db.Stats().Batches; got != 3 {
		t.Errorf("batches = %d, want 3", got)
	}
}

// A record that turns final while its earlier write still waits in the open
// batch is written once: the superseded put is skipped and, if the record was
// born in that batch, its "_/u/" key never reaches disk, so no delete either.
func TestFinalInOpenBatchWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CommitInterval: time.Second})
	ctx := context.Background()
	old := newMsg(1)
	if err := accept(db, ctx, old); err != nil { // committed: its "_/u/" key is on disk
		t.Fatal(err)
	}
	before := db.Stats()
	fresh := newMsg(2)
	_, p, err := db.Stage(ctx, fresh, Dedup{}) // the next batch stays open for about a second
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []struct {
		id string
		st msg.State
	}{{old.ID, msg.Routed}, {old.ID, msg.Delivered}, {fresh.ID, msg.Delivered}} {
		if err := db.Transition(ctx, tr.id, Event{State: tr.st, Detail: "t"}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	after := db.Stats()
	// fresh: its final record only; old: final record and the delete of its
	// "_/u/" key (the Routed put is superseded). Without this: 3 + 3.
	if w, b := after.Commits-before.Commits, after.Batches-before.Batches; w != 3 || b != 1 {
		t.Fatalf("%d writes in %d batches, want 3 in 1", w, b)
	}
	db.Close()
	db = openT(t, Options{Dir: dir})
	if err := db.Unfinished(func(r Record) error { return fmt.Errorf("unfinished after reopen: %s %v", r.Msg.ID, r.State) }); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*msg.Message{old, fresh} {
		r, err := db.Message(m.ID)
		if err != nil || r.State != msg.Delivered {
			t.Fatalf("%s after reopen: %v %v", m.ID, r.State, err)
		}
		sameMsg(t, r.Msg, *m)
	}
	if r, _ := db.Message(old.ID); len(r.Events) != 3 || r.Events[1].State != msg.Routed {
		t.Fatalf("old's history %+v, want accepted, routed, delivered", r.Events)
	}
}

// Keys that are not 16 bytes are hashed into the index; a hit whose record
// carries another key (a collision) is no duplicate.
func TestDedupCollisionIsNoDuplicate(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	a := newMsg(1)
	if _, err := acceptDedup(db, ctx, a, []byte("k1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	db.dedup.put([]byte("k2"), a.ID, now.Add(time.Hour).Unix(), now, time.Hour) // as if k2 hashed like k1
	b := newMsg(1)
	if dup, err := acceptDedup(db, ctx, b, []byte("k2"), time.Hour); err != nil || dup != "" || b.ID == "" || b.ID == a.ID {
		t.Fatalf("dup %q err %v id %q: a collision suppressed a message", dup, err, b.ID)
	}
}

// A final state queued while the acceptance's batch is being committed
// waits for that commit, and is not written if it failed: a later batch
// must not make a refused message exist, final, after all (its dedup key
// would then suppress its own resubmission).
func TestNoWriteAfterFailedAcceptance(t *testing.T) {
	syncing, release := make(chan struct{}), make(chan error)
	var first atomic.Bool
	first.Store(true)
	db := openKnobsT(t, Options{Dir: t.TempDir()}, knobs{syncFault: func() error {
		if !first.CompareAndSwap(true, false) {
			return nil
		}
		close(syncing)
		return <-release // the acceptance's commit, held until the final state is queued
	}})
	ctx := context.Background()
	m := newMsg(1)
	_, p, err := db.Stage(ctx, m, Dedup{Key: []byte("k1"), Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	<-syncing
	done := make(chan error, 1)
	go func() { done <- db.Transition(ctx, id, Event{State: msg.Failed, Detail: "t"}, true) }()
	select {
	case err := <-done:
		t.Fatalf("final state queued while the acceptance was being committed: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release <- errors.New("injected")
	if err := p.Wait(ctx); err == nil {
		t.Fatal("acceptance committed despite the injected failure")
	}
	if err := <-done; !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("final state after a failed acceptance: %v, want ErrNotStored", err)
	}
	db.committer.waitApplied()
	if _, err := db.get([]byte(prefixMsg + id)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused message has a final record: %v", err)
	}
}

// A refused acceptance (its fsync failed after badger took the write) must
// not stay readable: its dedup key would make the sender's resubmission a
// "duplicate" of a message nobody will deliver until the next restart.
func TestRefusedAcceptanceIsGone(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	db := openKnobsT(t, Options{Dir: t.TempDir()}, knobs{syncFault: func() error {
		if fail.CompareAndSwap(true, false) {
			return errors.New("injected: fsync failed")
		}
		return nil
	}})
	ctx := context.Background()
	m := newMsg(1)
	_, p, err := db.Stage(ctx, m, Dedup{Key: []byte("k1"), Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	refused := m.ID
	if err := p.Settle(ctx); !errors.Is(err, msg.ErrNotStored) {
		t.Fatalf("acceptance: %v, want ErrNotStored", err)
	}
	if _, err := db.Message(refused); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused message still readable: %v", err)
	}
	again := newMsg(1)
	dup, err := acceptDedup(db, ctx, again, []byte("k1"), time.Hour)
	if err != nil || dup != "" || again.ID == "" || again.ID == refused {
		t.Fatalf("resubmission: dup %q err %v id %q, want a new message", dup, err, again.ID)
	}
	n := 0
	if err := db.Unfinished(func(r Record) error {
		if r.Msg.ID == refused {
			t.Errorf("refused message %s is unfinished work", refused)
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("unfinished: %d records, %v; want the resubmission only", n, err)
	}
}

// A finished message's record keeps the start of its text that a delivery
// receipt quotes, unless KeepText; an unfinished one keeps all of it.
func TestFinalRecordKeepsReceiptText(t *testing.T) {
	ctx := context.Background()
	text := "短信 which is longer than what a receipt quotes"
	for _, keep := range []bool{false, true} {
		db := openT(t, Options{Dir: t.TempDir(), KeepText: keep})
		m := newMsg(1)
		m.Text = text
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
		if r, err := db.Message(m.ID); err != nil || r.Msg.Text != text {
			t.Fatalf("unfinished: %q %v", r.Msg.Text, err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true); err != nil {
			t.Fatal(err)
		}
		want := text
		if !keep {
			want = string([]rune(text)[:smstext.ReceiptTextRunes])
		}
		db.committer.waitApplied()       // the final record leaves the cache once in badger
		if n := db.cache.len(); n != 0 { // read back from disk, not from the cache
			t.Fatalf("%d records still cached", n)
		}
		if r, err := db.Message(m.ID); err != nil || r.Msg.Text != want || r.State != msg.Delivered {
			t.Fatalf("KeepText %v: final text %q (%v, %v), want %q", keep, r.Msg.Text, r.State, err, want)
		}
	}
}

// A packed ID reads back as the ID.
func TestPackID(t *testing.T) {
	for _, id := range []string{"00000000000000000000", "vvvvvvvvvvvvvvvvvvvv", "0123456789abcdefghij", "klmnopqrstuv01234567", "0000000000000000000a"} {
		p, ok := packID(id)
		if !ok || p.String() != id {
			t.Errorf("%q -> %x -> %q (%v)", id, p, p.String(), ok)
		}
	}
	a, _ := packID("0000000000000000000a")
	b, _ := packID("0000000000000000000b")
	if a == b {
		t.Fatal("two IDs pack alike")
	}
	for _, bad := range []string{"", "0000000000000000000w", "0000000000000000000", "000000000000000000000", "000000000000000000A0"} {
		if _, ok := packID(bad); ok {
			t.Errorf("%q packed", bad)
		}
	}
}

// The duplicate index's filter never hides a key it was given, and lets
// few absent ones through to the map.
func TestDedupBloom(t *testing.T) {
	f := newBloom()
	var k dedupKey
	for i := range 200_000 {
		binary.LittleEndian.PutUint64(k[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(k[8:], uint64(i)*0xc2b2ae3d27d4eb4f)
		f.add(&k)
	}
	fp := 0
	for i := range 400_000 {
		binary.LittleEndian.PutUint64(k[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(k[8:], uint64(i)*0xc2b2ae3d27d4eb4f)
		if i < 200_000 && !f.has(&k) {
			t.Fatalf("key %d added but not found", i)
		}
		if i >= 200_000 && f.has(&k) {
			fp++
		}
	}
	if fp > 2000 { // 1% of the absent keys
		t.Fatalf("%d false positives in 200,000 absent keys", fp)
	}
}

// A client's key is kept in its own index, rotated by its own window: many
// content keys with a short window never push it out, and it is found
// again after a restart; the same bytes as a content key are another key.
func TestClientKeysOwnIndex(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, DedupWindow: time.Second, ClientKeyWindow: time.Hour})
	ctx := context.Background()
	first := newMsg(1)
	stage := func(db *DB, m *msg.Message, d Dedup) string {
		t.Helper()
		dup, p, err := db.Stage(ctx, m, d)
		if err != nil {
			t.Fatal(err)
		}
		if dup == "" {
			if err := p.Settle(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return dup
	}
	client := Dedup{Key: []byte("order-42"), Window: time.Hour, Client: true}
	if dup := stage(db, first, client); dup != "" {
		t.Fatalf("first copy a duplicate of %s", dup)
	}
	// Content keys with a 1 s window rotate their index: the client's key
	// stays.
	for i := range 3 {
		stage(db, newMsg(10+i), Dedup{Key: fmt.Appendf(nil, "content-%d", i), Window: time.Second})
		time.Sleep(1100 * time.Millisecond)
	}
	if dup := stage(db, newMsg(2), client); dup != first.ID {
		t.Fatalf("client key after content rotations: dup %q, want %s", dup, first.ID)
	}
	if dup := stage(db, newMsg(3), Dedup{Key: []byte("order-42"), Window: time.Hour}); dup != "" {
		t.Fatalf("the same bytes as a content key matched the client's key: %s", dup)
	}
	db.Close()
	db = openT(t, Options{Dir: dir, DedupWindow: time.Second, ClientKeyWindow: time.Hour})
	if dup := stage(db, newMsg(4), client); dup != first.ID {
		t.Fatalf("client key after a restart: dup %q, want %s", dup, first.ID)
	}
}

// A receipt changes a final record: "delivered" (taken by the SMSC)
// becomes the receipt's failure, durably, from the cache and from disk,
// and a receipt heard twice is one event.
func TestRecordReceiptAmendsFinalRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	hot, cold := newMsg(1), newMsg(2)
	for _, m := range []*msg.Message{hot, cold} {
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered, Detail: "sms"}, true); err != nil {
			t.Fatal(err)
		}
	}
	// cold's final record is read back from disk after a reopen; hot's
	// may still be cached.
	db.Close()
	db = openT(t, Options{Dir: dir})
	undeliv := Event{State: msg.Failed, Detail: "smsc receipt UNDELIV"}
	for _, id := range []string{hot.ID, cold.ID, hot.ID} {
		if err := db.RecordReceipt(ctx, id, undeliv); err != nil {
			t.Fatalf("receipt for %s: %v", id, err)
		}
	}
	if err := db.RecordReceipt(ctx, hot.ID, Event{State: msg.Routed}); !errors.Is(err, ErrBadState) {
		t.Fatalf("a receipt of a state that is not final: %v", err)
	}
	check := func(when string) {
		for _, id := range []string{hot.ID, cold.ID} {
			r, err := db.Message(id)
			if err != nil {
				t.Fatal(err)
			}
			n := len(r.Events)
			if r.State != msg.Failed || n != 3 || r.Events[1].State != msg.Delivered || r.Events[2].Detail != undeliv.Detail {
				t.Fatalf("%s: %s is %v with events %+v", when, id, r.State, r.Events)
			}
		}
	}
	check("before reopen")
	db.Close()
	db = openT(t, Options{Dir: dir})
	check("after reopen")
	if err := db.Transition(ctx, hot.ID, Event{State: msg.Delivered}, true); !errors.Is(err, ErrFinal) {
		t.Fatalf("transition after the receipt: %v, want ErrFinal", err)
	}
}

func TestPutPairs(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.PutPairs(ctx, [2][]byte{[]byte("a/1"), []byte("one")}, [2][]byte{[]byte("b/2"), []byte("two")}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a/1": "one", "b/2": "two"} {
		if v, err := db.Get([]byte(k)); err != nil || string(v) != want {
			t.Fatalf("%s: %q %v", k, v, err)
		}
	}
	if err := db.PutPairs(ctx, [2][]byte{[]byte("m/x"), nil}); !errors.Is(err, ErrReservedKey) {
		t.Fatalf("reserved key: %v", err)
	}
}

// With Metrics on, badger counts into its expvars, which the admin
// listener serves; off (the default), they stay still.
func TestBadgerMetrics(t *testing.T) {
	puts := func() int64 {
		v, ok := expvar.Get("badger_put_num_user").(*expvar.Int)
		if !ok {
			t.Fatalf("badger_put_num_user is %T", expvar.Get("badger_put_num_user"))
		}
		return v.Value()
	}
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		db := openT(t, Options{Dir: t.TempDir(), Metrics: on})
		before := puts()
		if err := db.Put(ctx, []byte("k/x"), []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Get([]byte("k/x")); err != nil { // the put has reached badger
			t.Fatal(err)
		}
		db.Close()
		if got := puts() - before; (got > 0) != on {
			t.Errorf("Metrics %v: %d puts counted", on, got)
		}
	}
}
