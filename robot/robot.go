package robot

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Post is one group message as robots see it.
type Post struct {
	ID    string // the bridge's message id: the idempotency key
	Group string // group name
	From  string // the poster's address (e.g. "+8613900000001", "sip:alice@example.com")
	Nick  string // the poster's nick in the group
	Text  string
	At    time.Time
	// Robot names the robot whose answer this post is ("" for a person's
	// post). Robots ignore such posts so that robots never answer robots.
	Robot string
}

// Answerer posts a robot's answer into a group as the robot.
type Answerer func(ctx context.Context, group, robot, text string) error

// Robot sees a group's posts. Offer must not block: it queues or drops (and
// counts).
type Robot interface {
	Name() string
	Offer(p Post)
}

// Stats are a robot's counters since it started. Offered = Queued + Dropped;
// once a robot is idle, Queued = Delivered + Failed + Expired for a Webhook
// and Queued = Answered + AnswerFailed + Expired for Help and Keyword.
type Stats struct {
	Offered   uint64 // posts offered by people (robots' posts are ignored, not counted)
	Queued    uint64 // taken into the queue: every post (Webhook), or those with an answer (Help, Keyword)
	Dropped   uint64 // refused by Offer: queue full or robot closed
	Delivered uint64 // Webhook: accepted by the robot server (2xx)
	Retried   uint64 // Webhook: attempts after the first
	Failed    uint64 // Webhook: refused for good (3xx, or 4xx other than 429)
	Expired   uint64 // queued but given up: attempts or age exhausted, or abandoned by Close
	Answered  uint64 // answers the Answerer took
	// AnswerFailed counts answers lost: the Answerer failed, or (Webhook) a
	// response body was unreadable or held more answers than allowed.
	AnswerFailed uint64
}

// counters are Stats being counted; atomics because workers and Offer
// callers count concurrently.
type counters struct {
	offered, queued, dropped, delivered, retried, failed, expired, answered, answerFailed atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Offered:      c.offered.Load(),
		Queued:       c.queued.Load(),
		Dropped:      c.dropped.Load(),
		Delivered:    c.delivered.Load(),
		Retried:      c.retried.Load(),
		Failed:       c.failed.Load(),
		Expired:      c.expired.Load(),
		Answered:     c.answered.Load(),
		AnswerFailed: c.answerFailed.Load(),
	}
}

// MaxAnswerBytes bounds one answer; MaxAnswers bounds the answers to one post.
const (
	MaxAnswerBytes = 4 << 10
	MaxAnswers     = 8
)

// checkName accepts what can stand as a nick in a group: 1 to 64 bytes of
// printable UTF-8 without spaces.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("robot name is empty")
	}
	if len(name) > 64 || !utf8.ValidString(name) {
		return fmt.Errorf("robot name %q: want at most 64 bytes of UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("robot name %q: spaces and control characters are not allowed", name)
		}
	}
	return nil
}

// truncate cuts s to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
