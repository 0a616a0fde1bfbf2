package smstext

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrPart marks a concatenated part that cannot belong to a message.
var ErrPart = errors.New("smstext: invalid concatenated part")

// MissingMarker stands in for each missing part in a partial delivery.
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
	// MaxPending caps the messages waiting for parts; when full the
	// oldest is evicted and counted as failed (default 10000).
	MaxPending int
	// Partial: on timeout deliver what came, with MissingMarker in place
	// of each missing part (true), or drop it (false).
	Partial bool
	// Logger receives evictions and drops (default: discard).
	Logger *slog.Logger
}

// Assembled is a complete (or, after a timeout with Partial, incomplete)
// message.
type Assembled struct {
	Key     Key
	Text    string // UTF-8 text of all parts in seq order
	Parts   int    // parts received
	Missing int    // > 0 only for a partial delivery after timeout
}

// ReassemblyStats are cumulative counters, except Pending.
type ReassemblyStats struct {
	Pending    int // messages waiting for parts now
	Completed  int // messages assembled with all parts
	Duplicates int // parts ignored because their seq had already come
	Evicted    int // messages dropped because MaxPending was reached
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

type storedBody struct {
	dcs  byte
	body []byte
}

type pending struct {
	key   Key
	total byte
	first time.Time
	parts map[byte]storedBody
	elem  *list.Element
}

// Reassembler collects the parts of concatenated messages. It is safe for
// concurrent use.
type Reassembler struct {
	cfg ReassemblyConfig
	now func() time.Time
	log *slog.Logger

	mu      sync.Mutex
	byKey   map[Key]*pending
	order   *list.List   // of *pending, oldest first
	expired []*Assembled // partials found outside Expire, handed out by it
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
	if p == nil {
		p = r.insert(k, total, now)
	}
	if _, dup := p.parts[seq]; dup {
		r.stats.Duplicates++
		return nil, nil
	}
	p.parts[seq] = storedBody{dcs: dcs, body: append([]byte(nil), body...)}
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

// insert starts a pending message, evicting the oldest when full. Caller
// holds mu.
func (r *Reassembler) insert(k Key, total byte, first time.Time) *pending {
	for r.order.Len() >= r.cfg.MaxPending {
		old := r.order.Front().Value.(*pending)
		r.remove(old)
		r.stats.Evicted++
		r.log.Warn("sms reassembly evicted: too many pending", "source", old.key.Source, "dest", old.key.Dest,
			"ref", old.key.Ref, "parts", len(old.parts), "total", old.total, "max_pending", r.cfg.MaxPending)
	}
	p := &pending{key: k, total: total, first: first, parts: make(map[byte]storedBody, total)}
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
}

// timeout closes a pending message that waited too long. Caller holds mu.
func (r *Reassembler) timeout(p *pending) {
	r.remove(p)
	r.stats.TimedOut++
	if !r.cfg.Partial {
		r.log.Warn("sms reassembly timed out, dropped", "source", p.key.Source, "dest", p.key.Dest,
			"ref", p.key.Ref, "parts", len(p.parts), "total", p.total)
		return
	}
	a, _ := assemble(p, true) // lenient: never fails
	r.handOut(a)
}

// handOut queues a for the next Expire. The queue is capped at MaxPending
// so a caller that never calls Expire cannot make it grow without bound.
// Caller holds mu.
func (r *Reassembler) handOut(a *Assembled) {
	if len(r.expired) >= r.cfg.MaxPending {
		old := r.expired[0]
		r.expired = r.expired[1:]
		r.log.Warn("sms reassembly: undelivered partial dropped, Expire not called", "source", old.Key.Source,
			"dest", old.Key.Dest, "ref", old.Key.Ref)
	}
	r.expired = append(r.expired, a)
}

// Expire closes the messages older than Timeout and returns the partial
// deliveries (only with cfg.Partial), plus any closed earlier by Add or
// completed by Restore. Call it periodically.
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
		for seq := 1; seq <= int(p.total); seq++ {
			if b, ok := p.parts[byte(seq)]; ok {
				out = append(out, StoredPart{Key: p.key, Total: p.total, Seq: byte(seq), DCS: b.dcs,
					Body: append([]byte(nil), b.body...), First: p.first})
			}
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
	if p == nil {
		p = r.insert(sp.Key, sp.Total, sp.First)
	}
	if _, dup := p.parts[sp.Seq]; dup {
		return nil
	}
	p.parts[sp.Seq] = storedBody{dcs: sp.DCS, body: append([]byte(nil), sp.Body...)}
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
	a := &Assembled{Key: p.key, Parts: len(p.parts)}
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
		b, ok := p.parts[byte(seq)]
		if !ok {
			if err := flush(); err != nil {
				return nil, err
			}
			a.Missing++
			sb.WriteString(MissingMarker)
			continue
		}
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
