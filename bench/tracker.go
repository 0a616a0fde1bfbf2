package main

import (
	"sync/atomic"
	"time"
)

// Message states, or-ed together: an acknowledgement and a delivery can
// arrive in either order (the sink may see a message before the submitter's
// goroutine has read the response).
const (
	stSent      uint8 = 1 << iota
	stAcked           // the bridge acknowledged it (submit_sm_resp 0, SIP 2xx)
	stRefused         // throttled or failed at submission: not expected anywhere
	stDelivered       // a sink received it
)

// routeShift places the route in the state's upper bits, so a census can
// tell the route of a lost message without another table.
const routeShift = 5

const (
	chunkBits = 16
	chunkLen  = 1 << chunkBits // messages per chunk
	maxChunks = 1 << 16        // 4G messages per run
)

type chunk [chunkLen / 4]atomic.Uint32

// Tracker follows every message from send to delivery and keeps the
// counters the progress line, the time series and the report are built from.
type Tracker struct {
	epoch time.Time
	// measureFromUs: only messages sent at or after this instant (µs since
	// epoch) count towards the report; earlier ones are warm-up.
	measureFromUs atomic.Uint64
	measureToUs   atomic.Uint64

	// states holds one byte per sequence number, four to a word, in
	// chunks allocated as the run reaches them. Sequence numbers are dense,
	// so an array needs no lock and no hashing, where locked maps would
	// spend CPU that the bridge under test shares on this box (profile the
	// generator with --cpuprofile).
	states [maxChunks]atomic.Pointer[chunk]
	seq    atomic.Uint64

	// Counters since the start, by route. The ticker turns them into rates.
	// elsewhere counts deliveries at another network's sink than the
	// route's (an IM delivery the bridge fell back to SMS for).
	sent, accepted, delivered, throttled, errors, dups, unknown, elsewhere [numRoutes]atomic.Uint64

	// Latency of deliveries of measured messages: whole run, by route, and
	// the current second (drained by the ticker).
	all    Hist
	route  [numRoutes]Hist
	second Hist

	// group follows the copies of group posts; nil without the group route.
	group *groupTracker
}

// NewTracker starts a tracker whose clock starts now.
func NewTracker() *Tracker {
	t := &Tracker{epoch: time.Now()}
	t.measureToUs.Store(^uint64(0))
	return t
}

// Now is microseconds since the tracker's epoch (monotonic).
func (t *Tracker) Now() uint64 { return uint64(time.Since(t.epoch).Microseconds()) }

// Next allocates a token for a message of route r sent now.
func (t *Tracker) Next(r Route) Token {
	return t.NextAt(r, t.Now())
}

// mark ors st into seq's state. known is false for a sequence number this
// tracker never handed out (another run's token, or a corrupted one),
// which is then left unrecorded.
func (t *Tracker) mark(seq uint64, st uint8) (before uint8, known bool) {
	w := t.word(seq, false)
	if w == nil {
		return 0, false
	}
	shift := (seq % 4) * 8
	return uint8(w.Or(uint32(st)<<shift) >> shift), true
}

// word is seq's state word; alloc creates its chunk (Next, the only
// caller that may, runs before anything else can see seq).
func (t *Tracker) word(seq uint64, alloc bool) *atomic.Uint32 {
	if seq == 0 || seq/chunkLen >= maxChunks || (!alloc && seq > t.seq.Load()) {
		return nil
	}
	p := &t.states[seq/chunkLen]
	c := p.Load()
	if c == nil {
		if !alloc {
			return nil
		}
		p.CompareAndSwap(nil, new(chunk))
		c = p.Load()
	}
	return &c[seq%chunkLen/4]
}

// state is seq's state byte (0 for a sequence number never handed out).
func (t *Tracker) state(seq uint64) uint8 {
	w := t.word(seq, false)
	if w == nil {
		return 0
	}
	return uint8(w.Load() >> ((seq % 4) * 8))
}

// each calls f with every handed-out message's sequence number and state.
func (t *Tracker) each(f func(seq uint64, st uint8)) {
	n := t.seq.Load()
	for seq := uint64(1); seq <= n; seq++ {
		w := t.word(seq, false)
		if w == nil {
			continue
		}
		if st := uint8(w.Load() >> ((seq % 4) * 8)); st != 0 {
			f(seq, st)
		}
	}
}

// Acked records the bridge's acknowledgement of tok.
func (t *Tracker) Acked(tok Token) {
	t.mark(tok.Seq, stAcked)
	t.accepted[tok.Route].Add(1)
}

// Refused records a submission the bridge did not take.
func (t *Tracker) Refused(tok Token, throttled bool) {
	t.mark(tok.Seq, stRefused)
	if throttled {
		t.throttled[tok.Route].Add(1)
	} else {
		t.errors[tok.Route].Add(1)
	}
}

// Sink is the network a delivery arrived on.
type Sink uint8

const (
	AtSMS Sink = iota
	AtSIP
	AtXMPP
)

// Dest is the sink the route's messages are meant for.
func (r Route) Dest() Sink {
	switch {
	case r.ToSMS():
		return AtSMS
	case r.ToXMPP():
		return AtXMPP
	}
	return AtSIP
}

// Delivered records that the sink of tok's route received it.
func (t *Tracker) Delivered(tok Token) { t.DeliveredAt(tok, tok.Route.Dest()) }

// DeliveredAt records that the sink at received tok. A nil Tracker (a sink
// that only counts, as the ceiling's ingress peers) records nothing.
func (t *Tracker) DeliveredAt(tok Token, at Sink) {
	if t == nil {
		return
	}
	before, known := t.mark(tok.Seq, stDelivered)
	r := tok.Route
	if r >= numRoutes {
		return
	}
	switch {
	case !known:
		t.unknown[r].Add(1) // not ours: another run, or a corrupted token
		return
	case before&stDelivered != 0:
		t.dups[r].Add(1)
		return
	}
	t.delivered[r].Add(1)
	if at != r.Dest() {
		t.elsewhere[r].Add(1)
	}
	t.record(tok)
}

// record adds tok's latency, from its send time to now, to the histograms.
func (t *Tracker) record(tok Token) {
	r := tok.Route
	now := t.Now()
	lat := uint64(0)
	if now > tok.SentUs {
		lat = now - tok.SentUs
	}
	t.second.Record(lat)
	if tok.SentUs >= t.measureFromUs.Load() && tok.SentUs < t.measureToUs.Load() {
		t.all.Record(lat)
		t.route[r].Record(lat)
	}
}

// Outstanding counts messages acknowledged but not (yet) delivered.
func (t *Tracker) Outstanding() int {
	n := 0
	t.each(func(_ uint64, st uint8) {
		if st&stAcked != 0 && st&stDelivered == 0 {
			n++
		}
	})
	return n
}

// Final is the end-of-run census of every message.
type Final struct {
	Sent, Acked, Refused, Delivered uint64
	Lost                            uint64 // acknowledged, never delivered
	DeliveredUnacked                uint64 // delivered but neither acknowledged nor refused (e.g. a timed-out submit)
	Unanswered                      uint64 // sent, no answer and no delivery
	LostSamples                     []uint64
	LostByRoute                     [numRoutes]uint64
}

// Census counts final states.
func (t *Tracker) Census() Final {
	var f Final
	t.each(func(seq uint64, st uint8) {
		f.Sent++
		if st&stAcked != 0 {
			f.Acked++
		}
		if st&stRefused != 0 {
			f.Refused++
		}
		if st&stDelivered != 0 {
			f.Delivered++
		}
		switch {
		case Route(st>>routeShift) == Group && st&stAcked != 0 && st&stDelivered == 0:
			// A post misses copies: they, not the post, are counted below.
		case st&stAcked != 0 && st&stDelivered == 0:
			f.Lost++
			f.LostByRoute[Route(st>>routeShift)%numRoutes]++
			if len(f.LostSamples) < 20 {
				f.LostSamples = append(f.LostSamples, seq)
			}
		case st&stDelivered != 0 && st&(stAcked|stRefused) == 0:
			f.DeliveredUnacked++
		case st&(stAcked|stRefused|stDelivered) == 0:
			f.Unanswered++
		}
	})
	if t.group != nil {
		lost, samples, _ := t.lostCopies()
		f.Lost += lost
		f.LostByRoute[Group] = lost
		f.LostSamples = append(f.LostSamples, samples[:min(len(samples), 20-min(20, len(f.LostSamples)))]...)
	}
	return f
}

// NextAt allocates a token for a message of route r meant to be sent at us
// (rate mode: the pacer's schedule, not the moment a worker got to it).
func (t *Tracker) NextAt(r Route, us uint64) Token {
	tok := Token{Route: r, Seq: t.seq.Add(1), SentUs: us}
	if w := t.word(tok.Seq, true); w != nil {
		w.Or(uint32(stSent|uint8(r)<<routeShift) << ((tok.Seq % 4) * 8))
	}
	t.sent[r].Add(1)
	return tok
}
