package robot

import (
	"bytes"
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
	"time"
	"unicode/utf8"

	"github.com/smsbridge/bridge/internal/hmacsig"
)

// WebhookPost is the JSON body a robot server receives for each post.
type WebhookPost struct {
	ID    string    `json:"id"`
	Group string    `json:"group"`
	From  string    `json:"from"`
	Nick  string    `json:"nick"`
	Text  string    `json:"text"`
	At    time.Time `json:"at"` // RFC 3339, UTC
}

// WebhookAnswer is the JSON body a robot server may answer with: Text, or
// several Answers (Text first if both are given).
type WebhookAnswer struct {
	Text    string   `json:"text,omitempty"`
	Answers []string `json:"answers,omitempty"`
}

// maxResponse bounds the response body read: room for MaxAnswers full
// answers even if every byte is JSON-escaped.
const maxResponse = 64 << 10

// ParseAnswers reads a robot server's response body: empty (or only
// space, or JSON null) means no answer; else a WebhookAnswer. Empty answers
// are skipped, each answer is cut to MaxAnswerBytes at a rune boundary, and
// answers beyond MaxAnswers are counted in dropped, not returned.
func ParseAnswers(body []byte) (answers []string, dropped int, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, 0, nil
	}
	var a WebhookAnswer
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&a); err != nil {
		return nil, 0, fmt.Errorf("answer: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, 0, errors.New("answer: data after the JSON object")
	}
	for _, s := range append([]string{a.Text}, a.Answers...) {
		// encoding/json already replaced invalid UTF-8 with U+FFFD.
		s = truncate(s, MaxAnswerBytes)
		if strings.TrimSpace(s) == "" {
			continue
		}
		if len(answers) == MaxAnswers {
			dropped++
			continue
		}
		answers = append(answers, s)
	}
	return answers, dropped, nil
}

// WebhookConfig sets up a Webhook robot. Zero values take the defaults.
type WebhookConfig struct {
	Name   string
	URL    string // http or https
	Secret []byte // shared with the robot server; signs every request
	Answer Answerer

	QueueSize int // posts waiting per robot (default 1024); beyond it Offer drops
	// Workers deliver the queue (default 1). One worker keeps the robot's
	// posts in order, and a retried post holds back those behind it; more
	// workers deliver concurrently, in no particular order.
	Workers     int
	Timeout     time.Duration // per attempt, answer body included (default 3 s)
	MinBackoff  time.Duration // first retry waits up to this (default 250 ms)
	MaxBackoff  time.Duration // no wait exceeds this (default 30 s)
	MaxAttempts int           // attempts per post (default 5)
	// MaxAge is how long after Offer a post is still worth delivering
	// (default 2 min): a post that waited longer in the queue, or would by
	// its next retry, is given up (Expired) — the conversation has moved on.
	MaxAge        time.Duration
	AnswerTimeout time.Duration // per Answerer call (default 5 s)

	Client *http.Client // default: its own, redirects not followed
	Logger *slog.Logger
}

// queued is a post in a Webhook's queue.
type queued struct {
	p  Post
	at time.Time // when Offer took it: MaxAge counts from here
}

// Webhook hands each post to an external robot server (README.md has the
// contract) and posts its answers.
type Webhook struct {
	cfg WebhookConfig
	log *slog.Logger
	st  counters

	mu     sync.RWMutex // guards closed against sends on a closed q
	closed bool
	q      chan queued

	ctx    context.Context // cancelled when Close gives up draining
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewWebhook checks cfg and starts the robot's workers; Close stops them.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("robot %q: URL %q: want http(s)://host/…", cfg.Name, cfg.URL)
	}
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("robot %q: no secret", cfg.Name)
	}
	if cfg.Answer == nil {
		return nil, fmt.Errorf("robot %q: no Answerer", cfg.Name)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 3*time.Second)
	def(&cfg.MinBackoff, 250*time.Millisecond)
	def(&cfg.MaxBackoff, 30*time.Second)
	def(&cfg.MaxAge, 2*time.Minute)
	def(&cfg.AnswerTimeout, 5*time.Second)
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Workers
		cfg.Client = hmacsig.NoRedirects(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhook{
		cfg: cfg, log: cfg.Logger.With("robot", cfg.Name),
		q:   make(chan queued, cfg.QueueSize),
		ctx: ctx, cancel: cancel,
	}
	for range cfg.Workers {
		w.wg.Add(1)
		go w.work()
	}
	return w, nil
}

// Name is the robot's name, the nick its answers are posted under.
func (w *Webhook) Name() string { return w.cfg.Name }

// Stats returns the robot's counters.
func (w *Webhook) Stats() Stats { return w.st.snapshot() }

// Offer queues p for the robot server, or drops it when the queue is full.
func (w *Webhook) Offer(p Post) {
	if p.Robot != "" {
		return
	}
	w.st.offered.Add(1)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.st.dropped.Add(1)
		return
	}
	select {
	case w.q <- queued{p: p, at: time.Now()}:
		w.st.queued.Add(1)
	default:
		if n := w.st.dropped.Add(1); n&(n-1) == 0 {
			// Log the 1st, 2nd, 4th, 8th… drop, not a line per post.
			w.log.Warn("queue full, post dropped", "dropped", n)
		}
	}
}

// Close stops Offer and lets the workers deliver what is queued until ctx
// ends; then in-flight requests are cancelled and the rest is abandoned
// (Expired).
func (w *Webhook) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.q)
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	defer w.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		before := w.st.expired.Load()
		w.cancel()
		<-done
		w.log.Warn("closed before the queue drained", "abandoned", w.st.expired.Load()-before)
		return fmt.Errorf("robot %q: close: %w", w.cfg.Name, ctx.Err())
	}
}

func (w *Webhook) work() {
	defer w.wg.Done()
	for it := range w.q {
		w.deliver(it)
	}
}

// outcome of one attempt.
type outcome int

const (
	delivered outcome = iota
	final             // refused for good
	retry
)

// deliver sends one post until it is delivered, refused or given up.
func (w *Webhook) deliver(it queued) {
	log := w.log.With("group", it.p.Group, "post", it.p.ID)
	at := it.p.At
	if at.IsZero() {
		at = it.at
	}
	body, err := json.Marshal(WebhookPost{ID: it.p.ID, Group: it.p.Group, From: it.p.From,
		Nick: it.p.Nick, Text: it.p.Text, At: at.UTC()})
	if err != nil { // cannot happen for strings and a time; count, don't crash
		w.st.failed.Add(1)
		log.Error("post not encodable", "err", err)
		return
	}
	for attempt := 1; ; attempt++ {
		if w.ctx.Err() != nil { // Close gave up: it logs the count
			w.st.expired.Add(1)
			return
		}
		if time.Since(it.at) > w.cfg.MaxAge {
			w.st.expired.Add(1)
			log.Warn("post given up", "attempts", attempt-1, "age", time.Since(it.at).Round(time.Millisecond))
			return
		}
		if attempt > 1 {
			w.st.retried.Add(1)
		}
		res, answer, retryAfter, err := w.attempt(body, it.p.ID)
		switch res {
		case delivered:
			w.st.delivered.Add(1)
			if err != nil {
				w.st.answerFailed.Add(1)
				log.Warn("answer lost", "err", err)
				return
			}
			w.answer(log, it.p.Group, answer)
			return
		case final:
			w.st.failed.Add(1)
			log.Warn("robot server refused post", "attempt", attempt, "err", err)
			return
		}
		if attempt >= w.cfg.MaxAttempts {
			w.st.expired.Add(1)
			log.Warn("post given up", "attempts", attempt, "err", err)
			return
		}
		wait := w.backoff(attempt, retryAfter)
		if time.Since(it.at)+wait > w.cfg.MaxAge {
			w.st.expired.Add(1)
			log.Warn("post given up", "attempts", attempt, "age", time.Since(it.at).Round(time.Millisecond), "err", err)
			return
		}
		log.Debug("retrying", "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
		}
	}
}

// backoff is exponential with full jitter: a uniform wait in [0, min(max,
// min·2^(attempt-1))], so retries of many posts spread out; a longer
// Retry-After from the server is honoured up to MaxBackoff.
func (w *Webhook) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceil := w.cfg.MaxBackoff
	if attempt-1 < 32 {
		if c := w.cfg.MinBackoff << (attempt - 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	d := rand.N(ceil + 1)
	if retryAfter > d {
		d = min(retryAfter, w.cfg.MaxBackoff)
	}
	return d
}

// attempt makes one signed POST of body.
func (w *Webhook) attempt(body []byte, id string) (res outcome, answer []byte, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return final, nil, 0, fmt.Errorf("request: %w", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "smsbridge-robot/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	req.Header.Set(HeaderIdempotencyKey, id)
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return retry, nil, 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	rb, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		if rerr != nil {
			// The server took the post; only its answer is lost.
			return delivered, nil, 0, fmt.Errorf("reading answer: %w", rerr)
		}
		return delivered, rb, 0, nil
	case c == http.StatusTooManyRequests || c >= 500:
		return retry, nil, parseRetryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("status %d: %s", c, snippet(rb))
	default:
		return final, nil, 0, fmt.Errorf("status %d: %s", c, snippet(rb))
	}
}

// answer posts what the robot server answered, in order.
func (w *Webhook) answer(log *slog.Logger, group string, body []byte) {
	if len(body) > maxResponse {
		w.st.answerFailed.Add(1)
		log.Warn("answer ignored: body larger than allowed", "limit", maxResponse)
		return
	}
	answers, dropped, err := ParseAnswers(body)
	if err != nil {
		w.st.answerFailed.Add(1)
		log.Warn("answer ignored", "err", err)
		return
	}
	if dropped > 0 {
		w.st.answerFailed.Add(uint64(dropped))
		log.Warn("answers beyond the limit ignored", "limit", MaxAnswers, "ignored", dropped)
	}
	for _, text := range answers {
		ctx, cancel := context.WithTimeout(w.ctx, w.cfg.AnswerTimeout)
		err := w.cfg.Answer(ctx, group, w.cfg.Name, text)
		cancel()
		if err != nil {
			w.st.answerFailed.Add(1)
			log.Warn("answer not posted", "err", err)
			continue
		}
		w.st.answered.Add(1)
	}
}

func parseRetryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(min(s, 3600)) * time.Second
}

// snippet is the start of a response body, for logs.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return truncate(s, 200)
}
