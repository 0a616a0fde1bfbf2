package smppgw

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smstext"
)

// Parts of a long message are acknowledged one by one, so each is stored
// before its submit_sm_resp and the set survives a restart. Key:
// "sp/"+source+\x00+dest+\x00+ref(hex)+\x00+seq(hex) (see partPrefix).
const prefixParts = "sp/"

func partPrefix(k smstext.Key) string {
	return fmt.Sprintf("%s%s\x00%s\x00%04x\x00", prefixParts, k.Source, k.Dest, k.Ref)
}

// storedPart is one part as kept in the KV, with what is needed to submit
// the whole message after a restart.
type storedPart struct {
	smstext.StoredPart
	Account string
	Receipt bool
	Kind    msg.Kind
}

func encodePart(p storedPart) []byte {
	b := []byte{1, p.Total, p.Seq, p.DCS, byte(p.Kind), 0}
	if p.Receipt {
		b[5] = 1
	}
	b = binary.BigEndian.AppendUint64(b, uint64(p.First.UnixNano()))
	b = append(b, byte(len(p.Account)))
	b = append(b, p.Account...)
	return append(b, p.Body...)
}

func decodePart(key, v []byte) (storedPart, error) {
	var p storedPart
	f := strings.Split(strings.TrimPrefix(string(key), prefixParts), "\x00")
	if len(v) < 15 || v[0] != 1 || len(f) != 4 {
		return p, errors.New("smppgw: bad stored part")
	}
	var ref uint16
	if _, err := fmt.Sscanf(f[2], "%04x", &ref); err != nil {
		return p, fmt.Errorf("smppgw: bad stored part ref: %w", err)
	}
	p.Key = smstext.Key{Source: f[0], Dest: f[1], Ref: ref}
	p.Total, p.Seq, p.DCS, p.Kind, p.Receipt = v[1], v[2], v[3], msg.Kind(v[4]), v[5] == 1
	p.First = time.Unix(0, int64(binary.BigEndian.Uint64(v[6:14])))
	n := int(v[14])
	if len(v) < 15+n {
		return p, errors.New("smppgw: bad stored part account")
	}
	p.Account = string(v[15 : 15+n])
	p.Body = append([]byte(nil), v[15+n:]...)
	return p, nil
}

func (g *Gateway) storePart(ctx context.Context, p storedPart) error {
	if g.cfg.KV == nil {
		return nil
	}
	key := fmt.Sprintf("%s%02x", partPrefix(p.Key), p.Seq)
	return g.cfg.KV.Put(ctx, []byte(key), encodePart(p))
}

func (g *Gateway) deletePart(ctx context.Context, p storedPart) {
	if g.cfg.KV == nil {
		return
	}
	key := fmt.Sprintf("%s%02x", partPrefix(p.Key), p.Seq)
	if err := g.cfg.KV.Delete(ctx, []byte(key)); err != nil {
		g.log.Warn("stored part not removed", "key", p.Key, "err", err)
	}
}

// parts lists the stored parts of one reassembly.
func (g *Gateway) parts(k smstext.Key) []storedPart {
	if g.cfg.KV == nil {
		return nil
	}
	var out []storedPart
	g.cfg.KV.Iterate([]byte(partPrefix(k)), func(key, v []byte) error {
		if p, err := decodePart(key, v); err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func (g *Gateway) dropParts(ctx context.Context, k smstext.Key) {
	for _, p := range g.parts(k) {
		key := fmt.Sprintf("%s%02x", partPrefix(p.Key), p.Seq)
		if err := g.cfg.KV.Delete(ctx, []byte(key)); err != nil {
			g.log.Warn("stored part not removed", "key", k, "err", err)
		}
	}
}

// restoreParts puts the stored parts of k (but seq skip) back into the
// reassembler: the message completed but could not be submitted, so its
// last part was refused and the sender will send it again.
func (g *Gateway) restoreParts(k smstext.Key, skip byte) {
	for _, p := range g.parts(k) {
		if p.Seq != skip {
			g.reasm.Restore(p.StoredPart)
		}
	}
}

// Run keeps the bind to the upstream SMSC up, and restores unfinished long
// messages from the KV, then hands out reassemblies that time out (partial
// ones if the policy says so), until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	if g.ups == nil {
		return g.reassemble(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, u := range g.ups.all {
		wg.Go(func() { u.client.Run(ctx) }) // returns once ctx has ended
	}
	err := g.reassemble(ctx)
	cancel()
	wg.Wait()
	return err
}

func (g *Gateway) reassemble(ctx context.Context) error {
	if g.cfg.KV != nil {
		n := 0
		err := g.cfg.KV.Iterate([]byte(prefixParts), func(key, v []byte) error {
			p, err := decodePart(key, v)
			if err != nil {
				g.log.Warn("skipping stored part", "err", err)
				return nil
			}
			n++
			g.meta.Store(p.Key, partMeta{account: p.Account, receipt: p.Receipt, kind: p.Kind})
			return g.reasm.Restore(p.StoredPart)
		})
		if err != nil {
			return fmt.Errorf("smppgw: restore parts: %w", err)
		}
		if n > 0 {
			g.log.Info("restored parts of long messages", "parts", n)
		}
	}
	every := g.cfg.Reassembly.Timeout / 10
	if every <= 0 {
		every = 30 * time.Second
	}
	every = max(every, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sweep := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			sweep = true
		case <-g.closedKick:
		}
		for _, a := range g.reasm.Expire() {
			g.submitAssembled(ctx, a)
		}
		if sweep {
			g.sweepParts(ctx)
		}
	}
}

type partMeta struct {
	account string
	receipt bool
	kind    msg.Kind
}

// submitAssembled routes a message completed by restore or handed out
// before its last part (timeout, a cap) with missing-part markers; one
// handed out Dropped is not delivered, and its sender gets a failed receipt.
func (g *Gateway) submitAssembled(ctx context.Context, a *smstext.Assembled) {
	pm, _ := g.meta.Load(a.Key)
	meta, _ := pm.(partMeta)
	if meta.kind == 0 {
		meta.kind = msg.FromESME
	}
	if a.Dropped {
		g.dropAssembled(ctx, a, meta)
		return
	}
	m := &msg.Message{
		From: msg.Address(a.Key.Source), To: msg.Address(a.Key.Dest), Text: a.Text,
		Origin:  msg.Origin{Kind: meta.kind, Account: meta.account, Ref: fmt.Sprintf("sar-%04x", a.Key.Ref)},
		Receipt: meta.receipt,
	}
	if err := msg.Accept(ctx, g.rt, m); err != nil {
		// Parts stay stored; the next start tries again.
		g.log.Warn("reassembled message not accepted", "key", a.Key, "err", err)
		return
	}
	if a.Missing > 0 {
		g.PartialMessages.Add(1)
	}
	g.meta.Delete(a.Key)
	g.dropParts(ctx, a.Key)
}

// dropAssembled tells the sender of a message dropped by policy before
// its last part came: an UNDELIV receipt when it asked for receipts, and
// always the log and the counter.
func (g *Gateway) dropAssembled(ctx context.Context, a *smstext.Assembled, meta partMeta) {
	g.DroppedMessages.Add(1)
	ref := fmt.Sprintf("sar-%04x", a.Key.Ref)
	g.log.Warn("long message dropped before all its parts came", "source", a.Key.Source, "dest", a.Key.Dest,
		"ref", ref, "parts", a.Parts, "missing", a.Missing, "esme", meta.account, "receipt", meta.receipt)
	if meta.receipt && meta.kind == msg.FromESME && meta.account != "" {
		m := &msg.Message{ID: ref, From: msg.Address(a.Key.Source), To: msg.Address(a.Key.Dest), Text: a.Text,
			Accepted: a.First, Receipt: true, Origin: msg.Origin{Kind: meta.kind, Account: meta.account, Ref: ref}}
		g.Report(ctx, m, msg.Outcome{State: msg.Failed, Detail: "parts missing", At: g.cfg.Now()})
	}
	g.meta.Delete(a.Key)
	g.dropParts(ctx, a.Key)
}

// sweepParts removes stored parts of reassemblies that timed out and were
// dropped by policy (they are no longer pending in the reassembler).
func (g *Gateway) sweepParts(ctx context.Context) {
	if g.cfg.KV == nil {
		return
	}
	timeout := g.cfg.Reassembly.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	cutoff := g.cfg.Now().Add(-2 * timeout)
	var old [][]byte
	g.cfg.KV.Iterate([]byte(prefixParts), func(key, v []byte) error {
		if p, err := decodePart(key, v); err == nil && p.First.Before(cutoff) {
			old = append(old, append([]byte(nil), key...))
		}
		return nil
	})
	for _, k := range old {
		g.cfg.KV.Delete(ctx, k)
	}
}
