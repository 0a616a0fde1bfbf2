package login

import (
	"strconv"
	"testing"
	"time"
)

func TestTTLCacheBounded(t *testing.T) {
	now := time.Unix(0, 0)
	c := newTTLCache[int](time.Minute, 3, func() time.Time { return now })
	for i := range 10 {
		c.put(strconv.Itoa(i), i)
		now = now.Add(time.Second)
	}
	if c.len() != 3 {
		t.Fatalf("len %d, want 3", c.len())
	}
	for i := range 7 {
		if _, ok := c.get(strconv.Itoa(i)); ok {
			t.Errorf("oldest entry %d kept", i)
		}
	}
	if v, ok := c.get("9"); !ok || v != 9 {
		t.Fatal("newest entry lost")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("9"); ok {
		t.Fatal("expired entry returned")
	}
}

func TestBreakerHalfOpenSingleProbe(t *testing.T) {
	now := time.Unix(0, 0)
	b := &breaker{threshold: 2, cooldown: time.Minute, now: func() time.Time { return now }}
	b.failure()
	if !b.allow() {
		t.Fatal("one failure below threshold opened the breaker")
	}
	b.success() // resets the consecutive count
	b.failure()
	if !b.allow() {
		t.Fatal("failures are not consecutive after a success")
	}
	b.failure()
	if b.allow() || b.current() != open {
		t.Fatal("threshold reached but breaker not open")
	}
	now = now.Add(time.Minute)
	if !b.allow() {
		t.Fatal("no probe after cool-down")
	}
	if b.allow() {
		t.Fatal("second concurrent probe let through in half-open")
	}
	b.success()
	if b.current() != closed || !b.allow() {
		t.Fatal("good probe did not close")
	}
}
