package directory

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/smsbridge/bridge/msg"
)

// TestRecLayout: a record is one 160-byte size class, offsets fit a byte.
func TestRecLayout(t *testing.T) {
	if n := unsafe.Sizeof(rec{}); n != 160 {
		t.Fatalf("rec is %d bytes, want 160", n)
	}
	if n := unsafe.Sizeof(entry{}); n != 48 {
		t.Fatalf("entry is %d bytes, want 48", n)
	}
}

// TestWithAddrs: whatever fits inline or not, a record keeps its addresses
// in order (endpoints first), finds each of them, and owns its bytes.
func TestWithAddrs(t *testing.T) {
	long := msg.Address("sip:" + strings.Repeat("x", 60) + "@far.example")
	cases := []struct {
		name  string
		aor   msg.Address
		bound []msg.Address
	}{
		{"alice", "sip:alice@im.example", nil},
		{"alice", "sip:alice@im.example", []msg.Address{"+8613800000001"}},
		{"13800000001", "+8613800000001", []msg.Address{"xmpp:a@j.example"}},
		{"alice", "sip:alice@im.example", []msg.Address{"partner:shop:Alice", "+8613800000001", "sip:a@b.example", "xmpp:a@j.example", "+8613800000002", "social:w:x"}},
		{"alice", "sip:alice@im.example", []msg.Address{long, "+8613800000001"}},
		{strings.Repeat("n", 64), msg.Address("sip:" + strings.Repeat("n", 64) + "@im.example"), []msg.Address{"+8613800000001"}},
		{"8613800000001", "+8613800000001", []msg.Address{long}},
	}
	for _, c := range cases {
		d := newDraft(strings.Clone(c.name), kLocal)
		r := d.withAddrs(c.aor, c.bound)
		var want []msg.Address
		want = append(want, c.aor)
		for _, a := range c.bound {
			if isEndpoint(a) {
				want = append(want, a)
			}
		}
		nEnd := len(want)
		for _, a := range c.bound {
			if !isEndpoint(a) {
				want = append(want, a)
			}
		}
		if !slices.Equal(r.all(), want) || int(len(r.p.Endpoints)) != nEnd || r.name() != c.name {
			t.Errorf("%v: addrs %v nEnd %d name %q", c, r.all(), len(r.p.Endpoints), r.name())
		}
		for _, a := range want {
			if !r.has(msg.Address(strings.Clone(string(a)))) {
				t.Errorf("%v: has(%s) = false", c, a)
			}
		}
		if r.has("+8613800000009") || r.has("") {
			t.Errorf("%v: has a stranger", c)
		}
		// A new record from r shares no bytes with it.
		r2 := r.withAddrs(r.aor(), r.bound())
		for i := range r2.all() {
			if unsafe.StringData(string(r2.all()[i])) == unsafe.StringData(string(r.all()[i])) {
				t.Errorf("%v: address %d shared", c, i)
			}
		}
		if !slices.Equal(r2.all(), r.all()) || r2.name() != r.name() || r2.p.Number != r.p.Number {
			t.Errorf("%v: copy differs", c)
		}
	}
}

// TestIndex: every key length finds its record on the fast and the slow
// path, updates and deletes are seen, the table grows, and records of the
// fast layout give the same Person through their offsets as read.
func TestIndex(t *testing.T) {
	ix := newIndex()
	recs := map[msg.Address]*rec{}
	for n := 1; n <= 80; n++ {
		for _, c := range "ab" {
			key := msg.Address(strings.Repeat(string(c), n))
			r := newDraft("x", kLocal).withAddrs(key, nil)
			ix.put(key, r)
			recs[key] = r
		}
	}
	for i := range 3000 { // grow it
		key := msg.Address(fmt.Sprintf("+86138%08d", i))
		r := newDraft(strings.TrimPrefix(string(key), "+"), kLocal).withAddrs(key, nil)
		ix.put(key, r)
		recs[key] = r
	}
	if ix.n != len(recs) {
		t.Fatalf("n = %d, want %d", ix.n, len(recs))
	}
	for key, r := range recs {
		k := msg.Address(strings.Clone(string(key)))
		if got, m := ix.find(k); got != r || personOf(got, m).Name != r.p.Name {
			t.Fatalf("find(%q) = %p, want %p", key, got, r)
		}
		if got, _ := ix.findSlow(k); got != r {
			t.Fatalf("findSlow(%q) = %p, want %p", key, got, r)
		}
		if n := len(key); n >= 8 && n <= 32 {
			w := keyWords(key)
			if ix.hash832(n, w[0], w[1], w[2], w[3]) != ix.hash(key) {
				t.Fatalf("len %d: hash832 differs", n)
			}
		}
	}
	if r, _ := ix.find("+8613800009999"); r != nil {
		t.Fatal("found a stranger")
	}
	// A long key differing after its first 32 bytes is another key.
	long := msg.Address(strings.Repeat("a", 40) + "x")
	if r, _ := ix.find(long); r != nil {
		t.Fatal("long key confused")
	}
	for key := range recs {
		ix.del(key)
	}
	if ix.n != 0 {
		t.Fatalf("n = %d after deleting all", ix.n)
	}
	for key := range recs {
		if r, _ := ix.find(key); r != nil {
			t.Fatalf("deleted %q found", key)
		}
	}
}

// TestPersonOf: the Person built from a record's offsets is the one it
// holds, for the layouts that have offsets.
func TestPersonOf(t *testing.T) {
	for _, c := range []struct {
		name  string
		aor   msg.Address
		bound []msg.Address
		fast  bool
	}{
		{"alice", "sip:alice@im.example", []msg.Address{"+8613800000001"}, true},
		{"alice", "sip:alice@im.example", nil, true},
		{"13800000001", "+8613800000001", nil, true},
		{"bob~shop", "sip:bob~shop@im.example", []msg.Address{"partner:shop:bob"}, true},
		{"alice", "sip:alice@im.example", []msg.Address{"+8613800000001", "xmpp:a@b.example"}, false},
		{"alice", msg.Address("sip:alice@" + strings.Repeat("d", 60)), nil, false},
	} {
		r := newDraft(c.name, kLocal).withAddrs(c.aor, c.bound)
		m := r.layout()
		if (m&mFast != 0) != c.fast {
			t.Errorf("%v: fast = %v", c, m&mFast != 0)
		}
		p := personOf(r, m)
		if p.Name != r.p.Name || p.Number != r.p.Number || !slices.Equal(p.Endpoints, r.p.Endpoints) || cap(p.Endpoints) != len(p.Endpoints) {
			t.Errorf("%v: personOf = %+v, holds %+v", c, p, r.p)
		}
	}
}

// TestIndexConcurrent: while a writer inserts, updates and deletes keys
// (moving entries along their runs and growing the table), readers always
// find the keys that stay, with their record, and never a wrong record.
func TestIndexConcurrent(t *testing.T) {
	ix := newIndex()
	stay := map[msg.Address]*rec{}
	for i := range 2000 {
		key := msg.Address(fmt.Sprintf("+86139%08d", i))
		r := newDraft(strings.TrimPrefix(string(key), "+"), kLocal).withAddrs(key, nil)
		ix.put(key, r)
		stay[key] = r
	}
	var keys []msg.Address
	for k := range stay {
		keys = append(keys, k)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs atomic.Int32
	for g := range 2 {
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[i%len(keys)]
				if r, m := ix.find(msg.Address(strings.Clone(string(key)))); r != stay[key] || personOf(r, m).Name != r.p.Name {
					errs.Add(1)
				}
				churn := msg.Address(fmt.Sprintf("sip:churn%d@im.example", i%5000))
				if r, _ := ix.find(churn); r != nil && !r.has(churn) {
					errs.Add(1)
				}
			}
		})
	}
	for round := range 20 {
		for i := range 5000 {
			key := msg.Address(fmt.Sprintf("sip:churn%d@im.example", i))
			ix.put(key, newDraft(fmt.Sprintf("churn%d", i), kLocal).withAddrs(key, nil))
		}
		for i := range 5000 { // update in place
			key := msg.Address(fmt.Sprintf("sip:churn%d@im.example", i))
			ix.put(key, newDraft(fmt.Sprintf("churn%d", i), kLocal).withAddrs(key, []msg.Address{msg.Address(fmt.Sprintf("+86137%08d", round))}))
		}
		for i := range 5000 {
			if i%3 != round%3 {
				ix.del(msg.Address(fmt.Sprintf("sip:churn%d@im.example", i)))
			}
		}
	}
	close(stop)
	wg.Wait()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d wrong lookups", n)
	}
	for key, r := range stay {
		if got, _ := ix.find(key); got != r {
			t.Fatalf("%s lost", key)
		}
	}
}
