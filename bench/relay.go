package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smsbridge/bridge/smpp"
)

// maxRelayWindow caps the relay's one egress bind, as a bridge's bind to its
// SMSC is capped by what an SMSC grants.
const maxRelayWindow = 256

// Relay is the ceiling phase's stand-in for the bridge's egress: a
// zero-logic relay with no store and no routing. After the ingress peer
// acknowledged a message (leg 1), the generator's worker hands it here and
// the relay sends it on (leg 2) to a counting sink: a SIP MESSAGE with the
// whole text for *→IM routes, submit_sm split into parts over one SMPP bind
// for *→SMS routes, a chat message and a ping from the gateway's component
// through Prosody to the user's client for *→XMPP routes. Only that sink
// counts the message delivered, so the ceiling does per message the same
// transport work the bridge does.
type Relay struct {
	sms     *smpp.Client
	ua      *UAPool // the relay's own user agent: the bridge has one too
	sipAddr string  // the counting MESSAGE responder
	// xmpp is the component the *→XMPP leg leaves from, nil without
	// Prosody; xmppHost is the vhost of the users it delivers to.
	xmpp     *Component
	xmppHost string
	// refused counts a message whose XMPP leg was not confirmed; the
	// confirmations are awaited off the generator's workers (waiters), as
	// the bridge awaits them after acknowledging the message.
	refused func(tok Token, throttled bool)
	waiters sync.WaitGroup
	log     *slog.Logger
	stop    context.CancelFunc
	done    chan struct{}
}

// StartRelay binds once to the counting SMSC at smscAddr with window and
// sends MESSAGEs through ua to sipAddr. The bind lives until Close, not
// ctx: Close comes after the generator stopped, so no acknowledged message
// loses its second leg to the end of the run.
func StartRelay(ctx context.Context, smscAddr, sipAddr string, window int, ua *UAPool, log *slog.Logger) *Relay {
	r := &Relay{
		sms: smpp.NewClient(smpp.ClientConfig{
			Addr: smscAddr, SystemID: "relay", Password: "relaypw", Bind: smpp.BindTransmitter,
			Window: window, Logger: log, RespTimeout: 30 * time.Second,
			MinBackoff: 100 * time.Millisecond,
		}),
		ua: ua, sipAddr: sipAddr, done: make(chan struct{}), log: log,
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	go func() { defer close(r.done); _ = r.sms.Run(runCtx) }()
	return r
}

// Close waits for the XMPP confirmations outstanding, unbinds and waits for
// the bind to end.
func (r *Relay) Close() {
	r.waiters.Wait()
	r.stop()
	<-r.done
}

// Forward sends leg 2 of tok's message, text from the user or number from
// to the user or number to, over p (scratch, reused by the caller). A
// non-nil error says the egress sink did not take it; throttled says it
// was back-pressure rather than a failure.
func (r *Relay) Forward(ctx context.Context, p *smpp.PDU, tok Token, from, to, text string) (throttled bool, err error) {
	if tok.Route.ToSMS() {
		if err := submitSMS(ctx, r.sms, p, from, to, text, uint16(tok.Seq)); err != nil {
			return smppThrottled(err), fmt.Errorf("relay submit_sm to %s: %w", to, err)
		}
		return false, nil
	}
	if tok.Route.ToXMPP() {
		return false, r.forwardXMPP(tok, from, to, text)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	code, err := r.ua.Message(sctx, r.sipAddr, from, to, text, false)
	cancel()
	if ok, thr := sipOutcome(code, err); !ok {
		if err == nil {
			err = errRefused
		}
		return thr, fmt.Errorf("relay MESSAGE to %s: status %d: %w", to, code, err)
	}
	return false, nil
}

// forwardXMPP writes text from the number from to the XMPP user whose
// number is to, at the full JID its client bound, and awaits its
// confirmation on a goroutine of its own.
func (r *Relay) forwardXMPP(tok Token, from, to, text string) error {
	i, ok := xmppIndex(to)
	if r.xmpp == nil || !ok {
		return fmt.Errorf("relay: no XMPP user has the number %s", to)
	}
	jid := xmppUserName(i) + "@" + r.xmppHost + "/" + xmppResource
	d, err := r.xmpp.Send("+"+from+"@"+r.xmpp.domain, jid, text)
	if err != nil {
		return fmt.Errorf("relay chat to %s: %w", jid, err)
	}
	r.waiters.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Wait(ctx); err != nil {
			r.log.Debug("relay chat not confirmed", "to", jid, "err", err)
			if r.refused != nil {
				r.refused(tok, false)
			}
		}
	})
	return nil
}
