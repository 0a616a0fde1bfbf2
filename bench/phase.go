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
	T          float64 `json:"t"`
	Accepted   float64 `json:"accepted"`
	Delivered  float64 `json:"delivered"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Throttled  float64 `json:"throttled"`
	Errors     float64 `json:"errors"`
	BridgeCPU  float64 `json:"bridge_cpu_pct"`
	BridgeRSS  float64 `json:"bridge_rss_mb"`
	BenchCPU   float64 `json:"bench_cpu_pct"`
	ProsodyCPU float64 `json:"prosody_cpu_pct,omitempty"`
	Measured   bool    `json:"measured"`
	// ProbeUs is, per CPU, how long the speed probe's fixed work took in
	// that second (SpeedProbe): higher is a slower CPU.
	ProbeUs []float64 `json:"probe_us,omitempty"`
}

// Procs are the processes a phase watches besides the bench itself (0 or
// nil = none): the bridge (each node of a cluster; their figures are
// summed), and Prosody when the mix has XMPP routes.
type Procs struct {
	// Bridges gives the bridge's processes at each reading: a node killed
	// on purpose is left out until it is restarted, under a new pid.
	Bridges func() []int
	Prosody int
}

// RouteResult is one route's share of a phase.
type RouteResult struct {
	Accepted  uint64 `json:"accepted"`
	Delivered uint64 `json:"delivered"`
	Throttled uint64 `json:"throttled"`
	Errors    uint64 `json:"errors"`
	Lost      uint64 `json:"lost"`
	// Elsewhere counts (whole run) deliveries at another network's sink
	// than the route's: IM deliveries the bridge fell back to SMS for.
	Elsewhere       uint64  `json:"elsewhere,omitempty"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	Latency         Latency `json:"latency"`
}

// ProcResult is a process's resource use over the measured window.
type ProcResult struct {
	PID  int   `json:"pid"`
	PIDs []int `json:"pids,omitempty"` // the nodes of a cluster, whose figures are summed
	// CPUPerDeliveredUs is the CPU time per message delivered in the
	// measured window (the bridge's: all its nodes').
	CPUPerDeliveredUs float64 `json:"cpu_us_per_delivered,omitempty"`
	CPUPercent        float64 `json:"cpu_pct"` // 100 = one core
	CPUSeconds        float64 `json:"cpu_seconds"`
	RSSPeakMB         float64 `json:"rss_peak_mb"`
	RSSEndMB          float64 `json:"rss_end_mb"`
	// Exited says the process was gone before the phase ended: its
	// figures stop there, and a phase whose Prosody or bridge died
	// measured something else (an IM route then falls back to SMS).
	Exited bool `json:"exited,omitempty"`
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
	Elsewhere        uint64   `json:"elsewhere,omitempty"`
	// Rate mode: messages still unsent when the run ended (the run did
	// not offer its rate), and sends that started late (their latency
	// counts from the intended time all the same).
	Unsent        uint64  `json:"unsent"`
	LateSends     uint64  `json:"late_sends"`
	MaxSendLateMs float64 `json:"max_send_late_ms"`
	DrainSeconds  float64 `json:"drain_seconds"`
	SMSCBad       uint64  `json:"smsc_bad,omitempty"`
	SIPBad        uint64  `json:"sip_bad,omitempty"`
	XMPPBad       uint64  `json:"xmpp_bad,omitempty"`

	Group         *GroupResult `json:"group,omitempty"`
	Bridge        *ProcResult  `json:"bridge,omitempty"`
	Prosody       *ProcResult  `json:"prosody,omitempty"`
	Bench         ProcResult   `json:"bench"`
	Series        []Second     `json:"series"`
	BridgeLogTail string       `json:"bridge_log_tail,omitempty"`
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

// watched is a process runPhase reads /proc of each second.
type watched struct {
	pids                   func() []int // summed
	cpu                    map[int]float64
	res                    *ProcResult
	prev, warm, end, first ProcSample
}

func watch(res *ProcResult, pids func() []int) *watched {
	return &watched{pids: pids, cpu: map[int]float64{}, res: res}
}

// sample sums the processes' CPU time, a process replaced by another (a
// node restarted) counting with what it had used when last seen, and the
// resident memory of those running.
func (w *watched) sample() ProcSample {
	var s ProcSample
	for _, pid := range w.pids() {
		p, err := ReadProc(pid)
		if err != nil {
			w.res.Exited = true
			continue // keeps the CPU seen so far
		}
		w.cpu[pid] = p.CPUSeconds
		s.RSSBytes += p.RSSBytes
	}
	for _, c := range w.cpu {
		s.CPUSeconds += c
	}
	if mb := float64(s.RSSBytes) / (1 << 20); mb > w.res.RSSPeakMB {
		w.res.RSSPeakMB = mb
	}
	return s
}

// finish fills in the measured window's CPU and the RSS at its end.
func (w *watched) finish(secs float64) {
	w.res.CPUSeconds = w.end.CPUSeconds - w.warm.CPUSeconds
	w.res.CPUPercent = 100 * w.res.CPUSeconds / secs
	w.res.RSSEndMB = float64(w.end.RSSBytes) / (1 << 20)
}

// maxDrainFactor bounds a drain that keeps seeing deliveries, in units of
// the drain's quiet period.
const maxDrainFactor = 20

// probePeriod is how often the speed probe measures each CPU.
const probePeriod = 500 * time.Millisecond

// runPhase runs g, prints progress each second, drains and takes the census.
func runPhase(ctx context.Context, name string, g *Generator, procs Procs, drain time.Duration, progress io.Writer) (*PhaseResult, error) {
	tr := g.tr
	res := &PhaseResult{Name: name, Routes: map[string]RouteResult{}}
	genDone := make(chan error, 1)
	start := time.Now()
	go func() { genDone <- g.Run(ctx) }()

	fixed := func(pids ...int) func() []int { return func() []int { return pids } }
	bench := watch(&res.Bench, fixed(os.Getpid()))
	var bridge, prosody *watched
	if procs.Bridges != nil {
		pids := procs.Bridges()
		res.Bridge = &ProcResult{PID: pids[0]}
		if len(pids) > 1 {
			res.Bridge.PIDs = pids
		}
		bridge = watch(res.Bridge, procs.Bridges)
	}
	if procs.Prosody > 0 {
		res.Prosody = &ProcResult{PID: procs.Prosody}
		prosody = watch(res.Prosody, fixed(procs.Prosody))
	}
	all := []*watched{bench}
	for _, w := range []*watched{bridge, prosody} {
		if w != nil {
			all = append(all, w)
		}
	}
	for _, w := range all {
		w.first = w.sample()
		w.prev = w.first
	}
	warmEnd := start.Add(g.load.Warmup)
	measEnd := warmEnd.Add(g.load.Duration)
	var (
		prev              = tr.counters()
		atWarm, atEnd     counters
		warmAt, endAt     time.Time
		haveWarm, haveEnd bool
		genErr            error
		genFinished       bool
		drainStart        time.Time
		lastDelivery      time.Time // during the drain: when the last delivery was seen
		last              = start
	)
	if g.load.Warmup <= 0 {
		atWarm, warmAt, haveWarm = prev, start, true
		for _, w := range all {
			w.warm = w.first
		}
	}
	probe := StartSpeedProbe(probePeriod)
	defer probe.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	cpu := func(w *watched, now ProcSample, dt float64) float64 {
		return 100 * (now.CPUSeconds - w.prev.CPUSeconds) / dt
	}
	for {
		select {
		case genErr = <-genDone:
			genFinished = true
			drainStart = time.Now()
			lastDelivery = drainStart
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		now := time.Now()
		c := tr.counters()
		samples := make([]ProcSample, len(all))
		for i, w := range all {
			samples[i] = w.sample()
		}
		if !haveWarm && !now.Before(warmEnd) {
			atWarm, warmAt, haveWarm = c, now, true
			for i, w := range all {
				w.warm = samples[i]
			}
		}
		if !haveEnd && (!now.Before(measEnd) || genFinished) {
			atEnd, endAt, haveEnd = c, now, true
			for i, w := range all {
				w.end = samples[i]
			}
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
			BenchCPU:  cpu(bench, samples[0], dt),
			Measured:  haveWarm && (!haveEnd || endAt.Equal(now)),
			ProbeUs:   probe.Drain(),
		}
		for i, w := range all[1:] {
			switch w {
			case bridge:
				row.BridgeCPU = cpu(w, samples[i+1], dt)
				row.BridgeRSS = float64(samples[i+1].RSSBytes) / (1 << 20)
			case prosody:
				row.ProsodyCPU = cpu(w, samples[i+1], dt)
			}
		}
		res.Series = append(res.Series, row)
		if genFinished && sum(c.delivered) > sum(prev.delivered) {
			lastDelivery = now
		}
		prev, last = c, now
		for i, w := range all {
			w.prev = samples[i]
		}
		out := 0
		if genFinished {
			out = tr.Outstanding()
		}
		fmt.Fprintf(progress, "[%s] %5.0fs acc %7.0f/s dlv %7.0f/s p50 %6.2fms p99 %7.2fms thr %5.0f/s err %4.0f/s",
			name, row.T, row.Accepted, row.Delivered, row.P50Ms, row.P99Ms, row.Throttled, row.Errors)
		if bridge != nil {
			fmt.Fprintf(progress, " bridge cpu %4.0f%% rss %5.0fMB", row.BridgeCPU, row.BridgeRSS)
		}
		if prosody != nil {
			fmt.Fprintf(progress, " prosody cpu %4.0f%%", row.ProsodyCPU)
		}
		fmt.Fprintf(progress, " bench cpu %4.0f%%", row.BenchCPU)
		if len(row.ProbeUs) > 0 {
			fmt.Fprint(progress, " probe µs")
			for _, us := range row.ProbeUs {
				fmt.Fprintf(progress, " %4.0f", us)
			}
		}
		if genFinished {
			fmt.Fprintf(progress, " draining: %d outstanding", out)
		}
		fmt.Fprintln(progress)
		// A backlog the bridge still works through is not lost: the drain
		// waits while deliveries come, up to drain without one (and at
		// most maxDrainFactor times drain in all).
		if genFinished && (out == 0 || now.Sub(lastDelivery) >= drain || now.Sub(drainStart) >= maxDrainFactor*drain) {
			res.DrainSeconds = now.Sub(drainStart).Seconds()
			break
		}
	}
	if genErr != nil {
		return nil, genErr
	}
	if !haveWarm {
		atWarm, warmAt = atEnd, endAt
		for _, w := range all {
			w.warm = w.end
		}
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
			Elsewhere: tr.elsewhere[r].Load(),
			Latency:   tr.route[r].Summary(),
		}
		rr.AcceptedPerSec = float64(rr.Accepted) / secs
		rr.DeliveredPerSec = float64(rr.Delivered) / secs
		res.Routes[r.String()] = rr
		res.Duplicates += tr.dups[r].Load()
		res.Unknown += tr.unknown[r].Load()
		res.Elsewhere += rr.Elsewhere
	}
	res.TotalSent, res.TotalAcked, res.TotalDelivered = f.Sent, f.Acked, f.Delivered
	res.Lost, res.LostSamples = f.Lost, f.LostSamples
	res.DeliveredUnacked, res.Unanswered = f.DeliveredUnacked, f.Unanswered
	res.Unsent, res.LateSends = g.unsent.Load(), g.late.Load()
	res.MaxSendLateMs = float64(g.lateMaxUs.Load()) / 1000
	if gt := tr.group; gt != nil {
		gp, rr := gt.plan, res.Routes[Group.String()]
		acked := tr.accepted[Group].Load()
		res.Group = &GroupResult{Groups: gp.groups, Size: gp.size, IMMembers: gp.nIM, SMSMembers: gp.nSMS,
			PostsAckedPerSec: rr.AcceptedPerSec, MemberDeliveriesPerSec: rr.DeliveredPerSec,
			PostsAcked: acked, CopiesExpected: acked * uint64(gp.size-1),
			IMCopies: gt.copies[AtSIP].Load(), SMSCopies: gt.copies[AtSMS].Load(), CopiesLost: rr.Lost,
			Wrong: gt.wrong.Load(), PostToLastMember: rr.Latency}
		_, _, res.Group.RefusedPostCopies = tr.lostCopies()
	}
	res.Bench.PID = os.Getpid()
	for _, w := range all {
		w.finish(secs)
	}
	if res.Bridge != nil && res.Delivered > 0 {
		res.Bridge.CPUPerDeliveredUs = 1e6 * res.Bridge.CPUSeconds / float64(res.Delivered)
	}
	return res, nil
}
