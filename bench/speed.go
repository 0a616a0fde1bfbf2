package main

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// probeWords is the probe's working set: 8 MB, more than a core's own
// caches, so that it slows as a neighbour takes the shared cache too.
const probeWords = 1 << 20

// probeRounds is one measurement's work: enough random steps through the
// buffer that most miss the core's own caches, few enough that probing
// each CPU twice a second costs the box little.
const probeRounds = 1 << 18

// SpeedProbe measures how fast each CPU runs while a phase runs: every
// period it does one fixed piece of work pinned to each CPU in turn and
// keeps the thread CPU time that took. On a VM a CPU's speed changes with
// what shares the host, and a bridge that slows with it is not at fault;
// the per-second series shows which it was.
type SpeedProbe struct {
	mu  sync.Mutex
	sum []float64 // per CPU: µs of work measured since the last Drain
	n   []int

	buf  []uint64
	stop context.CancelFunc
	done chan struct{}
}

// StartSpeedProbe probes every CPU the bench may run on, each once per
// period, until Stop. It returns nil where the CPUs allowed cannot be
// read; a CPU that cannot be pinned or timed is left unmeasured (0).
func StartSpeedProbe(period time.Duration) *SpeedProbe {
	cpus := probeCPUs()
	if len(cpus) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &SpeedProbe{
		sum: make([]float64, len(cpus)), n: make([]int, len(cpus)),
		buf: make([]uint64, probeWords), stop: cancel, done: make(chan struct{}),
	}
	go p.run(ctx, cpus, period)
	return p
}

func (p *SpeedProbe) run(ctx context.Context, cpus []int, period time.Duration) {
	// Pinned from here on, the thread is never unlocked: it ends with this
	// goroutine rather than go back to the scheduler with its affinity.
	runtime.LockOSThread()
	defer close(p.done)
	// Writing every word faults the pages in, so no measurement pays for it.
	for i := range p.buf {
		p.buf[i] = 1
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		for i, c := range cpus {
			us, ok := probeOn(c, p.work)
			if !ok {
				continue
			}
			p.mu.Lock()
			p.sum[i] += us
			p.n[i]++
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// work is the fixed piece: a pseudo-random walk of increments over buf.
func (p *SpeedProbe) work() {
	x := uint64(1)
	for range probeRounds {
		x = x*6364136223846793005 + 1442695040888963407
		p.buf[x>>44]++
	}
}

// Drain returns each CPU's mean µs per piece of work since the last
// Drain (0 for a CPU not measured meanwhile).
func (p *SpeedProbe) Drain() []float64 {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]float64, len(p.sum))
	for i := range out {
		if p.n[i] > 0 {
			out[i] = p.sum[i] / float64(p.n[i])
		}
		p.sum[i], p.n[i] = 0, 0
	}
	return out
}

// Stop ends the probe and waits for it.
func (p *SpeedProbe) Stop() {
	if p == nil {
		return
	}
	p.stop()
	<-p.done
}
