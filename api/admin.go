package api

import (
	"log/slog"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Admin is what operators read of the running bridge: the SMPP sessions,
// the upstream bind and the queues (the bridge's parts, translated).
type Admin interface {
	Binds() []BindView
	// SMSC is the bind to the upstream SMSC; Configured false without one.
	SMSC() SMSCView
	Queues() QueueView
}

// BindView is one SMPP session bound to the bridge.
type BindView struct {
	SystemID string    `json:"system_id"`
	Bind     string    `json:"bind"` // transmitter, receiver or transceiver
	Remote   string    `json:"remote"`
	Since    time.Time `json:"since"`
	// Our requests (deliver_sm) awaiting the peer's responses, of at most
	// Window; the peer's requests being handled, of at most Inbound.
	WindowUsed  int `json:"window_used"`
	Window      int `json:"window"`
	InboundUsed int `json:"inbound_used"`
	Inbound     int `json:"inbound"`
}

// BindList is the body of GET /v1/admin/binds.
type BindList struct {
	Binds []BindView `json:"binds"`
}

// SMSCView is the body of GET /v1/admin/smsc: the first upstream SMSC's
// bind and, with several, each one's in SMSCs.
type SMSCView struct {
	Configured bool   `json:"configured"`
	Name       string `json:"name,omitempty"`
	Addr       string `json:"addr,omitempty"`
	SystemID   string `json:"system_id,omitempty"`
	Bind       string `json:"bind,omitempty"`
	Bound      bool   `json:"bound"`
	// Since is when the bind came up, or went down (or the bridge
	// started, before the first bind).
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"` // while down: why
	// Submits awaiting the SMSC's responses, of at most Window (while bound).
	WindowUsed int `json:"window_used"`
	Window     int `json:"window"`
	// Its share among the SMSCs a message may take (0 = standby), its
	// throughput limit (0 = none), and its submit_sm answered OK, failed
	// and held back by the limit.
	Weight    int        `json:"weight"`
	TPS       float64    `json:"tps"`
	Submits   uint64     `json:"submits"`
	Errors    uint64     `json:"errors"`
	Throttled uint64     `json:"throttled"`
	SMSCs     []SMSCView `json:"smscs,omitempty"`
}

// QueueCount is how many messages wait in one state, for one network
// where the state tells it apart.
type QueueCount struct {
	State string `json:"state"`
	Route string `json:"route,omitempty"` // im or sms
	Count int64  `json:"count"`
}

// QueueView is the body of GET /v1/admin/queues: what waits, from the
// router's and the edges' own counts (nothing is read from disk).
type QueueView struct {
	Pending int64 `json:"pending"` // accepted, not final
	Limit   int   `json:"limit"`   // --queue-depth: past it new messages are throttled
	// Pending by state: ready (due, waiting for a worker), delivering, retry
	// (after a failed attempt), held (for a user offline in IM), draining
	// (woken by their user coming online).
	Waiting []QueueCount `json:"waiting"`
	// Parts of long SMS waiting for the others; delivery reports to HTTP
	// senders not yet taken; writes waiting for the next group commit.
	Reassembling int `json:"reassembling"`
	Reports      int `json:"reports"`
	StoreWrites  int `json:"store_writes"`
}

// LogLevel is the body of GET and PUT /v1/admin/log-level.
type LogLevel struct {
	Level string `json:"level"` // debug, info, warn or error
}

func (s *Server) adminBinds(ctx *fasthttp.RequestCtx, _ []string) {
	bs := s.cfg.Admin.Binds()
	if bs == nil {
		bs = []BindView{}
	}
	writeJSON(ctx, fasthttp.StatusOK, BindList{Binds: bs})
}

func (s *Server) adminSMSC(ctx *fasthttp.RequestCtx, _ []string) {
	writeJSON(ctx, fasthttp.StatusOK, s.cfg.Admin.SMSC())
}

func (s *Server) adminQueues(ctx *fasthttp.RequestCtx, _ []string) {
	q := s.cfg.Admin.Queues()
	if q.Waiting == nil {
		q.Waiting = []QueueCount{}
	}
	writeJSON(ctx, fasthttp.StatusOK, q)
}

// levelName is a level as --log-level spells it.
func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

func (s *Server) getLogLevel(ctx *fasthttp.RequestCtx, _ []string) {
	writeJSON(ctx, fasthttp.StatusOK, LogLevel{Level: levelName(s.cfg.LogLevel.Level())})
}

// putLogLevel changes the level of every logger of the process at once:
// they share the handler's LevelVar.
func (s *Server) putLogLevel(ctx *fasthttp.RequestCtx, _ []string) {
	var req LogLevel
	if !readJSON(ctx, &req) {
		return
	}
	var l slog.Level
	switch name := strings.ToLower(req.Level); name {
	case "debug", "info", "warn", "error":
		_ = l.UnmarshalText([]byte(name))
	default:
		fail(ctx, fasthttp.StatusBadRequest, "level %q: want debug, info, warn or error", req.Level)
		return
	}
	old := s.cfg.LogLevel.Level()
	s.cfg.LogLevel.Set(l)
	// At warn, so the change is in the log unless it silences warnings.
	s.log.Warn("log level set through the API", "from", levelName(old), "to", levelName(l))
	writeJSON(ctx, fasthttp.StatusOK, LogLevel{Level: levelName(l)})
}
