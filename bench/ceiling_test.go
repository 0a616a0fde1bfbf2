package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
)

// TestCeilingRelaysBothLegs runs a short ceiling-only phase per route and
// checks that each message took both legs: the ingress peer of the route's
// origin saw it, and it was counted delivered only at the egress sink of the
// route's destination (a SIP responder for *→IM, the SMSC behind the relay's
// one bind for *→SMS, the XMPP users for *→XMPP), with nothing lost. The
// XMPP routes run through a real Prosody and skip without one (unless
// BRIDGE_REQUIRE_INTEROP=1).
func TestCeilingRelaysBothLegs(t *testing.T) {
	for _, route := range routeNames {
		t.Run(route, func(t *testing.T) {
			r, _ := ParseRoute(route)
			o, err := ParseFlags([]string{
				"--ceiling", "--ceiling-duration", "1s", "--warmup", "0s", "--drain", "10s",
				"--users", "10", "--binds", "2", "--window", "8", "--sip-window", "16", "--sms-numbers", "50",
				"--xmpp-users", "5", "--xmpp-window", "16",
				"--mix", route + ":1", "--alphabet", "gsm7:2,ucs2:1,long:1", "--out", t.TempDir(),
			}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := planLoad(o)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			log := slog.New(slog.DiscardHandler)
			if r == Group {
				// It has none: --ceiling alone is refused, with the reason.
				if _, err := Run(ctx, o, io.Discard, log); err == nil || !strings.Contains(err.Error(), groupNoCeiling) {
					t.Fatalf("--ceiling with the group route: %v", err)
				}
				return
			}
			var xs *prosodytest.Server
			if r.XMPP() {
				xs = prosodytest.Start(t, prosodyOptions(o))
			}
			c, err := startCeiling(ctx, o, xs, log)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var progress bytes.Buffer
			res, err := c.run(ctx, o, l, &progress, log)
			if err != nil {
				t.Fatalf("ceiling: %v\n%s", err, progress.String())
			}

			if res.TotalDelivered == 0 || res.Routes[route].Delivered == 0 {
				t.Fatalf("nothing delivered: %+v", res)
			}
			if res.Lost != 0 || res.Errors != 0 || res.Throttled != 0 || res.Unanswered != 0 ||
				res.DeliveredUnacked != 0 || res.Duplicates != 0 || res.Unknown != 0 ||
				res.SMSCBad != 0 || res.SIPBad != 0 || res.XMPPBad != 0 || res.Elsewhere != 0 {
				t.Fatalf("lost %d (samples %v), errors %d, throttled %d, unanswered %d, unacked %d, dups %d, unknown %d, bad %d/%d/%d",
					res.Lost, res.LostSamples, res.Errors, res.Throttled, res.Unanswered, res.DeliveredUnacked,
					res.Duplicates, res.Unknown, res.SMSCBad, res.SIPBad, res.XMPPBad)
			}
			if res.TotalDelivered != res.TotalAcked {
				t.Errorf("acked %d, delivered %d", res.TotalAcked, res.TotalDelivered)
			}

			// Leg 1: the origin's ingress peer took every message. The SIP
			// responder counts a MESSAGE just after its 200 is on the wire.
			ingress := c.inSIP.Received
			switch {
			case r.FromSMS():
				ingress = c.inSMSC.Received
			case r.FromXMPP():
				ingress = c.comp.Received
			}
			testutil.WaitForState(t, 5*time.Second, func() bool { return ingress() >= res.TotalAcked }, func() string {
				return fmt.Sprintf("ingress peer saw %d messages, %d acknowledged", ingress(), res.TotalAcked)
			})
			// Leg 2: every delivery was counted at the destination's egress
			// sink, and only there.
			toIM, toSMS, toXMPP := c.outSIP.Received(), c.outSMSC.Received(), uint64(0)
			if c.xmpp != nil {
				toXMPP = c.xmpp.Received()
			}
			want := toIM
			switch {
			case r.ToSMS():
				want = toSMS
				if n := c.outSMSC.Bound(); n != 1 {
					t.Errorf("egress SMSC has %d binds, want the relay's one", n)
				}
			case r.ToXMPP():
				want = toXMPP
			}
			if want != res.TotalDelivered || toIM+toSMS+toXMPP != want {
				t.Errorf("egress sinks: %d at the route's (IM %d, SMS %d, XMPP %d), tracker delivered %d",
					want, toIM, toSMS, toXMPP, res.TotalDelivered)
			}
		})
	}
}
