package smstext

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a fake, settable clock for the reassembler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func fixedClock() func() time.Time { return newClock().Now }

// gsm encodes s as unpacked GSM 7-bit or fails the test.
func gsm(t *testing.T, s string) []byte {
	t.Helper()
	dcs, b, err := Encode(s, Auto)
	if err != nil || dcs != 0 {
		t.Fatalf("Encode(%q) = %d, %v", s, dcs, err)
	}
	return b
}

func TestReassembleInOrderAndDuplicates(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	k := Key{Source: "a", Dest: "b", Ref: 1}
	if a, err := r.Add(k, 3, 2, 0, gsm(t, "two ")); a != nil || err != nil {
		t.Fatal(a, err)
	}
	if a, err := r.Add(k, 3, 2, 0, gsm(t, "TWO ")); a != nil || err != nil {
		t.Fatal("duplicate:", a, err)
	}
	if a, err := r.Add(k, 3, 1, 0, gsm(t, "one ")); a != nil || err != nil {
		t.Fatal(a, err)
	}
	a, err := r.Add(k, 3, 3, 0, gsm(t, "three €"))
	if err != nil || a == nil {
		t.Fatal(a, err)
	}
	if a.Text != "one two three €" || a.Parts != 3 || a.Missing != 0 {
		t.Fatalf("assembled %+v", *a)
	}
	s := r.Stats()
	if s.Completed != 1 || s.Duplicates != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReassembleRejectsBadParts(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	k := Key{Source: "a", Dest: "b", Ref: 9}
	for _, tc := range []struct{ total, seq byte }{{0, 0}, {0, 1}, {3, 0}, {3, 4}} {
		if _, err := r.Add(k, tc.total, tc.seq, 0, []byte("x")); !errors.Is(err, ErrPart) {
			t.Errorf("total %d seq %d: err = %v", tc.total, tc.seq, err)
		}
	}
	if _, err := r.Add(k, 3, 1, 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(k, 4, 2, 0, []byte("y")); !errors.Is(err, ErrPart) {
		t.Errorf("total changed: err = %v", err)
	}
	if got := r.Stats().Pending; got != 1 {
		t.Errorf("pending = %d", got)
	}
}

func TestReassembleSendersDoNotCollide(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	k1 := Key{Source: "111", Dest: "999", Ref: 5}
	k2 := Key{Source: "222", Dest: "999", Ref: 5}
	k3 := Key{Source: "111", Dest: "888", Ref: 5}
	for _, k := range []Key{k1, k2, k3} {
		if a, err := r.Add(k, 2, 1, 0, gsm(t, k.Source+">")); a != nil || err != nil {
			t.Fatal(a, err)
		}
	}
	if r.Stats().Duplicates != 0 {
		t.Fatal("parts of different keys were taken as duplicates")
	}
	for _, k := range []Key{k3, k1, k2} {
		a, err := r.Add(k, 2, 2, 0, gsm(t, k.Dest))
		if err != nil || a == nil {
			t.Fatal(a, err)
		}
		if want := k.Source + ">" + k.Dest; a.Text != want || a.Key != k {
			t.Errorf("%v: text %q, want %q", k, a.Text, want)
		}
	}
}

func TestReassembleJoinsSplitSequences(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	// A bad sender cut the emoji's surrogate pair across parts 1 and 2,
	// and a GSM escape across parts 1 and 2 of another message.
	k := Key{Source: "s", Dest: "d", Ref: 1}
	r.Add(k, 2, 1, 8, []byte{0x00, 0x41, 0xD8, 0x3D})
	a, err := r.Add(k, 2, 2, 8, []byte{0xDE, 0x00, 0x00, 0x42})
	if err != nil || a == nil || a.Text != "A😀B" {
		t.Fatalf("surrogate across parts: %+v %v", a, err)
	}
	k.Ref = 2
	r.Add(k, 2, 2, 0, []byte{0x65, 0x35})
	a, err = r.Add(k, 2, 1, 0, []byte{0x41, esc})
	if err != nil || a == nil || a.Text != "A€5" {
		t.Fatalf("escape across parts: %+v %v", a, err)
	}
	// Parts in different alphabets decode each with its own dcs.
	k.Ref = 3
	r.Add(k, 3, 1, 0, gsm(t, "gsm "))
	r.Add(k, 3, 2, 8, []byte{0x4E, 0x2D, 0x00, 0x20})
	a, err = r.Add(k, 3, 3, 3, []byte{0xE9})
	if err != nil || a == nil || a.Text != "gsm 中 é" {
		t.Fatalf("mixed dcs: %+v %v", a, err)
	}
	// A complete message that does not decode is an error, not a panic.
	k.Ref = 4
	r.Add(k, 2, 1, 8, []byte{0x00})
	if a, err := r.Add(k, 2, 2, 8, []byte{0x41}); err != nil || a == nil || a.Text != "A" {
		t.Fatalf("odd halves that join to even length: %+v %v", a, err)
	}
	k.Ref = 5
	r.Add(k, 2, 1, 8, []byte{0x00})
	if _, err := r.Add(k, 2, 2, 8, []byte{0x41, 0x00}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("undecodable: err = %v", err)
	}
	if s := r.Stats(); s.Failed != 1 || s.Pending != 0 || s.Completed != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReassembleTimeout(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprint("partial=", partial), func(t *testing.T) {
			c := newClock()
			r := NewReassembler(ReassemblyConfig{Timeout: time.Minute, Partial: partial}, c.Now)
			k := Key{Source: "s", Dest: "d", Ref: 1}
			r.Add(k, 4, 1, 0, gsm(t, "one "))
			r.Add(k, 4, 3, 0, gsm(t, " three"))
			c.Advance(30 * time.Second)
			k2 := Key{Source: "s", Dest: "d", Ref: 2}
			r.Add(k2, 2, 1, 0, gsm(t, "young"))
			c.Advance(29 * time.Second)
			if got := r.Expire(); len(got) != 0 {
				t.Fatalf("expired before timeout: %v", got)
			}
			c.Advance(time.Second)
			got := r.Expire()
			s := r.Stats()
			if s.TimedOut != 1 || s.Pending != 1 {
				t.Fatalf("stats %+v", s)
			}
			if !partial {
				if len(got) != 1 || !got[0].Dropped || got[0].Missing != 2 {
					t.Fatalf("without Partial, want one Dropped with 2 missing, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d partials", len(got))
			}
			want := "one " + MissingMarker + " three" + MissingMarker
			if a := got[0]; a.Text != want || a.Parts != 2 || a.Missing != 2 || a.Key != k {
				t.Fatalf("partial %+v, want text %q", *a, want)
			}
			if again := r.Expire(); len(again) != 0 {
				t.Fatalf("partial handed out twice")
			}
		})
	}
}

func TestReassembleReusedRefAfterTimeout(t *testing.T) {
	c := newClock()
	r := NewReassembler(ReassemblyConfig{Timeout: time.Minute, Partial: true}, c.Now)
	k := Key{Source: "s", Dest: "d", Ref: 1}
	r.Add(k, 2, 1, 0, gsm(t, "old"))
	c.Advance(2 * time.Minute)
	// Same key, Expire not called in between: the stale part must not be
	// merged into the new message.
	r.Add(k, 2, 2, 0, gsm(t, "new2"))
	a, err := r.Add(k, 2, 1, 0, gsm(t, "new1 "))
	if err != nil || a == nil || a.Text != "new1 new2" {
		t.Fatalf("%+v %v", a, err)
	}
	got := r.Expire()
	if len(got) != 1 || got[0].Text != "old"+MissingMarker {
		t.Fatalf("stale partial: %+v", got)
	}
}

func TestReassemblePartialLenient(t *testing.T) {
	c := newClock()
	r := NewReassembler(ReassemblyConfig{Timeout: time.Minute, Partial: true}, c.Now)
	k := Key{Source: "s", Dest: "d", Ref: 1}
	// Part 1 ends in half a surrogate pair whose other half was in the
	// missing part 2.
	r.Add(k, 3, 1, 8, []byte{0x00, 0x41, 0xD8, 0x3D})
	r.Add(k, 3, 3, 8, []byte{0x00, 0x42})
	c.Advance(time.Minute)
	got := r.Expire()
	if len(got) != 1 || got[0].Text != "\uFFFD"+MissingMarker+"B" {
		t.Fatalf("%+v", got)
	}
}

func TestReassembleEviction(t *testing.T) {
	c := newClock()
	r := NewReassembler(ReassemblyConfig{MaxPending: 3}, c.Now)
	for i := range 3 {
		r.Add(Key{Source: "s", Ref: uint16(i)}, 2, 1, 0, gsm(t, fmt.Sprint("m", i)))
		c.Advance(time.Second)
	}
	// A fourth message evicts the oldest (ref 0).
	r.Add(Key{Source: "s", Ref: 3}, 2, 1, 0, gsm(t, "m3"))
	s := r.Stats()
	if s.Evicted != 1 || s.Pending != 3 {
		t.Fatalf("stats %+v", s)
	}
	// Ref 0's second part now starts a fresh message (and evicts ref 1).
	if a, _ := r.Add(Key{Source: "s", Ref: 0}, 2, 2, 0, gsm(t, "x")); a != nil {
		t.Fatalf("evicted message completed: %+v", a)
	}
	for _, ref := range []uint16{2, 3} {
		a, err := r.Add(Key{Source: "s", Ref: ref}, 2, 2, 0, gsm(t, "!"))
		if err != nil || a == nil || a.Text != fmt.Sprint("m", ref, "!") {
			t.Fatalf("ref %d: %+v %v", ref, a, err)
		}
	}
	if s := r.Stats(); s.Evicted != 2 || s.Pending != 1 || s.Completed != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSnapshotRestore(t *testing.T) {
	c := newClock()
	cfg := ReassemblyConfig{Timeout: time.Minute, Partial: true}
	r := NewReassembler(cfg, c.Now)
	k1 := Key{Source: "a", Dest: "b", Ref: 1}
	k2 := Key{Source: "c", Dest: "d", Ref: 300}
	r.Add(k1, 3, 3, 0, gsm(t, "3"))
	r.Add(k1, 3, 1, 0, gsm(t, "1"))
	first1 := c.Now()
	c.Advance(20 * time.Second)
	r.Add(k2, 2, 2, 8, []byte{0xD8, 0x3D, 0xDE, 0x00})
	snap := r.Snapshot()
	if len(snap) != 3 {
		t.Fatalf("snapshot has %d parts", len(snap))
	}
	if snap[0].Key != k1 || snap[0].Seq != 1 || snap[1].Seq != 3 || snap[2].Key != k2 || !snap[0].First.Equal(first1) {
		t.Fatalf("snapshot order %+v", snap)
	}
	// The snapshot is a copy.
	snap[0].Body[0] = 'X'

	// "Restart": a new reassembler restores the parts (twice: idempotent).
	c.Advance(10 * time.Second)
	r2 := NewReassembler(cfg, c.Now)
	for _, p := range append(r.Snapshot(), r.Snapshot()...) {
		if err := r2.Restore(p); err != nil {
			t.Fatal(err)
		}
	}
	if s := r2.Stats(); s.Pending != 2 {
		t.Fatalf("restored stats %+v", s)
	}
	a, err := r2.Add(k1, 3, 2, 0, gsm(t, "2"))
	if err != nil || a == nil || a.Text != "123" {
		t.Fatalf("restored message: %+v %v", a, err)
	}
	// The timeout counts from the original first part: k2 (first part at
	// +20s) expires at +80s, not a minute after the restore at +30s.
	c.Advance(50 * time.Second)
	got := r2.Expire()
	if len(got) != 1 || got[0].Key != k2 || got[0].Text != MissingMarker+"😀" {
		t.Fatalf("expire after restore: %+v", got)
	}
	if err := r2.Restore(StoredPart{Key: k1, Total: 2, Seq: 3}); !errors.Is(err, ErrPart) {
		t.Fatalf("bad restore: %v", err)
	}
	// Restoring the last part of a message completes it; Expire hands it out.
	r3 := NewReassembler(cfg, c.Now)
	r3.Restore(StoredPart{Key: k1, Total: 2, Seq: 2, Body: gsm(t, "b"), First: c.Now()})
	r3.Restore(StoredPart{Key: k1, Total: 2, Seq: 1, Body: gsm(t, "a"), First: c.Now()})
	if got := r3.Expire(); len(got) != 1 || got[0].Text != "ab" || got[0].Missing != 0 {
		t.Fatalf("completed by restore: %+v", got)
	}
}

func TestReassemblerConcurrent(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{}, fixedClock())
	const senders, parts = 8, 5
	var wg sync.WaitGroup
	results := make(chan string, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := Key{Source: fmt.Sprint("src", s), Dest: "d", Ref: 7}
			for seq := parts; seq >= 1; seq-- {
				a, err := r.Add(k, parts, byte(seq), 0, []byte{byte('0' + seq)})
				if err != nil {
					t.Error(err)
					return
				}
				if a != nil {
					results <- a.Text
				}
			}
			r.Stats()
			r.Snapshot()
		}()
	}
	wg.Wait()
	close(results)
	n := 0
	for txt := range results {
		n++
		if txt != "12345" {
			t.Errorf("text %q", txt)
		}
	}
	if n != senders || r.Stats().Completed != senders {
		t.Fatalf("%d completed, stats %+v", n, r.Stats())
	}
}
