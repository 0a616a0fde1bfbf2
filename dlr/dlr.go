package dlr

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/internal/dueheap"
	"github.com/smsbridge/bridge/internal/hmacsig"
	"github.com/smsbridge/bridge/msg"
)

// The states a report says, in SMPP's receipt vocabulary.
const (
	Enroute     = "ENROUTE" // handed to the SMS network; its receipt is awaited
	Delivered   = "DELIVRD"
	Undelivered = "UNDELIV"
	Expired     = "EXPIRED"
	Rejected    = "REJECTD" // refused by the network at submission
)

// Headers of a report request.
const (
	HeaderTimestamp = "X-Bridge-Timestamp" // unix seconds of this attempt
	HeaderSignature = "X-Bridge-Signature" // sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
	// HeaderIdempotencyKey is "<message id>.<state>", the same on every
	// attempt: a receiver that got a report twice (its 2xx lost) sees it.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Report is the JSON body of a report.
type Report struct {
	ID     string    `json:"id"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
	To     string    `json:"to"`
	From   string    `json:"from"`
}

// KV is the durable key-value space reports wait in (store.DB).
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// prefix is the reports' key space: prefix + message id + "/" + order +
// "/" + creation in unix nanoseconds (20 digits), order 1 for ENROUTE and 2
// for the outcome, so a walk meets a message's reports in the order they
// go, and a report made again (a receipt heard twice) has a key of its own.
const prefix = "dlr/"

// Config configures a Notifier.
type Config struct {
	KV     KV
	Secret []byte // signs every report; empty: reports go unsigned
	// Expiry: how long a report is retried (default 24h).
	Expiry time.Duration
	// RetryMin and RetryMax bound the backoff between attempts (defaults
	// 1s and 10m); each wait is drawn at random up to the bound.
	RetryMin, RetryMax time.Duration
	Timeout            time.Duration // per attempt (default 10s)
	Workers            int           // reports posted at once (default 16)
	Client             *http.Client  // default: one that follows no redirects
	Logger             *slog.Logger
	Now                func() time.Time
}

// Notifier stores and posts reports; it is the router's reporter for
// messages from the HTTP API.
type Notifier struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	msgs  map[string]*queue    // by message id
	heap  dueheap.Heap[*queue] // queues with a report waiting, by due time
	wake  chan struct{}
	sem   chan struct{}
	inRun atomic.Bool

	Sent, Attempts, Failed, Dropped, Expired atomic.Uint64
}

// queue is one message's reports, oldest first; the head goes next.
type queue struct {
	id      string
	reports []*pending
	due     time.Time
	busy    bool // the head is being posted
	index   int  // in heap; -1 when not scheduled
}

// pending is a report on its way, as stored.
type pending struct {
	key      string
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
	Created  time.Time       `json:"created"`
	Attempts int             `json:"attempts"`
	state    string
}

// New builds a notifier and loads the reports stored by earlier runs; Run
// posts them.
func New(cfg Config) (*Notifier, error) {
	if cfg.KV == nil {
		return nil, errors.New("dlr: no KV")
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = 24 * time.Hour
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Client == nil {
		cfg.Client = hmacsig.NoRedirects(nil) // the report is retried at its URL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger, msgs: make(map[string]*queue),
		wake: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Workers)}
	now := cfg.Now()
	err := cfg.KV.Iterate([]byte(prefix), func(k, v []byte) error {
		var p pending
		if err := json.Unmarshal(v, &p); err != nil {
			n.log.Warn("stored delivery report unreadable: dropped", "key", string(k), "err", err)
			return nil
		}
		p.key = string(k)
		var r Report
		json.Unmarshal(p.Body, &r)
		p.state = r.State
		id, _, _ := strings.Cut(strings.TrimPrefix(p.key, prefix), "/")
		n.add(id, &p, now)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dlr: loading stored reports: %w", err)
	}
	return n, nil
}

// CheckURL tells whether u can take reports: an absolute http(s) URL with
// a host, at most 2048 bytes.
func CheckURL(u string) error {
	if len(u) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
		return errors.New("want an http:// or https:// URL with a host and no user info")
	}
	return nil
}

// Pending is the number of reports not yet delivered.
func (n *Notifier) Pending() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, q := range n.msgs {
		c += len(q.reports)
	}
	return c
}

// HandedOff reports ENROUTE (router.HandOffReporter).
func (n *Notifier) HandedOff(ctx context.Context, m *msg.Message, at time.Time) {
	n.enqueue(ctx, m, Report{State: Enroute, Detail: "handed to the SMS network", At: at})
}

// Report reports m's outcome (router.Reporter).
func (n *Notifier) Report(ctx context.Context, m *msg.Message, o msg.Outcome) {
	n.enqueue(ctx, m, Report{State: StateOf(o), Detail: o.Detail, At: o.At})
}

// StateOf names an outcome in the reports' vocabulary: the SMSC's own
// word when it sent a receipt, else what the bridge saw (a refusal at
// submission is REJECTD).
func StateOf(o msg.Outcome) string {
	switch o.Stat {
	case Delivered, Expired, Rejected:
		return o.Stat
	case "":
	default:
		return Undelivered // UNDELIV, DELETED, UNKNOWN
	}
	switch {
	case o.Delivered:
		return Delivered
	case o.State == msg.Expired:
		return Expired
	}
	return Rejected
}

func (n *Notifier) enqueue(ctx context.Context, m *msg.Message, r Report) {
	if m.ReportURL == "" {
		return
	}
	if r.At.IsZero() {
		r.At = n.cfg.Now()
	}
	r.ID, r.To, r.From = m.ID, string(m.To), string(m.From)
	body, err := json.Marshal(r)
	if err != nil {
		n.log.Warn("delivery report not encoded", "id", m.ID, "err", err)
		return
	}
	order := "2"
	if r.State == Enroute {
		order = "1"
	}
	now := n.cfg.Now()
	p := &pending{key: fmt.Sprintf("%s%s/%s/%020d", prefix, m.ID, order, now.UnixNano()), URL: m.ReportURL, Body: body, Created: now, state: r.State}
	if err := n.store(ctx, p); err != nil {
		n.log.Warn("delivery report not stored", "id", m.ID, "state", r.State, "err", err)
		return
	}
	n.mu.Lock()
	n.add(m.ID, p, p.Created)
	n.mu.Unlock()
	n.poke()
}

func (n *Notifier) store(ctx context.Context, p *pending) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return n.cfg.KV.Put(ctx, []byte(p.key), v)
}

// add queues p behind m's other reports, dropping the ones not being
// posted, which p supersedes. n.mu is held (or New runs alone).
func (n *Notifier) add(id string, p *pending, now time.Time) {
	q := n.msgs[id]
	if q == nil {
		q = &queue{id: id, index: -1}
		n.msgs[id] = q
	}
	keep := q.reports[:0]
	for i, o := range q.reports {
		if i == 0 && q.busy {
			keep = append(keep, o) // being posted: its attempt settles it
			continue
		}
		n.Dropped.Add(1)
		go n.forget(o) // every report has a key of its own: p's is not touched
	}
	q.reports = append(keep, p)
	if !q.busy {
		n.schedule(q, now)
	}
}

// forget deletes a report from the store.
func (n *Notifier) forget(p *pending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.cfg.KV.Delete(ctx, []byte(p.key)); err != nil {
		n.log.Warn("delivery report not deleted: it may be sent again after a restart", "key", p.key, "err", err)
	}
}

// schedule puts q in the heap at due (n.mu held).
func (n *Notifier) schedule(q *queue, due time.Time) {
	q.due = due
	if q.index >= 0 {
		heap.Fix(&n.heap, q.index)
		return
	}
	heap.Push(&n.heap, q)
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run posts reports until ctx ends; what is not delivered stays stored.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.inRun.CompareAndSwap(false, true) {
		return errors.New("dlr: Run called twice")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		var wait time.Duration = time.Hour
		var ready []*queue
		now := n.cfg.Now()
		for len(n.heap) > 0 {
			q := n.heap[0]
			if d := q.due.Sub(now); d > 0 {
				wait = d
				break
			}
			heap.Pop(&n.heap)
			q.busy = true
			ready = append(ready, q)
		}
		n.mu.Unlock()
		for _, q := range ready {
			select {
			case n.sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-n.sem }()
				n.attempt(ctx, q)
			}()
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// attempt posts q's head once and settles what follows from the answer.
func (n *Notifier) attempt(ctx context.Context, q *queue) {
	n.mu.Lock()
	p := q.reports[0]
	n.mu.Unlock()
	n.Attempts.Add(1)
	err := n.post(ctx, p)
	if ctx.Err() != nil {
		return // stopping: stays stored, sent after the next start
	}
	now := n.cfg.Now()
	done := err == nil
	if err != nil {
		n.Failed.Add(1)
		p.Attempts++
		if now.Sub(p.Created) >= n.cfg.Expiry {
			n.Expired.Add(1)
			n.log.Warn("delivery report expired undelivered", "key", p.key, "url", p.URL, "attempts", p.Attempts, "err", err)
			done = true
		} else {
			n.log.Info("delivery report not taken; will retry", "key", p.key, "attempts", p.Attempts, "err", err)
			// The count survives a restart, so the backoff goes on where it was.
			if serr := n.store(ctx, p); serr != nil {
				n.log.Warn("delivery report attempt not recorded", "key", p.key, "err", serr)
			}
		}
	} else {
		n.Sent.Add(1)
	}
	if done {
		if derr := n.cfg.KV.Delete(ctx, []byte(p.key)); derr != nil {
			n.log.Warn("delivery report not deleted: it may be sent again after a restart", "key", p.key, "err", derr)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	q.busy = false
	if done || len(q.reports) > 1 {
		// Delivered, expired, or superseded by a later report meanwhile
		// (which may be the same report made again: sent once more).
		if !done {
			n.Dropped.Add(1)
			go n.forget(p)
		}
		q.reports = q.reports[1:]
	}
	if len(q.reports) == 0 {
		delete(n.msgs, q.id)
		return
	}
	due := now
	if q.reports[0] == p {
		due = now.Add(n.backoff(p.Attempts))
	}
	n.schedule(q, due)
	n.poke()
}

// backoff is exponential in the attempts, capped, with full jitter so the
// reports of many messages to one receiver that was down spread out.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.cfg.RetryMin
	for i := 1; i < attempts && d < n.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, n.cfg.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt: nil on a 2xx.
func (n *Notifier) post(ctx context.Context, p *pending) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(p.Body))
	if err != nil {
		return fmt.Errorf("dlr: request to %s: %w", p.URL, err)
	}
	ts := strconv.FormatInt(n.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bridge-dlr")
	req.Header.Set(HeaderTimestamp, ts)
	if len(n.cfg.Secret) > 0 {
		req.Header.Set(HeaderSignature, hmacsig.Sign(n.cfg.Secret, ts, p.Body))
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(p.key, prefix), "/")
	req.Header.Set(HeaderIdempotencyKey, id+"."+p.state)
	res, err := n.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("dlr: post to %s: %w", p.URL, err)
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("dlr: %s answered %s", p.URL, res.Status)
	}
	return nil
}

// Due and SetIndex place a queue in the notifier's heap (dueheap.Item).
func (q *queue) Due() time.Time { return q.due }
func (q *queue) SetIndex(i int) { q.index = i }
