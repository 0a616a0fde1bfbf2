package robot_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// quiet is the tests' logger: they assert counters and answers, not log
// lines.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// posted is an answer an Answerer was given.
type posted struct{ Group, Robot, Text string }

// answers records what robots answer, in order.
type answers struct {
	mu   sync.Mutex
	got  []posted
	gate chan struct{} // if set, each call waits for a value (or ctx)
	in   chan struct{} // if set, signalled as each call starts
	err  error
}

func (a *answers) answer(ctx context.Context, group, robot, text string) error {
	if a.in != nil {
		a.in <- struct{}{}
	}
	if a.gate != nil {
		select {
		case <-a.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.got = append(a.got, posted{group, robot, text})
	return nil
}

func (a *answers) list() []posted {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]posted(nil), a.got...)
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
