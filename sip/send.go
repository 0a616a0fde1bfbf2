package sip

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// ErrOffline: the IM user has no current SIP binding.
var ErrOffline = errors.New("sip: recipient not registered")

// StatusError is a final non-2xx answer to one of our requests.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return "sip: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// Permanent reports whether retrying the same request cannot help: 4xx
// except the "not now" codes (408 timeout, 423, 429, 480 unavailable,
// 486 busy), and 6xx. 3xx and 5xx are worth retrying.
func (e *StatusError) Permanent() bool {
	switch {
	case e.Code >= 600:
		return true
	case e.Code >= 400 && e.Code < 500:
		switch e.Code {
		case 408, 423, 429, 480, 486, 491:
			return false
		}
		return true
	}
	return false
}

// outgoing describes one MESSAGE we send.
type outgoing struct {
	target      presence.Binding
	from        string // From URI
	contentType string
	body        []byte
	headers     []sip.Header
}

// SendIM sends m as a SIP MESSAGE (RFC 3428) to binding b, or via the
// outbound proxy. It returns nil on 2xx, *StatusError on a final non-2xx,
// and a wrapped context.DeadlineExceeded when no final answer came within
// MessageTimeout.
func (s *Server) SendIM(ctx context.Context, m *msg.Message, b presence.Binding) error {
	if m == nil {
		return errors.New("sip: SendIM of nil message")
	}
	now := s.now()
	hdrs := []sip.Header{sip.NewHeader("DateTime", now.UTC().Format(time.RFC3339))}
	if m.ID != "" {
		hdrs = append(hdrs, sip.NewHeader("Imdn-Message-ID", m.ID))
	}
	err := s.send(ctx, outgoing{
		target:      b,
		from:        m.From.SIPURI(s.cfg.Domain),
		contentType: "text/plain;charset=UTF-8",
		body:        []byte(m.Text),
		headers:     hdrs,
	})
	if err != nil {
		return fmt.Errorf("sip: MESSAGE %s to %s at %s: %w", m.ID, b.AOR, b.Contact, err)
	}
	return nil
}

// imdnBody renders an RFC 5438 delivery notification.
func imdnBody(id string, at time.Time, delivered bool) []byte {
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(id))
	status := "failed"
	if delivered {
		status = "delivered"
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<imdn xmlns="urn:ietf:params:xml:ns:imdn">` + "\n" +
		"  <message-id>" + esc.String() + "</message-id>\n" +
		"  <datetime>" + at.UTC().Format(time.RFC3339) + "</datetime>\n" +
		"  <delivery-notification><status><" + status + "/></status></delivery-notification>\n" +
		"</imdn>\n")
}

// Report tells an IM user how a message they sent ended, by IMDN, when it
// left as SMS or went to an application (router.Reporter); a message
// delivered in IM is the receiving client's to report.
func (s *Server) Report(ctx context.Context, m *msg.Message, o msg.Outcome) {
	if o.Via == msg.ViaIM {
		return
	}
	if err := s.SendIMDN(ctx, m.From, m.ID, o.Delivered); err != nil {
		s.log.Info("imdn not sent", "id", m.ID, "to", m.From, "err", err)
	}
}

// SendIMDN tells IM user to whether the message id it sent was delivered
// (RFC 5438 message/imdn+xml). It tries to's bindings freshest first and
// returns ErrOffline when there are none.
func (s *Server) SendIMDN(ctx context.Context, to msg.Address, id string, delivered bool) error {
	bs := s.reg.Bindings(to)
	if len(bs) == 0 {
		return fmt.Errorf("sip: IMDN for %s to %s: %w", id, to, ErrOffline)
	}
	now := s.now()
	o := outgoing{
		from:        "sip:imdn@" + s.cfg.Domain,
		contentType: "message/imdn+xml",
		body:        imdnBody(id, now, delivered),
		headers: []sip.Header{
			sip.NewHeader("Content-Disposition", "notification"),
			sip.NewHeader("Imdn-Message-ID", uuid.NewString()),
			sip.NewHeader("DateTime", now.UTC().Format(time.RFC3339)),
		},
	}
	var errs []error
	for _, b := range bs {
		o.target = b
		err := s.send(ctx, o)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b.Contact, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("sip: IMDN for %s to %s: %w", id, to, errors.Join(errs...))
}

// send builds and sends one MESSAGE and waits for its final response.
func (s *Server) send(ctx context.Context, o outgoing) error {
	var contact sip.Uri
	if err := sip.ParseUri(o.target.Contact, &contact); err != nil {
		return fmt.Errorf("bad contact: %w", err)
	}
	if contact.Host == "" {
		return errors.New("bad contact: no host")
	}
	aorURI := o.target.AOR.SIPURI(s.cfg.Domain)
	if c := s.udp.Load(); c != nil {
		t, ok := s.proxyUDP, s.proxyUDP.IsValid()
		if s.proxy == nil {
			t, ok = udpTargetOf(&contact)
		}
		if ok && !unsafeInHeader(aorURI) && !unsafeInHeader(o.from) {
			return s.sendUDP(ctx, c, t, o, aorURI)
		}
	}
	var toURI, fromURI sip.Uri
	if err := sip.ParseUri(aorURI, &toURI); err != nil {
		return fmt.Errorf("bad AOR %q: %w", aorURI, err)
	}
	if err := sip.ParseUri(o.from, &fromURI); err != nil {
		return fmt.Errorf("bad From %q: %w", o.from, err)
	}

	recipient := contact
	if s.proxy != nil {
		recipient = toURI
	}
	req := sip.NewRequest(sip.MESSAGE, recipient)
	if s.proxy != nil {
		// RFC 3261 §8.1.2: a loose-routing outbound proxy is the first Route.
		req.AppendHeader(&sip.RouteHeader{Address: *s.proxy.Clone()})
	}
	fh := &sip.FromHeader{Address: fromURI, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: toURI})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.MESSAGE})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	for _, h := range o.headers {
		req.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader(o.contentType)
	req.AppendHeader(&ct)
	req.SetBody(o.body)

	s.mu.RLock()
	laddr := s.udpAddr
	s.mu.RUnlock()
	if laddr.IP != nil && strings.EqualFold(req.Transport(), "UDP") {
		req.Laddr = laddr
	}

	tctx, cancel := context.WithTimeout(ctx, s.cfg.MessageTimeout)
	defer cancel()
	start := s.now()
	res, err := s.client.Do(tctx, req)
	if err != nil {
		return s.sent(ctx, o.target, string(cid), start, 0, "", err, tctx.Err() != nil && ctx.Err() == nil)
	}
	return s.sent(ctx, o.target, string(cid), start, res.StatusCode, res.Reason, nil, false)
}

// sendUDP is send over the UDP fast path (udpclient.go).
func (s *Server) sendUDP(ctx context.Context, c *udpClient, t netip.AddrPort, o outgoing, aorURI string) error {
	r := udpRequest{
		ruri: o.target.Contact, from: o.from, to: aorURI, userAgent: s.cfg.UserAgent,
		headers: o.headers, contentType: o.contentType, body: o.body,
	}
	if s.proxy != nil {
		r.ruri, r.route = aorURI, s.proxyURI
	}
	start := s.now()
	code, reason, callID, err := c.do(ctx, s.cfg.MessageTimeout, t, &r)
	return s.sent(ctx, o.target, callID, start, code, reason, err, errors.Is(err, errTimerF))
}

// sent is how send and sendUDP end: the final status of the MESSAGE to b
// (nil for 2xx, else *StatusError), or err when there was none, timedOut
// telling the transaction timeout from the caller giving up and from other
// failures.
func (s *Server) sent(ctx context.Context, b presence.Binding, callID string, start time.Time, code int, reason string, err error, timedOut bool) error {
	if err != nil {
		if timedOut {
			return fmt.Errorf("no final response within %s: %w", s.cfg.MessageTimeout, context.DeadlineExceeded)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("MESSAGE abandoned: %w", ctx.Err())
		}
		return fmt.Errorf("MESSAGE failed: %w", err)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("sip MESSAGE sent", "to", b.AOR, "contact", b.Contact, "call_id", callID, "status", code, "took", s.now().Sub(start))
	}
	if code >= 200 && code < 300 {
		return nil
	}
	return &StatusError{Code: code, Reason: reason}
}
