package smppgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// Key space in the KV (see store): which SMSC message id is which part of
// which bridge message, and what each part's receipt said.
const (
	// "dr/"+lower(smsc id) → bridge id \x00 part \x00 total for the SMSC
	// DefaultUpstream (and receipts over ESMEs' sessions), "dr/"+NAME+\x00+
	// lower(smsc id) for the SMSC NAME: ids of different SMSCs may collide.
	prefixSMSCID  = "dr/"
	prefixPartDLR = "dp/" // "dp/"+bridge id+"/"+part → stat
	prefixDone    = "dn/" // "dn/"+bridge id: outcome already reported
	prefixSent    = "ds/" // "ds/"+bridge id+"/"+part → SMSC name \x00 smsc id, to cancel it by
)

// rememberPart records that the SMSC up knows part i (of total) of bridge
// message id as smscID, so its receipt can be matched later, also after a
// restart, and the part cancelled by it.
func (g *Gateway) rememberPart(ctx context.Context, up *upstream, smscID, id string, i, total int) {
	if g.cfg.KV == nil || smscID == "" {
		return
	}
	v := id + "\x00" + strconv.Itoa(i) + "\x00" + strconv.Itoa(total)
	fwd := [2][]byte{receiptKey(up, idKey(smscID)), []byte(v)}
	// The SMSC's name goes with its id: a cancel_sm goes to the SMSC that
	// took the part.
	rev := [2][]byte{[]byte(prefixSent + id + "/" + strconv.Itoa(i)), []byte(upstreamName(up) + "\x00" + smscID)}
	var err error
	if pp, ok := g.cfg.KV.(interface {
		PutPairs(ctx context.Context, pairs ...[2][]byte) error
	}); ok { // one commit for both
		err = pp.PutPairs(ctx, fwd, rev)
	} else if err = g.cfg.KV.Put(ctx, fwd[0], fwd[1]); err == nil {
		err = g.cfg.KV.Put(ctx, rev[0], rev[1])
	}
	if err != nil {
		g.log.Warn("receipt mapping not stored", "smsc", upstreamName(up), "smsc_id", smscID, "id", id, "err", err)
	}
}

// upstreamName names up for the keys; "" is a receipt over an ESME's session.
func upstreamName(up *upstream) string {
	if up == nil {
		return ""
	}
	return up.Name
}

// receiptKey is the key of the mapping of SMSC message id k (its idKey)
// at up; nil up is a receipt over an ESME's session.
func receiptKey(up *upstream, k string) []byte {
	if up == nil || up.Name == DefaultUpstream {
		return []byte(prefixSMSCID + k)
	}
	return []byte(prefixSMSCID + up.Name + "\x00" + k)
}

// idKey is the lookup form of a message id: lower case, no leading zeros.
func idKey(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	if t := strings.TrimLeft(id, "0"); t != "" {
		return t
	}
	return id
}

// idCandidates are the forms an SMSC may have used for the same id in
// submit_sm_resp and in the receipt: as given, hex read as decimal, decimal
// read as hex. SMSCs disagree on the base, so all are tried in turn.
func idCandidates(id string) []string {
	k := idKey(id)
	out := []string{k}
	if v, err := strconv.ParseUint(k, 16, 64); err == nil {
		out = append(out, strconv.FormatUint(v, 10))
	}
	if v, err := strconv.ParseUint(k, 10, 64); err == nil {
		out = append(out, strconv.FormatUint(v, 16))
	}
	return out
}

// handleSMSCReceipt matches a receipt from the SMSC to the part it is
// about and, once the whole message is accounted for, reports the outcome.
func (g *Gateway) handleSMSCReceipt(ctx context.Context, from *upstream, req *smpp.PDU) {
	g.Receipts.Add(1)
	var id, stat string
	if v, ok := req.TLV(smpp.TagReceiptedMessageID); ok {
		id = string(bytes.TrimRight(v, "\x00"))
	}
	if v, ok := req.TLV(smpp.TagMessageState); ok && len(v) == 1 {
		stat = smstext.StatOf(v[0])
	}
	body := req.ShortMessage
	if len(body) == 0 {
		body, _ = req.TLV(smpp.TagMessagePayload)
	}
	if r, err := smstext.ParseReceipt(string(body)); err == nil {
		if id == "" {
			id = r.ID
		}
		if stat == "" {
			stat = strings.ToUpper(r.Stat)
		}
	}
	if id == "" || g.cfg.KV == nil {
		g.UnmatchedReceipts.Add(1)
		g.log.Debug("receipt without a usable id", "text", string(body))
		return
	}
	if ref := g.lookupSMSCID(from, id); ref != nil {
		g.settle(ctx, ref, stat)
		return
	}
	// A fast SMSC can send the receipt before our submit_sm_resp handling
	// has stored the id: look again a little later. In a cluster the SMSC
	// may have sent it on this node's bind for another node's message:
	// offer it to the others each time too.
	go func() {
		for _, d := range []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			if ref := g.lookupSMSCID(from, id); ref != nil {
				g.settle(ctx, ref, stat)
				return
			}
			if g.cfg.Elsewhere == nil {
				continue
			}
			matched, err := g.cfg.Elsewhere.ForwardReceipt(ctx, from.name(), id, stat)
			if err != nil {
				g.log.Warn("receipt not offered to the other nodes", "smsc", from.name(), "smsc_id", id, "err", err)
			}
			if matched {
				g.ReceiptsMatchedElsewhere.Add(1)
				return
			}
		}
		g.UnmatchedReceipts.Add(1)
		g.log.Info("receipt for an unknown message", "smsc", from.name(), "smsc_id", id, "stat", stat)
	}()
}

// MatchReceipt settles a receipt that came to another node, if this node
// sent its message: smsc is the name of the SMSC it came from there ("" an
// ESME's session), as the nodes share their SMSCs' configuration.
func (g *Gateway) MatchReceipt(ctx context.Context, smsc, id, stat string) bool {
	if g.cfg.KV == nil {
		return false
	}
	var from *upstream
	if smsc != "" {
		from = &upstream{Upstream: Upstream{Name: smsc}}
		if g.ups != nil {
			if up := g.ups.byName[smsc]; up != nil {
				from = up
			}
		}
	}
	ref := g.lookupSMSCID(from, id)
	if ref == nil {
		return false
	}
	g.settle(ctx, ref, stat)
	return true
}

// lookupSMSCID finds the mapping of the SMSC from's message id.
func (g *Gateway) lookupSMSCID(from *upstream, id string) []byte {
	legacy := from != nil && from.Name != DefaultUpstream && g.legacyReceipts
	for _, k := range idCandidates(id) {
		if v, err := g.cfg.KV.Get(receiptKey(from, k)); err == nil {
			return v
		}
		// A renamed single SMSC still matches what was sent before.
		if legacy {
			if v, err := g.cfg.KV.Get(receiptKey(nil, k)); err == nil {
				return v
			}
		}
	}
	return nil
}

// settle records one part's final receipt and reports the message once
// every part is accounted for (or one failed).
func (g *Gateway) settle(ctx context.Context, ref []byte, stat string) {
	f := strings.Split(string(ref), "\x00")
	if len(f) != 3 {
		g.UnmatchedReceipts.Add(1)
		return
	}
	bid, part := f[0], f[1]
	total, _ := strconv.Atoi(f[2])
	switch stat {
	case "DELIVRD", "UNDELIV", "EXPIRED", "DELETED", "REJECTD":
	default:
		return // ENROUTE, ACCEPTD ...: not final yet
	}
	failed, ok := g.account(ctx, bid, part, stat, total)
	if !ok || g.cfg.OnReceipt == nil {
		return
	}
	o := msg.Outcome{Delivered: failed == "", State: msg.Delivered, Stat: stat, Detail: "smsc receipt " + stat, At: g.cfg.Now(), Via: msg.ViaSMS}
	if failed != "" {
		o.Stat, o.Detail, o.State = failed, "smsc receipt "+failed, msg.Failed
		if failed == "EXPIRED" {
			o.State = msg.Expired
		}
	}
	if err := g.cfg.OnReceipt(ctx, bid, o); err != nil {
		g.log.Warn("receipt not reported", "id", bid, "err", err)
	}
}

// account records one part's receipt and tells whether the message is now
// settled (ok), and by which failure ("" = every part delivered). It runs
// one message at a time; the outcome is reported after, outside the lock,
// as recording and reporting it wait for commits of their own.
func (g *Gateway) account(ctx context.Context, bid, part, stat string, total int) (failed string, ok bool) {
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if _, err := g.cfg.KV.Get([]byte(prefixDone + bid)); err == nil {
		return "", false // already reported (a failure on an earlier part)
	}
	if err := g.cfg.KV.Put(ctx, []byte(prefixPartDLR+bid+"/"+part), []byte(stat)); err != nil {
		g.log.Warn("receipt not stored", "id", bid, "err", err)
		return "", false
	}
	n := 0
	g.cfg.KV.Iterate([]byte(prefixPartDLR+bid+"/"), func(_, v []byte) error {
		n++
		if string(v) != "DELIVRD" && failed == "" {
			failed = string(v)
		}
		return nil
	})
	if failed == "" && n < total {
		return "", false // more parts to hear about
	}
	g.cfg.KV.Put(ctx, []byte(prefixDone+bid), []byte(stat))
	return failed, true
}

// Report implements router.Reporter for messages that came from an ESME:
// if it asked for one, it gets a deliver_sm delivery receipt (esm_class
// 0x04) on a receiving bind. Receipts wait, retried, for the ESME to bind.
func (g *Gateway) Report(ctx context.Context, m *msg.Message, o msg.Outcome) {
	if !m.Receipt {
		return
	}
	stat := "DELIVRD"
	switch {
	case o.Delivered:
	case o.State == msg.Expired:
		stat = "EXPIRED"
	case o.State == msg.Cancelled:
		stat = "DELETED"
	default:
		stat = "UNDELIV"
	}
	dlvrd := 0
	if o.Delivered {
		dlvrd = 1
	}
	errCode := "000"
	if !o.Delivered {
		errCode = "001"
	}
	p := &smpp.PDU{ID: smpp.DeliverSM, ESMClass: 0x04}
	p.SourceAddrTON, p.SourceAddrNPI, p.SourceAddr = sourceAddr(m.To)
	p.DestAddrTON, p.DestAddrNPI, p.DestAddr = sourceAddr(m.From)
	// The receipt text is ASCII except the original text's start: GSM7 when
	// it can be, so every ESME can read it, else UCS-2 with the quote
	// shortened to fit short_message.
	p.DataCoding, p.ShortMessage = smstext.EncodeReceipt(smstext.Receipt{ // quotes the text's start
		ID: m.ID, Sub: 1, Dlvrd: dlvrd, Submit: m.Accepted, Done: o.At, Stat: stat, Err: errCode, Text: m.Text,
	}, smstext.MaxReceiptOctets)
	p.SetTLV(smpp.TagReceiptedMessageID, append([]byte(m.ID), 0))
	p.SetTLV(smpp.TagMessageState, []byte{smstext.MessageStateOf(stat)})
	account := m.Origin.Account
	select {
	case g.receiptSlots <- struct{}{}:
	default:
		g.ReceiptsDropped.Add(1)
		g.log.Warn("too many receipts waiting; dropped", "id", m.ID, "esme", account)
		return
	}
	go func() {
		defer func() { <-g.receiptSlots }()
		delay := 500 * time.Millisecond
		deadline := g.cfg.Now().Add(g.cfg.ReceiptTTL)
		for {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			answered, st, err := g.deliverReceipt(sctx, account, p)
			cancel()
			if answered && st == smpp.ESME_ROK {
				g.ReceiptsSent.Add(1)
				return
			}
			if answered {
				g.log.Info("esme refused receipt", "id", m.ID, "esme", account, "status", smpp.StatusName(st))
				return
			}
			if ctx.Err() != nil || g.cfg.Now().After(deadline) {
				g.ReceiptsDropped.Add(1)
				g.log.Warn("receipt not delivered", "id", m.ID, "esme", account, "err", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, 30*time.Second)
		}
	}()
}

// Elsewhere is the cluster's side of ESME binds (cluster.Node): which
// accounts have a receiving bind here, and a deliver_sm for an account
// bound at another node.
type Elsewhere interface {
	HoldESME(account string, held bool)
	DeliverESME(ctx context.Context, account string, pdu []byte) (status uint32, err error)
	// ForwardReceipt offers an SMSC receipt that matched nothing here to
	// the other nodes; matched: the node that sent its message settled it.
	ForwardReceipt(ctx context.Context, smsc, id, stat string) (matched bool, err error)
}

// receiversChanged tells Elsewhere whether account has a receiving bind
// here now. Calls may overlap and come out of order, so each reads the
// sessions afresh under holdMu: the last one holds the latest state.
func (g *Gateway) receiversChanged(account string) {
	if g.cfg.Elsewhere == nil {
		return
	}
	g.holdMu.Lock()
	defer g.holdMu.Unlock()
	g.cfg.Elsewhere.HoldESME(account, len(g.server.Sessions(account)) > 0)
}

// DeliverESME sends an encoded deliver_sm from another node on one of
// account's receiving binds here and returns the ESME's command_status.
func (g *Gateway) DeliverESME(ctx context.Context, account string, raw []byte) (uint32, error) {
	var p smpp.PDU
	if err := p.Decode(raw); err != nil {
		return 0, fmt.Errorf("smppgw: a PDU for ESME %q from another node: %w", account, err)
	}
	if p.ID != smpp.DeliverSM {
		return 0, fmt.Errorf("smppgw: a %v for ESME %q from another node: only deliver_sm is forwarded", p.ID, account)
	}
	answered, st, err := g.deliverHere(ctx, account, &p)
	if !answered {
		return 0, err
	}
	return st, nil
}

// deliverHere sends p on one of account's receiving binds here. status is
// the ESME's answer when it answered (answered, err nil), a refusal
// included.
func (g *Gateway) deliverHere(ctx context.Context, account string, p *smpp.PDU) (answered bool, status uint32, err error) {
	resp, err := g.server.Deliver(ctx, account, p)
	var se *smpp.StatusError
	if errors.As(err, &se) && resp != nil {
		return true, se.Status, nil
	}
	if err != nil {
		return false, 0, err
	}
	return true, resp.Status, nil
}

// deliverReceipt sends a receipt on a receiving bind of account, here or,
// with none here, at another node; the results are deliverHere's.
func (g *Gateway) deliverReceipt(ctx context.Context, account string, p *smpp.PDU) (answered bool, status uint32, err error) {
	answered, status, err = g.deliverHere(ctx, account, p)
	if !errors.Is(err, smpp.ErrNotBound) || g.cfg.Elsewhere == nil {
		return answered, status, err
	}
	raw, aerr := p.AppendTo(nil)
	if aerr != nil {
		return false, 0, fmt.Errorf("smppgw: encode receipt: %w", aerr)
	}
	st, derr := g.cfg.Elsewhere.DeliverESME(ctx, account, raw)
	if derr != nil {
		return false, 0, errors.Join(err, derr)
	}
	if st == smpp.ESME_ROK {
		g.ReceiptsForwarded.Add(1)
	}
	return true, st, nil
}
