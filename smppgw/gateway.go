package smppgw

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// Route names where SMS leaves the bridge.
type Route struct {
	Upstream bool   // submit_sm over a bind to an upstream SMSC
	SMSCs    string // with Upstream: only these, "NAME|NAME"; "" = any (the sender account's, if it has some)
	ESME     string // else deliver_sm to a receiver bound with this system_id
}

// ParseRoute reads "smsc", "smsc:NAME|NAME" or "esme:SYSTEM_ID" ("" is no
// route).
func ParseRoute(s string) (Route, error) {
	if r, ok := namedRoute(s); ok || s == "" {
		return r, nil
	}
	return Route{}, fmt.Errorf("sms route %q: want smsc, smsc:NAME|NAME or esme:SYSTEM_ID", s)
}

// KV is the durable key-value space the gateway keeps its SMS bookkeeping
// in (receipt matching, parts of long messages); store.DB satisfies it.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// Config configures the gateway.
type Config struct {
	CountryCode string
	Route       Route
	Logger      *slog.Logger
	Now         func() time.Time
	// Reassembly of concatenated SMS that arrive in parts.
	Reassembly smstext.ReassemblyConfig
	// KV keeps receipt mappings and pending parts across restarts; nil
	// keeps neither (labs).
	KV KV
	// OnReceipt is told when the SMSC's receipts settle a message the
	// bridge sent as SMS (the router's Receipt).
	OnReceipt func(ctx context.Context, id string, o msg.Outcome) error
	// Alphabet for outgoing SMS: smstext.Auto (cheapest exact), ForceUCS2
	// or ForceLatin1.
	Alphabet smstext.Preference
	// Payload sends a long message as one PDU with the message_payload TLV
	// instead of concatenated parts.
	Payload bool
	// AlwaysReceipts asks the SMSC for a receipt for every message; by
	// default only when the sender asked (m.Receipt) or is a SIP user, who
	// gets an IMDN. MCP senders have no report channel (SIP-C over MCP has
	// no IMDN here), so a receipt for them would cost the SMSC's traffic
	// and our tracking for nobody.
	AlwaysReceipts bool
	// ReceiptTTL bounds how long a receipt waits for its ESME to bind
	// (default 1h).
	ReceiptTTL time.Duration
	// Policy holds provisioned per-account limits and routes; nil = none.
	Policy Policy
	// Elsewhere reaches ESMEs bound to other nodes of a cluster: a receipt
	// for an ESME with no receiving bind here goes to a node that has one.
	// nil: one node.
	Elsewhere Elsewhere

	// The server role: ESMEs binding to us. Auth checks each bind (nil
	// refuses every bind); SystemID is ours in bind responses.
	Auth            func(systemID, password string, bind smpp.CommandID, remote net.Addr) uint32
	SystemID        string
	Window          int           // requests in flight per SMPP session, each direction
	EnquireInterval time.Duration // enquire_link on idle sessions
	// Bounds of the server role (smpp.ServerConfig): bound sessions, and
	// connections not bound yet, in all and per source IP, with the time
	// they have to bind. Zero takes the smpp defaults.
	MaxSessions, MaxUnbound, MaxUnboundPerSource int
	BindTimeout                                  time.Duration
	// Upstreams are the SMSCs the gateway binds to as a client (none: no
	// upstream), with distinct names.
	Upstreams []Upstream
	// BindWait is how long an SMS waits for an eligible SMSC's bind before
	// its attempt fails and the router retries it later (default 30s).
	BindWait time.Duration
	// Control answers ESMEs' query_sm, cancel_sm and replace_sm; nil
	// refuses them (ESME_RQUERYFAIL, ESME_RCANCELFAIL, ESME_RREPLACEFAIL).
	Control Control
}

// Policy is what provisioning says about accounts and routes; it may change
// at any time (the gateway asks on every message).
type Policy interface {
	// SourceAllowed: may systemID send with this source address?
	SourceAllowed(systemID, source string) bool
	// AlphaAllowed: may systemID send from this alphanumeric source (TON 5)?
	AlphaAllowed(systemID, name string) bool
	// TPS is systemID's submit rate limit (0 = none).
	TPS(systemID string) int
	// RouteFor picks the SMS route for a recipient ("smsc",
	// "smsc:NAME|NAME" or "esme:ID"); false = the default route.
	RouteFor(to msg.Address) (string, bool)
}

// Gateway translates between SMPP and the router. One Gateway serves the
// server role (ESMEs binding to us) and the client role (our binds upstream),
// and owns the SMPP sessions of both.
type Gateway struct {
	cfg    Config
	rt     msg.Stager
	log    *slog.Logger
	server *smpp.Server // ESMEs' binds; deliver_sm on an ESME route
	ups    *chooser     // the upstream SMSCs; nil without Config.Upstreams
	// legacyReceipts: no SMSC is named DefaultUpstream, so receipt
	// mappings stored under a single SMSC's keys are every SMSC's to match.
	legacyReceipts bool
	reasm          *smstext.Reassembler
	ref            atomic.Uint32

	meta         sync.Map      // smstext.Key → partMeta of restored reassemblies
	rmu          sync.Mutex    // receipt accounting of one message at a time
	buckets      sync.Map      // system_id → *bucket (TPS limits)
	receiptSlots chan struct{} // bounds receipts waiting for their ESME
	closedKick   chan struct{} // the reassembler handed out a message early
	holdMu       sync.Mutex    // one receiversChanged at a time

	Received, Rejected, Parts, SentSMS                         atomic.Uint64
	Receipts, UnmatchedReceipts, ReceiptsSent, ReceiptsDropped atomic.Uint64
	ReceiptsForwarded                                          atomic.Uint64 // of ReceiptsSent, through another node's bind
	ReceiptsMatchedElsewhere                                   atomic.Uint64 // of Receipts, settled by the cluster node that sent the message
	PartialMessages, DroppedMessages, Throttled                atomic.Uint64
}

// New builds a gateway feeding rt. Serve runs its server role on a
// listener, Run its upstream bind and upkeep.
func New(cfg Config, rt msg.Stager) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReceiptTTL <= 0 {
		cfg.ReceiptTTL = time.Hour
	}
	g := &Gateway{cfg: cfg, rt: rt, log: cfg.Logger, receiptSlots: make(chan struct{}, 4096), closedKick: make(chan struct{}, 1)}
	ra := cfg.Reassembly
	ra.Notify = func() {
		select {
		case g.closedKick <- struct{}{}:
		default:
		}
	}
	g.reasm = smstext.NewReassembler(ra, cfg.Now)
	g.server = smpp.NewServer(smpp.ServerConfig{
		Auth: cfg.Auth, Handler: g, Logger: cfg.Logger, SystemID: cfg.SystemID,
		Window: cfg.Window, InboundWindow: cfg.Window, EnquireInterval: cfg.EnquireInterval,
		MaxSessions: cfg.MaxSessions, MaxUnbound: cfg.MaxUnbound, MaxUnboundPerSource: cfg.MaxUnboundPerSource,
		BindTimeout: cfg.BindTimeout, OnReceivers: g.receiversChanged,
	})
	if len(cfg.Upstreams) > 0 {
		if cfg.BindWait <= 0 {
			cfg.BindWait = 30 * time.Second
		}
		ups := make([]*upstream, len(cfg.Upstreams))
		g.legacyReceipts = true
		for i, u := range cfg.Upstreams {
			if u.Name == "" {
				u.Name = DefaultUpstream
			}
			g.legacyReceipts = g.legacyReceipts && u.Name != DefaultUpstream
			up := newUpstream(u)
			up.client = smpp.NewClient(smpp.ClientConfig{
				Addr: u.Addr, TLS: u.TLS, SystemID: u.SystemID, Password: u.Password, Bind: u.Bind,
				// Each bind hands its SMSC's deliver_sm over with the SMSC's name.
				Handler: upstreamHandler{g, up}, OnBound: func() { g.ups.bound() },
				Window: cmp.Or(u.Window, cfg.Window), EnquireInterval: cfg.EnquireInterval, BindWait: cfg.BindWait,
				Logger: cfg.Logger.With("peer", "smsc", "smsc", u.Name),
			})
			ups[i] = up
		}
		g.ups = newChooser(ups, cfg.BindWait)
	}
	return g
}

// upstreamHandler is the smpp.Handler of one SMSC's bind: MO and receipts
// from it are known by its name.
type upstreamHandler struct {
	g *Gateway
	u *upstream
}

func (h upstreamHandler) HandleSMPP(ctx context.Context, s *smpp.Session, req, resp *smpp.PDU) {
	h.g.handle(ctx, h.u, s, req, resp)
}

func (h upstreamHandler) StageSMPP(ctx context.Context, s *smpp.Session, req, resp *smpp.PDU) (smpp.Deferred, bool) {
	return h.g.stage(ctx, h.u, s, req, resp)
}

// Serve accepts ESMEs' binds on ln until ctx ends, then closes every
// session.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { g.server.Close() })
	defer stop()
	err := g.server.Serve(ctx, ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Binds is the number of SMPP sessions bound to us.
func (g *Gateway) Binds() int { return g.server.Bound() }

// Sessions describes the SMPP sessions bound to us.
func (g *Gateway) Sessions() []smpp.SessionInfo { return g.server.BoundSessions() }

// UpstreamState is what operators and metrics see of one upstream SMSC.
type UpstreamState struct {
	Name string
	smpp.ClientInfo
	Weight int
	TPS    float64
	// Submits answered OK, failed, and held back by its throughput limit.
	Submits, Errors, Throttled uint64
}

// Upstreams describes every upstream SMSC, in the configuration's order.
func (g *Gateway) Upstreams() []UpstreamState {
	if g.ups == nil {
		return nil
	}
	out := make([]UpstreamState, len(g.ups.all))
	for i, u := range g.ups.all {
		out[i] = UpstreamState{Name: u.Name, ClientInfo: u.client.Info(), Weight: u.Weight, TPS: u.TPS,
			Submits: u.Submits.Load(), Errors: u.Errors.Load(), Throttled: u.Throttled.Load()}
	}
	return out
}

// PartsWaiting is the number of long messages waiting for more parts.
func (g *Gateway) PartsWaiting() int { return g.reasm.Stats().Pending }

// UpstreamCounters are one upstream SMSC's live counters, for metrics.
type UpstreamCounters struct {
	Name                       string
	Bound                      func() bool
	Submits, Errors, Throttled *atomic.Uint64
}

// Counters lists every upstream SMSC's counters, in the configuration's order.
func (g *Gateway) Counters() []UpstreamCounters {
	if g.ups == nil {
		return nil
	}
	out := make([]UpstreamCounters, len(g.ups.all))
	for i, u := range g.ups.all {
		out[i] = UpstreamCounters{Name: u.Name, Bound: u.client.Bound, Submits: &u.Submits, Errors: &u.Errors, Throttled: &u.Throttled}
	}
	return out
}

// UpstreamReady is nil when there is no upstream SMSC or a bind to one is
// up (SMS fail over to it where their routes allow), else one error per
// SMSC naming it and, once an attempt has failed, why.
func (g *Gateway) UpstreamReady() error { return errors.Join(g.UpstreamErrors()...) }

// UpstreamErrors are UpstreamReady's errors, one per SMSC; none when there
// is no upstream SMSC or a bind to one is up.
func (g *Gateway) UpstreamErrors() []error {
	if g.ups == nil {
		return nil
	}
	var errs []error
	for _, u := range g.ups.all {
		bound, err := u.client.State()
		name := u.Addr
		if u.Name != DefaultUpstream {
			name = u.Name + " (" + u.Addr + ")"
		}
		switch {
		case bound:
			return nil
		case err != nil:
			errs = append(errs, fmt.Errorf("smsc %s not bound: %w", name, err))
		default:
			errs = append(errs, fmt.Errorf("smsc %s not bound yet", name))
		}
	}
	return errs
}

// HandleSMPP implements smpp.Handler for the server role.
func (g *Gateway) HandleSMPP(ctx context.Context, s *smpp.Session, req *smpp.PDU, resp *smpp.PDU) {
	if g.control(ctx, s, req, resp) {
		return
	}
	g.handle(ctx, nil, s, req, resp)
}

// handle takes a request of an ESME's session (from nil) or of the bind
// to the SMSC from.
func (g *Gateway) handle(ctx context.Context, from *upstream, s *smpp.Session, req *smpp.PDU, resp *smpp.PDU) {
	if !g.takes(ctx, from, req, resp) {
		return
	}
	m, part := g.message(ctx, from, s, req, resp)
	if m == nil {
		return
	}
	err := msg.Accept(ctx, g.rt, m)
	if part != nil {
		if err == nil {
			g.meta.Delete(part.Key)
			g.dropParts(ctx, part.Key)
		} else {
			// This last part is refused and will come again; keep the rest.
			g.restoreParts(part.Key, part.Seq)
		}
	}
	g.answer(m, err, resp)
}

// StageSMPP implements smpp.Stager: a whole short message is staged on the
// session's read goroutine and acknowledged once its commit ends. Parts of
// long messages (their storage waits for its commit) and receipts go to
// HandleSMPP.
func (g *Gateway) StageSMPP(ctx context.Context, s *smpp.Session, req *smpp.PDU, resp *smpp.PDU) (smpp.Deferred, bool) {
	if req.ID == smpp.QuerySM || req.ID == smpp.CancelSM || req.ID == smpp.ReplaceSM {
		return nil, false
	}
	return g.stage(ctx, nil, s, req, resp)
}

func (g *Gateway) stage(ctx context.Context, from *upstream, s *smpp.Session, req *smpp.PDU, resp *smpp.PDU) (smpp.Deferred, bool) {
	if concatenated(req) || isReceipt(req) {
		return nil, false
	}
	if !g.takes(ctx, from, req, resp) {
		return nil, true
	}
	m, _ := g.message(ctx, from, s, req, resp)
	if m == nil {
		return nil, true
	}
	a, err := g.rt.Stage(ctx, m)
	if err != nil {
		g.answer(m, err, resp)
		return nil, true
	}
	return &staged{g: g, ctx: ctx, m: m, a: a}, true
}

// staged is the SMPP response of a staged submission (smpp.Deferred): it
// is completed from the message's Ack.
type staged struct {
	g   *Gateway
	ctx context.Context
	m   *msg.Message
	a   msg.Ack
}

func (d *staged) Ready() <-chan struct{} { return d.a.Done() }

func (d *staged) Finish(resp *smpp.PDU) { d.g.answer(d.m, d.a.Settle(d.ctx), resp) }

// takes screens the command: false when resp already says no or the
// request was a receipt (handled here).
func (g *Gateway) takes(ctx context.Context, from *upstream, req, resp *smpp.PDU) bool {
	switch req.ID {
	case smpp.SubmitSM, smpp.DeliverSM, smpp.DataSM:
	default:
		resp.Status = smpp.ESME_RINVCMDID
		return false
	}
	if isReceipt(req) {
		g.handleSMSCReceipt(ctx, from, req)
		return false
	}
	return true
}

// isReceipt: a deliver_sm carrying a delivery receipt for something we submitted.
func isReceipt(req *smpp.PDU) bool {
	return req.ID == smpp.DeliverSM && (req.ESMClass&0x3C == 0x04 || req.ESMClass&0x3C == 0x08)
}

// concatenated: one part of a long message (UDH or SAR parameters).
func concatenated(req *smpp.PDU) bool {
	if req.ESMClass&0x40 != 0 {
		return true
	}
	_, ok := req.TLV(smpp.TagSARMsgRefNum)
	return ok
}

// answer fills in resp for a submission that settled with err.
func (g *Gateway) answer(m *msg.Message, err error, resp *smpp.PDU) {
	switch {
	case err == nil:
		resp.MessageID = m.ID
	case errors.Is(err, msg.ErrOverloaded):
		resp.Status = smpp.ESME_RTHROTTLED
	case errors.Is(err, msg.ErrNoRoute):
		resp.Status = smpp.ESME_RINVDSTADR
	case errors.Is(err, msg.ErrTooLong):
		resp.Status = smpp.ESME_RINVMSGLEN
	case errors.Is(err, msg.ErrBadSchedule):
		resp.Status = smpp.ESME_RINVSCHED
	default:
		g.log.Warn("submit not stored", "err", err)
		resp.Status = smpp.ESME_RSYSERR
	}
}

// lastPart is the part that completed a long message.
type lastPart struct {
	Key smstext.Key
	Seq byte
}

// message translates a short message request into m; nil when resp already
// answers it (refused, or a part stored while its message is incomplete).
// part is set when m was completed by this part. from is the SMSC whose
// bind it came over, nil for an ESME's session.
func (g *Gateway) message(ctx context.Context, from *upstream, s *smpp.Session, req, resp *smpp.PDU) (m *msg.Message, part *lastPart) {
	kind := msg.FromESME
	if req.ID == smpp.DeliverSM {
		kind = msg.FromSMSC
	}
	account := s.SystemID()
	if from != nil {
		account = from.Name // an SMSC's MO is known by the SMSC's name
	}
	g.Received.Add(1)
	src, err := msg.NormalizeNumber(req.SourceAddr, req.SourceAddrTON, req.SourceAddrNPI, g.cfg.CountryCode)
	if err != nil {
		g.Rejected.Add(1)
		resp.Status = smpp.ESME_RINVSRCADR
		return nil, nil
	}
	if from != nil && len(g.ups.all) > 1 {
		g.ups.mo.note(src, from) // a reply goes back the way this came, while that bind is up
	}
	if p := g.cfg.Policy; p != nil && kind == msg.FromESME {
		if alpha, ok := strings.CutPrefix(string(src), "alpha:"); ok {
			if !p.AlphaAllowed(s.SystemID(), alpha) {
				g.Rejected.Add(1)
				g.log.Info("alphanumeric sender not allowed for the account", "esme", s.SystemID(), "source", alpha)
				resp.Status = smpp.ESME_RINVSRCADR
				return nil, nil
			}
		} else if !p.SourceAllowed(s.SystemID(), string(src)) {
			g.Rejected.Add(1)
			resp.Status = smpp.ESME_RINVSRCADR
			return nil, nil
		}
		if tps := p.TPS(s.SystemID()); tps > 0 && !g.allow(s.SystemID(), tps) {
			g.Throttled.Add(1)
			resp.Status = smpp.ESME_RTHROTTLED
			return nil, nil
		}
	}
	to, err := msg.NormalizeNumber(req.DestAddr, req.DestAddrTON, req.DestAddrNPI, g.cfg.CountryCode)
	if err != nil || !to.IsMSISDN() {
		g.Rejected.Add(1)
		resp.Status = smpp.ESME_RINVDSTADR
		return nil, nil
	}
	body := req.ShortMessage
	if p, ok := req.TLV(smpp.TagMessagePayload); ok && len(body) == 0 {
		body = p
	}
	var concat smstext.Concat
	if req.ESMClass&0x40 != 0 {
		_, b, c, err := smstext.ParseUDH(body)
		if err != nil {
			g.Rejected.Add(1)
			resp.Status = smpp.ESME_RINVESMCLASS
			return nil, nil
		}
		body, concat = b, c
	} else if ref, ok := req.TLV(smpp.TagSARMsgRefNum); ok && len(ref) == 2 {
		tot, ok1 := req.TLV(smpp.TagSARTotalSegments)
		seq, ok2 := req.TLV(smpp.TagSARSegmentSeqnum)
		if ok1 && ok2 && len(tot) == 1 && len(seq) == 1 {
			concat = smstext.Concat{Ref: uint16(ref[0])<<8 | uint16(ref[1]), Total: tot[0], Seq: seq[0], Ok: true}
		}
	}
	var text string
	if concat.Ok && concat.Total > 1 {
		g.Parts.Add(1)
		k := smstext.Key{Source: string(src), Dest: string(to), Ref: concat.Ref}
		sp := storedPart{
			StoredPart: smstext.StoredPart{Key: k, Total: concat.Total, Seq: concat.Seq, DCS: req.DataCoding, Body: body, First: g.cfg.Now()},
			Account:    account, Receipt: req.RegisteredDelivery&0x03 != 0, Kind: kind,
		}
		// Acknowledged means durable: the part is stored before its resp.
		if err := g.storePart(ctx, sp); err != nil {
			g.log.Warn("part not stored", "err", err)
			resp.Status = smpp.ESME_RSYSERR
			return nil, nil
		}
		// Who sent it, for a message handed out before its last part.
		g.meta.LoadOrStore(k, partMeta{account: sp.Account, receipt: sp.Receipt, kind: kind})
		done, err := g.reasm.Add(k, concat.Total, concat.Seq, req.DataCoding, body)
		if errors.Is(err, smstext.ErrBusy) {
			// Not acknowledged, so not kept: the sender sends it again.
			g.deletePart(ctx, sp)
			g.Throttled.Add(1)
			resp.Status = smpp.ESME_RTHROTTLED
			return nil, nil
		}
		if err != nil {
			g.Rejected.Add(1)
			resp.Status = smpp.ESME_RINVMSGLEN
			return nil, nil
		}
		if done == nil {
			resp.MessageID = g.partID()
			return nil, nil
		}
		text, part = done.Text, &lastPart{k, concat.Seq}
	} else {
		text, err = smstext.Decode(req.DataCoding, body)
		if err != nil {
			g.Rejected.Add(1)
			resp.Status = smpp.ESME_RINVDCS
			return nil, nil
		}
	}
	m = &msg.Message{
		From: src, To: to, Text: text,
		Origin:  msg.Origin{Kind: kind, Account: account, Ref: strconv.FormatUint(uint64(req.Seq), 10)},
		Receipt: req.RegisteredDelivery&0x03 != 0,
	}
	if !g.timing(req, resp, m) {
		g.Rejected.Add(1)
		if part != nil { // refused, so it comes again: keep the other parts
			g.restoreParts(part.Key, part.Seq)
		}
		return nil, nil
	}
	return m, part
}

// timing reads a request's validity, schedule and priority into m; false
// when resp refuses them.
func (g *Gateway) timing(req, resp *smpp.PDU, m *msg.Message) bool {
	now := g.cfg.Now()
	if req.ValidityPeriod != "" {
		exp, err := ParseSMPPTime(req.ValidityPeriod, now)
		if err != nil {
			resp.Status = smpp.ESME_RINVEXPIRY
			return false
		}
		m.Expires = exp
	}
	if req.ScheduleDeliveryTime != "" {
		at, err := ParseSMPPTime(req.ScheduleDeliveryTime, now)
		if err != nil {
			resp.Status = smpp.ESME_RINVSCHED
			return false
		}
		m.NotBefore = at
	}
	if req.PriorityFlag > 3 {
		resp.Status = smpp.ESME_RINVPRTFLG
		return false
	}
	m.Priority = req.PriorityFlag
	return true
}

func (g *Gateway) partID() string {
	return "part-" + strconv.FormatUint(uint64(g.ref.Add(1)), 16)
}

// sendError is an SMS attempt the SMSC refused.
type sendError struct {
	status uint32
	err    error
}

func (e *sendError) Error() string { return e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// Permanent tells the router not to retry: the SMSC said the message itself
// is bad, not that it is busy.
func (e *sendError) Permanent() bool {
	switch e.status {
	case smpp.ESME_RINVDSTADR, smpp.ESME_RINVSRCADR, smpp.ESME_RINVDCS, smpp.ESME_RINVESMCLASS, smpp.ESME_RINVMSGLEN:
		return true
	}
	return false
}

// checkSMSCs refuses a route hint naming an SMSC that is not configured:
// its message could only wait until it expired.
func (g *Gateway) checkSMSCs(names string) error {
	for _, n := range strings.Split(names, "|") {
		if g.ups == nil || g.ups.byName[n] == nil {
			return fmt.Errorf("%w: route smsc:%s: no SMSC is named %q", msg.ErrNoRoute, names, n)
		}
	}
	return nil
}

// maxSafeText is the longest text (bytes of UTF-8) that always fits 255
// parts: every UTF-16 unit, and every GSM escape pair, takes at least one
// byte, and a part holds at least 66 units (UCS-2 beside a surrogate pair).
const maxSafeText = 255 * 66

// CheckSMS tells whether m's text can go as SMS the way SendSMS would send
// it (the router asks at submission): msg.ErrTooLong when it needs more
// than 255 parts, or more than message_payload's 65535 octets.
func (g *Gateway) CheckSMS(m *msg.Message) error {
	if names, ok := strings.CutPrefix(m.Route, "smsc:"); ok {
		if err := g.checkSMSCs(names); err != nil {
			return err
		}
	}
	if len(m.Text) <= maxSafeText {
		return nil
	}
	if g.cfg.Payload {
		_, body, err := smstext.Encode(m.Text, g.cfg.Alphabet)
		if err == nil && len(body) > 0xffff {
			return fmt.Errorf("%w: %d octets, message_payload holds 65535", msg.ErrTooLong, len(body))
		}
		return nil // what does not encode fails at sending, as before
	}
	if _, _, err := smstext.Split(m.Text, g.cfg.Alphabet, 0, false); errors.Is(err, smstext.ErrTooLong) {
		return fmt.Errorf("%w: %v", msg.ErrTooLong, err)
	}
	return nil
}

// SendSMS implements router.SMSSender: the text leaves as one or more
// submit_sm (upstream) or deliver_sm (ESME route), with receipts requested
// from the SMSC and every part's SMSC id remembered for matching them.
func (g *Gateway) SendSMS(ctx context.Context, m *msg.Message) error {
	_, err := g.SendSMSTracked(ctx, m)
	return err
}

// SendSMSTracked is SendSMS that also tells whether a receipt will settle
// the message (router.TrackingSender): one was requested from the SMSC. An
// ESME route has none; the receiver's deliver_sm_resp is the last word.
func (g *Gateway) SendSMSTracked(ctx context.Context, m *msg.Message) (tracked bool, err error) {
	var (
		dcs   byte
		parts []smstext.Part
	)
	text := m.Text
	if m.Group != "" { // a phone shows no conversation: name the group
		text = "[" + m.Group + "] " + text
	}
	if g.cfg.Payload {
		var body []byte
		dcs, body, err = smstext.Encode(text, g.cfg.Alphabet)
		parts = []smstext.Part{{Body: body}}
	} else {
		dcs, parts, err = smstext.Split(text, g.cfg.Alphabet, uint16(g.ref.Add(1)), false)
	}
	if err != nil {
		return false, &sendError{status: smpp.ESME_RINVMSGLEN, err: fmt.Errorf("sms: encode: %w", err)}
	}
	route := g.cfg.Route
	if r, ok := namedRoute(m.Route); ok { // the sender named the route
		route = r
	} else if g.cfg.Policy != nil {
		if target, ok := g.cfg.Policy.RouteFor(m.To); ok {
			if r, err := ParseRoute(target); err == nil {
				route = r
			}
		}
	}
	receipt := route.Upstream && (g.cfg.AlwaysReceipts || m.Receipt || m.Origin.Kind == msg.FromSIP)
	var (
		up   *upstream
		sess *smpp.Session
	)
	if route.Upstream && g.ups != nil {
		// Every part takes the same SMSC, chosen once.
		if up, sess, err = g.ups.pick(ctx, g.ups.eligible(route.SMSCs, senderAccount(m)), m.To); err != nil {
			return false, fmt.Errorf("sms: %w", err)
		}
	}
	var p smpp.PDU
	for i, part := range parts {
		p.Reset()
		p.ID = smpp.SubmitSM
		if !route.Upstream {
			p.ID = smpp.DeliverSM
		}
		p.SourceAddrTON, p.SourceAddrNPI, p.SourceAddr = sourceAddr(m.From)
		p.DestAddrTON, p.DestAddrNPI, p.DestAddr = msg.TONInternational, msg.NPIISDN, m.To.Digits()
		p.DataCoding = dcs
		switch {
		case g.cfg.Payload && len(part.Body) > 254:
			p.SetTLV(smpp.TagMessagePayload, part.Body)
		case len(part.UDH) > 0:
			p.ESMClass = 0x40
			p.ShortMessage = append(append(make([]byte, 0, len(part.UDH)+len(part.Body)), part.UDH...), part.Body...)
		default:
			p.ShortMessage = part.Body
		}
		if receipt {
			p.RegisteredDelivery = 1
		}
		var resp *smpp.PDU
		switch {
		case up != nil:
			resp, err = up.submit(ctx, sess, &p, i == 0)
		case route.ESME != "":
			resp, err = g.server.Deliver(ctx, route.ESME, &p)
		default:
			return false, errors.New("sms: no SMS route is up")
		}
		if err != nil {
			var se *smpp.StatusError
			if errors.As(err, &se) {
				return false, &sendError{status: se.Status, err: fmt.Errorf("sms part %d/%d: %w", i+1, len(parts), err)}
			}
			return false, fmt.Errorf("sms part %d/%d: %w", i+1, len(parts), err)
		}
		if receipt {
			g.rememberPart(ctx, up, resp.MessageID, m.ID, i+1, len(parts))
		}
	}
	g.SentSMS.Add(1)
	return receipt, nil
}

// senderAccount is the account whose SMSCs a message on route smsc takes:
// the ESME's system_id, the HTTP client's name (the API records
// "client:NAME"; a bare token has no account).
func senderAccount(m *msg.Message) string {
	switch m.Origin.Kind {
	case msg.FromESME:
		return m.Origin.Account
	case msg.FromAPI:
		name, _ := strings.CutPrefix(m.Origin.Account, "client:")
		return name
	}
	return ""
}

// sourceAddr renders a sender for SMS: its number, or for an IM-only user an
// alphanumeric sender from the user part (≤11 characters, GSM limits).
func sourceAddr(a msg.Address) (ton, npi byte, addr string) {
	if a.IsMSISDN() {
		return msg.TONInternational, msg.NPIISDN, a.Digits()
	}
	s := string(a)
	if i := strings.IndexByte(s, ':'); i >= 0 { // sip:, xmpp:, alpha:
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 11 {
		s = s[:11]
	}
	return msg.TONAlphanumeric, msg.NPIUnknown, s
}

// ParseSMPPTime reads an SMPP 3.4 §7.1.1 time: absolute "YYMMDDhhmmsstnnp"
// (p = '+' or '-' quarter hours from UTC) or relative "YYMMDDhhmmss000R".
func ParseSMPPTime(s string, now time.Time) (time.Time, error) {
	if len(s) != 16 {
		return time.Time{}, fmt.Errorf("smpp time %q: want 16 characters", s)
	}
	n := func(i int) (int, error) { return strconv.Atoi(s[i : i+2]) }
	var f [6]int
	for i := range f {
		v, err := n(i * 2)
		if err != nil {
			return time.Time{}, fmt.Errorf("smpp time %q: %w", s, err)
		}
		f[i] = v
	}
	switch s[15] {
	case 'R':
		return now.AddDate(f[0], f[1], f[2]).Add(time.Duration(f[3])*time.Hour + time.Duration(f[4])*time.Minute + time.Duration(f[5])*time.Second), nil
	case '+', '-':
		q, err := strconv.Atoi(s[13:15])
		if err != nil || s[12] < '0' || s[12] > '9' {
			return time.Time{}, fmt.Errorf("smpp time %q: bad offset", s)
		}
		off := time.Duration(q) * 15 * time.Minute
		if s[15] == '-' {
			off = -off
		}
		t := time.Date(2000+f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], int(s[12]-'0')*100_000_000, time.UTC)
		if t.Month() != time.Month(f[1]) || f[1] < 1 || f[1] > 12 {
			return time.Time{}, fmt.Errorf("smpp time %q: bad date", s)
		}
		return t.Add(-off), nil
	}
	return time.Time{}, fmt.Errorf("smpp time %q: last character must be R, + or -", s)
}

// bucket is a token bucket: tps tokens a second, a burst of one second.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// allow takes one token from systemID's bucket.
func (g *Gateway) allow(systemID string, tps int) bool {
	v, _ := g.buckets.LoadOrStore(systemID, &bucket{tokens: float64(tps), last: g.cfg.Now()})
	b := v.(*bucket)
	b.mu.Lock()
	defer b.mu.Unlock()
	now := g.cfg.Now()
	b.tokens = min(float64(tps), b.tokens+now.Sub(b.last).Seconds()*float64(tps))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// namedRoute is the SMS route s names, if any ("" and anything else name
// none): ParseRoute without building an error on every SMS.
func namedRoute(s string) (Route, bool) {
	switch {
	case s == "smsc":
		return Route{Upstream: true}, true
	case strings.HasPrefix(s, "smsc:") && len(s) > 5:
		return Route{Upstream: true, SMSCs: s[5:]}, true
	case strings.HasPrefix(s, "esme:") && len(s) > 5:
		return Route{ESME: s[5:]}, true
	}
	return Route{}, false
}
