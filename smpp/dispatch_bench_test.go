package smpp

import (
	"sync"
	"testing"

	"github.com/panjf2000/ants/v2"
)

// deepStack uses ~24 KiB of stack, as a submit_sm handler going through the
// router into the store does.
//
//go:noinline
func deepStack(n int) int {
	var pad [512]byte
	pad[n%512] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deepStack(n-1) + int(pad[n%512])
}

// BenchmarkDispatch compares a goroutine per request with the pooled
// goroutines Session.dispatch uses: a new goroutine starts on a small stack
// and copies it while it grows, every time.
func BenchmarkDispatch(b *testing.B) {
	const inFlight = 64
	task := func(wg *sync.WaitGroup) { deepStack(40); wg.Done() }
	b.Run("impl=goroutine", func(b *testing.B) {
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(inFlight)
			for range inFlight {
				go task(&wg)
			}
			wg.Wait()
		}
	})
	b.Run("impl=ants", func(b *testing.B) {
		p, err := ants.NewPoolWithFuncGeneric(inFlight, task, ants.WithDisablePurge(true))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Release()
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(inFlight)
			for range inFlight {
				if err := p.Invoke(&wg); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
		}
	})
}
