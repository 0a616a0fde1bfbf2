package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Report is report.json.
type Report struct {
	Started   time.Time     `json:"started"`
	GoVersion string        `json:"go_version"`
	NumCPU    int           `json:"num_cpu"`
	Options   Options       `json:"options"`
	Phases    []PhaseResult `json:"phases"`
	// CeilingRatio is the bridge's delivered msg/s over the ceiling's, 0
	// when either phase did not run.
	CeilingRatio float64 `json:"ceiling_ratio"`
	// CeilingNote says why no ceiling phase ran, when a route has none.
	CeilingNote string `json:"ceiling_note,omitempty"`
	Lost        uint64 `json:"lost"` // over every phase: must be 0
}

// Phase returns the phase called name, or nil.
func (r *Report) Phase(name string) *PhaseResult {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

func (r *Report) finish() {
	r.Lost = 0
	for _, p := range r.Phases {
		r.Lost += p.Lost
	}
	c, b := r.Phase("ceiling"), r.Phase("bridge")
	// A ceiling held to --ceiling-rate is no ceiling of throughput.
	if c == nil || c.DeliveredPerSec <= 0 || r.Options.CeilingRate != 0 {
		return
	}
	if r.GeneratorBound() {
		r.CeilingNote = fmt.Sprintf("generator-bound: the bench used %.0f%% of the %d cores' %d%% in the ceiling phase, "+
			"so it measured the generator; the legs' true ceiling is higher, and no ratio is given", c.Bench.CPUPercent, r.NumCPU, 100*r.NumCPU)
		return
	}
	if b != nil {
		r.CeilingRatio = b.DeliveredPerSec / c.DeliveredPerSec
	}
}

// generatorBoundShare is the share of the machine's CPU the bench may use
// in an open-loop ceiling phase before that ceiling is taken to be the
// generator's limit rather than the legs' (Prosody, one Lua thread, or the
// sinks): past it there is no CPU left that a faster relay could have used.
const generatorBoundShare = 0.75

// GeneratorBound reports whether the open-loop ceiling phase ran the bench
// at or past generatorBoundShare of every core.
func (r *Report) GeneratorBound() bool {
	c := r.Phase("ceiling")
	return c != nil && r.Options.CeilingRate == 0 && r.NumCPU > 0 &&
		c.Bench.CPUPercent >= generatorBoundShare*100*float64(r.NumCPU)
}

// Write puts report.json, timeseries.csv and chart.svg into dir.
func (r *Report) Write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	var csv bytes.Buffer
	r.WriteCSV(&csv)
	if err := os.WriteFile(filepath.Join(dir, "timeseries.csv"), csv.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write time series: %w", err)
	}
	var svg bytes.Buffer
	r.WriteSVG(&svg)
	if err := os.WriteFile(filepath.Join(dir, "chart.svg"), svg.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}

// WriteCSV writes the per-second series of every phase.
func (r *Report) WriteCSV(w io.Writer) {
	cpus := 0
	for _, p := range r.Phases {
		for _, s := range p.Series {
			cpus = max(cpus, len(s.ProbeUs))
		}
	}
	fmt.Fprint(w, "phase,t,accepted,delivered,p50_ms,p99_ms,throttled,errors,bridge_cpu_pct,bridge_rss_mb,bench_cpu_pct,measured,prosody_cpu_pct")
	for c := range cpus {
		fmt.Fprintf(w, ",probe_us_cpu%d", c)
	}
	fmt.Fprintln(w)
	for _, p := range r.Phases {
		for _, s := range p.Series {
			fmt.Fprintf(w, "%s,%.1f,%.0f,%.0f,%.3f,%.3f,%.0f,%.0f,%.0f,%.1f,%.0f,%t,%.0f",
				p.Name, s.T, s.Accepted, s.Delivered, s.P50Ms, s.P99Ms, s.Throttled, s.Errors,
				s.BridgeCPU, s.BridgeRSS, s.BenchCPU, s.Measured, s.ProsodyCPU)
			for c := range cpus {
				us := 0.0
				if c < len(s.ProbeUs) {
					us = s.ProbeUs[c]
				}
				fmt.Fprintf(w, ",%.0f", us)
			}
			fmt.Fprintln(w)
		}
	}
}

// probeRange is each CPU's least and greatest speed probe over the
// measured seconds of series.
func probeRange(series []Second) (lo, hi []float64) {
	for _, s := range series {
		if !s.Measured {
			continue
		}
		for c, us := range s.ProbeUs {
			if us <= 0 {
				continue
			}
			for len(lo) <= c {
				lo, hi = append(lo, 0), append(hi, 0)
			}
			if lo[c] == 0 || us < lo[c] {
				lo[c] = us
			}
			hi[c] = max(hi[c], us)
		}
	}
	return lo, hi
}

// Summary is the human-readable result table printed at the end.
func (r *Report) Summary(w io.Writer) {
	for _, p := range r.Phases {
		fmt.Fprintf(w, "\n== %s: %.1fs measured ==\n", p.Name, p.MeasuredSeconds)
		fmt.Fprintf(w, "%-8s %10s %10s %8s %8s %8s %9s %9s %6s\n", "route", "acc/s", "dlv/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "lost")
		names := make([]string, 0, len(p.Routes))
		for _, n := range routeNames {
			if _, ok := p.Routes[n]; ok {
				names = append(names, n)
			}
		}
		for _, n := range names {
			rr := p.Routes[n]
			fmt.Fprintf(w, "%-8s %10.0f %10.0f %8.2f %8.2f %8.2f %9.2f %9.2f %6d\n", n, rr.AcceptedPerSec, rr.DeliveredPerSec,
				rr.Latency.P50Ms, rr.Latency.P90Ms, rr.Latency.P99Ms, rr.Latency.P999Ms, rr.Latency.MaxMs, rr.Lost)
		}
		l := p.Latency
		fmt.Fprintf(w, "%-8s %10.0f %10.0f %8.2f %8.2f %8.2f %9.2f %9.2f %6d\n", "all", p.AcceptedPerSec, p.DeliveredPerSec,
			l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, p.Lost)
		fmt.Fprintf(w, "throttled %d, errors %d, duplicates %d, late sends %d (max %.1f ms late), drained in %.1fs\n",
			p.Throttled, p.Errors, p.Duplicates, p.LateSends, p.MaxSendLateMs, p.DrainSeconds)
		if p.Unsent > 0 {
			fmt.Fprintf(w, "UNSENT: %d messages were due but never sent: this run did not offer its rate\n", p.Unsent)
		}
		if p.Elsewhere > 0 {
			fmt.Fprintf(w, "delivered on another network than the route's (IM fell back to SMS): %d\n", p.Elsewhere)
		}
		if g := p.Group; g != nil {
			fmt.Fprintf(w, "group: %d groups of %d (%d IM, %d SMS members): posts acked %.0f/s, member deliveries %.0f/s; "+
				"post-to-last-member p50 %.2f ms p99 %.2f ms; copies expected %d, delivered %d IM + %d SMS, lost %d",
				g.Groups, g.Size, g.IMMembers, g.SMSMembers, g.PostsAckedPerSec, g.MemberDeliveriesPerSec,
				g.PostToLastMember.P50Ms, g.PostToLastMember.P99Ms, g.CopiesExpected, g.IMCopies, g.SMSCopies, g.CopiesLost)
			if g.RefusedPostCopies > 0 {
				fmt.Fprintf(w, ", and %d copies of refused posts", g.RefusedPostCopies)
			}
			if g.Wrong > 0 {
				fmt.Fprintf(w, ", to a wrong recipient %d", g.Wrong)
			}
			fmt.Fprintln(w)
		}
		if p.Bridge != nil {
			nodes := ""
			if len(p.Bridge.PIDs) > 1 {
				nodes = fmt.Sprintf(" (%d nodes together)", len(p.Bridge.PIDs))
			}
			fmt.Fprintf(w, "bridge%s: cpu %.0f%% (100%% = one core), %.1f µs of CPU per delivered message, rss peak %.0f MB\n",
				nodes, p.Bridge.CPUPercent, p.Bridge.CPUPerDeliveredUs, p.Bridge.RSSPeakMB)
		}
		if p.Prosody != nil {
			fmt.Fprintf(w, "prosody: cpu %.0f%%, rss peak %.0f MB\n", p.Prosody.CPUPercent, p.Prosody.RSSPeakMB)
		}
		fmt.Fprintf(w, "bench:  cpu %.0f%%, rss peak %.0f MB\n", p.Bench.CPUPercent, p.Bench.RSSPeakMB)
		if lo, hi := probeRange(p.Series); len(lo) > 0 {
			fmt.Fprint(w, "speed probe (µs for its fixed work, measured seconds):")
			for c := range lo {
				fmt.Fprintf(w, " cpu%d %.0f–%.0f", c, lo[c], hi[c])
			}
			fmt.Fprintln(w)
		}
	}
	if r.CeilingNote != "" {
		fmt.Fprintf(w, "\nceiling: %s\n", r.CeilingNote)
	}
	if r.CeilingRatio > 0 {
		fmt.Fprintf(w, "\nbridge throughput = %.0f%% of the ceiling\n", 100*r.CeilingRatio)
	}
	fmt.Fprintf(w, "LOST: %d\n", r.Lost)
}

// WriteSVG draws, for the bridge phase (or the only phase), throughput and
// latency percentiles per second, with the ceiling as a dashed line.
func (r *Report) WriteSVG(w io.Writer) {
	p := r.Phase("bridge")
	if p == nil && len(r.Phases) > 0 {
		p = &r.Phases[len(r.Phases)-1]
	}
	const W, H, left, right, top, gap, ph = 900, 560, 70, 20, 40, 60, 200
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	if p == nil || len(p.Series) == 0 {
		fmt.Fprintln(w, `<text x="20" y="30">no data</text></svg>`)
		return
	}
	title := fmt.Sprintf("bridge bench: %s, mix %s, alphabet %s", p.Name, r.Options.Mix, r.Options.Alphabet)
	fmt.Fprintf(w, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc(title))
	tMax := p.Series[len(p.Series)-1].T
	var ceiling float64
	if c := r.Phase("ceiling"); c != nil && p.Name != "ceiling" {
		ceiling = c.DeliveredPerSec
	}
	var rateMax, latMax float64
	for _, s := range p.Series {
		rateMax = math.Max(rateMax, math.Max(s.Accepted, s.Delivered))
		latMax = math.Max(latMax, s.P99Ms)
	}
	rateMax = niceCeil(math.Max(rateMax, ceiling) * 1.05)
	latMax = niceCeil(latMax * 1.05)
	plotW := float64(W - left - right)
	x := func(t float64) float64 { return left + plotW*t/math.Max(tMax, 1) }
	panel := func(y0 float64, yMax float64, label string) func(float64) float64 {
		fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, ph)
		for i := 0; i <= 4; i++ {
			v := yMax * float64(i) / 4
			yy := y0 + ph - ph*float64(i)/4
			fmt.Fprintf(w, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/>`, left, left+plotW, yy, yy)
			fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-5, yy+4, fmtNum(v))
		}
		fmt.Fprintf(w, `<text x="15" y="%.0f" transform="rotate(-90 15 %.0f)" text-anchor="middle">%s</text>`+"\n", y0+ph/2, y0+ph/2, label)
		return func(v float64) float64 { return y0 + ph - ph*math.Min(v, yMax)/math.Max(yMax, 1e-9) }
	}
	line := func(y func(float64) float64, val func(Second) float64, color, dash string) {
		var b strings.Builder
		for i, s := range p.Series {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(s.T), y(val(s)))
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" %s points="%s"/>`+"\n", color, dash, b.String())
	}
	legend := func(x0, y0 float64, items ...string) {
		for i := 0; i+1 < len(items); i += 2 {
			fmt.Fprintf(w, `<rect x="%.0f" y="%.0f" width="12" height="3" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
				x0+float64(i/2)*150, y0-4, items[i+1], x0+float64(i/2)*150+16, y0, esc(items[i]))
		}
	}
	y1 := panel(top, rateMax, "msg/s")
	line(y1, func(s Second) float64 { return s.Accepted }, "#1f77b4", "")
	line(y1, func(s Second) float64 { return s.Delivered }, "#2ca02c", "")
	line(y1, func(s Second) float64 { return s.Throttled }, "#d62728", "")
	items := []string{"accepted/s", "#1f77b4", "delivered/s", "#2ca02c", "throttled/s", "#d62728"}
	if ceiling > 0 {
		yy := y1(ceiling)
		fmt.Fprintf(w, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#7f7f7f" stroke-dasharray="6,4"/>`+"\n", left, left+plotW, yy, yy)
		items = append(items, fmt.Sprintf("ceiling %s/s", fmtNum(ceiling)), "#7f7f7f")
	}
	legend(left+10, top+ph+18, items...)
	top2 := float64(top + ph + gap)
	y2 := panel(top2, latMax, "latency ms")
	line(y2, func(s Second) float64 { return s.P50Ms }, "#1f77b4", "")
	line(y2, func(s Second) float64 { return s.P99Ms }, "#ff7f0e", "")
	legend(left+10, top2+ph+18, "p50 submit→delivery", "#1f77b4", "p99 submit→delivery", "#ff7f0e")
	for i := 0; i <= 5; i++ {
		t := tMax * float64(i) / 5
		fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">%.0fs</text>`+"\n", x(t), top2+ph+36, t)
	}
	note := fmt.Sprintf("measured %.0fs: %s msg/s delivered, p50 %.2f ms, p99 %.2f ms, lost %d",
		p.MeasuredSeconds, fmtNum(p.DeliveredPerSec), p.Latency.P50Ms, p.Latency.P99Ms, p.Lost)
	if r.CeilingRatio > 0 {
		note += fmt.Sprintf(", %.0f%% of ceiling", 100*r.CeilingRatio)
	}
	fmt.Fprintf(w, `<text x="%d" y="%d">%s</text>`+"\n", left, H-12, esc(note))
	fmt.Fprintln(w, "</svg>")
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func fmtNum(v float64) string {
	switch {
	case v >= 10000:
		return strconv.FormatFloat(v/1000, 'f', 0, 64) + "k"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	case v >= 10 || v == 0:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
