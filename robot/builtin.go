package robot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Options tune a built-in robot (Help, Keyword).
type Options struct {
	// QueueSize bounds the answers waiting for the Answerer (default 64);
	// beyond it Offer drops.
	QueueSize int
	// AnswerTimeout bounds one Answerer call (default 5 s).
	AnswerTimeout time.Duration
	Logger        *slog.Logger
}

// answer is one queued answer of a built-in robot.
type answer struct {
	post        string // id of the post answered, for logs
	group, text string
}

// builtin is what Help and Keyword share: Offer decides the answer on the
// caller's goroutine (a string compare or RE2 match: linear, never waiting)
// and one worker hands the answers to the Answerer in order.
type builtin struct {
	name    string
	match   func(text string) (string, bool)
	answer  Answerer
	timeout time.Duration
	log     *slog.Logger
	st      counters

	mu     sync.RWMutex // guards closed against sends on a closed q
	closed bool
	q      chan answer

	ctx    context.Context // cancelled when Close gives up draining
	cancel context.CancelFunc
	done   chan struct{}
}

func newBuiltin(name string, match func(string) (string, bool), ans Answerer, opt Options) (*builtin, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if ans == nil {
		return nil, fmt.Errorf("robot %q: no Answerer", name)
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 64
	}
	if opt.AnswerTimeout <= 0 {
		opt.AnswerTimeout = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &builtin{
		name: name, match: match, answer: ans, timeout: opt.AnswerTimeout,
		log: opt.Logger.With("robot", name),
		q:   make(chan answer, opt.QueueSize),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	go b.work()
	return b, nil
}

func (b *builtin) offer(p Post) {
	if p.Robot != "" {
		return
	}
	b.st.offered.Add(1)
	text, ok := b.match(p.Text)
	if !ok {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.st.dropped.Add(1)
		return
	}
	select {
	case b.q <- answer{post: p.ID, group: p.Group, text: text}:
		b.st.queued.Add(1)
	default:
		b.st.dropped.Add(1)
	}
}

func (b *builtin) work() {
	defer close(b.done)
	for a := range b.q {
		if b.ctx.Err() != nil {
			b.st.expired.Add(1)
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
		err := b.answer(ctx, a.group, b.name, a.text)
		cancel()
		if err != nil {
			b.st.answerFailed.Add(1)
			b.log.Warn("answer not posted", "group", a.group, "post", a.post, "err", err)
			continue
		}
		b.st.answered.Add(1)
	}
}

// close stops Offer, then lets the worker post what is queued until ctx
// ends; what is left then is abandoned (Expired).
func (b *builtin) close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.q)
	}
	b.mu.Unlock()
	defer b.cancel()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.cancel()
		<-b.done
		return fmt.Errorf("robot %q: close: %w", b.name, ctx.Err())
	}
}

// HelpConfig sets up a Help robot.
type HelpConfig struct {
	Name   string // default "help"
	Text   string // the answer
	Answer Answerer
	Options
}

// Help answers posts that are exactly "?", "help" or "/help" (any case,
// surrounding space ignored) with its text.
type Help struct{ b *builtin }

// NewHelp starts a Help robot; Close stops it.
func NewHelp(cfg HelpConfig) (*Help, error) {
	if cfg.Name == "" {
		cfg.Name = "help"
	}
	if strings.TrimSpace(cfg.Text) == "" {
		return nil, fmt.Errorf("robot %q: empty help text", cfg.Name)
	}
	if len(cfg.Text) > MaxAnswerBytes {
		return nil, fmt.Errorf("robot %q: help text longer than %d bytes", cfg.Name, MaxAnswerBytes)
	}
	text := cfg.Text
	b, err := newBuiltin(cfg.Name, func(s string) (string, bool) {
		s = strings.TrimSpace(s)
		if s == "?" || strings.EqualFold(s, "help") || strings.EqualFold(s, "/help") {
			return text, true
		}
		return "", false
	}, cfg.Answer, cfg.Options)
	if err != nil {
		return nil, err
	}
	return &Help{b}, nil
}

func (h *Help) Name() string                    { return h.b.name }
func (h *Help) Offer(p Post)                    { h.b.offer(p) }
func (h *Help) Stats() Stats                    { return h.b.st.snapshot() }
func (h *Help) Close(ctx context.Context) error { return h.b.close(ctx) }

// KeywordRule answers Answer to posts whose text matches the Go regexp Match.
type KeywordRule struct {
	Match  string `yaml:"match"`
	Answer string `yaml:"answer"`
}

// KeywordConfig is one keyword robot: its first matching rule answers.
type KeywordConfig struct {
	Name  string        `yaml:"name"`
	Rules []KeywordRule `yaml:"rules"`
}

// compiledRule is a KeywordRule ready to match.
type compiledRule struct {
	re     *regexp.Regexp
	answer string
}

// ruleError names the failing rule so LoadKeywords can add its line.
type ruleError struct {
	index int
	err   error
}

func (e *ruleError) Error() string { return fmt.Sprintf("rules[%d]: %v", e.index, e.err) }
func (e *ruleError) Unwrap() error { return e.err }

// compile checks c and compiles its rules.
func (c KeywordConfig) compile() ([]compiledRule, error) {
	if err := checkName(c.Name); err != nil {
		return nil, err
	}
	if len(c.Rules) == 0 {
		return nil, fmt.Errorf("robot %q: no rules", c.Name)
	}
	out := make([]compiledRule, 0, len(c.Rules))
	for i, r := range c.Rules {
		var err error
		var re *regexp.Regexp
		switch {
		case r.Match == "":
			err = errors.New("empty match")
		case strings.TrimSpace(r.Answer) == "":
			err = errors.New("empty answer")
		case len(r.Answer) > MaxAnswerBytes:
			err = fmt.Errorf("answer longer than %d bytes", MaxAnswerBytes)
		default:
			re, err = regexp.Compile(r.Match)
			if err != nil {
				err = fmt.Errorf("bad match: %w", err)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("robot %q: %w", c.Name, &ruleError{index: i, err: err})
		}
		out = append(out, compiledRule{re: re, answer: r.Answer})
	}
	return out, nil
}

// Keyword answers a post with the answer of the first rule that matches it.
type Keyword struct{ b *builtin }

// NewKeyword starts a Keyword robot; Close stops it.
func NewKeyword(cfg KeywordConfig, ans Answerer, opt Options) (*Keyword, error) {
	rules, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	b, err := newBuiltin(cfg.Name, func(s string) (string, bool) {
		for _, r := range rules {
			if r.re.MatchString(s) {
				return r.answer, true
			}
		}
		return "", false
	}, ans, opt)
	if err != nil {
		return nil, err
	}
	return &Keyword{b}, nil
}

func (k *Keyword) Name() string                    { return k.b.name }
func (k *Keyword) Offer(p Post)                    { k.b.offer(p) }
func (k *Keyword) Stats() Stats                    { return k.b.st.snapshot() }
func (k *Keyword) Close(ctx context.Context) error { return k.b.close(ctx) }
