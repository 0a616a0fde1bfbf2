package api

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Metric is one Prometheus sample: a counter or gauge read through Value, or
// a histogram (Type "histogram", Histogram set). Metrics with the same Name
// and different Labels form one family; Help and Type are taken from the
// first of them.
type Metric struct {
	Name, Help, Type string
	Value            func() float64
	Labels           map[string]string // optional
	Histogram        *Histogram        // for Type "histogram"
}

// DefaultBuckets are latency bucket bounds in seconds, from 0.5 ms to 10 s.
func DefaultBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// Histogram is a fixed-bucket histogram safe for concurrent Observe without
// locks, rendered as Prometheus _bucket/_sum/_count.
type Histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // per bucket, not cumulative; last is +Inf
	sumBits atomic.Uint64   // float64 bits of the sum
}

// NewHistogram makes a histogram with the given upper bounds (sorted here);
// none means DefaultBuckets.
func NewHistogram(bounds ...float64) *Histogram {
	if len(bounds) == 0 {
		bounds = DefaultBuckets()
	}
	b := append([]float64(nil), bounds...)
	sort.Float64s(b)
	return &Histogram{bounds: b, counts: make([]atomic.Uint64, len(b)+1)}
}

// Observe records one value (seconds, for latencies).
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v: "le" semantics
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// Snapshot returns the upper bounds, cumulative counts per bound (the last
// one is +Inf, equal to count) and the sum.
func (h *Histogram) Snapshot() (bounds []float64, cumulative []uint64, sum float64) {
	cumulative = make([]uint64, len(h.counts))
	var c uint64
	for i := range h.counts {
		c += h.counts[i].Load()
		cumulative[i] = c
	}
	return h.bounds, cumulative, math.Float64frombits(h.sumBits.Load())
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func labelString(l map[string]string, extra ...string) string {
	if len(l) == 0 && len(extra) == 0 {
		return ""
	}
	ks := make([]string, 0, len(l))
	for k := range l {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + `="` + escapeLabel(l[k]) + `"`)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(extra[i] + `="` + escapeLabel(extra[i+1]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// WritePrometheus renders ms in the Prometheus text format 0.0.4.
func WritePrometheus(b *strings.Builder, ms []Metric) {
	var order []string
	fam := map[string][]Metric{}
	for _, m := range ms {
		if _, ok := fam[m.Name]; !ok {
			order = append(order, m.Name)
		}
		fam[m.Name] = append(fam[m.Name], m)
	}
	for _, name := range order {
		f := fam[name]
		typ := f[0].Type
		if typ == "" {
			typ = "untyped"
		}
		b.WriteString("# HELP " + name + " " + strings.ReplaceAll(f[0].Help, "\n", " ") + "\n# TYPE " + name + " " + typ + "\n")
		for _, m := range f {
			if m.Histogram != nil {
				bounds, cum, sum := m.Histogram.Snapshot()
				for i, ub := range bounds {
					b.WriteString(name + "_bucket" + labelString(m.Labels, "le", formatFloat(ub)) + " " + strconv.FormatUint(cum[i], 10) + "\n")
				}
				total := cum[len(cum)-1]
				b.WriteString(name + "_bucket" + labelString(m.Labels, "le", "+Inf") + " " + strconv.FormatUint(total, 10) + "\n")
				b.WriteString(name + "_sum" + labelString(m.Labels) + " " + formatFloat(sum) + "\n")
				b.WriteString(name + "_count" + labelString(m.Labels) + " " + strconv.FormatUint(total, 10) + "\n")
				continue
			}
			v := 0.0
			if m.Value != nil {
				v = m.Value()
			}
			b.WriteString(name + labelString(m.Labels) + " " + formatFloat(v) + "\n")
		}
	}
}

// httpStats are the server's own per-route counters and latencies.
type httpStats struct {
	mu    sync.Mutex
	count map[[3]string]*atomic.Uint64 // route, method, code
	lat   map[string]*Histogram        // route
}

func newHTTPStats(patterns []string) *httpStats {
	h := &httpStats{count: map[[3]string]*atomic.Uint64{}, lat: map[string]*Histogram{}}
	for _, p := range append(patterns, "other") {
		h.lat[p] = NewHistogram()
	}
	return h
}

func (h *httpStats) observe(route, method string, code int, d time.Duration) {
	k := [3]string{route, method, strconv.Itoa(code)}
	h.mu.Lock()
	c, ok := h.count[k]
	if !ok {
		c = new(atomic.Uint64)
		h.count[k] = c
	}
	h.mu.Unlock()
	c.Add(1)
	h.lat[route].ObserveDuration(d)
}

func (h *httpStats) metrics() []Metric {
	h.mu.Lock()
	ks := make([][3]string, 0, len(h.count))
	for k := range h.count {
		ks = append(ks, k)
	}
	h.mu.Unlock()
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		if a[1] != b[1] {
			return a[1] < b[1]
		}
		return a[2] < b[2]
	})
	var out []Metric
	for _, k := range ks {
		h.mu.Lock()
		c := h.count[k]
		h.mu.Unlock()
		out = append(out, Metric{Name: "bridge_http_requests_total", Help: "HTTP API requests by route, method and status code.",
			Type: "counter", Labels: map[string]string{"route": k[0], "method": k[1], "code": k[2]},
			Value: func() float64 { return float64(c.Load()) }})
	}
	routes := make([]string, 0, len(h.lat))
	for r := range h.lat {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, r := range routes {
		out = append(out, Metric{Name: "bridge_http_request_duration_seconds", Help: "HTTP API request latency by route.",
			Type: "histogram", Labels: map[string]string{"route": r}, Histogram: h.lat[r]})
	}
	return out
}

func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	var ms []Metric
	if s.cfg.Metrics != nil {
		ms = s.cfg.Metrics()
	}
	ms = append(ms, s.stats.metrics()...)
	var b strings.Builder
	WritePrometheus(&b, ms)
	ctx.SetBodyString(b.String())
}
