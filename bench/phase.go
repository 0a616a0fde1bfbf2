package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Second is one row of the time series.
type Second struct {
	T         float64 `json:"t"`
	Accepted  float64 `json:"accepted"`
	Delivered float64 `json:"delivered"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Throttled float64 `json:"throttled"`
	Errors    float64 `json:"errors"`
	BridgeCPU float64 `json:"bridge_cpu_pct"`
	BridgeRSS float64 `json:"bridge_rss_mb"`
	BenchCPU  float64 `json:"bench_cpu_pct"`
	Measured  bool    `json:"measured"`
}

// RouteResult is one route's share of a phase.
type RouteResult struct {
	Accepted        uint64  `json:"accepted"`
	Delivered       uint64  `json:"delivered"`
	Throttled       uint64  `json:"throttled"`
	Errors          uint64  `json:"errors"`
	Lost            uint64  `json:"lost"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	Latency         Latency `json:"latency"`
}

// ProcResult is a process's resource use over the measured window.
type ProcResult struct {
	PID        int     `json:"pid"`
	CPUPercent float64 `json:"cpu_pct"` // 100 = one core
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSPeakMB  float64 `json:"rss_peak_mb"`
	RSSEndMB   float64 `json:"rss_end_mb"`
}

// PhaseResult is what one phase measured. Counts are of the measured window
// (after warm-up) except the census fields (Lost ...), which cover every
// message of the phase.
type PhaseResult struct {
	Name            string                 `json:"name"`
	MeasuredSeconds float64                `json:"measured_seconds"`
	Sent            uint64                 `json:"sent"`
	Accepted        uint64                 `json:"accepted"`
	Delivered       uint64                 `json:"delivered"`
	Throttled       uint64                 `json:"throttled"`
	Errors          uint64                 `json:"errors"`
	AcceptedPerSec  float64                `json:"accepted_per_sec"`
	DeliveredPerSec float64                `json:"delivered_per_sec"`
	Latency         Latency                `json:"latency"`
	Routes          map[string]RouteResult `json:"routes"`

	TotalSent        uint64   `json:"total_sent"`
	TotalAcked       uint64   `json:"total_acked"`
	TotalDelivered   uint64   `json:"total_delivered"`
	Lost             uint64   `json:"lost"`
	LostSamples      []uint64 `json:"lost_samples,omitempty"`
	DeliveredUnacked uint64   `json:"delivered_unacked"`
	Unanswered       uint64   `json:"unanswered"`
	Duplicates       uint64   `json:"duplicates"`
	Unknown          uint64   `json:"unknown"`
	GeneratorMissed  uint64   `json:"generator_missed"`
	DrainSeconds     float64  `json:"drain_seconds"`
	SMSCBad          uint64   `json:"smsc_bad,omitempty"`
	SIPBad           uint64   `json:"sip_bad,omitempty"`

	Bridge        *ProcResult `json:"bridge,omitempty"`
	Bench         ProcResult  `json:"bench"`
	Series        []Second    `json:"series"`
	BridgeLogTail string      `json:"bridge_log_tail,omitempty"`
}

type counters struct {
	sent, accepted, delivered, throttled, errors [numRoutes]uint64
}

func (t *Tracker) counters() counters {
	var c counters
	for r := range numRoutes {
		c.sent[r] = t.sent[r].Load()
		c.accepted[r] = t.accepted[r].Load()
		c.delivered[r] = t.delivered[r].Load()
		c.throttled[r] = t.throttled[r].Load()
		c.errors[r] = t.errors[r].Load()
	}
	return c
}

func sum(a [numRoutes]uint64) uint64 {
	var s uint64
	for _, v := range a {
		s += v
	}
	return s
}

// runPhase runs g, prints progress each second, drains and takes the census.
func runPhase(ctx context.Context, name string, g *Generator, pid int, drain time.Duration, progress io.Writer) (*PhaseResult, error) {
	tr := g.tr
	res := &PhaseResult{Name: name, Routes: map[string]RouteResult{}}
	genDone := make(chan error, 1)
	start := time.Now()
	go func() { genDone <- g.Run(ctx) }()

	self := os.Getpid()
	bench0, _ := ReadProc(self)
	var bridge0 ProcSample
	if pid > 0 {
		bridge0, _ = ReadProc(pid)
		res.Bridge = &ProcResult{PID: pid}
	}
	warmEnd := start.Add(g.load.Warmup)
	measEnd := warmEnd.Add(g.load.Duration)
	var (
		prev              = tr.counters()
		prevBench, prevBr = bench0, bridge0
		atWarm, atEnd     counters
		benchWarm, brWarm ProcSample
		benchEnd, brEnd   ProcSample
		warmAt, endAt     time.Time
		haveWarm, haveEnd bool
		genErr            error
		genFinished       bool
		drainStart        time.Time
		last              = start
	)
	if g.load.Warmup <= 0 {
		atWarm, benchWarm, brWarm, warmAt, haveWarm = prev, bench0, bridge0, start, true
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case genErr = <-genDone:
			genFinished = true
			drainStart = time.Now()
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now := time.Now()
		c := tr.counters()
		bs, _ := ReadProc(self)
		var brs ProcSample
		if pid > 0 {
			brs, _ = ReadProc(pid)
			if mb := float64(brs.RSSBytes) / (1 << 20); mb > res.Bridge.RSSPeakMB {
				res.Bridge.RSSPeakMB = mb
			}
		}
		if mb := float64(bs.RSSBytes) / (1 << 20); mb > res.Bench.RSSPeakMB {
			res.Bench.RSSPeakMB = mb
		}
		if !haveWarm && !now.Before(warmEnd) {
			atWarm, benchWarm, brWarm, warmAt, haveWarm = c, bs, brs, now, true
		}
		if !haveEnd && (!now.Before(measEnd) || genFinished) {
			atEnd, benchEnd, brEnd, endAt, haveEnd = c, bs, brs, now, true
		}
		dt := now.Sub(last).Seconds()
		if dt <= 0 {
			dt = 1
		}
		sec := tr.second.Drain()
		row := Second{
			T:         now.Sub(start).Seconds(),
			Accepted:  float64(sum(c.accepted)-sum(prev.accepted)) / dt,
			Delivered: float64(sum(c.delivered)-sum(prev.delivered)) / dt,
			Throttled: float64(sum(c.throttled)-sum(prev.throttled)) / dt,
			Errors:    float64(sum(c.errors)-sum(prev.errors)) / dt,
			P50Ms:     float64(sec.Quantile(0.5)) / 1000,
			P99Ms:     float64(sec.Quantile(0.99)) / 1000,
			BenchCPU:  100 * (bs.CPUSeconds - prevBench.CPUSeconds) / dt,
			Measured:  haveWarm && (!haveEnd || endAt.Equal(now)),
		}
		if pid > 0 {
			row.BridgeCPU = 100 * (brs.CPUSeconds - prevBr.CPUSeconds) / dt
			row.BridgeRSS = float64(brs.RSSBytes) / (1 << 20)
		}
		res.Series = append(res.Series, row)
		prev, prevBench, prevBr, last = c, bs, brs, now
		out := 0
		if genFinished {
			out = tr.Outstanding()
		}
		fmt.Fprintf(progress, "[%s] %5.0fs acc %7.0f/s dlv %7.0f/s p50 %6.2fms p99 %7.2fms thr %5.0f/s err %4.0f/s",
			name, row.T, row.Accepted, row.Delivered, row.P50Ms, row.P99Ms, row.Throttled, row.Errors)
		if pid > 0 {
			fmt.Fprintf(progress, " bridge cpu %4.0f%% rss %5.0fMB", row.BridgeCPU, row.BridgeRSS)
		}
		fmt.Fprintf(progress, " bench cpu %4.0f%%", row.BenchCPU)
		if genFinished {
			fmt.Fprintf(progress, " draining: %d outstanding", out)
		}
		fmt.Fprintln(progress)
		if genFinished && (out == 0 || now.Sub(drainStart) >= drain) {
			res.DrainSeconds = now.Sub(drainStart).Seconds()
			break
		}
	}
	if genErr != nil {
		return nil, genErr
	}
	if !haveWarm {
		atWarm, benchWarm, brWarm, warmAt = atEnd, benchEnd, brEnd, endAt
	}
	secs := endAt.Sub(warmAt).Seconds()
	if secs <= 0 {
		secs = 1
	}
	res.MeasuredSeconds = secs
	res.Sent = sum(atEnd.sent) - sum(atWarm.sent)
	res.Accepted = sum(atEnd.accepted) - sum(atWarm.accepted)
	res.Delivered = sum(atEnd.delivered) - sum(atWarm.delivered)
	res.Throttled = sum(atEnd.throttled) - sum(atWarm.throttled)
	res.Errors = sum(atEnd.errors) - sum(atWarm.errors)
	res.AcceptedPerSec = float64(res.Accepted) / secs
	res.DeliveredPerSec = float64(res.Delivered) / secs
	res.Latency = tr.all.Summary()
	f := tr.Census()
	for r := range numRoutes {
		if tr.sent[r].Load() == 0 {
			continue
		}
		rr := RouteResult{
			Accepted:  atEnd.accepted[r] - atWarm.accepted[r],
			Delivered: atEnd.delivered[r] - atWarm.delivered[r],
			Throttled: atEnd.throttled[r] - atWarm.throttled[r],
			Errors:    atEnd.errors[r] - atWarm.errors[r],
			Lost:      f.LostByRoute[r],
			Latency:   tr.route[r].Summary(),
		}
		rr.AcceptedPerSec = float64(rr.Accepted) / secs
		rr.DeliveredPerSec = float64(rr.Delivered) / secs
		res.Routes[r.String()] = rr
		res.Duplicates += tr.dups[r].Load()
		res.Unknown += tr.unknown[r].Load()
	}
	res.TotalSent, res.TotalAcked, res.TotalDelivered = f.Sent, f.Acked, f.Delivered
	res.Lost, res.LostSamples = f.Lost, f.LostSamples
	res.DeliveredUnacked, res.Unanswered = f.DeliveredUnacked, f.Unanswered
	res.GeneratorMissed = g.missed.Load()
	res.Bench.PID = self
	res.Bench.CPUSeconds = benchEnd.CPUSeconds - benchWarm.CPUSeconds
	res.Bench.CPUPercent = 100 * res.Bench.CPUSeconds / secs
	res.Bench.RSSEndMB = float64(benchEnd.RSSBytes) / (1 << 20)
	if res.Bridge != nil {
		res.Bridge.CPUSeconds = brEnd.CPUSeconds - brWarm.CPUSeconds
		res.Bridge.CPUPercent = 100 * res.Bridge.CPUSeconds / secs
		res.Bridge.RSSEndMB = float64(brEnd.RSSBytes) / (1 << 20)
	}
	return res, nil
}
