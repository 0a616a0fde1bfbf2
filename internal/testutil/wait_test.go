package testutil

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fakeTB records Fatalf and stops its goroutine, as the real one does.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls wait with a fakeTB on a goroutine of its own (Fatalf ends that
// goroutine) and returns the failure message, "" if wait returned.
func run(t *testing.T, wait func(testing.TB)) string {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait(f)
	}()
	<-done
	return f.failed
}

func TestWaitForReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	msg := run(t, func(tb testing.TB) {
		WaitFor(tb, "the fifth call", 10*time.Second, func() bool { calls++; return calls == 5 })
	})
	if msg != "" || calls != 5 {
		t.Fatalf("failed with %q after %d calls, want success at the fifth", msg, calls)
	}
}

func TestWaitForReturnsAtOnceWhenCondHolds(t *testing.T) {
	calls := 0
	WaitFor(t, "nothing", time.Hour, func() bool { calls++; return true })
	if calls != 1 {
		t.Fatalf("cond called %d times, want 1", calls)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	calls := 0
	start := time.Now()
	msg := run(t, func(tb testing.TB) {
		WaitFor(tb, "godot", 50*time.Millisecond, func() bool { calls++; return false })
	})
	if want := "timed out after 50ms waiting for godot"; msg != want {
		t.Fatalf("failure %q, want %q", msg, want)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", d)
	}
	// Polled more than once, checked again at the deadline, but did not
	// spin: with pauses of at least 1 ms, 50 ms allow no more than 51 checks.
	if calls < 2 || calls > 51 {
		t.Fatalf("cond called %d times in 50ms", calls)
	}
}

func TestWaitForStateReportsLastState(t *testing.T) {
	n := 0
	msg := run(t, func(tb testing.TB) {
		WaitForState(tb, 20*time.Millisecond, func() bool { n++; return false },
			func() string { return fmt.Sprintf("checked %d times", n) })
	})
	if want := fmt.Sprintf("timed out after 20ms: checked %d times", n); n < 2 || msg != want {
		t.Fatalf("failure %q, want %q", msg, want)
	}
	stateCalls := 0
	WaitForState(t, time.Second, func() bool { return true }, func() string { stateCalls++; return "" })
	if stateCalls != 0 {
		t.Fatalf("state computed %d times on success, want 0", stateCalls)
	}
}

func TestPausesGrowToCap(t *testing.T) {
	var got []time.Duration
	for d := firstPause; len(got) < 8; d = nextPause(d) {
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 20, 20, 20}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("pauses %v, want %v ms", got, want)
		}
	}
}
