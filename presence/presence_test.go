package presence

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func bind(aor msg.Address, contact string, exp time.Time) Binding {
	return Binding{AOR: aor, Contact: contact, Via: "sip", Expires: exp}
}

func TestRegisterLookupUnregister(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	db := openDB(t, "")
	defer db.Close()
	s, err := Open(Options{KV: db, Now: ck.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var woke []msg.Address
	s.OnRegister(func(b Binding) { woke = append(woke, b.AOR) })
	if err := s.Register(ctx, bind("+8613800000001", "sip:a@10.0.0.1", ck.now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	ck.add(time.Second)
	if err := s.Register(ctx, bind("+8613800000001", "sip:a@10.0.0.2", ck.now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	b, ok := s.Lookup("+8613800000001")
	if !ok || b.Contact != "sip:a@10.0.0.2" {
		t.Fatalf("lookup: %+v %v, want the newest contact", b, ok)
	}
	if n := len(s.Bindings("+8613800000001")); n != 2 {
		t.Fatalf("%d bindings, want 2", n)
	}
	if len(woke) != 2 {
		t.Fatalf("OnRegister called %d times", len(woke))
	}
	if err := s.Unregister(ctx, "+8613800000001", "sip:a@10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if b, ok := s.Lookup("+8613800000001"); !ok || b.Contact != "sip:a@10.0.0.1" {
		t.Fatalf("after unregistering one contact: %+v %v", b, ok)
	}
	if err := s.Unregister(ctx, "+8613800000001", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup("+8613800000001"); ok || s.Len() != 0 {
		t.Fatal("still online after unregistering all contacts")
	}
	if _, ok := s.Lookup("+8613800009999"); ok {
		t.Fatal("unknown user online")
	}
	if err := s.Register(ctx, Binding{AOR: "+1"}); err == nil {
		t.Fatal("binding without contact accepted")
	}
}

func TestExpiryHidesAndSweeps(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	db := openDB(t, "")
	defer db.Close()
	s, _ := Open(Options{KV: db, Now: ck.now})
	ctx := context.Background()
	s.Register(ctx, bind("sip:bob@example.com", "sip:bob@10.0.0.3", ck.now().Add(10*time.Second)))
	if _, ok := s.Lookup("sip:bob@example.com"); !ok {
		t.Fatal("not online after register")
	}
	ck.add(11 * time.Second)
	if _, ok := s.Lookup("sip:bob@example.com"); ok {
		t.Fatal("online after the registration expired")
	}
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 || s.Len() != 0 {
		t.Fatalf("sweep removed %d (%v), len %d", n, err, s.Len())
	}
	var left int
	db.Iterate([]byte(keyPrefix), func(_, _ []byte) error { left++; return nil })
	if left != 0 {
		t.Fatalf("%d expired bindings left in the store", left)
	}
}

// Presence survives a restart; what expired while the bridge was down is
// dropped on load.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	db := openDB(t, dir)
	s, _ := Open(Options{KV: db, Now: ck.now})
	ctx := context.Background()
	s.Register(ctx, bind("+8613800000002", "sip:long@10.0.0.4", ck.now().Add(time.Hour)))
	s.Register(ctx, bind("+8613800000003", "sip:short@10.0.0.5", ck.now().Add(time.Minute)))
	db.Close()

	ck.add(2 * time.Minute)
	db = openDB(t, dir)
	defer db.Close()
	s2, err := Open(Options{KV: db, Now: ck.now})
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := s2.Lookup("+8613800000002"); !ok || b.Contact != "sip:long@10.0.0.4" {
		t.Fatalf("long registration lost over restart: %+v %v", b, ok)
	}
	if _, ok := s2.Lookup("+8613800000003"); ok || s2.Len() != 1 {
		t.Fatalf("expired registration came back (len %d)", s2.Len())
	}
}

func TestConcurrentRegisterLookup(t *testing.T) {
	s, _ := Open(Options{})
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range 200 {
				s.Register(ctx, bind(msg.Address(fmt.Sprintf("+86138%08d", i)), fmt.Sprintf("sip:%d@h%d", i, g), exp))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 200 {
				s.Lookup(msg.Address(fmt.Sprintf("+86138%08d", i)))
			}
		}()
	}
	wg.Wait()
	if s.Len() != 200 || len(s.Bindings("+8613800000007")) != 4 {
		t.Fatalf("len %d bindings %d", s.Len(), len(s.Bindings("+8613800000007")))
	}
}

func BenchmarkLookup(b *testing.B) {
	s, _ := Open(Options{})
	exp := time.Now().Add(time.Hour)
	for i := range 100_000 {
		s.Register(context.Background(), bind(msg.Address(fmt.Sprintf("+86138%08d", i)), "sip:x@h", exp))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Lookup("+8613800012345")
			i++
		}
	})
}

// BenchmarkLookupMany: lookups from every core spread over 100,000 online
// users and as many numbers with no binding (the SMS→SMS case), as the
// router's workers do.
func BenchmarkLookupMany(b *testing.B) {
	s, _ := Open(Options{})
	exp := time.Now().Add(time.Hour)
	const n = 100_000
	aors := make([]msg.Address, 2*n)
	for i := range aors {
		aors[i] = msg.Address(fmt.Sprintf("+86138%08d", i))
		if i < n {
			s.Register(context.Background(), bind(aors[i], "sip:x@h", exp))
		}
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i = (i + 7919) % len(aors)
			s.Lookup(aors[i])
		}
	})
}

// Other nodes' bindings are kept apart: delivery (Lookup, Bindings) sees
// this node's only, nothing remote reaches the KV or the hooks, and the
// sweep expires them like local ones.
func TestRemoteBindings(t *testing.T) {
	ck := &clock{t: time.Unix(1_800_000_000, 0)}
	db := openDB(t, "")
	defer db.Close()
	s, err := Open(Options{KV: db, Now: ck.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var changes []Change
	var woke int
	s.OnChange(func(c Change) { changes = append(changes, c) })
	s.OnRegister(func(Binding) { woke++ })

	r := bind("+8613800000004", "sip:r@10.0.0.6", ck.now().Add(10*time.Second))
	if err := s.ApplyRemote(r); err == nil {
		t.Fatal("remote binding without a node accepted")
	}
	r.Node = "b"
	if err := s.ApplyRemote(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, r); err == nil {
		t.Fatal("Register took another node's binding")
	}
	if _, ok := s.Lookup(r.AOR); ok || len(s.Bindings(r.AOR)) != 0 || s.Len() != 0 {
		t.Fatal("a remote binding is visible to delivery")
	}
	if got := s.Remote(r.AOR); len(got) != 1 || got[0].Node != "b" {
		t.Fatalf("remote: %+v", got)
	}
	r.Priority = 5 // a newer version of the same contact replaces it
	s.ApplyRemote(r)
	if got := s.Remote(r.AOR); len(got) != 1 || got[0].Priority != 5 {
		t.Fatalf("remote after update: %+v", got)
	}

	l := bind(r.AOR, "sip:l@10.0.0.7", ck.now().Add(time.Hour))
	if err := s.Register(ctx, l); err != nil {
		t.Fatal(err)
	}
	if len(s.Local()) != 1 || len(changes) != 1 || changes[0].Gone || woke != 1 {
		t.Fatalf("local %d, changes %+v, woke %d", len(s.Local()), changes, woke)
	}
	ck.add(11 * time.Second)
	if n, err := s.Sweep(ctx); err != nil || n != 1 || len(s.Remote(r.AOR)) != 0 {
		t.Fatalf("sweep: %d %v, remote %d", n, err, len(s.Remote(r.AOR)))
	}
	if len(changes) != 1 {
		t.Fatalf("a remote expiry was reported as a change: %+v", changes)
	}

	// Yield drops the local binding, from the KV too, without a change.
	if err := s.Yield(ctx, l.AOR, l.Contact); err != nil {
		t.Fatal(err)
	}
	var left int
	db.Iterate([]byte(keyPrefix), func(_, _ []byte) error { left++; return nil })
	if _, ok := s.Lookup(l.AOR); ok || left != 0 || len(changes) != 1 {
		t.Fatalf("after yield: online %v, %d in the KV, changes %+v", ok, left, changes)
	}

	s.Register(ctx, l)
	s.ApplyRemote(r)
	s.RemoveRemote(r.AOR, r.Contact)
	if len(s.Remote(r.AOR)) != 0 {
		t.Fatal("RemoveRemote left the binding")
	}
	if err := s.Unregister(ctx, l.AOR, ""); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 || !changes[2].Gone || changes[2].Binding.Contact != l.Contact {
		t.Fatalf("unregister not reported: %+v", changes)
	}
	s.Register(ctx, bind("+8613800000005", "sip:e@10.0.0.8", ck.now().Add(time.Second)))
	ck.add(2 * time.Second)
	s.Sweep(ctx)
	if last := changes[len(changes)-1]; len(changes) != 5 || !last.Gone {
		t.Fatalf("local expiry not reported: %+v", changes)
	}
}
