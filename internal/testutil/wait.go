package testutil

import (
	"testing"
	"time"
)

// Pauses between checks of a condition: the first is short so a wait on
// something that is about to happen costs little, and they double up to a
// cap so a long wait does not spin.
const (
	firstPause = time.Millisecond
	maxPause   = 20 * time.Millisecond
)

// WaitFor polls cond until it holds and fails the test with "timed out after
// <timeout> waiting for <what>" if it still does not hold after timeout.
// Like t.Fatal it must be called from the test's own goroutine.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// WaitForState is WaitFor for a failure that is best explained by the state
// last seen: when time runs out it fails with "timed out after <timeout>:
// <state()>"; state is called only then.
func WaitForState(t testing.TB, timeout time.Duration, cond func() bool, state func() string) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v: %s", timeout, state())
	}
}

// poll checks cond until it holds (true) or timeout has passed (false). It
// checks at once, then after pauses growing from firstPause to maxPause,
// and once more at the deadline.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for pause := firstPause; ; pause = nextPause(pause) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(pause, left))
	}
}

func nextPause(d time.Duration) time.Duration { return min(2*d, maxPause) }
