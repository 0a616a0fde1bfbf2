package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// Alphabet is the kind of text a message carries.
type Alphabet uint8

const (
	GSM7 Alphabet = iota // one GSM 7-bit part
	UCS2                 // one UCS-2 part of Chinese
	Long                 // three concatenated GSM 7-bit parts
	numAlphabets
)

var alphabetNames = [numAlphabets]string{"gsm7", "ucs2", "long"}

const (
	gsmFill  = " Hello from the bench: plain GSM 7-bit text, one SMS."
	ucs2Fill = " 你好，这是一条中文测试短信。"
	longFill = " This is a long message that needs three concatenated parts. " +
		"Carriers still send these for OTPs with disclaimers, marketing and alerts. " +
		"Every part has a UDH with a 16-bit reference, total and sequence number. " +
		"The bridge reassembles them for IM and splits them again for SMS. " +
		"The bench counts the message delivered only when all parts arrived."
)

// Text renders the message body for tok in alphabet a.
func Text(tok Token, a Alphabet) string {
	b := tok.Append(make([]byte, 0, 400))
	switch a {
	case UCS2:
		b = append(b, ucs2Fill...)
	case Long:
		b = append(b, longFill...)
	default:
		b = append(b, gsmFill...)
	}
	return string(b)
}

// Weights parses "name:w,name:w" against names into normalized fractions.
func Weights(spec string, names []string) ([]float64, error) {
	w := make([]float64, len(names))
	var sum float64
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, ":")
		if !ok {
			val = "1"
		}
		i := -1
		for j, n := range names {
			if n == name {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%q: unknown name %q (want one of %s)", spec, name, strings.Join(names, ", "))
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || f < 0 || f != f {
			return nil, fmt.Errorf("%q: weight of %s is not a non-negative number", spec, name)
		}
		w[i] += f
		sum += f
	}
	if sum <= 0 {
		return nil, fmt.Errorf("%q: weights sum to zero", spec)
	}
	for i := range w {
		w[i] /= sum
	}
	return w, nil
}

func pick(rng *rand.Rand, w []float64) int {
	x := rng.Float64()
	for i, f := range w {
		if x < f {
			return i
		}
		x -= f
	}
	for i := len(w) - 1; i >= 0; i-- {
		if w[i] > 0 {
			return i
		}
	}
	return 0
}

// job is one message to send; atUs is its intended send time in rate mode
// (latency counts from then, so a generator that falls behind does not hide
// the bridge's queueing: no coordinated omission), 0 in open-loop mode.
type job struct {
	route Route
	alpha Alphabet
	atUs  uint64
}

// Load describes the traffic of one phase.
type Load struct {
	Rate     float64 // msg/s; 0 = open loop, as fast as the windows allow
	Duration time.Duration
	Warmup   time.Duration
	Routes   []float64 // by Route
	Alphas   []float64 // by Alphabet

	Binds, Window int
	SIPWindow     int
	// SMPPAddrs are where ESMEs bind (bind b at b mod their number) and
	// SIPAddrs where IM users register and send (Online[i] at i mod
	// theirs): one each, or one per node of a cluster.
	SMPPAddrs []string
	SIPAddrs  []string
	SIPAuth   bool
	Online    []string // registered IM users
	// Local keeps a cluster's traffic on one node: a message to an IM
	// user goes only to users registered where it was submitted.
	Local      bool
	SMSNumbers int // offline numbers for the SMS routes
	// XMPP is the generator's XMPP users (nil without XMPP routes);
	// XMPPWindow bounds the XMPP messages in flight.
	XMPP       *XMPPPool
	XMPPWindow int
	// Group is the group route's groups and SMSC the bench's SMSC its
	// posts leave from (nil without the group route); Window bounds the
	// posts in flight, as it bounds that SMSC's window toward the bridge.
	Group *groupPlan
	SMSC  *SMSC
}

// Generator drives a Load through ESMEs and the UA pool.
type Generator struct {
	load Load
	tr   *Tracker
	pool *UAPool
	// relay runs each acknowledged message's second leg in the ceiling
	// phase; nil in the bridge phase, where the bridge does it.
	relay *Relay
	log   *slog.Logger
	// Rate mode. A message that cannot start on time (every window slot
	// busy) starts late, its latency still counted from its intended time;
	// unsent counts those still waiting when the run ended.
	unsent    atomic.Uint64
	late      atomic.Uint64 // started more than lateAfterUs after their intended time
	lateMaxUs atomic.Uint64
}

// lateAfterUs is how far behind its schedule a send may start and still
// count as on time: two of the pacer's 1 ms ticks, for its own wake-up.
const lateAfterUs = 2000

func smsNumber(i int) string { return "86137" + fmt.Sprintf("%08d", i) }

// Run sends for Warmup+Duration and returns when every worker stopped.
func (g *Generator) Run(ctx context.Context) error {
	l := g.load
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var smsW, imW, xmppW, groupW float64
	for r, w := range l.Routes {
		switch {
		case Route(r) == Group:
			groupW += w
		case Route(r).FromSMS():
			smsW += w
		case Route(r).FromXMPP():
			xmppW += w
		default:
			imW += w
		}
	}
	depth := max(l.Binds*l.Window, l.SIPWindow, l.XMPPWindow)
	smsJobs := make(chan job, depth)
	imJobs := make(chan job, depth)
	xmppJobs := make(chan job, depth)
	groupJobs := make(chan job, depth)
	queue := func(r Route) chan job {
		switch {
		case r == Group:
			return groupJobs
		case r.FromSMS():
			return smsJobs
		case r.FromXMPP():
			return xmppJobs
		}
		return imJobs
	}

	var wg sync.WaitGroup
	var bindErr atomic.Pointer[error]
	if smsW > 0 {
		for b := range l.Binds {
			cli := smpp.NewClient(smpp.ClientConfig{
				Addr: l.SMPPAddrs[b%len(l.SMPPAddrs)], SystemID: "bench", Password: "benchpw", Bind: smpp.BindTransmitter,
				Window: l.Window, Logger: g.log, RespTimeout: 30 * time.Second,
				MinBackoff: 100 * time.Millisecond,
			})
			// The bind outlives ctx until its workers are done, so no
			// acknowledged submit is cut off mid-flight.
			runCtx, stopBind := context.WithCancel(context.WithoutCancel(ctx))
			runDone := make(chan struct{})
			go func() { defer close(runDone); _ = cli.Run(runCtx) }()
			var bw sync.WaitGroup
			for w := range l.Window {
				bw.Add(1)
				go func() {
					defer bw.Done()
					rng := rand.New(rand.NewPCG(uint64(b), uint64(w)))
					g.esmeWorker(ctx, cli, b%len(l.SMPPAddrs), rng, smsJobs, &bindErr)
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				bw.Wait()
				stopBind()
				<-runDone
			}()
		}
	}
	if imW > 0 {
		for w := range l.SIPWindow {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				g.sipWorker(ctx, rng, imJobs)
			}()
		}
	}
	if xmppW > 0 {
		if l.XMPP == nil || l.XMPP.Len() == 0 {
			return errors.New("the mix has XMPP routes but there are no XMPP users")
		}
		for w := range l.XMPPWindow {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 11))
				g.xmppWorker(ctx, rng, xmppJobs)
			}()
		}
	}

	if groupW > 0 {
		if l.Group == nil || l.SMSC == nil {
			return errors.New("the mix has the group route but no groups or SMSC to post from")
		}
		for w := range l.Window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 13))
				g.groupWorker(ctx, rng, groupJobs)
			}()
		}
	}

	// The pacer decides every message's route and alphabet, so the mix
	// holds whichever side is slower.
	rng := rand.New(rand.NewPCG(1, 2))
	start := g.tr.Now()
	total := uint64((l.Warmup + l.Duration).Microseconds())
	g.tr.measureFromUs.Store(start + uint64(l.Warmup.Microseconds()))
	g.tr.measureToUs.Store(start + total)
	var sent uint64
	// scheduled is message k of the rate: its route, alphabet and intended
	// send time.
	scheduled := func(k uint64) job {
		return job{route: Route(pick(rng, l.Routes)), alpha: Alphabet(pick(rng, l.Alphas)),
			atUs: start + uint64(float64(k)*1e6/l.Rate)}
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(time.Until(g.tr.epoch.Add(time.Duration(start+total) * time.Microsecond)))
	defer end.Stop()
pace:
	for {
		now := g.tr.Now()
		if now-start >= total || ctx.Err() != nil {
			break
		}
		if l.Rate <= 0 {
			j := job{route: Route(pick(rng, l.Routes)), alpha: Alphabet(pick(rng, l.Alphas))}
			select {
			case queue(j.route) <- j:
			case <-end.C:
				break pace
			case <-ctx.Done():
				break pace
			}
			continue
		}
		due := dueBy(now-start, l.Rate)
		for ; sent < due; sent++ {
			j := scheduled(sent)
			// Open loop: a full queue delays this message (and the pacer),
			// it is not skipped; its latency counts from j.atUs.
			select {
			case queue(j.route) <- j:
			case <-end.C:
				break pace
			case <-ctx.Done():
				break pace
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if l.Rate > 0 && ctx.Err() == nil {
		// The pacer's last tick may come after the end: what was due
		// before it is still this run's, sent late, not dropped.
		for due := dueBy(total-1, l.Rate); sent < due; sent++ {
			j := scheduled(sent)
			select {
			case queue(j.route) <- j:
				continue
			default:
			}
			g.unsent.Store(due - sent) // every window still full at the end
			break
		}
	}
	close(smsJobs)
	close(imJobs)
	close(xmppJobs)
	close(groupJobs)
	wg.Wait()
	if e := bindErr.Load(); e != nil {
		return *e
	}
	return nil
}

// dueBy is how many messages are due elapsedUs into a run at rate msg/s:
// message k is due at k/rate, so k is sent as soon as that time has come,
// and not one interval later (which latency, counted from the schedule,
// would then include: 50 ms at 20 msg/s).
func dueBy(elapsedUs uint64, rate float64) uint64 {
	return uint64(float64(elapsedUs)*rate/1e6) + 1
}

// dest picks route r's destination for a message submitted at node (an
// index of the nodes' addresses).
func (g *Generator) dest(rng *rand.Rand, r Route, node int) string {
	switch {
	case r == SMSToIM || r == IMToIM:
		on := g.load.Online
		if n := len(g.load.SIPAddrs); g.load.Local && n > 1 && node < len(on) {
			// Users node, node+n, node+2n, ... registered at node.
			return on[node+n*rng.IntN((len(on)-node+n-1)/n)]
		}
		return on[rng.IntN(len(on))]
	case r.ToXMPP():
		return xmppNumber(rng.IntN(g.load.XMPP.Len()))
	}
	return smsNumber(rng.IntN(max(g.load.SMSNumbers, 1)))
}

func (g *Generator) next(j job) Token {
	if j.atUs != 0 {
		if now := g.tr.Now(); now > j.atUs+lateAfterUs {
			g.late.Add(1)
			for late := now - j.atUs; ; {
				m := g.lateMaxUs.Load()
				if late <= m || g.lateMaxUs.CompareAndSwap(m, late) {
					break
				}
			}
		}
		return g.tr.NextAt(j.route, j.atUs)
	}
	return g.tr.Next(j.route)
}

// smsSource is the number every bench ESME submits from.
const smsSource = "8613800000001"

// errRefused is a SIP final status that is neither 2xx nor a transport error.
var errRefused = errors.New("refused")

func (g *Generator) esmeWorker(ctx context.Context, cli *smpp.Client, node int, rng *rand.Rand, jobs <-chan job, fatal *atomic.Pointer[error]) {
	var p smpp.PDU
	var bo backoff
	for j := range jobs {
		tok := g.next(j)
		dst := g.dest(rng, j.route, node)
		text := Text(tok, j.alpha)
		if err := submitSMS(ctx, cli, &p, smsSource, dst, text, uint16(tok.Seq)); err != nil {
			throttled := smppThrottled(err)
			g.tr.Refused(tok, throttled)
			var se *smpp.StatusError
			if !throttled && !errors.As(err, &se) {
				g.log.Debug("submit failed", "err", err)
			}
			bo.refused(ctx, throttled)
			continue
		}
		bo.accepted()
		g.acked(ctx, &p, tok, smsSource, dst, text)
	}
}

func (g *Generator) sipWorker(ctx context.Context, rng *rand.Rand, jobs <-chan job) {
	var p smpp.PDU // the relay's scratch PDU
	var bo backoff
	for j := range jobs {
		tok := g.next(j)
		i := rng.IntN(len(g.load.Online))
		node := i % len(g.load.SIPAddrs)
		from := g.load.Online[i]
		to := g.dest(rng, j.route, node)
		text := Text(tok, j.alpha)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		code, err := g.pool.Message(sctx, g.load.SIPAddrs[node], from, to, text, g.load.SIPAuth)
		cancel()
		if ok, throttled := sipOutcome(code, err); !ok {
			g.tr.Refused(tok, throttled)
			if !throttled {
				g.log.Debug("MESSAGE failed", "code", code, "err", err)
			}
			bo.refused(ctx, throttled)
			continue
		}
		bo.accepted()
		g.acked(ctx, &p, tok, from, to, text)
	}
}

// xmppWorker sends XMPP-originated messages: a chat message from a random
// user to +<number>@<gateway domain>, acknowledged by the gateway's answer
// to the ping that follows it (XMPPPool.Send).
func (g *Generator) xmppWorker(ctx context.Context, rng *rand.Rand, jobs <-chan job) {
	var p smpp.PDU // the relay's scratch PDU
	var bo backoff
	pool := g.load.XMPP
	for j := range jobs {
		tok := g.next(j)
		i := rng.IntN(pool.Len())
		to := g.dest(rng, j.route, 0)
		text := Text(tok, j.alpha)
		err := pool.Send(ctx, i, "+"+to+"@"+pool.domain, text, strconv.FormatUint(tok.Seq, 36))
		switch {
		case errors.Is(err, errXMPPNoAnswer):
			// No error came back either: by XMPP's rules the gateway has
			// the message, so it counts as taken and, never delivered, as
			// lost.
			g.log.Warn("no answer from the XMPP gateway", "token", tok.String())
		case err != nil:
			throttled := xmppThrottled(err)
			g.tr.Refused(tok, throttled)
			if !throttled {
				g.log.Debug("xmpp send failed", "err", err)
			}
			bo.refused(ctx, throttled)
			continue
		}
		bo.accepted()
		g.acked(ctx, &p, tok, xmppNumber(i), to, text)
	}
}

// backoff is a worker's pause after the bridge pushed back, as a real ESME
// or client waits before it sends again: without it, an open-loop worker
// would answer a full queue with a storm of refused submissions that takes
// the CPU the bridge needs to empty it. The pause doubles from 10 ms to 1 s
// with each throttle and halves with each acceptance, so a worker settles
// near the rate the bridge takes.
type backoff struct{ d time.Duration }

func (b *backoff) refused(ctx context.Context, throttled bool) {
	if !throttled {
		return
	}
	b.d = min(max(2*b.d, 10*time.Millisecond), time.Second)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (b *backoff) accepted() {
	if b.d /= 2; b.d < 10*time.Millisecond {
		b.d = 0
	}
}

// acked records leg 1's acknowledgement and, in the ceiling phase, runs leg
// 2 through the relay in the same worker, as a zero-logic relay would.
func (g *Generator) acked(ctx context.Context, p *smpp.PDU, tok Token, from, to, text string) {
	g.tr.Acked(tok)
	if g.relay == nil {
		return
	}
	if throttled, err := g.relay.Forward(ctx, p, tok, from, to, text); err != nil {
		// Leg 1 was acknowledged, so the census counts the message lost;
		// counting the refusal as well puts it in the per-second
		// throttle/error series when it happens.
		g.tr.Refused(tok, throttled)
		g.log.Debug("relay egress failed", "route", tok.Route, "err", err)
	}
}

// submitSMS submits text from src to dst over cli, split as smstext.Split
// cuts it (UCS-2 when GSM 7-bit does not fit, 16-bit UDH reference ref for
// concatenated parts), and returns the first part's error.
func submitSMS(ctx context.Context, cli *smpp.Client, p *smpp.PDU, src, dst, text string, ref uint16) error {
	send := func(ctx context.Context, p *smpp.PDU) error {
		_, err := cli.Send(ctx, p)
		return err
	}
	return sendSMS(ctx, smpp.SubmitSM, send, p, src, dst, text, ref)
}

// sendSMS sends text from src to dst as PDUs id (submit_sm from an ESME,
// deliver_sm from the SMSC), split as submitSMS says, through send.
func sendSMS(ctx context.Context, id smpp.CommandID, send func(context.Context, *smpp.PDU) error, p *smpp.PDU, src, dst, text string, ref uint16) error {
	dcs, parts, err := smstext.Split(text, smstext.Auto, ref, true)
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	for i, part := range parts {
		p.Reset()
		p.ID = id
		p.SourceAddrTON, p.SourceAddrNPI, p.SourceAddr = 1, 1, src
		p.DestAddrTON, p.DestAddrNPI, p.DestAddr = 1, 1, dst
		p.DataCoding = dcs
		p.ShortMessage = append(append(p.ShortMessage[:0], part.UDH...), part.Body...)
		if len(part.UDH) > 0 {
			p.ESMClass = 0x40
		}
		// Sends may not be cut off by the end of the run: an unanswered
		// one is neither accepted nor refused. The sessions' RespTimeout
		// (30 s) bounds the wait, without a timer per PDU.
		if err := send(context.WithoutCancel(ctx), p); err != nil {
			return fmt.Errorf("%v part %d/%d: %w", id, i+1, len(parts), err)
		}
	}
	return nil
}

// smppThrottled reports whether err is the SMSC (or bridge) pushing back.
func smppThrottled(err error) bool {
	var se *smpp.StatusError
	return errors.As(err, &se) && (se.Status == smpp.ESME_RTHROTTLED || se.Status == smpp.ESME_RMSGQFUL)
}

// sipOutcome classifies a MESSAGE's final status: accepted, or refused as
// back-pressure (throttled) or as a failure.
func sipOutcome(code int, err error) (ok, throttled bool) {
	switch {
	case err == nil && code >= 200 && code < 300:
		return true, false
	case code == 503 || code == 429 || code == 486:
		return false, true
	}
	return false, false
}
