package main

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

func TestBucketsContiguous(t *testing.T) {
	prevHi := uint64(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d,%d], previous ended at %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: bucketOf(%d)=%d bucketOf(%d)=%d", i, lo, bucketOf(lo), hi, bucketOf(hi))
		}
		prevHi = hi
	}
	if prevHi != ^uint64(0) {
		t.Fatalf("buckets end at %d, not the top of uint64", prevHi)
	}
}

func TestHistQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Hist
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(rng.ExpFloat64() * 2000) // µs, long tail
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		idx := int(q*float64(len(vals))+0.999999) - 1
		want := vals[idx]
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/64+1 {
			t.Errorf("q%.3f = %d, exact %d: beyond 1/64", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
		t.Errorf("max %d count %d", h.Max(), h.Count())
	}
	d := h.Drain()
	if h.Count() != 0 || h.Quantile(0.5) != 0 || d.Count() != uint64(len(vals)) {
		t.Errorf("drain: left %d, moved %d", h.Count(), d.Count())
	}
	var m Hist
	m.Merge(d)
	m.Merge(d)
	if m.Count() != 2*d.Count() || m.Quantile(0.5) != d.Quantile(0.5) {
		t.Errorf("merge: %d, p50 %d vs %d", m.Count(), m.Quantile(0.5), d.Quantile(0.5))
	}
}

func TestTokenRoundTrip(t *testing.T) {
	for _, a := range []Alphabet{GSM7, UCS2, Long} {
		tok := Token{Route: IMToSMS, Seq: 123456789, SentUs: 987654321012}
		got, ok := ParseToken(Text(tok, a))
		if !ok || got != tok {
			t.Errorf("%s: %+v %v", alphabetNames[a], got, ok)
		}
	}
	for _, bad := range []string{"", "#", "#a1.2", "#z1.2#", "#a.2#", "#a1.#", "#a+1.2#", "x#a1.2#", "#a1.2.3#"} {
		if tok, ok := ParseToken(bad); ok {
			t.Errorf("%q parsed as %+v", bad, tok)
		}
	}
}

func TestWeights(t *testing.T) {
	w, err := Weights("sms-im:3, im-im:1", routeNames[:])
	if err != nil || w[SMSToIM] != 0.75 || w[IMToIM] != 0.25 || w[SMSToSMS] != 0 {
		t.Fatalf("%v %v", w, err)
	}
	for _, bad := range []string{"", "sms-im:0", "foo:1", "sms-im:-1", "sms-im:x", "sms-im:NaN"} {
		if _, err := Weights(bad, routeNames[:]); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var n [numRoutes]int
	for range 10000 {
		n[pick(rng, w)]++
	}
	if n[SMSToSMS] != 0 || n[IMToSMS] != 0 || n[SMSToIM] < 7000 || n[SMSToIM] > 8000 {
		t.Errorf("pick spread %v", n)
	}
}

func TestProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSBytes < 1<<20 || s.CPUSeconds < 0 {
		t.Errorf("implausible sample %+v", s)
	}
	cpu, err := ParseStatCPU("42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0")
	if err != nil || cpu != 4 {
		t.Errorf("stat with ) in name: %v %v", cpu, err)
	}
	if _, err := ParseStatusRSS("Name: x\nVmRSS:\t  12 MB\n"); err == nil {
		t.Error("VmRSS in MB accepted")
	}
}

func TestDigestParam(t *testing.T) {
	v := `Digest realm="bench.test", nonce="abc_-123", algorithm=MD5, qop="auth", stale=true`
	if n, ok := digestParam(v, "nonce"); !ok || n != "abc_-123" {
		t.Errorf("nonce %q %v", n, ok)
	}
	if s, ok := digestParam(v, "stale"); !ok || s != "true" {
		t.Errorf("stale %q %v", s, ok)
	}
	if _, ok := digestParam(`Basic realm="x"`, "realm"); ok {
		t.Error("Basic challenge parsed")
	}
}

func TestTrackerCensus(t *testing.T) {
	tr := NewTracker()
	var toks []Token
	for range chunkLen + 9 { // crosses a chunk boundary; the last is i%5 == 4
		toks = append(toks, tr.Next(SMSToSMS))
	}
	last := toks[len(toks)-1]
	for i, tok := range toks {
		switch i % 5 {
		case 0: // acked, delivered
			tr.Acked(tok)
			tr.Delivered(tok)
		case 1: // delivered before its acknowledgement was read
			tr.Delivered(tok)
			tr.Acked(tok)
		case 2: // refused
			tr.Refused(tok, true)
		case 3: // unanswered
		case 4: // acked, never delivered
			if tok != last {
				tr.Acked(tok)
			}
		}
	}
	tr.Delivered(toks[0])                                          // a duplicate
	tr.Delivered(Token{Route: SMSToIM, Seq: last.Seq + 1})         // never handed out
	tr.Delivered(Token{Route: SMSToIM, Seq: chunkLen * maxChunks}) // beyond the table
	tr.Acked(last)
	tr.Delivered(last)
	toks = append(toks, tr.Next(SMSToSMS)) // the unknown one's number, now handed out: unanswered

	n := uint64(len(toks)) - 1
	f := tr.Census()
	per := func(k uint64) uint64 { // how many of 0..n-1 have i%5 == k
		return (n + 4 - k) / 5
	}
	lost := per(4) - 1 // last was acked and delivered in the end
	if f.Sent != n+1 || f.Refused != per(2) || f.Unanswered != per(3)+1 || f.Lost != lost {
		t.Fatalf("census %+v, want sent %d refused %d unanswered %d lost %d", f, n+1, per(2), per(3)+1, lost)
	}
	if f.Delivered != per(0)+per(1)+1 || f.Acked != per(0)+per(1)+per(4) {
		t.Fatalf("census %+v: delivered/acked wrong", f)
	}
	if f.LostByRoute[SMSToSMS] != lost || len(f.LostSamples) != 20 || f.LostSamples[0] != toks[4].Seq {
		t.Fatalf("lost by route %v, samples %v", f.LostByRoute, f.LostSamples)
	}
	if got := tr.Outstanding(); got != int(lost) {
		t.Fatalf("outstanding %d, want %d", got, lost)
	}
	if d, u := tr.dups[SMSToSMS].Load(), tr.unknown[SMSToIM].Load(); d != 1 || u != 2 {
		t.Fatalf("dups %d unknown %d, want 1 and 2", d, u)
	}
}

// Message k is due at k/rate: the first at once, none an interval late.
func TestDueBy(t *testing.T) {
	for _, c := range []struct {
		us   uint64
		rate float64
		want uint64
	}{
		{0, 20, 1}, {49_999, 20, 1}, {50_000, 20, 2}, {1_000_000, 20, 21}, {0, 10500, 1}, {1_000_000, 10500, 10501},
	} {
		if got := dueBy(c.us, c.rate); got != c.want {
			t.Errorf("dueBy(%d µs, %v/s) = %d, want %d", c.us, c.rate, got, c.want)
		}
	}
}

// An open-loop ceiling that ran the bench on most of the machine measured
// the generator: the report says so and gives no ratio; below the share, and
// for a ceiling held to a rate, it does not.
func TestCeilingGeneratorBound(t *testing.T) {
	mk := func(benchCPU float64, ceilingRate float64) *Report {
		r := &Report{NumCPU: 2, Options: Options{CeilingRate: ceilingRate}, Phases: []PhaseResult{
			{Name: "ceiling", DeliveredPerSec: 40000, Bench: ProcResult{CPUPercent: benchCPU}},
			{Name: "bridge", DeliveredPerSec: 30000},
		}}
		r.finish()
		return r
	}
	if r := mk(190, 0); !r.GeneratorBound() || r.CeilingRatio != 0 || !strings.Contains(r.CeilingNote, "generator-bound") {
		t.Fatalf("bench at 190%% of 2 cores: bound %v, ratio %v, note %q", r.GeneratorBound(), r.CeilingRatio, r.CeilingNote)
	}
	if r := mk(60, 0); r.GeneratorBound() || r.CeilingRatio != 0.75 || r.CeilingNote != "" {
		t.Fatalf("bench at 60%%: bound %v, ratio %v, note %q", r.GeneratorBound(), r.CeilingRatio, r.CeilingNote)
	}
	if r := mk(190, 1800); r.GeneratorBound() || r.CeilingRatio != 0 {
		t.Fatalf("ceiling at a fixed rate: bound %v, ratio %v", r.GeneratorBound(), r.CeilingRatio)
	}
}

func TestBridgeArgDuration(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
		err  bool
	}{
		{nil, 0, false},
		{[]string{"--workers=2048"}, 0, false},
		{[]string{"--xmpp-ping-gap=250ms"}, 250 * time.Millisecond, false},
		{[]string{"-xmpp-ping-gap=1s", "--workers=8"}, time.Second, false},
		{[]string{"--xmpp-ping-gap", "5ms"}, 5 * time.Millisecond, false},
		{[]string{"--xmpp-ping-gap=1s", "--xmpp-ping-gap=2s"}, 2 * time.Second, false},
		{[]string{"--xmpp-ping-gap-x=1s"}, 0, false},
		{[]string{"--xmpp-ping-gap=soon"}, 0, true},
		{[]string{"--xmpp-ping-gap"}, 0, true},
	} {
		got, err := bridgeArgDuration(c.args, "xmpp-ping-gap")
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%q: %v, %v; want %v, error %v", c.args, got, err, c.want, c.err)
		}
	}
}

// TestSpeedProbe: every CPU the bench may use gets measured, with the
// thread CPU time of the probe's work, and Drain starts afresh.
func TestSpeedProbe(t *testing.T) {
	cpus := probeCPUs()
	if len(cpus) == 0 {
		t.Skip("CPUs cannot be pinned here")
	}
	p := StartSpeedProbe(5 * time.Millisecond)
	if p == nil {
		t.Fatal("no probe though CPUs can be pinned")
	}
	defer p.Stop()
	// A Drain between a round's CPUs sees some measured, the next the
	// others: each CPU counts once it has been seen.
	got := make([]float64, len(cpus))
	testutil.WaitFor(t, "every CPU probed", 20*time.Second, func() bool {
		d := p.Drain()
		if len(d) != len(cpus) {
			t.Fatalf("Drain gave %d figures for %d CPUs", len(d), len(cpus))
		}
		seen := 0
		for c, us := range d {
			if us > 0 {
				got[c] = us
			}
			if got[c] > 0 {
				seen++
			}
		}
		return seen == len(cpus)
	})
	for c, us := range got {
		// Half a millisecond here; a second would mean the clock counted
		// something other than the work.
		if us > 1e6 {
			t.Errorf("cpu %d: %.0f µs for the probe's work", c, us)
		}
	}
	p.Stop()
	p.Drain()
	for c, us := range p.Drain() {
		if us != 0 {
			t.Errorf("cpu %d: %.0f µs measured after Stop", c, us)
		}
	}
}
