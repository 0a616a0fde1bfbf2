package moapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/smsbridge/bridge/internal/hmacsig"
	"github.com/smsbridge/bridge/msg"
)

// Headers of a request to an application.
const (
	HeaderTimestamp = "X-Bridge-Timestamp" // unix seconds of this attempt
	HeaderSignature = "X-Bridge-Signature" // sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))
	// HeaderIdempotencyKey is the message's id, the same on every attempt
	// and after a restart: an application whose 2xx was lost sees it again.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// MaxReply is the most bytes of an answer's body read as its reply; a
// longer one is not sent.
const MaxReply = 16 << 10

// App is an application and the messages it takes.
type App struct {
	Name    string      // the route as configured, PREFIX[/KEYWORD]: in logs and the message's history
	Number  msg.Address // the numbers' prefix, E.164 with '+'
	Keyword string      // "" = any text; else the text's first word, case-insensitively
	URL     string
	Secret  []byte
}

// Table finds the application of a message (router.Apps).
type Table struct {
	apps []App // longest prefix first; at one prefix, keyword routes first
}

// NewTable orders apps for matching; two with the same number prefix and
// keyword, or one without a name, number or URL, are an error.
func NewTable(apps []App) (*Table, error) {
	t := &Table{apps: slices.Clone(apps)}
	var errs []error
	seen := map[string]string{}
	for _, a := range t.apps {
		if a.Name == "" || !a.Number.IsMSISDN() || a.URL == "" {
			errs = append(errs, fmt.Errorf("moapp: %q: want a name, a +E164 prefix and a URL", a.Name))
			continue
		}
		k := string(a.Number) + "/" + strings.ToUpper(a.Keyword)
		if other, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("moapp: %s takes the messages of %s", a.Name, other))
		}
		seen[k] = a.Name
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(t.apps, func(a, b App) int {
		if d := len(b.Number) - len(a.Number); d != 0 {
			return d
		}
		switch {
		case a.Keyword != "" && b.Keyword == "":
			return -1
		case a.Keyword == "" && b.Keyword != "":
			return 1
		}
		return 0
	})
	return t, nil
}

// Len is the number of applications.
func (t *Table) Len() int { return len(t.apps) }

// AppFor names the application that takes m: the route with the longest
// prefix of its recipient among those whose keyword, if any, is the text's
// first word.
func (t *Table) AppFor(m *msg.Message) (string, bool) {
	a := t.match(m)
	if a == nil {
		return "", false
	}
	return a.Name, true
}

func (t *Table) match(m *msg.Message) *App {
	word, split := "", false
	for i := range t.apps {
		a := &t.apps[i]
		if !strings.HasPrefix(string(m.To), string(a.Number)) {
			continue
		}
		if a.Keyword != "" {
			if !split {
				word, split = FirstWord(m.Text), true
			}
			if !strings.EqualFold(word, a.Keyword) {
				continue
			}
		}
		return a
	}
	return nil
}

func (t *Table) byName(name string) *App {
	for i := range t.apps {
		if t.apps[i].Name == name {
			return &t.apps[i]
		}
	}
	return nil
}

// FirstWord is a text's keyword: its first run of characters that are not
// white space.
func FirstWord(text string) string {
	text = strings.TrimLeftFunc(text, unicode.IsSpace)
	if i := strings.IndexFunc(text, unicode.IsSpace); i >= 0 {
		return text[:i]
	}
	return text
}

// Request is the JSON body POSTed to an application.
type Request struct {
	ID         string    `json:"id"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Text       string    `json:"text"`
	ReceivedAt time.Time `json:"received_at"`
	// Origin is the edge the message came in by: smsc (deliver_sm), esme
	// (submit_sm), sip, xmpp, mcp, api, fusion or group.
	Origin  string `json:"origin"`
	Keyword string `json:"keyword,omitempty"` // the route's keyword, when it has one
}

// Config configures a Sender.
type Config struct {
	Table *Table
	// Replies is where an application's replies are staged: the edges'
	// stager, so a reply is routed as any message.
	Replies msg.Stager
	Timeout time.Duration // per attempt, the answer's body included (default 10s)
	Client  *http.Client  // default: one that follows no redirects
	Logger  *slog.Logger
	Now     func() time.Time
}

// Sender posts messages to their applications: the router's app edge.
type Sender struct {
	cfg Config
	log *slog.Logger

	Attempts, Failed, Replies, RepliesDropped atomic.Uint64
}

// New builds a Sender over cfg.Table.
func New(cfg Config) (*Sender, error) {
	if cfg.Table == nil || cfg.Replies == nil {
		return nil, errors.New("moapp: a table and a stager for replies are needed")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = hmacsig.NoRedirects(nil) // the message is retried at its URL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg, log: cfg.Logger}, nil
}

// SendApp POSTs m to the application named app once (router.AppSender):
// nil when it answered 2xx and its reply, if any, is stored.
func (s *Sender) SendApp(ctx context.Context, m *msg.Message, app string) error {
	a := s.cfg.Table.byName(app)
	if a == nil {
		return fmt.Errorf("moapp: no application %q", app)
	}
	s.Attempts.Add(1)
	reply, err := s.post(ctx, a, m)
	if err != nil {
		s.Failed.Add(1)
		return err
	}
	if reply == "" {
		return nil
	}
	return s.reply(ctx, a, m, reply)
}

// post makes one attempt and returns the answer's reply text.
func (s *Sender) post(ctx context.Context, a *App, m *msg.Message) (string, error) {
	body, err := json.Marshal(Request{ID: m.ID, From: string(m.From), To: string(m.To), Text: m.Text,
		ReceivedAt: m.Accepted.UTC(), Origin: m.Origin.Kind.String(), Keyword: a.Keyword})
	if err != nil {
		return "", fmt.Errorf("moapp: encode %s: %w", m.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("moapp: request to %s: %w", a.URL, err)
	}
	ts := strconv.FormatInt(s.cfg.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bridge-moapp")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, hmacsig.Sign(a.Secret, ts, body))
	req.Header.Set(HeaderIdempotencyKey, m.ID)
	res, err := s.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("moapp: post to %s: %w", a.URL, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, MaxReply+1))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return "", fmt.Errorf("moapp: %s answered %s", a.URL, res.Status)
	}
	if err != nil {
		// The answer was cut off: its reply cannot be trusted whole.
		return "", fmt.Errorf("moapp: reading the answer of %s: %w", a.URL, err)
	}
	if res.StatusCode == http.StatusNoContent {
		return "", nil
	}
	text, err := replyText(res.Header.Get("Content-Type"), raw)
	if err != nil {
		s.RepliesDropped.Add(1)
		s.log.Warn("application's reply not sent", "id", m.ID, "app", a.Name, "err", err)
		return "", nil
	}
	return text, nil
}

// replyText reads an answer's body: JSON {"reply":"…"}, or the text
// itself (text/plain, or no type). Empty means no reply.
func replyText(contentType string, body []byte) (string, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil
	}
	if len(body) > MaxReply {
		return "", fmt.Errorf("reply longer than %d bytes", MaxReply)
	}
	mt := "text/plain"
	if contentType != "" {
		t, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return "", fmt.Errorf("content type %q: %w", contentType, err)
		}
		mt = t
	}
	var text string
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		var r struct {
			Reply string `json:"reply"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return "", fmt.Errorf("JSON answer: %w", err)
		}
		text = r.Reply
	case mt == "text/plain":
		text = string(body)
	default:
		return "", fmt.Errorf("content type %q: want application/json or text/plain", mt)
	}
	if !utf8.ValidString(text) {
		return "", errors.New("reply is not UTF-8")
	}
	return strings.TrimSpace(text), nil
}

// reply stages text from the service number back to m's sender, the way
// m came: to the ESME that submitted it, upstream to the SMSC that
// delivered it, else wherever the router finds its sender.
func (s *Sender) reply(ctx context.Context, a *App, m *msg.Message, text string) error {
	r := &msg.Message{From: m.To, To: m.From, Text: text,
		Origin: msg.Origin{Kind: msg.FromApp, Account: a.Name, Ref: m.ID},
		// Sent again after a crash before m's outcome was recorded, the
		// reply is the one already stored.
		IdempotencyKey: "reply " + m.ID,
	}
	switch m.Origin.Kind {
	case msg.FromESME:
		r.Route = "esme:" + m.Origin.Account
	case msg.FromSMSC:
		r.Route = "smsc"
	}
	err := msg.Accept(ctx, s.cfg.Replies, r)
	switch {
	case err == nil:
		s.Replies.Add(1)
		s.log.Debug("application reply", "id", m.ID, "app", a.Name, "reply", r.ID)
		return nil
	case errors.Is(err, msg.ErrNoRoute) || errors.Is(err, msg.ErrTooLong):
		// It could never be delivered: the message is still taken.
		s.RepliesDropped.Add(1)
		s.log.Warn("application's reply refused", "id", m.ID, "app", a.Name, "to", m.From, "err", err)
		return nil
	}
	// Not stored (the bridge is overloaded or its store failing): the
	// attempt fails, so the application is asked again rather than its
	// reply lost.
	return fmt.Errorf("moapp: reply of %s to %s not stored: %w", a.Name, m.ID, err)
}
