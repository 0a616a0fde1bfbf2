package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// SMSC is the SMPP sink: the SMSC simulator the bridge binds to, and in the
// ceiling phase both the minimal echo peer the ESMEs submit to directly
// (ingress) and the SMSC the relay's one bind submits to (egress). It
// answers every submit_sm/deliver_sm/data_sm with status 0, joins
// concatenated parts, counts whole messages and reports each one's token to
// the tracker.
type SMSC struct {
	srv *smpp.Server
	ln  net.Listener
	// tr is nil for the ceiling's ingress peer: it does all the work of an
	// SMSC but a message counts as delivered only at the egress sink.
	tr   *Tracker
	log  *slog.Logger
	msgs atomic.Uint64 // message ids handed out
	bad  atomic.Uint64 // PDUs whose text held no token
	// got counts whole messages: one atomic, since a count per destination
	// under the lock would cost CPU the bridge shares and only ever be summed.
	got atomic.Uint64

	mu    sync.Mutex // parts
	parts map[partKey]*partial
}

type partKey struct {
	src, dst string
	ref      uint16
	total    byte
}

type partial struct {
	tok   Token
	ok    bool
	got   [4]uint64 // bitset of part numbers seen
	count int
}

// StartSMSC listens on addr ("127.0.0.1:0" for any port) and serves until ctx
// ends. Binds are accepted from anyone: it is a lab peer. With a nil tr it
// acknowledges and counts but reports no delivery.
func StartSMSC(ctx context.Context, addr string, window int, tr *Tracker, log *slog.Logger) (*SMSC, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smsc listen %s: %w", addr, err)
	}
	s := &SMSC{ln: ln, tr: tr, log: log, parts: map[partKey]*partial{}}
	s.srv = smpp.NewServer(smpp.ServerConfig{
		SystemID:      "bench-smsc",
		Auth:          func(string, string, smpp.CommandID, net.Addr) uint32 { return smpp.ESME_ROK },
		Handler:       s,
		Logger:        log,
		Window:        window,
		InboundWindow: window,
	})
	go func() {
		if err := s.srv.Serve(ctx, ln); err != nil {
			log.Warn("smsc stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is where the SMSC listens.
func (s *SMSC) Addr() string { return s.ln.Addr().String() }

// Bound counts bound sessions (the bridge's bind, or the ESMEs').
func (s *SMSC) Bound() int { return s.srv.Bound() }

// Close unbinds everyone and stops.
func (s *SMSC) Close() error { return s.srv.Close() }

// Received counts the whole messages received (all parts of a long one).
func (s *SMSC) Received() uint64 { return s.got.Load() }

// StageSMPP answers on the session's read goroutine (smpp.Stager): the
// work is short and never waits, so handing each PDU to a pooled goroutine
// would cost more than the work.
func (s *SMSC) StageSMPP(ctx context.Context, ss *smpp.Session, req, resp *smpp.PDU) (smpp.Deferred, bool) {
	s.HandleSMPP(ctx, ss, req, resp)
	return nil, true
}

// HandleSMPP implements smpp.Handler.
func (s *SMSC) HandleSMPP(_ context.Context, _ *smpp.Session, req, resp *smpp.PDU) {
	switch req.ID {
	case smpp.SubmitSM, smpp.DeliverSM, smpp.DataSM:
	default:
		return
	}
	resp.MessageID = strconv.FormatUint(s.msgs.Add(1), 16)
	body := req.ShortMessage
	if len(body) == 0 {
		if v, ok := req.TLV(smpp.TagMessagePayload); ok {
			body = v
		}
	}
	var c smstext.Concat
	if req.ESMClass&0x40 != 0 {
		_, b, cc, err := smstext.ParseUDH(body)
		if err != nil {
			s.bad.Add(1)
			return
		}
		body, c = b, cc
	}
	whole := !c.Ok || c.Total <= 1
	var tok Token
	ok := false
	if whole || c.Seq == 1 { // the token starts the text
		tok, ok = tokenOf(req.DataCoding, body)
	}
	if whole {
		s.got.Add(1)
		if !ok {
			s.bad.Add(1)
			return
		}
		s.delivered(tok, req.DestAddr)
		return
	}
	// A part: the message is delivered when every part has arrived.
	k := partKey{src: req.SourceAddr, dst: req.DestAddr, ref: c.Ref, total: c.Total}
	s.mu.Lock()
	p := s.parts[k]
	if p == nil {
		p = &partial{}
		s.parts[k] = p
	}
	if c.Seq == 1 && ok {
		p.tok, p.ok = tok, true
	}
	if p.got[c.Seq/64]&(1<<(c.Seq%64)) == 0 {
		p.got[c.Seq/64] |= 1 << (c.Seq % 64)
		p.count++
	}
	done := p.count == int(c.Total)
	if done {
		delete(s.parts, k)
	}
	s.mu.Unlock()
	if !done {
		return
	}
	s.got.Add(1)
	if !p.ok {
		s.bad.Add(1)
		return
	}
	s.delivered(p.tok, k.dst)
}

// delivered reports a whole message to dst: a group post's copy for that
// member, else a message of its route.
func (s *SMSC) delivered(tok Token, dst string) {
	if tok.Route == Group {
		s.tr.GroupDelivered(tok, AtSMS, dst)
		return
	}
	s.tr.DeliveredAt(tok, AtSMS)
}

// tokenOf decodes only the head of body, where the token is (a few dozen
// characters, after a group copy's "[name] nick: "): decoding the whole
// text would spend the generator's CPU on bytes it never reads. A head cut
// inside a GSM 7-bit escape falls back to the whole text.
func tokenOf(dcs byte, body []byte) (Token, bool) {
	const head = 128 // bytes: 64 UCS-2 characters, more than a prefix and a token
	if len(body) > head {
		if text, err := smstext.Decode(dcs, body[:head]); err == nil {
			if tok, ok := findToken(text); ok {
				return tok, true
			}
		}
	}
	text, err := smstext.Decode(dcs, body)
	if err != nil {
		return Token{}, false
	}
	return findToken(text)
}

// findToken is the token starting text, or a group copy's after its prefix.
func findToken(text string) (Token, bool) {
	if tok, ok := ParseToken(text); ok {
		return tok, true
	}
	return FindGroupToken(text)
}
