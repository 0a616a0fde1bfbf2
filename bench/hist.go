package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Hist is an HDR-style histogram of microsecond values: below 2^subBits every
// value has its own bucket, above that each power of two is cut into
// 2^(subBits-1) buckets, so the relative error stays under 1/64. Recording is
// lock-free (one atomic add), which matters at tens of thousands of
// deliveries per second recorded from many goroutines.
type Hist struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Uint64
	sum    atomic.Uint64
}

const (
	subBits    = 7
	subCount   = 1 << subBits
	halfCount  = subCount / 2
	numBuckets = (64-subBits)*halfCount + subCount
)

// bucketOf maps v to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift*halfCount + int(v>>uint(shift))
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := (i - halfCount) / halfCount
	top := uint64(i - shift*halfCount)
	lo = top << uint(shift)
	hi = lo + (1 << uint(shift)) - 1
	return lo, hi
}

// Record adds one value (microseconds).
func (h *Hist) Record(v uint64) {
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 { return h.total.Load() }

// Max is the largest recorded value.
func (h *Hist) Max() uint64 { return h.max.Load() }

// Mean is the average recorded value.
func (h *Hist) Mean() float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0..1): the highest value of the
// bucket holding that rank (HDR's "highest equivalent value"), capped at the
// real maximum.
func (h *Hist) Quantile(q float64) uint64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(hi, h.max.Load())
		}
	}
	return h.max.Load()
}

// Merge adds o's counts into h.
func (h *Hist) Merge(o *Hist) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	m := o.max.Load()
	for {
		cur := h.max.Load()
		if m <= cur || h.max.CompareAndSwap(cur, m) {
			break
		}
	}
}

// Drain moves h's counts into a fresh histogram and zeroes h, for the
// per-second view; a value recorded during the move lands in one of the two.
func (h *Hist) Drain() *Hist {
	out := &Hist{}
	for i := range h.counts {
		if c := h.counts[i].Swap(0); c != 0 {
			out.counts[i].Store(c)
		}
	}
	out.total.Store(h.total.Swap(0))
	out.sum.Store(h.sum.Swap(0))
	out.max.Store(h.max.Swap(0))
	return out
}

// Latency is a histogram summary in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summary reports h in milliseconds.
func (h *Hist) Summary() Latency {
	ms := func(us uint64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.Count(), MeanMs: h.Mean() / 1000,
		P50Ms: ms(h.Quantile(0.50)), P90Ms: ms(h.Quantile(0.90)),
		P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)),
		MaxMs: ms(h.Max()),
	}
}
