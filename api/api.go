package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// Submitter is the router.
type Submitter interface {
	Submit(ctx context.Context, m *msg.Message) error
}

// Messages answers state queries (store.DB).
type Messages interface {
	Message(id string) (store.Record, error)
}

// Metric is one Prometheus sample family: name, help, type and a reader.
type Metric struct {
	Name, Help, Type string
	Value            func() float64
}

// Config configures the API server.
type Config struct {
	Tokens      []string // bearer tokens accepted on /v1; none = /v1 refuses everyone
	CountryCode string
	Ready       func() error // nil = ready
	Metrics     func() []Metric
	Logger      *slog.Logger
	MaxBody     int // bytes (default 64 KiB)
}

// Server serves the HTTP API.
type Server struct {
	cfg  Config
	sub  Submitter
	msgs Messages
	log  *slog.Logger
	srv  *fasthttp.Server
}

// New builds the server.
func New(cfg Config, sub Submitter, msgs Messages) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	s := &Server{cfg: cfg, sub: sub, msgs: msgs, log: cfg.Logger}
	s.srv = &fasthttp.Server{
		Handler: s.handle, Name: "bridge", MaxRequestBodySize: cfg.MaxBody,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
	}
	return s
}

// Serve runs on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		_ = s.srv.ShutdownWithContext(context.Background())
	}()
	if err := s.srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}

func fail(ctx *fasthttp.RequestCtx, code int, format string, args ...any) {
	writeJSON(ctx, code, apiError{Error: fmt.Sprintf(format, args...)})
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	switch {
	case path == "/healthz":
		ctx.SetBodyString("ok\n")
	case path == "/readyz":
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(); err != nil {
				ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
				ctx.SetBodyString("not ready: " + err.Error() + "\n")
				return
			}
		}
		ctx.SetBodyString("ready\n")
	case path == "/metrics":
		s.metrics(ctx)
	case strings.HasPrefix(path, "/v1/"):
		if !s.authorized(ctx) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="bridge"`)
			fail(ctx, fasthttp.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		switch {
		case path == "/v1/messages":
			if !ctx.IsPost() {
				ctx.Response.Header.Set("Allow", "POST")
				fail(ctx, fasthttp.StatusMethodNotAllowed, "use POST to send a message")
				return
			}
			s.postMessage(ctx)
		case strings.HasPrefix(path, "/v1/messages/"):
			if !ctx.IsGet() {
				ctx.Response.Header.Set("Allow", "GET")
				fail(ctx, fasthttp.StatusMethodNotAllowed, "use GET to read a message's state")
				return
			}
			s.getMessage(ctx, strings.TrimPrefix(path, "/v1/messages/"))
		default:
			fail(ctx, fasthttp.StatusNotFound, "no such endpoint %s", path)
		}
	default:
		fail(ctx, fasthttp.StatusNotFound, "no such endpoint %s", path)
	}
}

func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	h := ctx.Request.Header.Peek("Authorization")
	tok, ok := strings.CutPrefix(string(h), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	good := 0
	for _, t := range s.cfg.Tokens {
		good |= subtle.ConstantTimeCompare([]byte(t), []byte(tok))
	}
	return good == 1
}

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Text    string `json:"text"`
	Receipt bool   `json:"receipt,omitempty"`
	Ref     string `json:"ref,omitempty"` // the client's own id, kept as the origin reference
}

func parseParty(s, cc string) (msg.Address, error) {
	if strings.HasPrefix(s, "sip:") || strings.Contains(s, "@") {
		return msg.FromAOR(s, cc)
	}
	return msg.NormalizeNumber(s, msg.TONUnknown, msg.NPIISDN, cc)
}

func (s *Server) postMessage(ctx *fasthttp.RequestCtx) {
	var req SendRequest
	dec := json.NewDecoder(strings.NewReader(string(ctx.PostBody())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "body is not a message object: %v", err)
		return
	}
	from, err := parseParty(req.From, s.cfg.CountryCode)
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "from: %v", err)
		return
	}
	to, err := parseParty(req.To, s.cfg.CountryCode)
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "to: %v", err)
		return
	}
	if req.Text == "" {
		fail(ctx, fasthttp.StatusBadRequest, "text must not be empty")
		return
	}
	m := &msg.Message{From: from, To: to, Text: req.Text, Receipt: req.Receipt,
		Origin: msg.Origin{Kind: msg.FromAPI, Ref: req.Ref}}
	switch err := s.sub.Submit(ctx, m); {
	case err == nil:
		writeJSON(ctx, fasthttp.StatusAccepted, map[string]string{"id": m.ID})
	case errors.Is(err, msg.ErrOverloaded):
		ctx.Response.Header.Set("Retry-After", "1")
		fail(ctx, fasthttp.StatusTooManyRequests, "bridge overloaded, retry later")
	case errors.Is(err, msg.ErrNoRoute):
		fail(ctx, fasthttp.StatusBadRequest, "to: %v", err)
	default:
		s.log.Warn("api submit not stored", "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "message not stored: %v", err)
	}
}

// MessageView is the JSON form of a message's state.
type MessageView struct {
	ID      string      `json:"id"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	State   string      `json:"state"`
	Events  []EventView `json:"events"`
	Expires time.Time   `json:"expires"`
}

// EventView is one state transition.
type EventView struct {
	State  string    `json:"state"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

func (s *Server) getMessage(ctx *fasthttp.RequestCtx, id string) {
	if id == "" || len(id) > 64 {
		fail(ctx, fasthttp.StatusBadRequest, "bad message id")
		return
	}
	rec, err := s.msgs.Message(id)
	if errors.Is(err, store.ErrNotFound) {
		fail(ctx, fasthttp.StatusNotFound, "no message %s", id)
		return
	}
	if err != nil {
		fail(ctx, fasthttp.StatusInternalServerError, "store: %v", err)
		return
	}
	v := MessageView{ID: rec.Msg.ID, From: string(rec.Msg.From), To: string(rec.Msg.To), State: rec.State.String(), Expires: rec.Msg.Expires}
	for _, e := range rec.Events {
		v.Events = append(v.Events, EventView{State: e.State.String(), At: e.At, Detail: e.Detail})
	}
	writeJSON(ctx, fasthttp.StatusOK, v)
}

func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4")
	if s.cfg.Metrics == nil {
		return
	}
	var b strings.Builder
	for _, m := range s.cfg.Metrics() {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", m.Name, m.Help, m.Name, m.Type, m.Name, m.Value())
	}
	ctx.SetBodyString(b.String())
}
