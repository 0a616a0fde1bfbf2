package smstext

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrPart marks a concatenated part that cannot belong to a message.
var ErrPart = errors.New("smstext: invalid concatenated part")

// MissingMarker stands in for each run of missing parts in a partial
// delivery, so its text grows with the parts that came, not with the total.
const MissingMarker = "[…missing part(s)…]"

// Key identifies one concatenated message: the same reference from two
// senders (or to two recipients) is two messages.
type Key struct {
	Source, Dest string
	Ref          uint16
}

// ReassemblyConfig configures a Reassembler. Zero values take the defaults.
type ReassemblyConfig struct {
	// Timeout is how long to wait for missing parts, counted from the
	// first part (default 5m).
	Timeout time.Duration
	// MaxPending caps the messages waiting for parts (default 10000), and
	// MaxBytes the bytes of their parts (bodies and 48 bytes each; default
	// 16 MiB). Past either the oldest is closed early, as at its timeout.
	// The memory held is about MaxPending×400 B + MaxBytes.
	MaxPending int
	MaxBytes   int
	// Partial: a message closed before all its parts came (timeout, a
	// cap) is handed out with MissingMarker in place of the missing parts
	// (true), or handed out Dropped, for its sender to be told (false).
	Partial bool
	// Notify, when set, is called (with the lock held: it must not block)
	// when a message is handed out for the next Expire.
	Notify func()
	// Logger receives evictions and drops (default: discard).
	Logger *slog.Logger
}

// Assembled is a complete (or, after a timeout with Partial, incomplete)
// message.
type Assembled struct {
	Key     Key
	Text    string // UTF-8 text of all parts in seq order
	Parts   int    // parts received
	Missing int    // > 0 only for a message closed before all its parts came
	// Dropped: closed early under the drop policy; Text is what came, not
	// to be delivered: its sender is to be told it failed.
	Dropped bool
	First   time.Time // when its first part came
}

// ReassemblyStats are cumulative counters, except Pending.
type ReassemblyStats struct {
	Pending    int // messages waiting for parts now
	Completed  int // messages assembled with all parts
	Duplicates int // parts ignored because their seq had already come
	Evicted    int // messages closed early because MaxPending or MaxBytes was reached
	TimedOut   int // messages that timed out (delivered partial or dropped)
	Failed     int // complete messages whose text did not decode
}

// StoredPart is one stored part, for persisting pending reassemblies across
// a restart (Snapshot, Restore). First is when the message's first part came.
type StoredPart struct {
	Key             Key
	Total, Seq, DCS byte
	Body            []byte
	First           time.Time
}

// storedBody is one part that came. A message keeps only the parts that
// came, in arrival order: a first part of a 255-part message costs one.
type storedBody struct {
	seq, dcs byte
	body     []byte
}

type pending struct {
	key   Key
	total byte
	first time.Time
	parts []storedBody
	elem  *list.Element
}

// partOverhead is what a part costs besides its body (its storedBody, its
// place in the slice), counted against MaxBytes with the body.
const partOverhead = 48

func (p *pending) has(seq byte) bool {
	for i := range p.parts {
		if p.parts[i].seq == seq {
			return true
		}
	}
	return false
}

// ErrBusy: the messages closed early wait to be handed out (Expire is
// behind); the part is refused, to be sent again, rather than taken.
var ErrBusy = errors.New("smstext: reassembly busy")

// Reassembler collects the parts of concatenated messages. It is safe for
// concurrent use.
type Reassembler struct {
	cfg ReassemblyConfig
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	byKey   map[Key]*pending
	order   *list.List   // of *pending, oldest first
	bytes   int          // of the pending parts' bodies
	expired []*Assembled // closed outside Expire, handed out by it
	stats   ReassemblyStats
}

// NewReassembler returns a Reassembler. now is the clock (time.Now in
// production, a fake in tests); nil means time.Now.
func NewReassembler(cfg ReassemblyConfig, now func() time.Time) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10000
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 16 << 20
	}
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reassembler{cfg: cfg, now: now, log: log, byKey: map[Key]*pending{}, order: list.New()}
}

func checkPart(total, seq byte) error {
	switch {
	case total == 0:
		return fmt.Errorf("%w: total 0", ErrPart)
	case seq == 0:
		return fmt.Errorf("%w: seq 0", ErrPart)
	case seq > total:
		return fmt.Errorf("%w: seq %d > total %d", ErrPart, seq, total)
	}
	return nil
}

// Add stores one part and returns the message once all parts are there.
// Parts may come in any order. A duplicate seq is ignored (counted) and
// returns nil, nil. seq 0, seq > total, total 0, or a total that differs
// from the message's earlier parts is an error and the part is not stored.
//
// When complete, consecutive parts with the same dcs are joined before
// decoding, so a surrogate pair or GSM escape that a sender cut across two
// parts still decodes. A complete message that does not decode is an error
// (counted Failed) and is dropped.
//
// A pending message for k that is older than Timeout is closed first (as
// Expire would) so that a reused reference starts a new message; its
// partial delivery, if any, is returned by the next Expire.
func (r *Reassembler) Add(k Key, total, seq, dcs byte, body []byte) (*Assembled, error) {
	if err := checkPart(total, seq); err != nil {
		return nil, fmt.Errorf("reassemble %v: %w", k, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	p := r.byKey[k]
	if p != nil && !now.Before(p.first.Add(r.cfg.Timeout)) {
		r.timeout(p)
		p = nil
	}
	if p != nil && p.total != total {
		return nil, fmt.Errorf("reassemble %v: %w: total %d, earlier parts said %d", k, ErrPart, total, p.total)
	}
	if p != nil && p.has(seq) {
		r.stats.Duplicates++
		return nil, nil
	}
	if len(r.expired) >= r.cfg.MaxPending {
		return nil, fmt.Errorf("reassemble %v: %w: %d closed messages not handed out yet", k, ErrBusy, len(r.expired))
	}
	if p == nil {
		p = r.insert(k, total, now)
	}
	r.addPart(p, seq, dcs, body)
	if len(p.parts) < int(p.total) {
		return nil, nil
	}
	r.remove(p)
	a, err := assemble(p, false)
	if err != nil {
		r.stats.Failed++
		return nil, fmt.Errorf("reassemble %v: %w", k, err)
	}
	r.stats.Completed++
	return a, nil
}

// addPart stores one part of p, then closes the oldest other messages
// while the bodies are past MaxBytes. Caller holds mu.
func (r *Reassembler) addPart(p *pending, seq, dcs byte, body []byte) {
	p.parts = append(p.parts, storedBody{seq: seq, dcs: dcs, body: append([]byte(nil), body...)})
	r.bytes += len(body) + partOverhead
	for r.bytes > r.cfg.MaxBytes {
		old := r.order.Front().Value.(*pending)
		if old == p {
			if old = nextPending(p); old == nil {
				break // p alone: it is at most 255 parts
			}
		}
		r.evict(old, "max_bytes")
	}
}

func nextPending(p *pending) *pending {
	if e := p.elem.Next(); e != nil {
		return e.Value.(*pending)
	}
	return nil
}

// evict closes old before its time because a cap was reached: it is
// handed out as at its timeout, never just forgotten. Caller holds mu.
func (r *Reassembler) evict(old *pending, limit string) {
	r.stats.Evicted++
	r.log.Warn("sms reassembly closed early: at its cap", "cap", limit, "source", old.key.Source, "dest", old.key.Dest,
		"ref", old.key.Ref, "parts", len(old.parts), "total", old.total, "partial", r.cfg.Partial)
	r.close(old)
}

// insert starts a pending message, closing the oldest when full. Caller
// holds mu.
func (r *Reassembler) insert(k Key, total byte, first time.Time) *pending {
	for r.order.Len() >= r.cfg.MaxPending {
		r.evict(r.order.Front().Value.(*pending), "max_pending")
	}
	p := &pending{key: k, total: total, first: first, parts: make([]storedBody, 0, 1)}
	// Keep order sorted by first: new parts come at the back; restored
	// ones may be older and go further forward.
	e := r.order.Back()
	for e != nil && e.Value.(*pending).first.After(first) {
		e = e.Prev()
	}
	if e == nil {
		p.elem = r.order.PushFront(p)
	} else {
		p.elem = r.order.InsertAfter(p, e)
	}
	r.byKey[k] = p
	return p
}

func (r *Reassembler) remove(p *pending) {
	r.order.Remove(p.elem)
	delete(r.byKey, p.key)
	for i := range p.parts {
		r.bytes -= len(p.parts[i].body) + partOverhead
	}
}

// timeout closes a pending message that waited too long. Caller holds mu.
func (r *Reassembler) timeout(p *pending) {
	r.stats.TimedOut++
	r.log.Warn("sms reassembly timed out", "source", p.key.Source, "dest", p.key.Dest,
		"ref", p.key.Ref, "parts", len(p.parts), "total", p.total, "partial", r.cfg.Partial)
	r.close(p)
}

// close hands out a message before all its parts came: partial, or
// Dropped for its sender to be told. Caller holds mu.
func (r *Reassembler) close(p *pending) {
	r.remove(p)
	a, _ := assemble(p, true) // lenient: never fails
	a.Dropped = !r.cfg.Partial
	r.handOut(a)
}

// handOut queues a for the next Expire. Add refuses new parts while
// MaxPending of them wait, so the queue stays bounded without dropping
// one. Caller holds mu.
func (r *Reassembler) handOut(a *Assembled) {
	r.expired = append(r.expired, a)
	if r.cfg.Notify != nil {
		r.cfg.Notify()
	}
}

// Expire closes the messages older than Timeout and returns them (partial,
// or Dropped without cfg.Partial), with those closed earlier by Add or a
// cap and those completed by Restore. Call it periodically and on Notify.
func (r *Reassembler) Expire() []*Assembled {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for e := r.order.Front(); e != nil; {
		p := e.Value.(*pending)
		if now.Before(p.first.Add(r.cfg.Timeout)) {
			break // sorted by first: the rest are younger
		}
		e = e.Next()
		r.timeout(p)
	}
	out := r.expired
	r.expired = nil
	return out
}

// Stats returns the counters.
func (r *Reassembler) Stats() ReassemblyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Pending = r.order.Len()
	return s
}

// Snapshot returns a copy of every stored part of every pending message,
// oldest message first, parts in seq order.
func (r *Reassembler) Snapshot() []StoredPart {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []StoredPart
	for e := r.order.Front(); e != nil; e = e.Next() {
		p := e.Value.(*pending)
		for _, b := range sortedParts(p) {
			out = append(out, StoredPart{Key: p.key, Total: p.total, Seq: b.seq, DCS: b.dcs,
				Body: append([]byte(nil), b.body...), First: p.first})
		}
	}
	return out
}

// Restore puts back one part from a Snapshot, keeping its First time so the
// timeout still counts from the original first part. Restoring a part that
// is already there is a no-op. If the restored part completes a message, the
// message is handed out by the next Expire.
func (r *Reassembler) Restore(sp StoredPart) error {
	if err := checkPart(sp.Total, sp.Seq); err != nil {
		return fmt.Errorf("restore %v: %w", sp.Key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.byKey[sp.Key]
	if p != nil && p.total != sp.Total {
		return fmt.Errorf("restore %v: %w: total %d, other parts say %d", sp.Key, ErrPart, sp.Total, p.total)
	}
	if p != nil && p.has(sp.Seq) {
		return nil
	}
	if p == nil {
		p = r.insert(sp.Key, sp.Total, sp.First)
	}
	r.addPart(p, sp.Seq, sp.DCS, sp.Body)
	if len(p.parts) < int(p.total) {
		return nil
	}
	r.remove(p)
	a, err := assemble(p, false)
	if err != nil {
		r.stats.Failed++
		return fmt.Errorf("restore %v: %w", sp.Key, err)
	}
	r.stats.Completed++
	r.handOut(a)
	return nil
}

// assemble decodes the parts in seq order. Runs of consecutive parts with
// the same dcs are joined before decoding. With lenient (partial delivery),
// each missing part becomes MissingMarker and a run that does not decode
// (e.g. a surrogate pair whose other half is missing) becomes U+FFFD
// instead of failing.
func assemble(p *pending, lenient bool) (*Assembled, error) {
	var sb strings.Builder
	a := &Assembled{Key: p.key, Parts: len(p.parts), First: p.first}
	parts := sortedParts(p)
	gap := false // the part before was missing
	var run []byte
	var runDCS byte
	inRun := false
	flush := func() error {
		if !inRun {
			return nil
		}
		inRun = false
		s, err := Decode(runDCS, run)
		if err != nil {
			if !lenient {
				return err
			}
			s = string(utf8.RuneError)
		}
		sb.WriteString(s)
		run = run[:0]
		return nil
	}
	for seq := 1; seq <= int(p.total); seq++ {
		if len(parts) == 0 || parts[0].seq != byte(seq) {
			if err := flush(); err != nil {
				return nil, err
			}
			if a.Missing++; seq == 1 || !gap {
				sb.WriteString(MissingMarker)
			}
			gap = true
			continue
		}
		gap = false
		b := parts[0]
		parts = parts[1:]
		if inRun && b.dcs != runDCS {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		runDCS, inRun = b.dcs, true
		run = append(run, b.body...)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	a.Text = sb.String()
	return a, nil
}

// sortedParts is p's parts in seq order.
func sortedParts(p *pending) []storedBody {
	return slices.SortedFunc(slices.Values(p.parts), func(a, b storedBody) int { return int(a.seq) - int(b.seq) })
}
