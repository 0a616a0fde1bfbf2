package smppgw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
	"github.com/smsbridge/bridge/store"
)

// Control is what the router lets a sender do to a message it sent
// (*router.Router): read its state, cancel it, replace it. The gateway only
// checks that the message is the asking ESME's and translates.
type Control interface {
	Message(id string) (store.Record, error)
	Cancel(ctx context.Context, id string) (store.Record, error)
	Replace(ctx context.Context, id string, change func(*msg.Message) error) (store.Record, error)
}

// controlWait bounds a cancel_sm or replace_sm: a message being delivered
// is cancelled once that attempt ends.
const controlWait = 10 * time.Second

// control answers query_sm, cancel_sm and replace_sm; false: req is none.
func (g *Gateway) control(ctx context.Context, s *smpp.Session, req, resp *smpp.PDU) bool {
	switch req.ID {
	case smpp.QuerySM:
		g.query(s, req, resp)
	case smpp.CancelSM:
		g.cancel(ctx, s, req, resp)
	case smpp.ReplaceSM:
		g.replace(ctx, s, req, resp)
	default:
		return false
	}
	return true
}

// own reads message id if the session's ESME sent it; another account's
// message is as unknown as one that does not exist.
func (g *Gateway) own(s *smpp.Session, id string) (store.Record, bool) {
	if g.cfg.Control == nil || id == "" {
		return store.Record{}, false
	}
	rec, err := g.cfg.Control.Message(id)
	if err != nil || rec.Msg.Origin.Kind != msg.FromESME || rec.Msg.Origin.Account != s.SystemID() {
		return store.Record{}, false
	}
	return rec, true
}

// query answers query_sm from the store (SMPP 3.4 §4.8).
func (g *Gateway) query(s *smpp.Session, req, resp *smpp.PDU) {
	rec, ok := g.own(s, req.MessageID)
	if !ok {
		resp.Status = smpp.ESME_RQUERYFAIL
		return
	}
	resp.MessageID = req.MessageID
	resp.MessageState = messageState(rec)
	if rec.State.Final() && len(rec.Events) > 0 {
		resp.FinalDate = FormatSMPPTime(rec.Events[len(rec.Events)-1].At)
	}
	if rec.State == msg.Failed || rec.State == msg.Expired {
		resp.ErrorCode = 1
	}
}

// messageState is a record's SMPP 3.4 §5.2.28 message_state: the SMSC's
// own word when its receipt settled the message.
func messageState(rec store.Record) byte {
	switch rec.State {
	case msg.Delivered:
		return smstext.MessageStateOf("DELIVRD")
	case msg.Expired:
		return smstext.MessageStateOf("EXPIRED")
	case msg.Cancelled:
		return smstext.MessageStateOf("DELETED")
	case msg.Failed:
		if n := len(rec.Events); n > 0 {
			if stat, ok := strings.CutPrefix(rec.Events[n-1].Detail, "smsc receipt "); ok {
				if st := smstext.MessageStateOf(stat); st != 0 {
					return st
				}
			}
		}
		return smstext.MessageStateOf("UNDELIV")
	}
	return smstext.MessageStateOf("ENROUTE")
}

// cancel answers cancel_sm for one of the ESME's messages by its id (the
// form that cancels every message between two addresses is refused).
func (g *Gateway) cancel(ctx context.Context, s *smpp.Session, req, resp *smpp.PDU) {
	if _, ok := g.own(s, req.MessageID); !ok {
		resp.Status = smpp.ESME_RCANCELFAIL
		return
	}
	cctx, stop := context.WithTimeout(ctx, controlWait)
	defer stop()
	if _, err := g.cfg.Control.Cancel(cctx, req.MessageID); err != nil {
		g.log.Info("cancel_sm refused", "id", req.MessageID, "esme", s.SystemID(), "err", err)
		resp.Status = smpp.ESME_RCANCELFAIL
	}
}

// replace answers replace_sm: a new text, schedule or validity for one of
// the ESME's messages that waits in the router. replace_sm carries no
// data_coding, so its text is read in the SMSC default alphabet.
func (g *Gateway) replace(ctx context.Context, s *smpp.Session, req, resp *smpp.PDU) {
	if _, ok := g.own(s, req.MessageID); !ok {
		resp.Status = smpp.ESME_RREPLACEFAIL
		return
	}
	now := g.cfg.Now()
	var text string
	if len(req.ShortMessage) > 0 {
		t, err := smstext.Decode(0, req.ShortMessage)
		if err != nil {
			resp.Status = smpp.ESME_RREPLACEFAIL
			return
		}
		text = t
	}
	var at, exp time.Time
	var err error
	if req.ScheduleDeliveryTime != "" {
		if at, err = ParseSMPPTime(req.ScheduleDeliveryTime, now); err != nil {
			resp.Status = smpp.ESME_RINVSCHED
			return
		}
	}
	if req.ValidityPeriod != "" {
		if exp, err = ParseSMPPTime(req.ValidityPeriod, now); err != nil {
			resp.Status = smpp.ESME_RINVEXPIRY
			return
		}
	}
	cctx, stop := context.WithTimeout(ctx, controlWait)
	defer stop()
	_, err = g.cfg.Control.Replace(cctx, req.MessageID, func(m *msg.Message) error {
		if text != "" {
			m.Text = text
		}
		if !at.IsZero() {
			m.NotBefore = at
		}
		if !exp.IsZero() {
			m.Expires = exp
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, msg.ErrBadSchedule):
		resp.Status = smpp.ESME_RINVSCHED
	default:
		g.log.Info("replace_sm refused", "id", req.MessageID, "esme", s.SystemID(), "err", err)
		resp.Status = smpp.ESME_RREPLACEFAIL
	}
}

// CancelSMS withdraws a message handed to the upstream SMSC whose receipt
// has not come (router.SMSCanceller): cancel_sm for each part by the id
// the SMSC gave it. Receipts that still come for it are ignored.
func (g *Gateway) CancelSMS(ctx context.Context, m *msg.Message) error {
	if g.cfg.KV == nil || g.ups == nil {
		return errors.New("sms: no SMSC message ids are kept")
	}
	if _, err := g.cfg.KV.Get([]byte(prefixDone + m.ID)); err == nil {
		return errors.New("sms: the SMSC's receipt came already")
	}
	type sent struct{ smsc, id string }
	var ids []sent
	if err := g.cfg.KV.Iterate([]byte(prefixSent+m.ID+"/"), func(_, v []byte) error {
		name, id, ok := strings.Cut(string(v), "\x00")
		if !ok { // kept before SMSCs had names
			name, id = DefaultUpstream, string(v)
		}
		ids = append(ids, sent{name, id})
		return nil
	}); err != nil {
		return fmt.Errorf("sms: reading the SMSC's ids of %s: %w", m.ID, err)
	}
	if len(ids) == 0 {
		return errors.New("sms: the SMSC gave no id to cancel it by (no receipt was asked for)")
	}
	var p smpp.PDU
	for _, x := range ids {
		up := g.ups.byName[x.smsc]
		if up == nil {
			return fmt.Errorf("sms: cancel_sm %s: the SMSC %q that took it is not configured any more", x.id, x.smsc)
		}
		p.Reset()
		p.ID, p.MessageID = smpp.CancelSM, x.id
		p.SourceAddrTON, p.SourceAddrNPI, p.SourceAddr = sourceAddr(m.From)
		p.DestAddrTON, p.DestAddrNPI, p.DestAddr = msg.TONInternational, msg.NPIISDN, m.To.Digits()
		cctx, stop := context.WithTimeout(ctx, controlWait)
		_, err := up.client.Send(cctx, &p)
		stop()
		if err != nil {
			return fmt.Errorf("sms: cancel_sm %s at %s: %w", x.id, x.smsc, err)
		}
	}
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if err := g.cfg.KV.Put(ctx, []byte(prefixDone+m.ID), []byte("DELETED")); err != nil {
		g.log.Warn("cancellation at the SMSC not noted; a late receipt may overwrite it", "id", m.ID, "err", err)
	}
	return nil
}

// FormatSMPPTime writes t as an SMPP 3.4 §7.1.1 absolute time in UTC.
func FormatSMPPTime(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%02d%02d%02d%02d%02d%02d%d00+", t.Year()%100, int(t.Month()), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/100_000_000)
}
